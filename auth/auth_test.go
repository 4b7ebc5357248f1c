package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/riskd/riskd/internal/clock"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func testCreds(t testing.TB) Credentials {
	t.Helper()
	c, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthenticate(t *testing.T) {
	c := testCreds(t)
	key := []byte(c.SubjectKey)
	clk := clock.NewFake(testNow)
	a := NewAuthenticator(c, clk)
	valid, err := MintSubjectToken(key, "acct-42", time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	unix := func(d time.Duration) int64 { return testNow.Add(d).Unix() }
	noneToken := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "acct-42", "exp": unix(time.Hour)}).
			SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	// An HS256 token re-labelled as HS512 with the same key.
	hs512 := sign(t, jwt.SigningMethodHS512, key, jwt.MapClaims{"sub": "acct-42", "exp": unix(time.Hour)})
	// A token whose header says RS256 but that is signed with the HMAC key
	// (the classic algorithm-confusion attack).
	rsConfused := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
		p := strings.SplitN(valid, ".", 3)
		return h + "." + p[1] + "." + p[2]
	}()

	for _, tc := range []struct {
		name    string
		header  string
		want    Principal
		wantErr bool
	}{
		{"missing header", "", Principal{}, true},
		{"wrong scheme", "Basic " + c.Service, Principal{}, true},
		{"no token", "Bearer ", Principal{}, true},
		{"scheme only", "Bearer", Principal{}, true},
		{"bad token", "Bearer rsk_svc_nope", Principal{}, true},
		{"token prefix", "Bearer " + c.Service[:len(c.Service)-1], Principal{}, true},
		{"token suffix", "Bearer " + c.Service + "x", Principal{}, true},
		{"huge token", "Bearer " + strings.Repeat("a", MaxTokenLen+1), Principal{}, true},
		{"service", "Bearer " + c.Service, Principal{Role: RoleService, Name: "service"}, false},
		{"analyst", "Bearer " + c.Analyst, Principal{Role: RoleAnalyst, Name: "analyst"}, false},
		{"admin", "Bearer " + c.Admin, Principal{Role: RoleAdmin, Name: "admin"}, false},
		{"lowercase scheme", "bearer " + c.Admin, Principal{Role: RoleAdmin, Name: "admin"}, false},
		{"subject", "Bearer " + valid, Principal{Role: RoleSubject, Name: "subject", AccountID: "acct-42"}, false},
		{"expired", "Bearer " + sign(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "a", "exp": unix(-time.Minute)}), Principal{}, true},
		{"expired within leeway", "Bearer " + sign(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "a", "exp": unix(-10 * time.Second)}), Principal{Role: RoleSubject, Name: "subject", AccountID: "a"}, false},
		{"no exp", "Bearer " + sign(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "a"}), Principal{}, true},
		{"not yet valid", "Bearer " + sign(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "a", "exp": unix(time.Hour), "nbf": unix(time.Minute)}), Principal{}, true},
		{"issued in the future", "Bearer " + sign(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "a", "exp": unix(time.Hour), "iat": unix(time.Minute)}), Principal{}, true},
		{"alg none", "Bearer " + noneToken, Principal{}, true},
		{"alg HS512", "Bearer " + hs512, Principal{}, true},
		{"alg RS256 confusion", "Bearer " + rsConfused, Principal{}, true},
		{"wrong key", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another key of enough length!!"), jwt.MapClaims{"sub": "a", "exp": unix(time.Hour)}), Principal{}, true},
		{"missing sub", "Bearer " + sign(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"exp": unix(time.Hour)}), Principal{}, true},
		{"long sub", "Bearer " + sign(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": strings.Repeat("a", MaxAccountIDLen+1), "exp": unix(time.Hour)}), Principal{}, true},
		{"tampered payload", "Bearer " + tamper(valid), Principal{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(tc.header)
			if tc.wantErr {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("err = %v, want ErrUnauthenticated", err)
				}
				if p != (Principal{}) {
					t.Errorf("principal %+v returned with an error", p)
				}
				for _, secret := range []string{c.Service, c.Analyst, c.Admin, c.SubjectKey} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error leaks a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p != tc.want {
				t.Errorf("principal = %+v, want %+v", p, tc.want)
			}
		})
	}

	// The same valid token expires as the clock moves.
	clk.Advance(time.Hour + Leeway + time.Second)
	if _, err := a.Authenticate("Bearer " + valid); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token accepted after expiry: %v", err)
	}
}

func tamper(tok string) string {
	p := strings.SplitN(tok, ".", 3)
	claims, _ := base64.RawURLEncoding.DecodeString(p[1])
	claims = []byte(strings.Replace(string(claims), "acct-42", "acct-43", 1))
	return p[0] + "." + base64.RawURLEncoding.EncodeToString(claims) + "." + p[2]
}

func TestUnsetTokensMatchNothing(t *testing.T) {
	a := NewAuthenticator(Credentials{}, nil)
	for _, h := range []string{"Bearer ", "Bearer x", "Bearer \x00unset"} {
		if _, err := a.Authenticate(h); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%q: err = %v", h, err)
		}
	}
	tok, err := MintSubjectToken([]byte("k"), "a", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate("Bearer " + tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("subject token accepted without a subject key: %v", err)
	}
}

func TestMintSubjectTokenRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		key     []byte
		account string
		ttl     time.Duration
	}{
		{"no key", nil, "a", time.Hour},
		{"no account", []byte("k"), "", time.Hour},
		{"long account", []byte("k"), strings.Repeat("a", MaxAccountIDLen+1), time.Hour},
		{"zero ttl", []byte("k"), "a", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := MintSubjectToken(tc.key, tc.account, tc.ttl, testNow); err == nil {
				t.Error("minted")
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	const (
		evaluate    = "/risk.v1.RiskService/Evaluate"
		ingest      = "/risk.v1.RiskService/Ingest"
		getDecision = "/risk.v1.DecisionService/GetDecision"
		listDec     = "/risk.v1.DecisionService/ListDecisions"
		file        = "/risk.v1.AppealService/FileAppeal"
		getAppeal   = "/risk.v1.AppealService/GetAppeal"
		listAppeals = "/risk.v1.AppealService/ListAppeals"
		startReview = "/risk.v1.AppealService/StartReview"
		resolve     = "/risk.v1.AppealService/ResolveAppeal"
		publish     = "/risk.v1.RulesService/Publish"
		lists       = "/risk.v1.ListsService/AddEntries"
		erase       = "/risk.v1.DataRightsService/EraseSubject"
		health      = "/grpc.health.v1.Health/Check"
		verify      = "/risk.v1.DecisionService/VerifyChain"
	)
	all := []string{evaluate, ingest, getDecision, listDec, file, getAppeal, listAppeals, startReview, resolve, publish, lists, erase, health, verify, "", "/", "garbage", "/risk.v1.RiskService/"}
	allowed := map[Role][]string{
		RoleService: {evaluate, ingest},
		RoleAnalyst: {getDecision, listDec, getAppeal, listAppeals, startReview, resolve, publish, lists, verify},
		RoleAdmin:   {evaluate, ingest, getDecision, listDec, file, getAppeal, listAppeals, startReview, resolve, publish, lists, erase, verify},
		RoleSubject: {getDecision, listDec, file, getAppeal, listAppeals},
		RoleNone:    {},
	}
	for role, ok := range allowed {
		for _, proc := range all {
			want := false
			for _, p := range ok {
				want = want || p == proc
			}
			if got := Allowed(role, proc); got != want {
				t.Errorf("Allowed(%v, %q) = %v, want %v", role, proc, got, want)
			}
		}
	}
	if Allowed(Role(99), evaluate) {
		t.Error("an unknown role is allowed")
	}
}

func TestRoleNames(t *testing.T) {
	for _, r := range []Role{RoleService, RoleAnalyst, RoleAdmin, RoleSubject} {
		back, ok := ParseRole(r.String())
		if !ok || back != r {
			t.Errorf("ParseRole(%q) = %v, %v", r.String(), back, ok)
		}
	}
	if RoleService.String() != "service" || RoleSubject.String() != "subject" {
		t.Error("role names changed")
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c, created, path, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !created || path != filepath.Join(dir, FileName) {
		t.Fatalf("created = %v, path = %q", created, path)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Service, PrefixService) || !strings.HasPrefix(c.Admin, PrefixAdmin) {
		t.Errorf("tokens without prefixes: %q %q", c.Service[:8], c.Admin[:8])
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %#o, want 0600", st.Mode().Perm())
	}
	if dst, _ := os.Stat(dir); dst.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %#o, want 0700", dst.Mode().Perm())
	}
	var raw map[string]string
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"service", "analyst", "admin", "subject_key", "pseudonym_key"} {
		if raw[k] == "" {
			t.Errorf("file lacks %q", k)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only %s", len(entries), FileName)
	}

	c2, created, _, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if created || c2 != c {
		t.Errorf("second LoadOrCreate: created = %v, same = %v", created, c2 == c)
	}
	c3, err := Load(path)
	if err != nil || c3 != c {
		t.Errorf("Load = %v, same = %v", err, c3 == c)
	}
	other, _, _, err := LoadOrCreate(t.TempDir())
	if err != nil || other == c {
		t.Errorf("a fresh dir reused secrets: %v", err)
	}
}

func TestLoadRefuses(t *testing.T) {
	good := testCreds(t)
	write := func(t *testing.T, mode os.FileMode, v any) string {
		path := filepath.Join(t.TempDir(), FileName)
		data, _ := json.Marshal(v)
		if s, ok := v.(string); ok {
			data = []byte(s)
		}
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("readable by others", func(t *testing.T) {
		path := write(t, 0o644, good)
		_, err := Load(path)
		var ie *InsecureFileError
		if !errors.As(err, &ie) || ie.Path != path {
			t.Fatalf("err = %v, want *InsecureFileError", err)
		}
		if _, _, _, err := LoadOrCreate(filepath.Dir(path)); !errors.As(err, &ie) {
			t.Errorf("LoadOrCreate err = %v, want *InsecureFileError", err)
		}
	})
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"not json", "{"},
		{"missing pseudonym key", Credentials{Service: good.Service, Analyst: good.Analyst, Admin: good.Admin, SubjectKey: good.SubjectKey}},
		{"short token", Credentials{Service: "short", Analyst: good.Analyst, Admin: good.Admin, SubjectKey: good.SubjectKey, PseudonymKey: good.PseudonymKey}},
		{"same tokens", Credentials{Service: good.Admin, Analyst: good.Analyst, Admin: good.Admin, SubjectKey: good.SubjectKey, PseudonymKey: good.PseudonymKey}},
		{"unknown field", `{"service":"x","srevice":"y"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, 0o600, tc.v)
			if _, err := Load(path); !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("err = %v, want ErrInvalidCredentials", err)
			}
		})
	}
}

func FuzzAuthenticate(f *testing.F) {
	c := Credentials{
		Service: "rsk_svc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", Analyst: "rsk_ana_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
		Admin: "rsk_adm_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC", SubjectKey: "rsk_sub_DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD",
		PseudonymKey: "rsk_psk_EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE",
	}
	a := NewAuthenticator(c, clock.NewFake(testNow))
	tok, err := MintSubjectToken([]byte(c.SubjectKey), "acct-1", time.Hour, testNow)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "Bearer", "Bearer " + c.Service, "bearer " + c.Admin, "Bearer " + tok, "Basic abc", "Bearer a.b.c", "Bearer " + tok + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		p, err := a.Authenticate(header)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) || p != (Principal{}) {
				t.Fatalf("bad failure: %+v %v", p, err)
			}
			return
		}
		switch p.Role {
		case RoleService, RoleAnalyst, RoleAdmin:
			if p.AccountID != "" {
				t.Fatalf("static principal with an account: %+v", p)
			}
		case RoleSubject:
			if p.AccountID == "" || len(p.AccountID) > MaxAccountIDLen {
				t.Fatalf("subject without a valid account: %+v", p)
			}
		default:
			t.Fatalf("authenticated with no role: %+v", p)
		}
	})
}

func BenchmarkAuthenticate(b *testing.B) {
	c := testCreds(b)
	a := NewAuthenticator(c, clock.NewFake(testNow))
	tok, err := MintSubjectToken([]byte(c.SubjectKey), "acct-42", time.Hour, testNow)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, header string }{
		{"static", "Bearer " + c.Admin},
		{"subject", "Bearer " + tok},
		{"unknown", "Bearer rsk_svc_unknown"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = a.Authenticate(bc.header)
			}
		})
	}
}
