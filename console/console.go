package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/riskd/riskd/auth"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy is sent with every console and appeal page response:
// only this origin's scripts, styles and images (and data: images for
// charts), no framing, no form posts elsewhere, no <base> rewriting.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

// CSRFHeader is the header the pages send on every API call; Protect
// refuses browser calls without it.
const CSRFHeader = "X-CSRF-Token"

// Options configures Handler. The zero value serves the pages; without Auth
// the whoami endpoint answers 404 and the console tells roles apart by
// probing the API.
type Options struct {
	// Auth identifies a pasted token for GET /console/whoami, so that the
	// console shows the role and hides what it cannot do.
	Auth *auth.Authenticator
}

// Handler serves /console/ and /appeal/ (mount it on both prefixes).
func Handler(opts Options) http.Handler {
	h := &handler{opts: opts}
	return h
}

type handler struct {
	opts Options
}

// asset is one embedded file with what its response needs.
type asset struct {
	data  []byte
	etag  string
	ctype string
}

var (
	assetsOnce sync.Once
	assetIndex map[string]*asset // by path under assets/
)

func loadAssets() map[string]*asset {
	assetsOnce.Do(func() {
		assetIndex = map[string]*asset{}
		_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := assets.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			assetIndex[strings.TrimPrefix(p, "assets/")] = &asset{
				data: data, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: contentType(p),
			}
			return nil
		})
	})
	return assetIndex
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".json", ".webmanifest":
		return "application/json"
	}
	return "application/octet-stream"
}

// securityHeaders are set on every response of the pages.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	var app, rest string
	switch {
	case r.URL.Path == "/console" || r.URL.Path == "/appeal":
		http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
		return
	case strings.HasPrefix(r.URL.Path, "/console/"):
		app, rest = "console", strings.TrimPrefix(r.URL.Path, "/console/")
	case strings.HasPrefix(r.URL.Path, "/appeal/"):
		app, rest = "appeal", strings.TrimPrefix(r.URL.Path, "/appeal/")
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// The pages have no state-changing endpoint of their own; the API
		// takes every change (and Protect guards it).
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if app == "console" && rest == "whoami" {
		h.whoami(w, r)
		return
	}
	name := app + "/" + rest
	switch {
	case rest == "":
		name = app + "/index.html"
	case strings.HasPrefix(rest, "shared/"):
		name = rest
	}
	a, ok := loadAssets()[name]
	if !ok || strings.Contains(rest, "..") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("ETag", a.etag)
	if strings.HasSuffix(name, ".html") {
		// The page shell is tiny; never keep it, so a new binary's pages and
		// policy apply at once.
		w.Header().Set("Cache-Control", "no-store")
	} else {
		// Assets revalidate by ETag: cheap 304s, never a stale script.
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.data))
}

// whoami answers the role of the bearer token, so the console can say who
// is signed in and hide what the role cannot do. The API still decides.
func (h *handler) whoami(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if h.opts.Auth == nil {
		http.NotFound(w, r)
		return
	}
	p, err := h.opts.Auth.Authenticate(r.Header.Get("Authorization"))
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code":"unauthenticated","message":"missing or invalid bearer token"}`))
		return
	}
	out := struct {
		Role      string `json:"role"`
		AccountID string `json:"accountId,omitempty"`
	}{Role: p.Role.String(), AccountID: p.AccountID}
	_ = json.NewEncoder(w).Encode(out)
}

// Protect wraps the API handler: a browser request to a /risk.v1.
// procedure that comes from another site, or lacks the pages' X-CSRF-Token
// header, is refused with 403 before it reaches Connect. Requests that carry
// neither Sec-Fetch-Site nor Origin (riskctl, services, gRPC clients) pass
// untouched: no browser sent them, so no ambient credential was at stake.
func Protect(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/risk.v1.") {
			if reason := crossSite(r); reason != "" {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Cache-Control", "no-store")
				w.WriteHeader(http.StatusForbidden)
				msg, _ := json.Marshal(map[string]string{"code": "permission_denied", "message": reason})
				_, _ = w.Write(msg)
				return
			}
		}
		api.ServeHTTP(w, r)
	})
}

// crossSite says why a browser request must be refused, or "".
func crossSite(r *http.Request) string {
	site := r.Header.Get("Sec-Fetch-Site")
	origin := r.Header.Get("Origin")
	if site == "" && origin == "" {
		return ""
	}
	switch site {
	case "", "same-origin", "none":
	default:
		return "cross-site browser request refused"
	}
	if origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return "cross-origin browser request refused"
		}
	}
	if r.Method != http.MethodGet && r.Header.Get(CSRFHeader) == "" {
		return "browser request without " + CSRFHeader + " refused"
	}
	return ""
}
