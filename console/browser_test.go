package console_test

import (
	"context"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/internal/testserver"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write the screenshots under docs/screenshots")

// chromiumPath finds Debian's chromium (or $RISKD_CHROMIUM).
func chromiumPath() string {
	if p := os.Getenv("RISKD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium with a fresh profile; tabs share it.
type browser struct {
	t        *testing.T
	alloc    context.Context // the browser's first tab; new tabs open beside it
	mu       sync.Mutex
	requests []string // every URL the pages requested, to prove tokens never appear
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests skipped in -short mode")
	}
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but chromium is not installed: .ci/run installs Debian's chromium (apt-get install -y chromium)")
		}
		t.Skip("chromium is not installed (apt-get install -y chromium); skipping the browser tests")
	}
	// Chromium's helper processes may still write to the profile for a
	// moment after the browser exits: remove it with retries (registered
	// first, so it runs after the browser is stopped).
	profile, err := os.MkdirTemp("", "riskd-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-sync", true),
		// Containers often have a small /dev/shm.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		// A loaded machine (CI, parallel test binaries) can take longer
		// than chromedp's default 20 s to bring Chromium up.
		chromedp.WSURLReadTimeout(2*time.Minute),
	)
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	// The first context starts the browser; tabs open in it.
	root, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(cancelRoot)
	if err := chromedp.Run(root); err != nil {
		t.Fatalf("starting chromium (%s): %v", path, err)
	}
	return &browser{t: t, alloc: root}
}

// tab opens a new tab (its own sessionStorage) of the given width and
// language; it closes when the test ends.
func (b *browser) tab(width, height int64, lang string) context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.alloc)
	b.t.Cleanup(cancel)
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			b.mu.Lock()
			b.requests = append(b.requests, e.Request.URL)
			b.mu.Unlock()
		}
	})
	mobile := width < 600
	if err := chromedp.Run(ctx,
		network.Enable(),
		emulation.SetDeviceMetricsOverride(width, height, 1, mobile),
		emulation.SetUserAgentOverride("Mozilla/5.0 (riskd console test) Chrome/120").WithAcceptLanguage(lang),
		emulation.SetLocaleOverride().WithLocale(lang),
	); err != nil {
		b.t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

func (b *browser) urls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// run runs actions with a deadline and fails the test with what went wrong.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// Background tabs are throttled and do not paint: act on the front one.
	actions = append([]chromedp.Action{page.BringToFront()}, actions...)
	if err := chromedp.Run(tctx, actions...); err != nil {
		var body, loc string
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_ = chromedp.Run(dctx, chromedp.Location(&loc), chromedp.Text("body", &body, chromedp.ByQuery))
		t.Fatalf("%s: %v\nat %s, page text:\n%s", what, err, loc, body)
	}
}

func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	var s string
	run(t, ctx, "read "+sel, chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// screenshot saves the page as docs/screenshots/name.png with
// -update-screenshots.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	var png []byte
	// Let fonts and transitions settle.
	run(t, ctx, "screenshot "+name, chromedp.Sleep(300*time.Millisecond), chromedp.FullScreenshot(&png, 100))
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mockedCheckIn(id, account string, at time.Time) *riskv1.Event {
	return &riskv1.Event{
		EventId: id, Type: riskv1.EventType_EVENT_TYPE_ATTENDANCE, OccurredAt: timestamppb.New(at), AccountId: account,
		Device:     &riskv1.Device{DeviceId: "dev-" + account, Platform: "android", Rooted: true},
		Network:    &riskv1.Network{Ip: "192.0.2.10", WifiBssid: "aa:bb:cc:dd:ee:ff"},
		Location:   &riskv1.Location{Latitude: 39.9042, Longitude: 116.4074, AccuracyM: 15, Provider: "gps", Mocked: true},
		Attendance: &riskv1.Attendance{SiteId: "site-1", Method: "gps"},
	}
}

func login(id, account string, at time.Time) *riskv1.Event {
	return &riskv1.Event{
		EventId: id, Type: riskv1.EventType_EVENT_TYPE_LOGIN, OccurredAt: timestamppb.New(at), AccountId: account,
		Device:   &riskv1.Device{DeviceId: "dev-" + account, Platform: "ios", Model: "iPhone 15"},
		Network:  &riskv1.Network{Ip: "203.0.113.7"},
		Location: &riskv1.Location{Latitude: 31.2304, Longitude: 121.4737, AccuracyM: 20, Provider: "gps"},
		Login:    &riskv1.Login{Success: true, Method: "password"},
	}
}

func largePayment(id, account string, at time.Time) *riskv1.Event {
	return &riskv1.Event{
		EventId: id, Type: riskv1.EventType_EVENT_TYPE_PAYMENT, OccurredAt: timestamppb.New(at), AccountId: account,
		Device:  &riskv1.Device{DeviceId: "new-phone-" + account, Platform: "android"},
		Network: &riskv1.Network{Ip: "198.51.100.20"},
		Payment: &riskv1.Payment{AmountMinor: 2500000, Currency: "CNY", Kind: "transfer", PayeeAccountId: "payee-77"},
	}
}

func appealURL(s *testserver.Server, token string) string {
	return s.URL + "/appeal/#token=" + token
}

func noTokenInURLs(t *testing.T, b *browser, tokens ...string) {
	t.Helper()
	for _, u := range b.urls() {
		for _, tok := range tokens {
			if tok != "" && strings.Contains(u, tok) {
				t.Errorf("a request URL carries a token: %s", u)
			}
		}
	}
}

// bearer sends a token on every unary call of a Connect client.
type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func appealsClient(s *testserver.Server, token string) riskv1connect.AppealServiceClient {
	return riskv1connect.NewAppealServiceClient(http.DefaultClient, s.URL, connect.WithInterceptors(bearer(token)))
}

func rulesClient(s *testserver.Server, token string) riskv1connect.RulesServiceClient {
	return riskv1connect.NewRulesServiceClient(http.DefaultClient, s.URL, connect.WithInterceptors(bearer(token)))
}
