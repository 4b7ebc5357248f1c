// Package console serves riskd's browser pages from assets embedded in the
// binary: the analyst and reviewer console under /console/ and the appeal
// page for the people decisions affect under /appeal/.
//
// The pages are hand-written HTML, CSS and ES modules with no build step and
// no third-party code; they call the Connect API directly (POST of JSON with
// the caller's bearer token), so the API enforces roles and audits every
// call exactly as it does for riskctl. Every response carries a strict
// Content-Security-Policy (no inline script or style, nothing from another
// origin, no framing).
//
// Tokens never travel in a URL the server sees: the app hands the appeal
// page a subject token in the URL fragment (/appeal/#token=...), which
// browsers never send; the page moves it to sessionStorage and removes the
// fragment from the address bar and history. Analysts paste their token into
// a sign-in form. Every API call sends it as Authorization: Bearer.
//
// CSRF: the API authenticates with a bearer header, never a cookie, so a
// page on another site has no ambient credential to ride on; a cross-site
// HTML form cannot set Authorization, nor the Content-Type Connect requires
// (application/json or application/proto), and a cross-origin fetch that sets
// them needs a CORS preflight riskd never grants. Protect adds defence in
// depth for the API: a browser request (one carrying Sec-Fetch-Site or
// Origin) to a /risk.v1. procedure must be same-origin and carry the page's
// per-session X-CSRF-Token header, which only a script of this origin can
// set. The console itself has no state-changing endpoint: its one endpoint,
// GET whoami, only reads.
//
// Handler and Protect are safe for concurrent use; the assets are immutable.
package console
