package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/console"
	"github.com/riskd/riskd/internal/testserver"
)

func TestPagesAndHeaders(t *testing.T) {
	creds, err := auth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	h := console.Handler(console.Options{Auth: auth.NewAuthenticator(creds, nil)})
	for _, tc := range []struct {
		method, path string
		status       int
		ctype, cache string
		body         string
	}{
		{"GET", "/console/", 200, "text/html; charset=utf-8", "no-store", `<script type="module" src="app.js">`},
		{"GET", "/appeal/", 200, "text/html; charset=utf-8", "no-store", `<script type="module" src="appeal.js">`},
		{"GET", "/console/app.js", 200, "text/javascript; charset=utf-8", "no-cache", "import"},
		{"GET", "/appeal/shared/api.js", 200, "text/javascript; charset=utf-8", "no-cache", "sessionStorage"},
		{"GET", "/console/shared/style.css", 200, "text/css; charset=utf-8", "no-cache", ":root"},
		{"HEAD", "/appeal/appeal.css", 200, "text/css; charset=utf-8", "no-cache", ""},
		{"GET", "/console/nope.js", 404, "", "", ""},
		{"GET", "/appeal/../console/app.js", 404, "", "", ""},
		{"GET", "/appeal/appeal.js/", 404, "", "", ""},
		{"POST", "/appeal/", 405, "", "", ""},
		{"POST", "/console/whoami", 405, "", "", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "http://riskd.test"+tc.path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			hd := res.Header
			if got := hd.Get("Content-Security-Policy"); got != console.ContentSecurityPolicy {
				t.Errorf("CSP %q", got)
			}
			for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
				if !strings.Contains(hd.Get("Content-Security-Policy"), want) {
					t.Errorf("CSP lacks %q", want)
				}
			}
			if hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("Referrer-Policy") != "no-referrer" || hd.Get("X-Frame-Options") != "DENY" {
				t.Errorf("security headers: %v", hd)
			}
			if tc.status != 200 {
				return
			}
			if hd.Get("Content-Type") != tc.ctype || hd.Get("Cache-Control") != tc.cache || hd.Get("ETag") == "" {
				t.Errorf("content-type %q cache %q etag %q", hd.Get("Content-Type"), hd.Get("Cache-Control"), hd.Get("ETag"))
			}
			body, _ := io.ReadAll(res.Body)
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
			// Revalidation by ETag.
			req2 := httptest.NewRequest("GET", "http://riskd.test"+tc.path, nil)
			req2.Header.Set("If-None-Match", hd.Get("ETag"))
			rec2 := httptest.NewRecorder()
			h.ServeHTTP(rec2, req2)
			if rec2.Code != http.StatusNotModified {
				t.Errorf("If-None-Match: %d, want 304", rec2.Code)
			}
		})
	}
}

// No page has an inline script, inline style or a resource from another
// origin: the CSP would block them, and the pages must work under it.
func TestAssetsNeedNothingTheCSPForbids(t *testing.T) {
	h := console.Handler(console.Options{})
	for _, p := range []string{"/console/", "/appeal/"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		body := rec.Body.String()
		for _, bad := range []string{"<script>", "style=\"", "http://", "https://", "onclick=", "javascript:"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
}

func TestWhoami(t *testing.T) {
	creds, err := auth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	h := console.Handler(console.Options{Auth: auth.NewAuthenticator(creds, nil)})
	for _, tc := range []struct {
		token  string
		status int
		body   string
	}{
		{creds.Analyst, 200, `"role":"analyst"`},
		{creds.Admin, 200, `"role":"admin"`},
		{"not-a-token", 401, "unauthenticated"},
		{"", 401, "unauthenticated"},
	} {
		req := httptest.NewRequest("GET", "/console/whoami", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("whoami(%.8s): %d %s", tc.token, rec.Code, rec.Body)
		}
	}
}

// The API refuses browser requests from other sites and browser requests
// without the pages' CSRF header; a classic cross-site HTML form post fails
// both ways (the guard, and Connect's content type), and riskctl-style
// callers are unaffected.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	const proc = "/risk.v1.AppealService/ResolveAppeal"
	jsonBody := `{"appealId":"01J0000000000000000000000","resolution":"APPEAL_STATUS_UPHELD","reason":"x"}`
	formBody := "appealId=01J0000000000000000000000&resolution=APPEAL_STATUS_OVERTURNED&reason=pwned"
	host := strings.TrimPrefix(s.URL, "http://")
	for _, tc := range []struct {
		name    string
		ctype   string
		body    string
		headers map[string]string
		status  int
	}{
		{"cross-site form post", "application/x-www-form-urlencoded", formBody,
			map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, 403},
		{"cross-site form post, old browser (Origin only)", "application/x-www-form-urlencoded", formBody,
			map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site fetch with bearer", "application/json", jsonBody,
			map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Authorization": "Bearer " + s.Creds.Analyst, "X-CSRF-Token": "x"}, 403},
		{"same-site subdomain", "application/json", jsonBody,
			map[string]string{"Origin": "http://evil." + host, "Sec-Fetch-Site": "same-site", "Authorization": "Bearer " + s.Creds.Analyst, "X-CSRF-Token": "x"}, 403},
		{"opaque origin", "application/json", jsonBody,
			map[string]string{"Origin": "null", "Authorization": "Bearer " + s.Creds.Analyst, "X-CSRF-Token": "x"}, 403},
		{"same-origin without CSRF header", "application/json", jsonBody,
			map[string]string{"Origin": s.URL, "Sec-Fetch-Site": "same-origin", "Authorization": "Bearer " + s.Creds.Analyst}, 403},
		{"form post without browser headers: Connect refuses the content type", "application/x-www-form-urlencoded", formBody,
			map[string]string{"Authorization": "Bearer " + s.Creds.Analyst}, 415},
		// Reaches the API, which answers for itself (no such appeal).
		{"same-origin with CSRF header", "application/json", jsonBody,
			map[string]string{"Origin": s.URL, "Sec-Fetch-Site": "same-origin", "Authorization": "Bearer " + s.Creds.Analyst, "X-CSRF-Token": "abc"}, 404},
		{"non-browser client", "application/json", jsonBody,
			map[string]string{"Authorization": "Bearer " + s.Creds.Analyst}, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", s.URL+proc, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.ctype)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Errorf("status %d (%s), want %d", res.StatusCode, body, tc.status)
			}
		})
	}
}
