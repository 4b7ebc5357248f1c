package load

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/riskd/riskd/bench/population"
	"github.com/riskd/riskd/internal/testserver"
)

// TestPopulate gives a real riskd a population's state over Ingest and
// checks that the next login of an account meets it; a second Populate of
// the same run id is all duplicates.
func TestPopulate(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	client, err := NewClient(ClientOptions{BaseURL: srv.URL, Token: srv.Creds.Service})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pop := population.Options{Seed: 3, Accounts: 300}
	p, err := population.New(pop)
	if err != nil {
		t.Fatal(err)
	}
	seen := func(i int) bool {
		t.Helper()
		d := srv.Evaluate(HomeLogin(p, i, "check-"+strconv.Itoa(i)+"-"+time.Now().Format("150405.000000"), time.Now()))
		v, ok := d.GetFeatures()["account_device_seen_before"]
		if !ok {
			t.Fatalf("decision without account_device_seen_before: %v", d.GetFeatures())
		}
		return v.GetBoolValue()
	}
	if seen(299) {
		t.Fatal("account 299's device seen before anything was ingested")
	}
	var progress int64
	o := PopulateOptions{Population: pop, Streams: 3, Batch: 64, RunID: "pop-test", Progress: func(n int64) { progress = max(progress, n) }}
	rep, err := Populate(context.Background(), client, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != 300 || rep.Accepted != 300 || rep.Duplicates != 0 || rep.Rejected != 0 || progress != 300 {
		t.Fatalf("report %+v, progress %d: want 300 accepted", rep, progress)
	}
	for _, i := range []int{0, 7, 298} {
		if !seen(i) {
			t.Fatalf("account %d: its phone not seen before after Populate", i)
		}
	}
	rep, err = Populate(context.Background(), client, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 0 || rep.Duplicates != 300 {
		t.Fatalf("second Populate %+v: want 300 duplicates", rep)
	}
}
