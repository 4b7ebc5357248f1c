package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/riskd/riskd/rules"
)

// ReadRuleDir reads the rule files of dir: every *.yaml and *.yml file
// directly in it, by name, byte for byte (so that a pull/push round trip is
// lossless). File names are the base names.
func ReadRuleDir(dir string) ([]rules.File, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read rule directory: %w", err)
	}
	var out []rules.File
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("read rule file: %w", err)
		}
		out = append(out, rules.File{Name: n, Data: data})
	}
	if len(out) == 0 {
		return nil, errors.New("no *.yaml rule files in " + dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
