package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/memlimit"
	"github.com/riskd/riskd/rules"
)

// Config is riskd's configuration. Every setting has a flag, an environment
// variable (RISKD_ and the flag's name in capitals, dashes as underscores)
// and a key in the optional YAML file (the flag's name); a flag beats the
// environment, which beats the file, which beats the default.
type Config struct {
	Listen       string
	DataDir      string
	ConfigFile   string
	MaxEventAge  time.Duration
	Budget       time.Duration
	AppealWindow time.Duration
	FailModes    map[event.Type]rules.Outcome
	CatalogFile  string
	RulesDir     string
	CacheEntries int
	// MaxInFlight, MinInFlight and AdmissionTarget bound and steer the
	// evaluations admitted at once (engine.Options, engine/admission.go).
	MaxInFlight, MinInFlight int
	AdmissionTarget          time.Duration
	// BacktestMaxStates bounds the feature states one backtest holds in
	// memory (engine.Options.BacktestMaxStates).
	BacktestMaxStates int
	MaxRequestBytes   int
	ShutdownGrace     time.Duration
	LogLevel          slog.Level
	LogFormat         string
	CredentialsFile   string

	TLSCert     string
	TLSKey      string
	TLSClientCA string
	Insecure    bool

	RateLimitService float64
	RateLimitUser    float64
	RateLimitSubject float64
	MaxConnections   int
	MaxStreams       int

	OverturnAlert   float64
	OverturnMinHits int64

	// DeviceProfileHorizon: how long a DEVICE_REPORT's profile fills later
	// events from the same device (features.Profiles).
	DeviceProfileHorizon time.Duration

	// PseudonymKey is the HMAC key of pseudonyms from RISKD_PSEUDONYM_KEY
	// (never a flag: flags show in ps); PseudonymKeyFile and
	// PseudonymOldKeysFile name files. See PseudonymKeys.
	PseudonymKey         string
	PseudonymKeyFile     string
	PseudonymOldKeysFile string
	// Retention per class (zero: the engine's defaults).
	Retention engine.Retention

	// MemoryLimit is the Go runtime's soft memory limit in bytes (0: none),
	// which riskd's main applies at start (internal/memlimit): its default is
	// GOMEMLIMIT's when the environment sets it, else memlimit.Default.
	MemoryLimit int64
	// Procs is the Go runtime's GOMAXPROCS, which riskd's main applies at
	// start: its default is ProcsPerCPU per CPU the runtime would use, or
	// GOMAXPROCS's value when the environment sets it.
	Procs int
}

// ProcsPerCPU is the default Config.Procs per CPU. Pebble reads blocks
// with pread and syncs its log with fdatasync, system calls that keep
// their goroutine's P until the runtime hands it off; with one P per core,
// evaluations wait for those, and for compactions, which run for
// milliseconds between preemptions. With four per CPU the kernel shares
// the cores among more threads, and a woken evaluation runs sooner. On the
// 2-core VM with the 1M population over Connect (README "Performance"):
// closed loop +7-9 %, open-loop p99 about halved.
const ProcsPerCPU = 4

// defaultProcs is Config.Procs's default: GOMAXPROCS when the environment
// sets it to a positive number, else ProcsPerCPU per CPU the runtime uses.
func defaultProcs(getenv func(string) string) int {
	if n, err := strconv.Atoi(getenv("GOMAXPROCS")); err == nil && n > 0 {
		return n
	}
	return ProcsPerCPU * runtime.GOMAXPROCS(0)
}

// failModesFlag parses "payment=review,login=allow".
type failModesFlag struct{ m map[event.Type]rules.Outcome }

func (f *failModesFlag) String() string {
	if f == nil || f.m == nil {
		return ""
	}
	parts := make([]string, 0, len(f.m))
	for t, o := range f.m {
		parts = append(parts, strings.ToLower(t.String())+"="+strings.ToLower(o.String()))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (f *failModesFlag) Set(s string) error {
	m := make(map[event.Type]rules.Outcome)
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, outcome, ok := strings.Cut(part, "=")
		if !ok {
			return fmt.Errorf("%q: want TYPE=OUTCOME", part)
		}
		t, ok := event.ParseType(strings.ToUpper(strings.TrimSpace(name)))
		if !ok {
			return fmt.Errorf("%q: unknown event type", name)
		}
		o, ok := rules.ParseOutcome(strings.ToUpper(strings.TrimSpace(outcome)))
		if !ok {
			return fmt.Errorf("%q: unknown outcome (allow, challenge, review, deny)", outcome)
		}
		m[t] = o
	}
	f.m = m
	return nil
}

// levelFlag parses a slog level name.
type levelFlag struct{ l *slog.Level }

func (f levelFlag) String() string {
	if f.l == nil {
		return "info"
	}
	return strings.ToLower(f.l.String())
}
func (f levelFlag) Set(s string) error { return f.l.UnmarshalText([]byte(s)) }

// memLimitFlag parses a soft memory limit such as 768MiB, 1GiB, 0 or off.
type memLimitFlag struct{ n *int64 }

func (f memLimitFlag) String() string {
	if f.n == nil {
		return memlimit.Format(memlimit.Default)
	}
	return memlimit.Format(*f.n)
}

func (f memLimitFlag) Set(s string) error {
	n, err := memlimit.Parse(s)
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "RISKD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// LoadConfig reads the configuration from args (without the program name),
// the environment (getenv) and the YAML file named by --config or
// RISKD_CONFIG. Help goes to usage; flag.ErrHelp is returned for -h.
func LoadConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var c Config
	fm := &failModesFlag{}
	memLimit, err := memlimit.DefaultFrom(getenv)
	if err != nil {
		return c, err
	}
	c.MemoryLimit = memLimit
	fs := flag.NewFlagSet("riskd", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address to serve Connect, gRPC and gRPC-Web on (HTTP/1.1 and h2c)")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory of the Pebble store and credentials.json")
	fs.StringVar(&c.ConfigFile, "config", "", "optional YAML file of settings, keyed by flag name")
	fs.DurationVar(&c.MaxEventAge, "max-event-age", engine.DefaultMaxEventAge, "oldest event accepted (the lateness bound); raise it for backfills")
	fs.DurationVar(&c.DeviceProfileHorizon, "device-profile-horizon", features.DefaultProfileHorizon, "how long after a DEVICE_REPORT its flags, packages, model and OS fill later events from that device that do not carry them")
	fs.DurationVar(&c.Budget, "budget", engine.DefaultBudget, "Evaluate's time budget; past it riskd answers with the event type's fail mode, marked degraded")
	fs.DurationVar(&c.AppealWindow, "appeal-window", engine.DefaultAppealWindow, "how long after a decision its subject may appeal")
	fs.Var(fm, "fail-mode", "fail modes per event type, e.g. login=allow,payment=review (default: login, register, device_report, service_log allow; password_reset, payment, attendance review)")
	fs.StringVar(&c.CatalogFile, "catalog", "", "feature catalog YAML file (default: the catalog embedded in the binary)")
	fs.StringVar(&c.RulesDir, "rules", "", "directory of rule YAML files that bootstrap an empty rules store as version v1 (default: the rule set embedded in the binary); later versions come from RulesService")
	fs.IntVar(&c.CacheEntries, "cache-entries", 0, "hot feature state entries kept in memory (default: the feature store's default)")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", engine.DefaultMaxInFlight, "most evaluations under way at once; past the admission limit (at most this) Evaluate answers resource_exhausted at once")
	fs.IntVar(&c.MinInFlight, "min-in-flight", engine.DefaultMinInFlight, "floor of the admission limit, which shrinks while answers are slow; equal to --max-in-flight turns adaptation off")
	fs.DurationVar(&c.AdmissionTarget, "admission-target", 0, "smoothed time to answer above which fewer evaluations are admitted at once (default: half of --budget)")
	fs.IntVar(&c.BacktestMaxStates, "backtest-max-states", engine.DefaultBacktestMaxStates, "feature states one backtest may hold in memory (about 300 bytes each); a wider window fails with resource_exhausted")
	fs.IntVar(&c.MaxRequestBytes, "max-request-bytes", DefaultMaxRequestBytes, "largest request message accepted, in bytes")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 10*time.Second, "how long in-flight requests may finish after SIGINT/SIGTERM")
	c.LogLevel = slog.LevelInfo
	fs.Var(levelFlag{&c.LogLevel}, "log-level", "debug, info, warn or error (debug logs one line per request)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.CredentialsFile, "credentials", "", "credentials file (default: <data-dir>/credentials.json, written on first start)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate chain to serve TLS with (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "PEM CA bundle: service callers must present a client certificate it signed (mutual TLS)")
	fs.BoolVar(&c.Insecure, "insecure", false, "allow serving without TLS on a non-loopback address")
	fs.Float64Var(&c.RateLimitService, "rate-limit-service", 0, "requests per second allowed per service token (0: unlimited; overload shedding still applies)")
	fs.Float64Var(&c.RateLimitUser, "rate-limit-user", 200, "requests per second allowed per analyst or admin token, with bursts of twice that (0: unlimited)")
	fs.Float64Var(&c.RateLimitSubject, "rate-limit-subject", 10, "requests per second allowed per subject (end user), with bursts of twice that (0: unlimited)")
	fs.IntVar(&c.MaxConnections, "max-connections", 4096, "open client connections at most")
	fs.IntVar(&c.MaxStreams, "max-streams", 256, "concurrent HTTP/2 streams per connection at most")
	fs.Float64Var(&c.OverturnAlert, "overturn-alert", DefaultOverturnAlert, "flag (and log) a rule when more than this share of its hits were overturned on appeal")
	fs.Int64Var(&c.OverturnMinHits, "overturn-min-hits", DefaultOverturnMinHits, "hits a rule needs before its overturn rate is flagged")
	fs.StringVar(&c.PseudonymKeyFile, "pseudonym-key-file", "", "file holding the pseudonym HMAC key (default: RISKD_PSEUDONYM_KEY, else credentials.json's pseudonym_key)")
	fs.StringVar(&c.PseudonymOldKeysFile, "pseudonym-old-keys-file", "", "file of keys current before a rotation, one a line, newest first: lookups still find data written under them")
	fs.DurationVar(&c.Retention.Events, "retention-events", engine.DefaultRetainEvents, "how long stored events and their idempotency keys are kept")
	fs.DurationVar(&c.Retention.Decisions, "retention-decisions", engine.DefaultRetainDecisions, "how long decision records, their chain entries and labels are kept")
	fs.DurationVar(&c.Retention.Appeals, "retention-appeals", engine.DefaultRetainAppeals, "how long appeals are kept after filing")
	fs.DurationVar(&c.Retention.Audit, "retention-audit", engine.DefaultRetainAudit, "how long the access audit is kept")
	fs.DurationVar(&c.Retention.DeviceProfiles, "retention-device-profiles", engine.DefaultRetainDeviceProfiles, "how long a device's last DEVICE_REPORT profile is kept")
	fs.IntVar(&c.Procs, "procs", defaultProcs(getenv), "Go's GOMAXPROCS: threads running Go code at once (default: GOMAXPROCS when the environment sets it, else four per CPU, so that evaluations are not kept waiting by the store's blocking reads, syncs and compactions)")
	fs.Var(memLimitFlag{&c.MemoryLimit}, "memory-limit", "soft limit on the Go runtime's memory (heap, stacks), e.g. 512MiB or 1GiB: nearing it the garbage collector runs sooner instead of letting the heap grow to three times its live size (under a limit riskd sets GOGC to 200 unless the environment sets it); raise it with the population (1M accounts and 1M devices keep up to about 375 MiB live); 0 or off: none; default GOMEMLIMIT when the environment sets it, else "+memlimit.Format(memlimit.Default)+". Pebble's block cache (256 MiB) and memtables (64 MiB, two while one flushes) come on top")
	fs.Usage = func() {
		fmt.Fprintf(usage, "riskd: the riskd security-risk and anti-fraud scoring server.\n\n")
		fmt.Fprintf(usage, "Usage: riskd [flags]\n\nEvery flag can also be set by an environment variable (shown) or a key in\nthe --config YAML file (the flag's name). Flags beat the environment, which\nbeats the file.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(usage, "  --%s (%s, default %s)\n      %s\n", f.Name, envName(f.Name), def, f.Usage)
		})
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	setOnCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setOnCommandLine[f.Name] = true })

	if !setOnCommandLine["config"] {
		if v := getenv(envName("config")); v != "" {
			c.ConfigFile = v
		}
	}
	file := map[string]string{}
	if c.ConfigFile != "" {
		var err error
		if file, err = readConfigFile(c.ConfigFile); err != nil {
			return c, err
		}
	}
	for name := range file {
		if fs.Lookup(name) == nil || name == "config" {
			return c, fmt.Errorf("%s: unknown setting %q", c.ConfigFile, name)
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if setOnCommandLine[f.Name] || f.Name == "config" {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", c.ConfigFile, f.Name, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	c.FailModes = fm.m
	c.PseudonymKey = getenv("RISKD_PSEUDONYM_KEY")
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("log-format: %q: want text or json", c.LogFormat)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return c, errors.New("tls-cert and tls-key go together")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return c, errors.New("tls-client-ca needs tls-cert and tls-key")
	}
	if c.TLSCert == "" && !c.Insecure && !loopback(c.Listen) {
		return c, fmt.Errorf("listen %s: refusing to serve without TLS on a non-loopback address; give --tls-cert and --tls-key, or --insecure", c.Listen)
	}
	if c.OverturnAlert <= 0 || c.OverturnAlert > 1 || c.OverturnMinHits < 0 {
		return c, errors.New("overturn-alert must be in (0, 1] and overturn-min-hits not negative")
	}
	if c.Procs <= 0 {
		return c, errors.New("procs must be positive")
	}
	if c.MaxInFlight <= 0 || c.MinInFlight <= 0 || c.MinInFlight > c.MaxInFlight || c.AdmissionTarget < 0 {
		return c, errors.New("max-in-flight and min-in-flight must be positive, min-in-flight at most max-in-flight, and admission-target not negative")
	}
	if c.MaxConnections <= 0 || c.MaxStreams <= 0 {
		return c, errors.New("max-connections and max-streams must be positive")
	}
	if c.CredentialsFile == "" {
		c.CredentialsFile = filepath.Join(c.DataDir, "credentials.json")
	}
	return c, nil
}

func readConfigFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case map[string]any:
			// fail-mode may be written as a mapping.
			parts := make([]string, 0, len(v))
			for t, o := range v {
				parts = append(parts, fmt.Sprintf("%s=%v", t, o))
			}
			sort.Strings(parts)
			out[k] = strings.Join(parts, ",")
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}

// loopback reports whether addr (host:port) names only loopback interfaces.
// An empty host or 0.0.0.0 listens everywhere.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
