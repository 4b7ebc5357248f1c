package ingest

import (
	"hash/maphash"
	"sync"
	"testing"
)

func TestCleanUAs(t *testing.T) {
	n := newTestNormalizer(t)
	p := func(kind, v string) string { return n.Pseudonym(kind, v) }
	for _, tc := range []struct {
		name, ua, want string
		kept           bool
	}{
		{"clean", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36",
			"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36", true},
		{"phone", "App/1.0 (phone 13812345678)", "App/1.0 (phone #p:" + p(KindPhone, "13812345678") + ")", false},
		{"mac", "App/1.0 (ap ac:de:48:00:11:22)", "App/1.0 (ap #mac:" + p(KindMAC, "ac:de:48:00:11:22") + ")", false},
		{"e-mail", "App/1.0 (jane@example.com)", "App/1.0 (#e:" + p(KindEmail, "jane@example.com") + ")", false},
		// Stored as it is (a user agent's dotted quads are versions), but
		// the free-text rules see an IP: not kept.
		{"ip", "App/1.0 (client 203.0.113.57)", "App/1.0 (client 203.0.113.57)", false},
		{"dotted digits", "App/1.0 (build 138.1234.5678)", "App/1.0 (build 138.1234.5678)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 4; i++ {
				if got := n.scrubUA(tc.ua); got != tc.want {
					t.Fatalf("call %d: scrubUA(%q) = %q, want %q", i+1, tc.ua, got, tc.want)
				}
				// Kept from the second call on, clean ones only.
				if kept := n.uas.has(tc.ua); kept != (tc.kept && i >= 1) {
					t.Fatalf("after call %d: kept = %v", i+1, kept)
				}
			}
		})
	}
}

// TestCleanUAsNeverKeepIdentifiers fills the cache with a mix of agents and
// checks every kept one is unchanged by both scans.
func TestCleanUAsNeverKeepIdentifiers(t *testing.T) {
	n := newTestNormalizer(t)
	agents := []string{
		"RiskdDemo/8.0.48 (Android 14; Honor Magic6)", "App/2.1 (+86 138 1234 5678)", "App/2.1 (10.0.0.1)",
		"curl/8.5.0", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Version/17.5 Mobile/15E148",
		"App/3 (jane.doe@example.com)", "App/3 (AC-DE-48-00-11-22)", "Chrome/120.0.0.0",
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				ua := agents[(i+g)%len(agents)]
				if got, want := n.scrubUA(ua), n.scrubText(ua, false); got != want {
					t.Errorf("scrubUA(%q) = %q, want %q", ua, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	kept := 0
	for i := range n.uas.slots {
		p := n.uas.slots[i].ua.Load()
		if p == nil {
			continue
		}
		kept++
		if n.scrubText(*p, true) != *p || n.scrubText(*p, false) != *p {
			t.Errorf("kept %q, which carries an identifier", *p)
		}
	}
	// Three agents are clean; two may share a slot.
	if kept == 0 || kept > 3 {
		t.Errorf("kept %d agents, want 1..3", kept)
	}
}

// has reports whether ua is kept.
func (c *cleanUAs) has(ua string) bool {
	p := c.slots[maphash.String(c.seed, ua)%cleanUASlots].ua.Load()
	return p != nil && *p == ua
}
