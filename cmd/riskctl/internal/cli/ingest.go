package cli

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/auth"
)

func init() {
	register(&command{
		Name:    "ingest",
		Args:    "[flags] FILE...",
		Summary: "stream events from files to riskd (NDJSON or access logs)",
		Role:    auth.RoleService,
		Help: `Ingest streams events to riskd's RiskService.Ingest, which records them and
updates features without deciding. FILE is "-" for standard input; gzip
input is recognized by its content.

Formats (--format, default auto: a line starting with "{" means ndjson):
  ndjson    one Event a line in the contract's JSON form
  combined  (or clf) web server access logs in the combined log format,
              host ident user [time] "request" status bytes "referer" "user-agent"
            mapped to SERVICE_LOG events: IP, user agent, time, status, method
            (as the action), path and query. The account comes from
            --account-from; the event id is a hash of the line, so ingesting
            the same log again counts its lines as duplicates, not twice
            (two byte-identical lines are one event: the log format has
            one-second times). Fields longer than the contract allows are
            cut, not rejected. cookie:NAME reads a cookie from the Cookie
            header logged as an extra field (--extra-fields cookie).

A bad line never stops the run: it is reported as FILE:LINE with the reason,
counted, and with --reject-file written (as it was) to that file. riskd
rejects events older than its --max-event-age (default 24h): raise it there
to backfill older logs. --timeout does not apply: a large input takes as long
as it takes (interrupt it with Ctrl-C; what riskd acknowledged stays).

Progress goes to standard error: a bar on a terminal, a line every
--progress-every otherwise. The summary goes to standard error too, or to
standard output as JSON with --json. Exit code 5 says some lines were
rejected; everything else was ingested.`,
		Setup: func(fs *flag.FlagSet) runFunc {
			o := &ingestOptions{}
			fs.StringVar(&o.format, "format", "auto", "input `FORMAT`: auto, ndjson or combined")
			fs.StringVar(&o.accountFrom, "account-from", "user", "combined: where the account id is, `SOURCE`: user (the log's user field), query:NAME, header:NAME or cookie:NAME")
			fs.StringVar(&o.extraFields, "extra-fields", "", "combined: comma-separated `NAMES` of the quoted fields logged after the user agent, e.g. x-account-id")
			fs.IntVar(&o.batch, "batch", 1000, "`N` events per stream message, 1..10000")
			fs.IntVar(&o.streams, "streams", 1, "`N` concurrent Ingest streams, 1..16: more use more of riskd's cores, but events of different streams are not recorded in input order")
			fs.StringVar(&o.rejectFile, "reject-file", "", "write rejected lines to `PATH`")
			fs.StringVar(&o.rejectFile, "reject", "", "same as --reject-file (`PATH`)")
			fs.IntVar(&o.showErrors, "show-errors", 20, "print at most `N` rejected lines (all are counted)")
			fs.StringVar(&o.progress, "progress", "auto", "`MODE`: auto, bar, plain or none")
			fs.DurationVar(&o.progressEvery, "progress-every", 10*time.Second, "`INTERVAL` of plain progress lines")
			return o.run
		},
	})
}

type ingestOptions struct {
	format        string
	accountFrom   string
	extraFields   string
	batch         int
	streams       int
	rejectFile    string
	showErrors    int
	progress      string
	progressEvery time.Duration
}

// maxLine bounds one input line; a longer line is rejected and skipped.
const maxLine = 1 << 20

// maxEventsPerMessage is the contract's bound on IngestRequest.events.
const maxEventsPerMessage = 10000

// segment says that the events from index on came from consecutive lines of
// file, starting at line. A new segment starts wherever a line was skipped,
// so the table stays small however large the input.
type segment struct {
	index int64
	file  int
	line  int64
}

// rejection is one rejected line.
type rejection struct {
	file   int
	line   int64
	reason string
}

// ingestRun is one run of riskctl ingest.
type ingestRun struct {
	o      *ingestOptions
	inv    *invocation
	files  []string
	access *accessLog

	// Written by the reader goroutine only; read after it has finished.
	segs  []segment
	local []rejection

	read     atomic.Int64 // events parsed
	rejected atomic.Int64 // lines rejected locally
	sent     atomic.Int64 // events handed to the stream
	inBytes  atomic.Int64 // input bytes consumed (compressed, for gzip)

	mu      sync.Mutex // guards rejects
	rejects *bufio.Writer

	// free holds encoded batches' buffers that were sent, for reuse.
	free chan []byte
}

func (o *ingestOptions) run(ctx context.Context, inv *invocation, args []string) error {
	if len(args) == 0 {
		return usagef("ingest needs at least one FILE (or - for standard input)")
	}
	switch o.format {
	case "auto", "ndjson", "combined":
	case "clf":
		o.format = "combined"
	default:
		return usagef("--format %q: want auto, ndjson or combined (clf)", o.format)
	}
	if o.streams < 1 || o.streams > 16 {
		return usagef("--streams %d: want 1..16", o.streams)
	}
	if o.batch < 1 || o.batch > maxEventsPerMessage {
		return usagef("--batch %d: want 1..%d", o.batch, maxEventsPerMessage)
	}
	switch o.progress {
	case "auto", "bar", "plain", "none":
	default:
		return usagef("--progress %q: want auto, bar, plain or none", o.progress)
	}
	if o.progressEvery <= 0 {
		return usagef("--progress-every must be positive")
	}
	stdin := 0
	for _, f := range args {
		if f == "-" {
			stdin++
		}
	}
	if stdin > 1 {
		return usagef(`"-" (standard input) may be given once`)
	}
	access, err := newAccessLog(o.accountFrom, o.extraFields)
	if err != nil {
		return err
	}
	r := &ingestRun{o: o, inv: inv, files: args, access: access}
	var total int64 // input bytes, for the bar's ETA; 0 when unknown
	for _, f := range args {
		if f == "-" {
			total = -1
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			return usagef("%v", err)
		}
		if total >= 0 {
			total += st.Size()
		}
	}
	if o.rejectFile != "" {
		f, err := os.Create(o.rejectFile)
		if err != nil {
			return usagef("--reject-file: %v", err)
		}
		defer f.Close()
		r.rejects = bufio.NewWriter(f)
		defer r.rejects.Flush()
	}
	client, err := inv.riskClient()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := inv.env.Clock.Now()
	stopProgress := r.startProgress(total, start)

	batches := make(chan outBatch, 4*o.streams)
	r.free = make(chan []byte, cap(batches)+o.streams+1) // as many as can be in use
	readErr := make(chan error, 1)
	go func() { readErr <- r.readAll(ctx, batches) }()

	// Each stream's errors name indexes within that stream; sent maps them
	// back to indexes in the whole input (which locate turns into lines).
	type sentMsg struct{ streamFirst, first int64 }
	type streamResult struct {
		resp    *riskv1.IngestResponse
		err     error
		sendErr error
	}
	results := make(chan streamResult, o.streams)
	for range o.streams {
		go func() {
			stream := client.Ingest(ctx)
			var (
				sent    []sentMsg
				n       int64
				sendErr error
			)
			for b := range batches {
				if sendErr != nil {
					continue // drain, so the reader finishes
				}
				req := &riskv1.IngestRequest{Events: b.events}
				if b.wire != nil {
					// The events, encoded: field 1 is what proto.Marshal
					// writes for Events, so riskd reads the same message.
					req.ProtoReflect().SetUnknown(b.wire)
				}
				err := stream.Send(req)
				r.recycle(b.wire) // Send has copied it into the stream
				if err != nil {
					sendErr = err
					cancel() // stop reading; CloseAndReceive has riskd's reason
					continue
				}
				sent = append(sent, sentMsg{n, b.first})
				n += int64(b.n)
				r.sent.Add(int64(b.n))
			}
			resp, err := stream.CloseAndReceive()
			if err != nil {
				results <- streamResult{err: err, sendErr: sendErr}
				return
			}
			for _, e := range resp.Msg.GetErrors() {
				i := sort.Search(len(sent), func(i int) bool { return sent[i].streamFirst > e.GetIndex() }) - 1
				if i >= 0 {
					e.Index = sent[i].first + e.GetIndex() - sent[i].streamFirst
				}
			}
			results <- streamResult{resp: resp.Msg, sendErr: sendErr}
		}()
	}
	rerr := <-readErr
	err = nil
	var sendErr error
	resp := &riskv1.IngestResponse{}
	for range o.streams {
		res := <-results
		if res.err != nil && err == nil {
			err = res.err
		}
		if res.sendErr != nil && sendErr == nil {
			sendErr = res.sendErr
		}
		if res.resp != nil {
			resp.Accepted += res.resp.GetAccepted()
			resp.Duplicates += res.resp.GetDuplicates()
			resp.Errors = append(resp.Errors, res.resp.GetErrors()...)
		}
	}
	stopProgress()
	if rerr != nil && !errors.Is(rerr, context.Canceled) {
		return rerr
	}
	if err != nil {
		return inv.callError(err)
	}
	if sendErr != nil {
		return inv.callError(sendErr)
	}
	if ctx.Err() != nil && rerr != nil {
		return rerr
	}
	return r.finish(resp, inv.env.Clock.Now().Sub(start))
}

// outBatch is one message's n events and the input index of the first.
// The events are either messages or, for access logs, wire: the message's
// events field (1) already encoded.
type outBatch struct {
	events []*riskv1.Event
	wire   []byte
	n      int
	first  int64
}

// readAll parses every file in order and hands batches to out; it closes
// out when done.
func (r *ingestRun) readAll(ctx context.Context, out chan<- outBatch) error {
	defer close(out)
	var index int64
	lastFile, lastLine := -1, int64(0)
	var b outBatch
	flush := func() error {
		if b.n == 0 {
			return nil
		}
		b.first = index - int64(b.n)
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		b = outBatch{}
		return nil
	}
	for fi, name := range r.files {
		err := r.readFile(fi, name, func(line int64, ev *riskv1.Event, access *accessEvent) error {
			if b.n > 0 && (ev != nil) != (b.events != nil) {
				// A message holds events of one form.
				if err := flush(); err != nil {
					return err
				}
			}
			if fi != lastFile || line != lastLine+1 {
				r.segs = append(r.segs, segment{index: index, file: fi, line: line})
			}
			lastFile, lastLine = fi, line
			index++
			r.read.Add(1)
			if ev != nil {
				if b.events == nil {
					b.events = make([]*riskv1.Event, 0, r.o.batch)
				}
				b.events = append(b.events, ev)
			} else {
				if b.wire == nil {
					b.wire = r.buffer()
				}
				b.wire = access.appendEvent(b.wire)
			}
			b.n++
			if b.n == r.o.batch {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return flush()
}

// buffer returns an empty buffer for an encoded batch, a sent one if any.
func (r *ingestRun) buffer() []byte {
	select {
	case b := <-r.free:
		return b[:0]
	default:
		return make([]byte, 0, min(r.o.batch*300, 4<<20)) // about a message of access log events
	}
}

// recycle hands b, which nothing refers to any more, to buffer.
func (r *ingestRun) recycle(b []byte) {
	if b == nil {
		return
	}
	select {
	case r.free <- b:
	default:
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// readFile parses one file and emits each event as a message (ev) or, for
// an access log line, as its fields (access, valid only during the call).
func (r *ingestRun) readFile(fi int, name string, emit func(line int64, ev *riskv1.Event, access *accessEvent) error) error {
	var in io.Reader = r.inv.env.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return usagef("%v", err)
		}
		defer f.Close()
		in = f
	}
	br := bufio.NewReaderSize(countingReader{in, &r.inBytes}, 256<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return usagef("%s: %v", displayName(name), err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 256<<10)
	}
	format := r.o.format
	var lineNo int64
	var access accessEvent
	for {
		line, tooLong, err := readLine(br)
		if len(line) == 0 && err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read %s: %w", displayName(name), err)
		}
		lineNo++
		if tooLong {
			r.reject(fi, lineNo, nil, fmt.Errorf("line longer than %d bytes", maxLine))
			continue
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if format == "auto" {
			format = "combined"
			if bytes.TrimSpace(line)[0] == '{' {
				format = "ndjson"
			}
		}
		var ev *riskv1.Event
		if format == "ndjson" {
			ev = &riskv1.Event{}
			err = protojson.Unmarshal(line, ev)
		} else {
			err = r.access.parseFields(line, &access)
		}
		if err != nil {
			r.reject(fi, lineNo, line, err)
			continue
		}
		if err := emit(lineNo, ev, &access); err != nil {
			return err
		}
	}
}

// readLine returns the next line with its newline; a line longer than
// maxLine is consumed and reported as tooLong.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	var long []byte
	for {
		frag, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if !tooLong {
				long = append(long, frag...)
				if len(long) > maxLine {
					tooLong, long = true, nil
				}
			}
			continue
		}
		if tooLong {
			return []byte{'\n'}, true, nil
		}
		if long != nil {
			long = append(long, frag...)
			if len(long) > maxLine {
				return []byte{'\n'}, true, nil
			}
			return long, false, err
		}
		return frag, false, err
	}
}

func (r *ingestRun) reject(fi int, line int64, text []byte, err error) {
	r.rejected.Add(1)
	r.local = append(r.local, rejection{file: fi, line: line, reason: err.Error()})
	if r.rejects != nil && text != nil {
		r.mu.Lock()
		r.rejects.Write(text)
		r.rejects.WriteByte('\n')
		r.mu.Unlock()
	}
}

// locate maps a stream index back to its file and line.
func (r *ingestRun) locate(index int64) (file int, line int64, ok bool) {
	i := sort.Search(len(r.segs), func(i int) bool { return r.segs[i].index > index }) - 1
	if i < 0 {
		return 0, 0, false
	}
	s := r.segs[i]
	return s.file, s.line + (index - s.index), true
}

// ingestSummary is what --json prints.
type ingestSummary struct {
	Read       int64           `json:"read"`
	Accepted   int64           `json:"accepted"`
	Duplicates int64           `json:"duplicates"`
	Rejected   int64           `json:"rejected"`
	Seconds    float64         `json:"seconds"`
	Rejections []rejectionJSON `json:"rejections"`
}

type rejectionJSON struct {
	fileIdx int    // position of File in the arguments, for sorting
	File    string `json:"file"`
	Line    int64  `json:"line"`
	EventID string `json:"eventId,omitempty"`
	Field   string `json:"field,omitempty"`
	Reason  string `json:"reason"`
}

func (r *ingestRun) finish(resp *riskv1.IngestResponse, took time.Duration) error {
	all := make([]rejectionJSON, 0, len(r.local)+len(resp.GetErrors()))
	for _, rj := range r.local {
		all = append(all, rejectionJSON{fileIdx: rj.file, File: displayName(r.files[rj.file]), Line: rj.line, Reason: rj.reason})
	}
	server := map[int][]int64{} // file -> lines riskd rejected, for the reject file
	for _, e := range resp.GetErrors() {
		fi, line, ok := r.locate(e.GetIndex())
		rj := rejectionJSON{fileIdx: len(r.files), EventID: e.GetEventId(), Field: e.GetField(), Reason: e.GetMessage()}
		if ok {
			rj.fileIdx, rj.File, rj.Line = fi, displayName(r.files[fi]), line
			server[fi] = append(server[fi], line)
		}
		all = append(all, rj)
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].fileIdx != all[j].fileIdx {
			return all[i].fileIdx < all[j].fileIdx
		}
		return all[i].Line < all[j].Line
	})
	if r.rejects != nil && len(server) > 0 {
		if err := r.writeServerRejects(server); err != nil {
			return err
		}
	}
	sum := ingestSummary{
		Read: r.read.Load(), Accepted: resp.GetAccepted(), Duplicates: resp.GetDuplicates(),
		Rejected: int64(len(all)), Seconds: took.Seconds(), Rejections: all,
	}
	w := r.inv.env.Stderr
	for i, rj := range all {
		if i == r.o.showErrors {
			fmt.Fprintf(w, "... and %d more rejected lines\n", len(all)-i)
			break
		}
		where := fmt.Sprintf("%s:%d", rj.File, rj.Line)
		if rj.File == "" {
			where = "event " + rj.EventID
		}
		if rj.Field != "" {
			fmt.Fprintf(w, "%s: %s: %s\n", where, rj.Field, rj.Reason)
		} else {
			fmt.Fprintf(w, "%s: %s\n", where, rj.Reason)
		}
	}
	rate := 0.0
	if took > 0 {
		rate = float64(sum.Read) / took.Seconds()
	}
	fmt.Fprintf(w, "ingest: %d events read, %d accepted, %d duplicates, %d rejected in %s (%.0f events/s)\n",
		sum.Read, sum.Accepted, sum.Duplicates, sum.Rejected, took.Round(time.Millisecond), rate)
	if r.inv.g.json {
		b, err := json.MarshalIndent(sum, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(r.inv.stdout(), "%s\n", b)
	}
	if sum.Rejected > 0 {
		return &exitError{code: ExitRejected}
	}
	return nil
}

// writeServerRejects copies the lines riskd rejected into the reject file,
// reading the files again (standard input cannot be read again: those lines
// are named on standard error only).
func (r *ingestRun) writeServerRejects(lines map[int][]int64) error {
	for fi, want := range lines {
		name := r.files[fi]
		if name == "-" {
			r.inv.noticef("riskctl: lines of standard input that riskd rejected are not in --reject-file (listed above)")
			continue
		}
		sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
		err := func() error {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			br := bufio.NewReader(f)
			if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
				zr, err := gzip.NewReader(br)
				if err != nil {
					return err
				}
				br = bufio.NewReader(zr)
			}
			var n int64
			for len(want) > 0 {
				line, _, err := readLine(br)
				if len(line) == 0 && err != nil {
					return nil
				}
				n++
				if n == want[0] {
					r.mu.Lock()
					r.rejects.Write(bytes.TrimRight(line, "\r\n"))
					r.rejects.WriteByte('\n')
					r.mu.Unlock()
					want = want[1:]
				}
			}
			return nil
		}()
		if err != nil {
			return fmt.Errorf("--reject-file: re-read %s: %w", name, err)
		}
	}
	return nil
}

// startProgress shows progress on stderr until the returned function is
// called: a bar on a terminal, periodic lines otherwise.
func (r *ingestRun) startProgress(total int64, start time.Time) (stop func()) {
	mode := r.o.progress
	if mode == "auto" {
		mode = "plain"
		if f, ok := r.inv.env.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	if mode == "none" {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	rate := func() float64 {
		s := r.inv.env.Clock.Now().Sub(start).Seconds()
		if s <= 0 {
			return 0
		}
		return float64(r.read.Load()) / s
	}
	if mode == "bar" {
		if total <= 0 {
			total = -1
		}
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(r.inv.env.Stderr),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		go func() {
			defer wg.Done()
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					bar.Finish()
					return
				case <-t.C:
					bar.Describe(fmt.Sprintf("%d events, %.0f/s, %d rejected", r.read.Load(), rate(), r.rejected.Load()))
					bar.Set64(r.inBytes.Load())
				}
			}
		}()
	} else {
		go func() {
			defer wg.Done()
			t := time.NewTicker(r.o.progressEvery)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					msg := fmt.Sprintf("ingest: %d events read, %d sent, %d rejected, %.0f events/s", r.read.Load(), r.sent.Load(), r.rejected.Load(), rate())
					if total > 0 {
						msg += fmt.Sprintf(", %.0f%% of input", 100*float64(r.inBytes.Load())/float64(total))
					}
					fmt.Fprintln(r.inv.env.Stderr, msg)
				}
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
	}
}
