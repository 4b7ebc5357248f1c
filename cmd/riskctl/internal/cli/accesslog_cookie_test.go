package cli

import "testing"

// --account-from cookie:NAME reads the account from the Cookie header the
// server logged as an extra field.
func TestAccessLogAccountFromCookie(t *testing.T) {
	a, err := newAccessLog("cookie:uid", "cookie")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cookie, want string
	}{
		{"present", `theme=dark; uid=alice; lang=zh`, "alice"},
		{"only one", `uid=bob`, "bob"},
		{"absent", `theme=dark`, ""},
		{"not logged", `-`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := `203.0.113.9 - - [10/Oct/2026:13:55:36 +0800] "GET /a?b=c HTTP/1.1" 200 12 "-" "curl/8" "` + tc.cookie + `"`
			ev, err := a.parse([]byte(line))
			if tc.want == "" {
				if err == nil {
					t.Fatalf("account %q, want an error", ev.GetAccountId())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetAccountId() != tc.want || ev.GetServiceLog().GetResource() != "/a" || ev.GetServiceLog().GetQuery() != "b=c" {
				t.Errorf("event %v", ev)
			}
		})
	}
	if _, err := newAccessLog("cookie:uid", ""); err == nil {
		t.Error("cookie:uid without --extra-fields cookie: no error")
	}
}
