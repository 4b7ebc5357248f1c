package ingest

import (
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	n := newTestNormalizer(t)
	p := func(kind, v string) string { return n.Pseudonym(kind, v) }
	for _, tc := range []struct {
		in, want string
		ua       bool
	}{
		{"nothing here", "nothing here", false},
		{"v1.2.3 build 123456", "v1.2.3 build 123456", false},
		{"call 138 1234 5678 now", "call #p:" + p(KindPhone, "13812345678") + " now", false},
		{"+86-138-1234-5678", "#p:" + p(KindPhone, "8613812345678"), false},
		{"(555) 123-4567", "#p:" + p(KindPhone, "5551234567"), false},
		{"138.1234.5678", "#p:" + p(KindPhone, "13812345678"), false},
		{"imei356938035643809x", "imei#p:" + p(KindPhone, "356938035643809") + "x", false},
		{"1234567+7654321", "#p:" + p(KindPhone, "1234567") + "+#p:" + p(KindPhone, "7654321"), false},
		{"on 2026-11-28 at 10:00", "on 2026-11-28 at 10:00", false},
		{"from 203.0.113.57.", "from #ip:" + p(KindIP, "203.0.113.57") + ".", false},
		{"/x?ip=2001:DB8::1&y", "/x?ip=#ip:" + p(KindIP, "2001:db8::1") + "&y", false},
		{"ap AC-DE-48-00-11-22 seen", "ap #mac:" + p(KindMAC, "ac:de:48:00:11:22") + " seen", false},
		{"mail Jane.Doe@Example.com!", "mail #e:" + p(KindEmail, "jane.doe@example.com") + "!", false},
		{"not@email", "not@email", false},
		{"Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36", "Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36", true},
		{"Chrome/120.0.6099.109", "Chrome/120.0.6099.109", true},
		{"App/1.0 (phone 13812345678)", "App/1.0 (phone #p:" + p(KindPhone, "13812345678") + ")", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got := n.scrub(tc.in)
			if tc.ua {
				got = n.scrubUA(tc.in)
			}
			if got != tc.want {
				t.Errorf("scrub(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestIdentifierKind(t *testing.T) {
	for key, want := range map[string]string{
		"phone": KindPhone, "Mobile_No": KindPhone, "phoneNumber": KindPhone, "contact_tel": KindPhone,
		"msisdn": KindPhone, "clientIp": KindIP, "ip_addr": KindIP, "src-ip": KindIP, "device.mac": KindMAC,
		"wifiBSSID": KindBSSID, "user_email": KindEmail, "imei2": KindIMEI,
		"ship_to": "", "machine": "", "hotel": "", "channel": "", "zip": "", "tip": "",
	} {
		if got := identifierKind(key); got != want {
			t.Errorf("identifierKind(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestCanonicalMAC(t *testing.T) {
	for in, want := range map[string]string{
		"AC:DE:48:00:11:22": "ac:de:48:00:11:22",
		"ac-de-48-00-11-22": "ac:de:48:00:11:22",
		"acde.4800.1122":    "ac:de:48:00:11:22",
		"ACDE48001122":      "ac:de:48:00:11:22",
		"ac:de:48:00:11":    "ac:de:48:00:11",
		"Not-A-MAC":         "not-a-mac",
	} {
		if got := canonicalMAC(in); got != want {
			t.Errorf("canonicalMAC(%q) = %q, want %q", in, got, want)
		}
	}
	if s := strings.Repeat("a", 10); canonicalMAC(s) != s {
		t.Error("lowercase input changed")
	}
}
