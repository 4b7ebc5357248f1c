package engine

import (
	"fmt"
	"strconv"
	"strings"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/internal/keys"
)

// Key rotation. New data is always pseudonymized with the current key.
// Lookups that start from a raw identifier try the pseudonym under the
// current key first and then under each old key (ingest.Pseudonyms), so that
// data written before a rotation is still found until retention removes it:
// idempotency keys (lookupSeen), a subject's decisions (ListDecisions), and
// the data-rights calls (ExportSubject, EraseSubject). See README "Key
// rotation" for what does not follow an old key.

// oldSeenKeys returns the event id's idempotency keys under the old
// pseudonym keys; nil without a rotation. Each costs an HMAC, so lookupSeen
// computes them once and checks both the filter and the store with them.
func (e *Engine) oldSeenKeys(eventID string) [][]byte {
	ps := e.norm.OldKeyPseudonyms("event_id", eventID)
	if ps == nil {
		return nil
	}
	ks := make([][]byte, len(ps))
	for i, p := range ps {
		ks[i] = append([]byte{keys.EventSeen}, p...)
	}
	return ks
}

// AccountPseudonyms returns the account's pseudonym under the current key,
// then under each old key.
func (e *Engine) AccountPseudonyms(account string) []string {
	return e.norm.Pseudonyms(ingest.KindAccount, account)
}

// ListDecisions lists an account's decisions newest first, pageSize at a
// time, across the current and old pseudonym keys: the decisions recorded
// under the current key first, then those under each older key.
func (e *Engine) ListDecisions(account string, pageSize int, pageToken string) ([]*riskv1.Decision, string, error) {
	ps := e.AccountPseudonyms(account)
	if len(ps) == 1 {
		return e.decisions.ListByAccount(ps[0], pageSize, pageToken)
	}
	i, inner := 0, pageToken
	if pageToken != "" {
		// Tokens during a rotation are "r<key index>.<the log's token>".
		idx, rest, ok := strings.Cut(strings.TrimPrefix(pageToken, "r"), ".")
		n, err := strconv.Atoi(idx)
		if !ok || !strings.HasPrefix(pageToken, "r") || err != nil || n < 0 || n >= len(ps) {
			return nil, "", &decisions.PageTokenError{Reason: "not a token of this query"}
		}
		i, inner = n, rest
	}
	var out []*riskv1.Decision
	for ; i < len(ps); i++ {
		ds, next, err := e.decisions.ListByAccount(ps[i], pageSize-len(out), inner)
		if err != nil {
			return nil, "", fmt.Errorf("engine: list decisions: %w", err)
		}
		out = append(out, ds...)
		inner = ""
		if next != "" {
			return out, fmt.Sprintf("r%d.%s", i, next), nil
		}
		if len(out) >= pageSize {
			if i+1 < len(ps) {
				return out, fmt.Sprintf("r%d.", i+1), nil
			}
			break
		}
	}
	return out, "", nil
}

// featureAliases is what the feature store reads old state under during a
// rotation: the event's pseudonyms under each old key; nil without one.
func (e *Engine) featureAliases() func(*event.Event) []event.Pseudonyms {
	if len(e.opts.OldPseudonymKeys) == 0 {
		return nil
	}
	return e.norm.OldPseudonyms
}
