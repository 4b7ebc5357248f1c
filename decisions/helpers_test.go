package decisions

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/clock"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// committer is the engine's single committer in miniature: one mutex, one
// batch per call, a synced commit, a rewind on failure.
type committer struct {
	mu  sync.Mutex
	db  *pebble.DB
	log *Log
}

func (c *committer) Commit(fn func(b *pebble.Batch) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.log.Head()
	b := c.db.NewBatch()
	defer b.Close()
	if err := fn(b); err != nil {
		c.log.Rewind(h)
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		c.log.Rewind(h)
		return err
	}
	return nil
}

func (c *committer) append(ps ...*Pending) error {
	return c.Commit(func(b *pebble.Batch) error {
		for _, p := range ps {
			if err := c.log.Append(b, p); err != nil {
				return err
			}
		}
		return nil
	})
}

type env struct {
	t     testing.TB
	dir   string
	db    *pebble.DB
	log   *Log
	c     *committer
	clock *clock.Fake
	opts  Options
}

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: clock.NewFake(t0), opts: opts}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	db, err := pebble.Open(e.dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	e.c = &committer{db: db}
	o := e.opts
	if o.Clock == nil {
		o.Clock = e.clock
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.Commit = e.c.Commit
	l, err := Open(db, o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.log = l
	e.c.log = l
}

func (e *env) close() {
	if e.db == nil {
		return
	}
	e.log.Close()
	if err := e.db.Close(); err != nil {
		e.t.Error(err)
	}
	e.db = nil
}

func (e *env) reopen() { e.close(); e.open() }

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(f string, a ...any) {
	panic(fmt.Sprintf(f, a...))
}

// decision builds a full decision for account at the fake clock's time.
func (e *env) decision(account string, rules ...string) *riskv1.Decision {
	now := e.clock.Now()
	d := &riskv1.Decision{
		DecisionId:     NewID(now),
		EventId:        "ev-" + NewID(now),
		AccountId:      account,
		Outcome:        riskv1.Outcome_OUTCOME_CHALLENGE,
		Score:          40,
		RulesetVersion: "rs-1",
		DecidedAt:      timestamppb.New(now),
		AppealDeadline: timestamppb.New(now.Add(DefaultAppealWindow)),
		DataCategories: []string{"device", "behaviour"},
		FullyAutomated: true,
		EventType:      riskv1.EventType_EVENT_TYPE_LOGIN,
		Features:       map[string]*structpb.Value{"login_failures_account_10m": structpb.NewNumberValue(6)},
		ShadowReasons:  []*riskv1.Reason{{RuleId: "shadow.x", Action: "deny", Expression: "true"}},
		Event:          &riskv1.Event{EventId: "ev", AccountId: account},
	}
	for _, r := range rules {
		d.Reasons = append(d.Reasons, &riskv1.Reason{RuleId: r, RuleVersion: 2, Action: "challenge",
			MessageEn: "New device after failures", MessageZh: "新设备登录", Expression: "login.success"})
	}
	return d
}

// put appends decisions for account, each in its own synced commit, and
// returns them in append order.
func (e *env) put(account string, n int, rules ...string) []*riskv1.Decision {
	e.t.Helper()
	var out []*riskv1.Decision
	for i := 0; i < n; i++ {
		e.clock.Advance(time.Millisecond)
		d := e.decision(account, rules...)
		p, err := e.log.Prepare(d, pseud(account))
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.c.append(p); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func pseud(account string) string { return "p:" + account }

func (e *env) verifyOK() VerifyReport {
	e.t.Helper()
	rep, err := e.log.Verify("")
	if err != nil || !rep.OK {
		e.t.Fatalf("Verify = %+v, %v; want OK", rep, err)
	}
	return rep
}
