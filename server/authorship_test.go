package server

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
)

// Independence: who introduced a rule and who last changed it come from the
// rules store's history, on a real store.
func TestAuthoredByFollowsRulesHistory(t *testing.T) {
	db, err := pebble.Open(filepath.Join(t.TempDir(), "db"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := rules.OpenStore(rules.StoreOptions{DB: db, Features: features.DefaultCatalog().Defs()})
	if err != nil {
		t.Fatal(err)
	}
	analyst := auth.Principal{Role: auth.RoleAnalyst, Name: "analyst"}
	admin := auth.Principal{Role: auth.RoleAdmin, Name: "admin"}
	const changed, untouched = "att.mock_location", "att.cheat_apps_installed"

	// The bundled set is the system's: nobody is conflicted.
	if authoredBy(store, analyst)(changed) || authoredBy(store, admin)(changed) {
		t.Fatal("a reviewer counts as author of the bootstrap set")
	}

	// The analyst changes one rule's message.
	files := store.Live().Files()
	for i := range files {
		files[i].Data = bytes.Replace(files[i].Data, []byte("reported a simulated (mock) location"), []byte("reported a mock location"), 1)
	}
	if _, err := store.PublishFiles(files, rules.Actor{Role: "analyst", Token: "analyst"}, "wording"); err != nil {
		t.Fatal(err)
	}
	a := authoredBy(store, analyst)
	if !a(changed) || a(untouched) {
		t.Errorf("after the analyst's change: changed=%v untouched=%v", a(changed), a(untouched))
	}
	// A rule the analyst adds is theirs.
	files = append(files, rules.File{Name: "new.yaml", Data: []byte("rules:\n  - id: test.new_rule\n    applies_to: [LOGIN]\n    when: login.success\n    score: 1\n    reason: {en: new, zh: 新}\n")})
	if _, err := store.PublishFiles(files, rules.Actor{Role: "analyst", Token: "analyst"}, "new rule"); err != nil {
		t.Fatal(err)
	}
	if !authoredBy(store, analyst)("test.new_rule") {
		t.Error("the analyst's new rule is not theirs")
	}

	// The admin then changes the rule's mode: the analyst neither
	// introduced it nor changed it last; the admin changed it last.
	if _, err := store.SetMode(changed, rules.ModeShadow, rules.Actor{Role: "admin", Token: "admin"}, "shadow it"); err != nil {
		t.Fatal(err)
	}
	if authoredBy(store, analyst)(changed) {
		t.Error("the analyst still counts as last changer after the admin's change")
	}
	if !authoredBy(store, admin)(changed) {
		t.Error("the admin's mode change does not count")
	}
	if !authoredBy(store, analyst)("test.new_rule") {
		t.Error("the analyst's authorship of the new rule was lost")
	}

	// Without a store nobody changed a rule through riskd.
	if authoredBy(nil, analyst)(changed) {
		t.Error("no store: conflicted")
	}
}

// unreadableHistory is a rules store whose history cannot be read.
type unreadableHistory struct{}

func (unreadableHistory) History(int) ([]rules.Change, error) { return nil, errors.New("disk on fire") }
func (unreadableHistory) Version(string) (*rules.Set, error)  { return nil, errors.New("disk on fire") }

// An unreadable history fails closed: only an admin (who skips the check)
// can resolve.
func TestAuthoredByFailsClosed(t *testing.T) {
	if !authoredBy(unreadableHistory{}, auth.Principal{Role: auth.RoleAnalyst, Name: "analyst"})("any.rule") {
		t.Error("an unreadable history let the reviewer through")
	}
}
