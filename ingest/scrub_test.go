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

// scrubEveryByte is scrubText without the start tables: matchAt tries every branch
// at every byte. FuzzScrub holds the tables to it.
func scrubEveryByte(n *Normalizer, s string, ips bool) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		end, repl := n.matchAt(s, i, ips, allBranches)
		if end == 0 {
			i++
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(repl)
		last, i = end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// FuzzScrub checks that skipping the bytes where the start tables rule a match
// out never skips one: scrubText equals the byte-by-byte scan, in free text
// and in user agents.
func FuzzScrub(f *testing.F) {
	for _, s := range []string{
		"call 138 1234 5678 now", "+86-138-1234-5678", "(555) 123-4567", "imei356938035643809x",
		"1234567+7654321", "on 2026-11-28 at 10:00", "from 203.0.113.57.", "/x?ip=2001:DB8::1&y",
		"ap AC-DE-48-00-11-22 seen", "x:ac:de:48:00:11:22:", "mail Jane.Doe@Example.com!", "@a.b x@y.z", "not@email",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
		"App/1.0 (phone 13812345678)", "fe80::1%eth0 ::ffff:10.0.0.1 dead:beef::", "a-b-c-d-e-f-1-2-3-4-5-6-7",
	} {
		f.Add(s)
	}
	n := newTestNormalizer(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, ips := range []bool{true, false} {
			if got, want := n.scrubText(s, ips), scrubEveryByte(n, s, ips); got != want {
				t.Fatalf("scrubText(%q, ips %v) = %q; the byte-by-byte scan gives %q", s, ips, got, want)
			}
		}
	})
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

// BenchmarkScrubText scans texts as Normalize stores them: user agents (of
// bench/ingestgen) and request paths, none of which carries an identifier.
func BenchmarkScrubText(b *testing.B) {
	n := newTestNormalizer(b)
	for _, tc := range []struct {
		name, text string
		ua         bool
	}{
		{"ua/chrome", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36", true},
		{"ua/app", "RiskdDemo/8.0.48 (Android 14; Honor Magic6)", true},
		{"path", "/user/7731/profile", false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if tc.ua {
					_ = n.scrubUA(tc.text)
				} else {
					_ = n.scrub(tc.text)
				}
			}
		})
	}
}
