package rules

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"

	"github.com/riskd/riskd/features"
)

//go:embed bundled/*.yaml
var bundledFS embed.FS

// BundledFiles returns the rule files embedded in the binary.
func BundledFiles() []File {
	names, _ := fs.Glob(bundledFS, "bundled/*.yaml")
	sort.Strings(names)
	out := make([]File, 0, len(names))
	for _, n := range names {
		data, _ := bundledFS.ReadFile(n)
		out = append(out, File{Name: n[len("bundled/"):], Data: data})
	}
	return out
}

// Default compiles the bundled rule set against the default feature catalog.
func Default() (*Set, error) {
	s, err := Compile(BundledFiles(), CompileOptions{Features: features.DefaultCatalog().Defs()})
	if err != nil {
		return nil, fmt.Errorf("rules: bundled rule set: %w", err)
	}
	return s, nil
}
