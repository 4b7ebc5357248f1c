package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/internal/keys"
)

// Data rights: a subject's data exported or erased on request. Both start
// from the account id and its pseudonyms under every key in use (key
// rotation), find the subject's stored events by a scan of the event log
// (it is ordered by time, not account; an admin call, not a hot path), and
// from them the subject's devices.

// subjectEvents is what a scan of the event log finds about a subject.
type subjectEvents struct {
	events []*riskv1.Event
	// devices are the device identifier pseudonyms (device id, IMEI ...)
	// of the subject's events; shared ones were also seen with another account.
	devices, shared map[string]bool
}

func devicePseudonyms(d *riskv1.Device) []string {
	if d == nil {
		return nil
	}
	var out []string
	for _, p := range []string{d.GetDeviceId(), d.GetImei(), d.GetIdfa(), d.GetAndroidId(), d.GetOaid(), d.GetMac(), d.GetImsi()} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (e *Engine) scanSubject(ps []string) (*subjectEvents, error) {
	mine := make(map[string]bool, len(ps))
	for _, p := range ps {
		mine[p] = true
	}
	se := &subjectEvents{devices: map[string]bool{}, shared: map[string]bool{}}
	others := map[string]bool{}
	err := ingest.ScanEvents(e.db, time.Time{}, time.Time{}, func(ev *riskv1.Event) error {
		if mine[ev.GetAccountId()] {
			se.events = append(se.events, ev)
			for _, d := range devicePseudonyms(ev.GetDevice()) {
				se.devices[d] = true
			}
			return nil
		}
		for _, d := range devicePseudonyms(ev.GetDevice()) {
			others[d] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("engine: subject events: %w", err)
	}
	for d := range se.devices {
		if others[d] {
			se.shared[d] = true
		}
	}
	return se, nil
}

// listEntriesNaming calls fn for every list entry whose value is one of ps.
func (e *Engine) listEntriesNaming(ps []string, fn func(key []byte, list, value string) error) error {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.ListEntry}, UpperBound: []byte{keys.ListEntry + 1}})
	if err != nil {
		return fmt.Errorf("engine: list entries: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		for _, p := range ps {
			if len(k) > 1+len(p) && string(k[len(k)-len(p):]) == p {
				list := strings.TrimSuffix(string(k[1:len(k)-len(p)]), "\x00")
				if err := fn(append([]byte(nil), k...), list, p); err != nil {
					_ = it.Close()
					return err
				}
				break
			}
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// listPseudonyms are the forms an identifier list may hold the account
// in: its pseudonym as an account (ingest.KindAccount) and as the list
// identifier kind "account_id", under every key in use.
func (e *Engine) listPseudonyms(account string) []string {
	return append(e.AccountPseudonyms(account), e.norm.Pseudonyms("account_id", account)...)
}

func profileKey(device string) []byte { return append([]byte{keys.DeviceProfile}, device...) }

// ExportSubject returns, as one JSON document, everything the store holds
// about an account: its pseudonyms, decisions (full records), appeals and
// labels, stored events, the current feature values keyed by the account
// and by its devices, its devices' profiles, and list entries naming it.
func (e *Engine) ExportSubject(account string) ([]byte, error) {
	ps := e.AccountPseudonyms(account)
	doc := struct {
		AccountID   string            `json:"account_id"`
		Pseudonyms  []string          `json:"pseudonyms"`
		Decisions   []json.RawMessage `json:"decisions"`
		Appeals     []json.RawMessage `json:"appeals"`
		Labels      []decisions.Label `json:"labels"`
		Events      []json.RawMessage `json:"events"`
		Features    []exportedFeature `json:"features"`
		Devices     []exportedDevice  `json:"devices"`
		ListEntries []exportedEntry   `json:"list_entries"`
	}{AccountID: account, Pseudonyms: ps, Decisions: []json.RawMessage{}, Appeals: []json.RawMessage{},
		Labels: []decisions.Label{}, Events: []json.RawMessage{}, Features: []exportedFeature{},
		Devices: []exportedDevice{}, ListEntries: []exportedEntry{}}
	for _, p := range ps {
		sd, err := e.decisions.SubjectRecords(p)
		if err != nil {
			return nil, fmt.Errorf("engine: export: %w", err)
		}
		for _, d := range sd.Decisions {
			doc.Decisions = append(doc.Decisions, protoJSON(d))
		}
		for _, a := range sd.Appeals {
			doc.Appeals = append(doc.Appeals, protoJSON(a))
		}
		doc.Labels = append(doc.Labels, sd.Labels...)
	}
	se, err := e.scanSubject(ps)
	if err != nil {
		return nil, err
	}
	for _, ev := range se.events {
		doc.Events = append(doc.Events, protoJSON(ev))
		if lb, err := e.decisions.LabelForEvent(ev.GetEventId()); err == nil && !slices.ContainsFunc(doc.Labels, func(x decisions.Label) bool { return x == lb }) {
			doc.Labels = append(doc.Labels, lb) // a label on an event without a decision (ingested)
		}
	}
	show := func(of string, p event.Pseudonyms) error {
		shown, err := e.features.Show(p)
		if err != nil {
			return fmt.Errorf("engine: export features: %w", err)
		}
		for _, s := range shown {
			if s.Value.Present {
				doc.Features = append(doc.Features, exportedFeature{Of: of, Name: s.Name, Value: s.Value.Any()})
			}
		}
		return nil
	}
	for _, p := range ps {
		if err := show("account:"+p, event.Pseudonyms{Account: p}); err != nil {
			return nil, err
		}
	}
	devs := make([]string, 0, len(se.devices))
	for d := range se.devices {
		devs = append(devs, d)
	}
	slices.Sort(devs)
	for _, d := range devs {
		if err := show("device:"+d, event.Pseudonyms{Device: d}); err != nil {
			return nil, err
		}
		ed := exportedDevice{Device: d, SharedWithOthers: se.shared[d]}
		v, c, err := e.db.Get(profileKey(d))
		if err == nil {
			// The profile's stored form (features.Profiles): report time,
			// then a risk.v1.Device without identifiers.
			if len(v) >= 8 {
				m := &riskv1.Device{}
				if proto.Unmarshal(v[8:], m) == nil {
					ed.Profile = protoJSON(m)
					ed.ReportedAt = time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))).UTC()
				}
			}
			c.Close()
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return nil, fmt.Errorf("engine: export profile: %w", err)
		}
		doc.Devices = append(doc.Devices, ed)
	}
	if err := e.listEntriesNaming(e.listPseudonyms(account), func(_ []byte, list, value string) error {
		doc.ListEntries = append(doc.ListEntries, exportedEntry{List: list, Value: value})
		return nil
	}); err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", "  ")
}

type exportedFeature struct {
	Of    string `json:"of"`
	Name  string `json:"name"`
	Value any    `json:"value"`
}

type exportedDevice struct {
	Device           string          `json:"device"`
	SharedWithOthers bool            `json:"shared_with_other_accounts"`
	ReportedAt       time.Time       `json:"profile_reported_at,omitzero"`
	Profile          json.RawMessage `json:"profile,omitempty"`
}

type exportedEntry struct {
	List  string `json:"list"`
	Value string `json:"value"`
}

func protoJSON(m proto.Message) json.RawMessage {
	b, err := protojson.Marshal(m)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}

// ErasureReport says what EraseSubject did.
type ErasureReport struct {
	EventsDeleted, FeatureKeysDeleted, DevicesForgotten int
	MembersRemoved, Sketches                            int
	DecisionsRedacted, AppealsErased, LabelsDeleted     int
	ListEntriesDeleted                                  int
	ErasureSeq                                          uint64
	ChainVerified                                       bool
}

// EraseSubject erases an account (see the package doc of server, and
// README "Data rights"): its stored events, idempotency keys and event
// labels; its feature state and that of devices no other account used,
// and its membership in other keys' exact distinct sets; those devices'
// profiles; list entries naming it; what it wrote in its appeals. Its
// decision records are redacted (decisions.Redact) through the committer,
// in chain order, with one erasure entry per pseudonym key, and the chain
// is verified after.
func (e *Engine) EraseSubject(ctx context.Context, account, actor string) (ErasureReport, error) {
	var rep ErasureReport
	ps := e.AccountPseudonyms(account)
	var decisionIDs []string
	for _, p := range ps {
		sd, err := e.decisions.SubjectRecords(p)
		if err != nil {
			return rep, fmt.Errorf("engine: erase: %w", err)
		}
		for _, d := range sd.Decisions {
			decisionIDs = append(decisionIDs, d.GetDecisionId())
		}
	}
	se, err := e.scanSubject(ps)
	if err != nil {
		return rep, err
	}
	b := e.db.NewBatch()
	defer b.Close()
	for _, ev := range se.events {
		if err := b.Delete(ingest.EventKey(ev.GetOccurredAt().AsTime(), ev.GetEventId()), nil); err != nil {
			return rep, fmt.Errorf("engine: erase: %w", err)
		}
		for _, p := range e.norm.Pseudonyms("event_id", ev.GetEventId()) {
			if err := b.Delete(append([]byte{keys.EventSeen}, p...), nil); err != nil {
				return rep, fmt.Errorf("engine: erase: %w", err)
			}
		}
		if _, err := e.decisions.LabelForEvent(ev.GetEventId()); err == nil {
			rep.LabelsDeleted++
		}
		if err := e.decisions.DeleteEventLabel(b, ev.GetEventId()); err != nil {
			return rep, fmt.Errorf("engine: erase: %w", err)
		}
		rep.EventsDeleted++
	}
	var exclusive []string
	for d := range se.devices {
		if !se.shared[d] {
			exclusive = append(exclusive, d)
			if err := b.Delete(profileKey(d), nil); err != nil {
				return rep, fmt.Errorf("engine: erase: %w", err)
			}
		}
	}
	rep.DevicesForgotten = len(exclusive)
	if err := e.listEntriesNaming(e.listPseudonyms(account), func(k []byte, _, _ string) error {
		rep.ListEntriesDeleted++
		return b.Delete(k, nil)
	}); err != nil {
		return rep, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return rep, fmt.Errorf("engine: erase: %w", err)
	}
	for _, d := range exclusive {
		e.profiles.Forget(&event.Event{Type: event.DeviceReport, P: event.Pseudonyms{Device: d}})
	}
	fr, err := e.features.Erase(append(slices.Clone(ps), exclusive...), ps)
	if err != nil {
		return rep, fmt.Errorf("engine: erase: %w", err)
	}
	rep.FeatureKeysDeleted, rep.MembersRemoved, rep.Sketches = fr.Deleted, fr.MembersRemoved, fr.Sketches

	err = e.Commit(ctx, func(b *pebble.Batch) error {
		// Appeals first: AppendErasure drops the index that finds them.
		n, err := e.decisions.EraseAppeals(b, decisionIDs)
		if err != nil {
			return err
		}
		rep.AppealsErased = n
		for _, p := range ps {
			ent, err := e.decisions.AppendErasure(b, p, actor, nil)
			if err != nil {
				return err
			}
			rep.DecisionsRedacted += len(ent.Records)
			if len(ent.Records) > 0 {
				rep.ErasureSeq = e.decisions.Head().Seq
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("engine: erase: %w", err)
	}
	vr, err := e.decisions.Verify("")
	if err != nil && !errors.Is(err, decisions.ErrChainBroken) {
		return rep, fmt.Errorf("engine: erase: verify: %w", err)
	}
	rep.ChainVerified = vr.OK
	return rep, nil
}
