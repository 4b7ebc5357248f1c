package server

import (
	"errors"
	"fmt"

	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
)

// ruleHistory is what the independence check needs from the rules store
// (*rules.Store): who changed what, and the published versions.
type ruleHistory interface {
	History(limit int) ([]rules.Change, error)
	Version(v string) (*rules.Set, error)
}

// ruleStoreOf returns the engine's rules store, or nil (an untyped nil, so
// that callers' nil checks work) when it has none.
func ruleStoreOf(e *engine.Engine) ruleHistory {
	if s := e.RuleStore(); s != nil {
		return s
	}
	return nil
}

// authoredBy returns ResolveRequest.Authored for reviewer p: whether p
// authored a rule (introduced it) or last changed it (published a version
// in which its text or version differs from the set before, set its mode,
// or rolled back to a version that differs for it). Changes are attributed
// to the token that made them (rules.Actor{Role, Token}), so that is the
// identity compared.
//
// Without a rules store the rule set in force was given at start (the
// bundled set, or files the operator configured): no reviewer's token
// changed a rule, so nobody is conflicted. If the history cannot be read,
// every rule counts as authored by the reviewer: the check fails closed and
// only an admin can resolve.
func authoredBy(h ruleHistory, p auth.Principal) func(ruleID string) bool {
	if h == nil {
		return func(string) bool { return false }
	}
	who := rules.Actor{Role: p.Role.String(), Token: p.Name}
	authors, last, err := ruleAuthors(h)
	if err != nil {
		return func(string) bool { return true }
	}
	return func(id string) bool {
		a, ok := authors[id]
		return ok && (a == who || last[id] == who)
	}
}

// ruleAuthors walks the rules history oldest first and returns, per rule id,
// who introduced it and who last changed it.
func ruleAuthors(h ruleHistory) (authors, last map[string]rules.Actor, err error) {
	hist, err := h.History(0)
	if err != nil {
		return nil, nil, fmt.Errorf("server: rules history: %w", err)
	}
	authors, last = map[string]rules.Actor{}, map[string]rules.Actor{}
	live := map[string]string{} // rule id -> version and text in force
	touch := func(id string, who rules.Actor) {
		if _, ok := authors[id]; !ok {
			authors[id] = who
		}
		last[id] = who
	}
	for i := len(hist) - 1; i >= 0; i-- {
		c := hist[i]
		switch c.Action {
		case "rule_mode":
			if c.RuleID != "" {
				touch(c.RuleID, c.Author)
			}
			continue
		case "publish", "set_mode", "bootstrap", "rollback":
		default:
			continue
		}
		if c.Version == "" {
			continue
		}
		set, err := h.Version(c.Version)
		if errors.Is(err, rules.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("server: rules version %s: %w", c.Version, err)
		}
		next := map[string]string{}
		for _, r := range set.Rules() {
			key := fmt.Sprintf("%d\x00%s", r.Version, r.Source)
			next[r.ID] = key
			if live[r.ID] != key {
				touch(r.ID, c.Author)
			}
		}
		live = next
	}
	return authors, last, nil
}
