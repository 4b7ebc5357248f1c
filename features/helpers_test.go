package features

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
)

func openDB(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	o := &pebble.Options{Logger: quiet{}, Cache: pebble.NewCache(int64(envInt("FEATURES_TEST_BLOCK_CACHE_MB", 64)) << 20)}
	defer o.Cache.Unref()
	ConfigureDB(o)
	db, err := pebble.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openStore(t testing.TB, db *pebble.DB, clk clock.Clock, opts Options) *Store {
	t.Helper()
	opts.DB = db
	opts.Clock = clk
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// apply runs Apply and commits its batch (or not) and settles it. After a
// failed commit it flushes, which rebuilds the store's memory from the disk
// (writeback.go): until then Apply would refuse.
func apply(t testing.TB, s *Store, db *pebble.DB, ev *event.Event, commit bool) Vector {
	t.Helper()
	return applyOrAdd(t, s, db, ev, commit, true)
}

// add is apply through Add (Ingest's path): nothing read, nothing returned.
func add(t testing.TB, s *Store, db *pebble.DB, ev *event.Event, commit bool) {
	t.Helper()
	applyOrAdd(t, s, db, ev, commit, false)
}

func applyOrAdd(t testing.TB, s *Store, db *pebble.DB, ev *event.Event, commit, read bool) Vector {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	var v Vector
	var p *Pending
	var err error
	if read {
		v, p, err = s.Apply(ev, b)
	} else {
		p, err = s.Add(ev, b)
	}
	if err != nil {
		t.Fatal(err)
	}
	if commit {
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	s.Done(p, commit)
	if !commit {
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

type evOpt func(*event.Event)

func login(success bool) evOpt {
	return func(e *event.Event) {
		e.Type, e.TypeName = event.Login, "LOGIN"
		e.Has.Login = true
		e.Login.Success = success
	}
}

func payment(amount int64, payee string) evOpt {
	return func(e *event.Event) {
		e.Type, e.TypeName = event.Payment, "PAYMENT"
		e.Has.Payment = true
		e.Payment.AmountMinor = amount
		e.Payment.PayeeAccountID = payee
		e.P.Payee = "pp:" + payee
	}
}

func device(id string) evOpt {
	return func(e *event.Event) {
		e.Has.Device = true
		e.Device.DeviceID = id
		e.P.Device = "pd:" + id
	}
}

func ip(addr, prefix string) evOpt {
	return func(e *event.Event) {
		e.Has.Network = true
		e.Network.IP = addr
		e.P.IP = "pi:" + addr
		e.P.IPPrefix = "pn:" + prefix
	}
}

func loc(lat, lon float64) evOpt {
	return func(e *event.Event) {
		e.Has.Location = true
		e.Location.Latitude, e.Location.Longitude = lat, lon
		e.P.CoarseLat, e.P.CoarseLon = lat, lon
	}
}

var evSeq int

func mkEvent(at time.Time, account string, opts ...evOpt) *event.Event {
	evSeq++
	e := &event.Event{
		EventID:    fmt.Sprintf("e%d", evSeq),
		Type:       event.ServiceLog,
		TypeName:   "SERVICE_LOG",
		OccurredAt: at,
		AccountID:  account,
	}
	e.P.Account = "pa:" + account
	for _, o := range opts {
		o(e)
	}
	return e
}

// readFeature reads ev's features without adding ev and returns one.
func readFeature(t testing.TB, s *Store, ev *event.Event, name string) Value {
	t.Helper()
	v, err := s.Read(ev)
	if err != nil {
		t.Fatal(err)
	}
	return valueOf(t, s.cat, v, name)
}

func valueOf(t testing.TB, c *Catalog, v Vector, name string) Value {
	t.Helper()
	i := c.Index(name)
	if i < 0 {
		t.Fatalf("no feature %s", name)
	}
	return v[i]
}

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(f string, a ...any) {
	panic(fmt.Sprintf(f, a...))
}
