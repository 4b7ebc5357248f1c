package server

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/memlimit"
	"github.com/riskd/riskd/rules"
)

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "riskd.yaml")
	if err := os.WriteFile(file, []byte(`
listen: 127.0.0.1:7001
data-dir: /from/file
budget: 70ms
max-event-age: 48h
fail-mode:
  payment: deny
  login: challenge
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                string
		args                []string
		env                 map[string]string
		listen, dataDir     string
		budget, maxEventAge time.Duration
	}{
		{"defaults", nil, nil, "127.0.0.1:8080", "./data", 50 * time.Millisecond, 24 * time.Hour},
		{"file", []string{"--config", file}, nil, "127.0.0.1:7001", "/from/file", 70 * time.Millisecond, 48 * time.Hour},
		{"file named by env", nil, map[string]string{"RISKD_CONFIG": file}, "127.0.0.1:7001", "/from/file", 70 * time.Millisecond, 48 * time.Hour},
		{"env beats file", []string{"--config", file}, map[string]string{"RISKD_LISTEN": "127.0.0.1:7002", "RISKD_MAX_EVENT_AGE": "72h"},
			"127.0.0.1:7002", "/from/file", 70 * time.Millisecond, 72 * time.Hour},
		{"flag beats env and file", []string{"--config", file, "--listen", "127.0.0.1:7003", "--data-dir", "/from/flag"},
			map[string]string{"RISKD_LISTEN": "127.0.0.1:7002", "RISKD_DATA_DIR": "/from/env"},
			"127.0.0.1:7003", "/from/flag", 70 * time.Millisecond, 48 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.Listen != tc.listen || c.DataDir != tc.dataDir || c.Budget != tc.budget || c.MaxEventAge != tc.maxEventAge {
				t.Errorf("got listen %s data-dir %s budget %v max-event-age %v", c.Listen, c.DataDir, c.Budget, c.MaxEventAge)
			}
			if c.CredentialsFile != filepath.Join(tc.dataDir, "credentials.json") {
				t.Errorf("credentials file %s", c.CredentialsFile)
			}
		})
	}
	c, err := LoadConfig([]string{"--config", file}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.FailModes[event.Payment] != rules.Deny || c.FailModes[event.Login] != rules.Challenge {
		t.Errorf("fail modes from the file: %v", c.FailModes)
	}
}

func TestConfigMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "riskd.yaml")
	if err := os.WriteFile(file, []byte("memory-limit: 1GiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fileOff := filepath.Join(dir, "off.yaml")
	if err := os.WriteFile(fileOff, []byte("memory-limit: off\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want int64
	}{
		{"default", nil, nil, memlimit.Default},
		{"GOMEMLIMIT replaces the default", nil, map[string]string{"GOMEMLIMIT": "2GiB"}, 2 << 30},
		{"GOMEMLIMIT off", nil, map[string]string{"GOMEMLIMIT": "off"}, 0},
		{"file", []string{"--config", file}, nil, 1 << 30},
		{"file beats GOMEMLIMIT", []string{"--config", file}, map[string]string{"GOMEMLIMIT": "2GiB"}, 1 << 30},
		{"env beats file", []string{"--config", file}, map[string]string{"RISKD_MEMORY_LIMIT": "640MiB"}, 640 << 20},
		{"flag beats env", []string{"--memory-limit", "512MiB"}, map[string]string{"RISKD_MEMORY_LIMIT": "640MiB"}, 512 << 20},
		{"off", []string{"--memory-limit", "off"}, nil, 0},
		{"off in the file", []string{"--config", fileOff}, nil, 0},
		{"0", nil, map[string]string{"RISKD_MEMORY_LIMIT": "0"}, 0},
		{"bytes", []string{"--memory-limit", "805306368"}, nil, 768 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.MemoryLimit != tc.want {
				t.Errorf("memory limit %d (%s), want %d (%s)", c.MemoryLimit, memlimit.Format(c.MemoryLimit), tc.want, memlimit.Format(tc.want))
			}
		})
	}
}

func TestConfigProcs(t *testing.T) {
	perCPU := ProcsPerCPU * runtime.GOMAXPROCS(0)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"default", nil, nil, perCPU},
		{"GOMAXPROCS replaces the default", nil, map[string]string{"GOMAXPROCS": "3"}, 3},
		{"GOMAXPROCS not a number", nil, map[string]string{"GOMAXPROCS": "lots"}, perCPU},
		{"env beats GOMAXPROCS", nil, map[string]string{"GOMAXPROCS": "3", "RISKD_PROCS": "5"}, 5},
		{"flag beats env", []string{"--procs", "6"}, map[string]string{"RISKD_PROCS": "5"}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.Procs != tc.want {
				t.Errorf("procs %d, want %d", c.Procs, tc.want)
			}
		})
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listne: 127.0.0.1:1\n"), 0o600)
	badLimit := filepath.Join(dir, "badlimit.yaml")
	os.WriteFile(badLimit, []byte("memory-limit: -5\n"), 0o600)
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--budget", "soon"}, nil, "budget"},
		{nil, map[string]string{"RISKD_MAX_EVENT_AGE": "a day"}, "RISKD_MAX_EVENT_AGE"},
		{[]string{"--fail-mode", "payment=maybe"}, nil, "maybe"},
		{[]string{"--fail-mode", "teleport=allow"}, nil, "teleport"},
		{[]string{"--config", bad}, nil, `unknown setting "listne"`},
		{[]string{"--log-format", "xml"}, nil, "log-format"},
		{[]string{"stray"}, nil, "unexpected arguments"},
		{[]string{"--memory-limit", "768MB"}, nil, "memory-limit"},
		{[]string{"--memory-limit", "32MiB"}, nil, "memory-limit"},
		{nil, map[string]string{"RISKD_MEMORY_LIMIT": "lots"}, "RISKD_MEMORY_LIMIT"},
		{[]string{"--config", badLimit}, nil, "memory-limit"},
		{nil, map[string]string{"GOMEMLIMIT": "1GB"}, "GOMEMLIMIT"},
		{[]string{"--min-in-flight", "300"}, nil, "min-in-flight"},
		{[]string{"--max-in-flight", "0"}, nil, "max-in-flight"},
		{nil, map[string]string{"RISKD_ADMISSION_TARGET": "-1s"}, "admission-target"},
		{[]string{"--procs", "0"}, nil, "procs"},
		{nil, map[string]string{"RISKD_PROCS": "many"}, "RISKD_PROCS"},
	}
	for _, tc := range tests {
		_, err := LoadConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want it to name %q", tc.args, tc.env, err, tc.want)
		}
	}
}
