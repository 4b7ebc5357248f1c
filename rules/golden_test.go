package rules

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riskd/riskd/features"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestCompileErrorGolden pins the exact messages an analyst sees for each
// broken file in testdata/errors.
func TestCompileErrorGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.yaml")
	if len(files) == 0 {
		t.Fatal("no cases")
	}
	defs := features.DefaultCatalog().Defs()
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compile([]File{{Name: filepath.Base(path), Data: data}}, CompileOptions{Features: defs})
			if err == nil {
				t.Fatal("compiled; want an error")
			}
			var ces CompileErrors
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &ces) || len(ces) == 0 {
				t.Fatalf("error %v is not CompileErrors", err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
