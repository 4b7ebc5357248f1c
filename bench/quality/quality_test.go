package quality_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/bench"
	"github.com/riskd/riskd/bench/population"
	"github.com/riskd/riskd/bench/quality"
	"github.com/riskd/riskd/internal/testserver"
)

type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// TestQualityTargets is CI's detection-quality gate: a small labelled stream
// (a fixed seed and a random one, logged) through a real riskd on loopback,
// checked against issue 6's targets (scenarios with fewer than 20 detectable
// events are reported, not checked). -short shrinks the stream.
func TestQualityTargets(t *testing.T) {
	accounts, dur := 1200, 45*time.Minute
	// Fixed seeds, so that the gate does not flake: 124177299 once gave
	// 1.6 % benign false positives (users on their own phones sharing an
	// attacked app version). QUALITY_RANDOM_SEED=1 adds a random one.
	seeds := []uint64{20260105, 124177299}
	if os.Getenv("QUALITY_RANDOM_SEED") != "" {
		seeds = append(seeds, rand.Uint64N(1<<32))
	}
	if testing.Short() {
		accounts, dur, seeds = 1000, 30*time.Minute, seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d, %d accounts, %s (reproduce: riskgen --seed %d --accounts %d --duration %s --end-now, then riskctl quality)", seed, accounts, dur, seed, accounts, dur)
			w, err := bench.New(bench.Options{
				Seed: seed, Population: population.Options{Accounts: accounts}, Duration: dur,
				Start: time.Now().Add(-dur - time.Minute),
			})
			if err != nil {
				t.Fatal(err)
			}
			srv := testserver.Start(t, testserver.Options{})
			var sites bytes.Buffer
			if err := w.Population().WriteSites(&sites); err != nil {
				t.Fatal(err)
			}
			lc := riskv1connect.NewListsServiceClient(http.DefaultClient, srv.URL, connect.WithInterceptors(bearer(srv.Creds.Analyst)))
			if n, err := quality.LoadSites(context.Background(), lc, &sites); err != nil || n == 0 {
				t.Fatalf("LoadSites: %d sites, %v", n, err)
			}
			rc := riskv1connect.NewRiskServiceClient(http.DefaultClient, srv.URL, connect.WithInterceptors(bearer(srv.Creds.Service)))
			rep, err := quality.Run(context.Background(), quality.Drain(w), quality.Options{Risk: rc})
			if err != nil {
				t.Fatal(err)
			}
			var sb strings.Builder
			if err := rep.WriteText(&sb); err != nil {
				t.Fatal(err)
			}
			// A small stream has few events of the rarer scenarios; below 20
			// detectable events one miss is noise, not a regression.
			tg := quality.DefaultTargets()
			tg.MinDetectable = 20
			if miss := rep.Check(tg); len(miss) > 0 {
				t.Errorf("seed %d missed %d target(s):\n  %s\n%s", seed, len(miss), strings.Join(miss, "\n  "), sb.String())
			} else {
				t.Logf("seed %d:\n%s", seed, sb.String())
			}
		})
	}
}
