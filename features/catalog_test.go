package features

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestCatalogErrors pins the message an operator sees for each broken
// catalog in testdata/catalog (run with -update after a deliberate change).
func TestCatalogErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/catalog/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test catalogs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			err := CheckFile(f)
			if err == nil {
				t.Fatal("accepted a broken catalog")
			}
			if !errors.Is(err, ErrCatalog) {
				t.Fatalf("not ErrCatalog: %v", err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got  %s want %s", got, want)
			}
		})
	}
}

func TestCatalogErrorNamesFeatureAndLine(t *testing.T) {
	var ce *CatalogError
	err := CheckFile("testdata/catalog/unknown_field.yaml")
	if !errors.As(err, &ce) || ce.Feature != "typo" || ce.Line != 9 {
		t.Fatalf("got %#v", err)
	}
}

func TestCheckFileAcceptsDefault(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, DefaultCatalogYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(p); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || errors.Is(err, ErrCatalog) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestFirstSeenCatalog(t *testing.T) {
	for _, c := range []struct {
		extra   string
		horizon time.Duration
	}{{"", DefaultHorizon}, {"    value: seconds_since\n    horizon: 1m\n", time.Minute}} {
		cat, err := ParseCatalog("t", []byte("features:\n  - name: f\n    key: [account_id, device.device_id]\n    agg: first_seen\n"+c.extra))
		if err != nil {
			t.Fatal(err)
		}
		d := cat.Defs()[0]
		if d.Agg != AggFirstSeen || d.Agg.String() != "first_seen" || d.Kind != KindFloat || d.Derive != DeriveSecondsSince || d.Horizon != c.horizon || d.Window != 0 {
			t.Errorf("%q: got %+v", c.extra, d)
		}
	}
}

func FuzzParseCatalog(f *testing.F) {
	f.Add(DefaultCatalogYAML())
	files, _ := filepath.Glob("testdata/catalog/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCatalog("fuzz", data)
		if err != nil {
			if !errors.Is(err, ErrCatalog) {
				t.Fatalf("error not ErrCatalog: %v", err)
			}
			return
		}
		for _, d := range c.Defs() {
			if d.Name == "" || d.Kind == 0 || d.Agg == 0 {
				t.Fatalf("incomplete def %+v", d)
			}
			if d.state >= 0 && (d.Window < MinWindow && d.Horizon < MinWindow) {
				t.Fatalf("def %s without window", d.Name)
			}
		}
	})
}
