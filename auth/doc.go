// Package auth decides who is calling riskd and what they may call. It keeps
// the credentials file (<data dir>/credentials.json, mode 0600: static bearer
// tokens for the service, analyst and admin roles, the key that signs subject
// tokens and the pseudonym key), authenticates an Authorization header as a
// Principal (a static token compared in constant time, or a subject's HS256
// JWT), and holds the policy table that maps each Connect procedure to the
// roles allowed to call it.
//
// Authorization by role happens here; ownership (a subject sees only their
// own decisions and appeals) is enforced by the handlers, which know what a
// request refers to. Errors never carry a token. An Authenticator is
// immutable after NewAuthenticator and safe for concurrent use.
package auth
