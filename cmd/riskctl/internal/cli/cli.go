package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/internal/clock"
)

// Exit codes. They are part of riskctl's interface: scripts branch on them.
const (
	ExitOK          = 0 // the command did what it was asked
	ExitServerError = 1 // riskd answered with an error (its Connect code and message are printed)
	ExitUsage       = 2 // the command line or its input was wrong
	ExitUnreachable = 3 // no riskd answered, or there were no credentials to ask it with
	ExitThreshold   = 4 // evaluate --fail-on: the outcome reached the threshold
	ExitRejected    = 5 // ingest: some lines were rejected (the rest was ingested)
	ExitMissed      = 6 // quality: a detection or false-positive target was missed
)

const exitCodesHelp = `Exit codes:
  0  ok
  1  riskd answered with an error (its code and message are printed)
  2  usage error: bad flags or arguments, or input that is not an event
  3  riskd could not be reached, or no credentials were found
  4  evaluate --fail-on: the outcome reached the threshold
  5  ingest: some lines were rejected (the rest was ingested)
  6  quality: a detection or false-positive target was missed
`

// Defaults of the global settings.
const (
	DefaultServer   = "http://127.0.0.1:8080"
	DefaultDataDir  = "./data"
	DefaultTimeout  = 10 * time.Second
	DefaultProtocol = "connect"
)

// Env is what riskctl reads from and writes to besides its arguments. The zero
// value means the process's own: os.Stdin, os.Stdout, os.Stderr, os.Getenv,
// the real clock and a fresh HTTP transport.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv looks up RISKCTL_* settings.
	Getenv func(string) string
	Clock  clock.Clock
	// HTTPClient overrides the client riskctl builds for --protocol.
	HTTPClient *http.Client
}

func (e Env) withDefaults() Env {
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	if e.Clock == nil {
		e.Clock = clock.Real{}
	}
	return e
}

// runFunc runs a verb with its positional arguments, after its flags are parsed.
type runFunc func(ctx context.Context, inv *invocation, args []string) error

// command is a noun (with Subs) or a verb (with Setup). A top-level verb such
// as "evaluate" has Setup and no Subs.
type command struct {
	Name    string
	Args    string    // synopsis of the positional arguments and required flags, for help
	Summary string    // one line, for the command list
	Help    string    // paragraphs shown by --help, after the usage line
	Role    auth.Role // the role whose token a verb uses unless --token is given
	// Setup defines the verb's flags on fs and returns the function that runs
	// the verb once they are parsed.
	Setup func(fs *flag.FlagSet) runFunc
	Subs  []*command
}

// nouns is the command table; each file adds its noun with register in init.
var nouns []*command

func register(c *command) {
	nouns = append(nouns, c)
	sort.Slice(nouns, func(i, j int) bool { return nouns[i].Name < nouns[j].Name })
}

func lookup(list []*command, name string) *command {
	for _, c := range list {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// globals are the settings every verb shares. They are accepted before the
// command or among a verb's own flags.
type globals struct {
	server   string
	dataDir  string
	token    string
	json     bool
	timeout  time.Duration
	protocol string
}

func (g *globals) defaults(getenv func(string) string) error {
	g.server = envOr(getenv, "RISKCTL_SERVER", DefaultServer)
	g.dataDir = envOr(getenv, "RISKCTL_DATA_DIR", DefaultDataDir)
	g.token = getenv("RISKCTL_TOKEN")
	g.protocol = envOr(getenv, "RISKCTL_PROTOCOL", DefaultProtocol)
	g.timeout = DefaultTimeout
	if s := getenv("RISKCTL_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("RISKCTL_TIMEOUT: %w", err)
		}
		g.timeout = d
	}
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// bind defines the global flags on fs. The defaults are the current values,
// so binding them again on a verb's flag set keeps what was parsed before the
// command.
func (g *globals) bind(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", g.server, "")
	fs.StringVar(&g.dataDir, "data-dir", g.dataDir, "")
	fs.StringVar(&g.token, "token", g.token, "")
	fs.BoolVar(&g.json, "json", g.json, "")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "")
	fs.StringVar(&g.protocol, "protocol", g.protocol, "")
}

var globalNames = map[string]bool{"server": true, "data-dir": true, "token": true, "json": true, "timeout": true, "protocol": true}

const globalsHelp = `Global flags (before or after the command):
  --server URL        riskd's address (env RISKCTL_SERVER; default http://127.0.0.1:8080)
  --data-dir DIR      riskd's data directory, where credentials.json is read
                      (env RISKCTL_DATA_DIR; default ./data)
  --token TOKEN       bearer token to use instead of the one credentials.json holds
                      for the command's role (env RISKCTL_TOKEN)
  --json              print machine-readable JSON (the contract's JSON form) on stdout
  --timeout DURATION  give up on riskd after this long (env RISKCTL_TIMEOUT; default 10s)
  --protocol NAME     connect, grpc or grpcweb (env RISKCTL_PROTOCOL; default connect)
`

// usageError is a wrong command line: exit 2, with the command's usage hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// exitError carries a specific exit code; a nil err prints nothing.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// invocation is one run of one verb: the environment, the parsed globals and
// the role the verb acts as.
type invocation struct {
	env  Env
	g    *globals
	role auth.Role
	path string // "decisions list"

	creds *auth.Credentials // loaded on first use
}

func (inv *invocation) stdout() io.Writer { return inv.env.Stdout }

// Run runs riskctl with args (without the program name) and returns the exit
// code. Results go to env.Stdout, diagnostics to env.Stderr.
func Run(ctx context.Context, args []string, env Env) int {
	env = env.withDefaults()
	g := &globals{}
	if err := g.defaults(env.Getenv); err != nil {
		fmt.Fprintf(env.Stderr, "riskctl: %v\n", err)
		return ExitUsage
	}
	root := flag.NewFlagSet("riskctl", flag.ContinueOnError)
	root.SetOutput(io.Discard)
	g.bind(root)
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeRootHelp(env.Stdout)
			return ExitOK
		}
		return reportUsage(env.Stderr, "", err.Error())
	}
	rest := root.Args()
	if len(rest) == 0 {
		writeRootHelp(env.Stderr)
		return ExitUsage
	}
	if rest[0] == "help" {
		return runHelp(env, rest[1:])
	}

	cmd, path, rest, err := resolve(rest)
	if err != nil {
		return reportUsage(env.Stderr, path, err.Error())
	}
	if cmd.Setup == nil { // a noun without a verb
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help") {
			writeNounHelp(env.Stdout, cmd)
			return ExitOK
		}
		writeNounHelp(env.Stderr, cmd)
		return ExitUsage
	}

	fs := flag.NewFlagSet("riskctl "+path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.bind(fs)
	run := cmd.Setup(fs)
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeVerbHelp(env.Stdout, path, cmd, fs)
			return ExitOK
		}
		return reportUsage(env.Stderr, path, err.Error())
	}
	if err := g.validate(); err != nil {
		return reportUsage(env.Stderr, path, err.Error())
	}

	inv := &invocation{env: env, g: g, role: cmd.Role, path: path}
	return report(env.Stderr, path, run(ctx, inv, pos))
}

func (g *globals) validate() error {
	switch g.protocol {
	case "connect", "grpc", "grpcweb":
	default:
		return fmt.Errorf("--protocol %q: want connect, grpc or grpcweb", g.protocol)
	}
	if g.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %v", g.timeout)
	}
	if !strings.HasPrefix(g.server, "http://") && !strings.HasPrefix(g.server, "https://") {
		return fmt.Errorf("--server %q: want an http:// or https:// URL", g.server)
	}
	return nil
}

// resolve finds the command named by the leading words of args.
func resolve(args []string) (cmd *command, path string, rest []string, err error) {
	cmd = lookup(nouns, args[0])
	if cmd == nil {
		return nil, "", nil, fmt.Errorf("unknown command %q", args[0])
	}
	path, rest = cmd.Name, args[1:]
	for len(cmd.Subs) > 0 && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		sub := lookup(cmd.Subs, rest[0])
		if sub == nil {
			return nil, path, nil, fmt.Errorf("unknown command %q", path+" "+rest[0])
		}
		cmd, path, rest = sub, path+" "+sub.Name, rest[1:]
	}
	return cmd, path, rest, nil
}

// parseInterspersed parses flags wherever they appear among the positional
// arguments ("decisions get ID --json"); everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		consumed := len(args) - fs.NArg()
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, fs.Args()...), nil
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func reportUsage(w io.Writer, path, msg string) int {
	fmt.Fprintf(w, "riskctl: %s\n", msg)
	if path != "" {
		fmt.Fprintf(w, "Run 'riskctl %s --help' for usage.\n", path)
	} else {
		fmt.Fprintln(w, "Run 'riskctl help' for usage.")
	}
	return ExitUsage
}

// report prints err and maps it to an exit code.
func report(w io.Writer, path string, err error) int {
	if err == nil {
		return ExitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return reportUsage(w, path, ue.msg)
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(w, "riskctl: %v\n", ee.err)
		}
		return ee.code
	}
	code, msg := classify(err)
	fmt.Fprintf(w, "riskctl: %s\n", msg)
	return code
}

func runHelp(env Env, args []string) int {
	if len(args) == 0 {
		writeRootHelp(env.Stdout)
		return ExitOK
	}
	cmd, path, rest, err := resolve(args)
	if err != nil {
		return reportUsage(env.Stderr, "", err.Error())
	}
	if len(rest) > 0 {
		return reportUsage(env.Stderr, "", fmt.Sprintf("unknown command %q", path+" "+rest[0]))
	}
	if cmd.Setup == nil {
		writeNounHelp(env.Stdout, cmd)
		return ExitOK
	}
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	g := &globals{}
	g.bind(fs)
	cmd.Setup(fs)
	writeVerbHelp(env.Stdout, path, cmd, fs)
	return ExitOK
}

func writeRootHelp(w io.Writer) {
	fmt.Fprint(w, `riskctl is the command line of riskd, the risk and anti-fraud scoring engine:
evaluate events, read decisions, and manage what analysts and operators manage.

Usage: riskctl [global flags] <command> [flags] [args]

Commands:
`)
	for _, line := range commandLines(nouns, "") {
		fmt.Fprintln(w, line)
	}
	fmt.Fprint(w, "\n"+globalsHelp+"\n"+exitCodesHelp+`
riskctl finds a local riskd by default: it talks to http://127.0.0.1:8080 and
reads the token for each command's role (service, analyst or admin) from
./data/credentials.json, which riskd writes on its first start.

Run 'riskctl <command> --help' for a command's flags and arguments.
`)
}

func commandLines(list []*command, prefix string) []string {
	var out []string
	for _, c := range list {
		name := strings.TrimSpace(prefix + " " + c.Name)
		if c.Setup != nil {
			out = append(out, fmt.Sprintf("  %-20s %s", name, c.Summary))
		}
		out = append(out, commandLines(c.Subs, name)...)
	}
	return out
}

func writeNounHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: riskctl %s <command> [flags] [args]\n\n", c.Name)
	if c.Help != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(c.Help))
	}
	fmt.Fprintln(w, "Commands:")
	for _, line := range commandLines(c.Subs, c.Name) {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "\nRun 'riskctl %s <command> --help' for a command's flags and arguments.\n", c.Name)
}

func writeVerbHelp(w io.Writer, path string, c *command, fs *flag.FlagSet) {
	usage := "riskctl " + path
	if c.Args != "" {
		usage += " " + c.Args
	}
	fmt.Fprintf(w, "Usage: %s\n\n", usage)
	fmt.Fprintf(w, "%s\n", strings.TrimSpace(c.Help))
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		if globalNames[f.Name] {
			return
		}
		name, text := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if name != "" {
			head += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			text += " (default " + f.DefValue + ")"
		}
		if len(head) < 21 {
			lines = append(lines, fmt.Sprintf("%-22s%s", head, text))
		} else {
			lines = append(lines, head, fmt.Sprintf("%-22s%s", "", text))
		}
	})
	if len(lines) > 0 {
		fmt.Fprintln(w, "\nFlags:")
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
	if c.Role != auth.RoleNone {
		fmt.Fprintf(w, "\nRole: %s (the %q token of credentials.json unless --token is given).\n", c.Role, c.Role.String())
	}
	fmt.Fprint(w, "\n"+globalsHelp+"\n"+exitCodesHelp)
}

// noticef prints a hint for people on stderr, where it does not disturb
// scripts reading stdout.
func (inv *invocation) noticef(format string, a ...any) {
	fmt.Fprintf(inv.env.Stderr, format+"\n", a...)
}
