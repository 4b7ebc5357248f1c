package bench

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"
)

// WriteAccessLog writes n web access log lines in the combined log format:
// the i-th at start+i*step, from `accounts` users (query parameter uid) on a
// few thousand IPs, with a few paths, methods, statuses and user agents.
// The same seed writes the same lines. bench/ingestgen and riskctl's ingest
// benchmark both use it.
func WriteAccessLog(w io.Writer, n, accounts int, start time.Time, step time.Duration, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	rng := rand.New(rand.NewPCG(seed, 99))
	paths := []string{"/", "/item/%d", "/search", "/cart", "/api/feed", "/user/%d/profile", "/static/app.js"}
	methods := []string{"GET", "GET", "GET", "POST"}
	statuses := []int{200, 200, 200, 304, 404}
	agents := []string{
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"RiskdDemo/8.0.48 (Android 14; Honor Magic6)",
	}
	for i := range n {
		at := start.Add(time.Duration(i) * step)
		acct := rng.IntN(accounts)
		p := paths[rng.IntN(len(paths))]
		if strings.Contains(p, "%d") {
			p = fmt.Sprintf(p, rng.IntN(100000))
		}
		fmt.Fprintf(bw, "10.%d.%d.%d - - [%s] \"%s %s?uid=u%d&q=%d HTTP/1.1\" %d %d \"-\" \"%s\"\n",
			acct%200, (acct/200)%250, rng.IntN(250), at.Format("02/Jan/2006:15:04:05 -0700"),
			methods[rng.IntN(len(methods))], p, acct, i, statuses[rng.IntN(len(statuses))], 200+rng.IntN(5000),
			agents[rng.IntN(len(agents))])
	}
	return bw.Flush()
}
