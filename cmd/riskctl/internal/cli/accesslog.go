package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// accessLog maps web server access log lines in the combined log format
//
//	host ident user [time] "request" status bytes "referer" "user-agent" ["extra" ...]
//
// to SERVICE_LOG events. The account comes from the user field, a query
// parameter or a quoted field; the event id is a hash of the line, so that
// ingesting the same log again is idempotent.
//
// An accessLog keeps scratch space and the last time it parsed between
// lines: it is not safe for concurrent use.
type accessLog struct {
	// accountFrom is "user", "query:NAME", "header:NAME" or "cookie:NAME".
	accountFrom string
	// extra names the quoted fields that follow the user agent (headers the
	// server was told to log, such as $http_x_account_id), lower case.
	extra []string

	// Resolved once by newAccessLog.
	source  string   // the kind of accountFrom: user, query, header or cookie
	name    string   // its NAME
	fields  []string // names of the quoted fields after bytes: referer, user-agent, extra...
	referer []int    // indexes in fields of "referer"; the last one present wins
	agent   []int    // ... of "user-agent"
	header  []int    // ... of the header named by accountFrom
	cookie  []int    // ... of "cookie"

	// Reused from line to line.
	values   [][]byte // the quoted fields of the line, by index in fields
	raw      []bool   // whether values[i] is a slice of the (valid UTF-8) line
	lastTime string   // the last time field parsed, when lastOK
	lastAt   time.Time
	lastOK   bool
}

func newAccessLog(accountFrom, extra string) (*accessLog, error) {
	a := &accessLog{accountFrom: accountFrom}
	if extra != "" {
		for _, name := range strings.Split(extra, ",") {
			a.extra = append(a.extra, strings.ToLower(strings.TrimSpace(name)))
		}
	}
	kind, name, _ := strings.Cut(accountFrom, ":")
	switch {
	case accountFrom == "user":
	case kind == "query" && name != "":
	case kind == "header" && name != "":
		name = strings.ToLower(name)
		if name != "referer" && name != "user-agent" && !contains(a.extra, name) {
			return nil, usagef("--account-from %s: the combined format logs only referer and user-agent; name extra quoted fields with --extra-fields", accountFrom)
		}
		a.accountFrom = "header:" + name
	case kind == "cookie" && name != "":
		if !contains(a.extra, "cookie") {
			return nil, usagef("--account-from %q: the combined format logs no cookies; log the Cookie header as an extra quoted field (nginx $http_cookie) and name it with --extra-fields cookie", accountFrom)
		}
	default:
		return nil, usagef("--account-from %q: want user, query:NAME, header:NAME or cookie:NAME", accountFrom)
	}
	a.source, a.name = kind, name
	a.fields = append([]string{"referer", "user-agent"}, a.extra...)
	for i, f := range a.fields {
		switch f {
		case "referer":
			a.referer = append(a.referer, i)
		case "user-agent":
			a.agent = append(a.agent, i)
		case "cookie":
			a.cookie = append(a.cookie, i)
		}
		if kind == "header" && f == name {
			a.header = append(a.header, i)
		}
	}
	a.values = make([][]byte, len(a.fields))
	a.raw = make([]bool, len(a.fields))
	return a, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Bounds of the event fields a log line fills; longer values are cut at a
// character boundary rather than losing the line (see the Event proto).
const (
	maxUserAgent = 512
	maxResource  = 1024
	maxQuery     = 1024
	maxAttribute = 256
	maxAccountID = 128
)

const clfTime = "02/Jan/2006:15:04:05 -0700"

var errNoAccount = errors.New("no account")

// accessEvent is the SERVICE_LOG event a line maps to, as its fields. The
// byte slices are parts of the line, or of a copy where the line had to be
// changed, and are valid as long as it is.
type accessEvent struct {
	id        [36]byte // "clf-" and 32 hex digits
	seconds   int64    // occurred_at
	nanos     int32
	account   []byte
	ip        []byte
	userAgent []byte
	action    string
	resource  []byte
	query     []byte
	status    int32
	referer   []byte // the referer attribute, empty for none
}

// parse maps one line (without its newline) to an event.
func (a *accessLog) parse(line []byte) (*riskv1.Event, error) {
	var e accessEvent
	if err := a.parseFields(line, &e); err != nil {
		return nil, err
	}
	return e.event(), nil
}

// event returns e as an Event message.
func (e *accessEvent) event() *riskv1.Event {
	ev := &riskv1.Event{
		EventId:    string(e.id[:]),
		Type:       riskv1.EventType_EVENT_TYPE_SERVICE_LOG,
		OccurredAt: &timestamppb.Timestamp{Seconds: e.seconds, Nanos: e.nanos},
		AccountId:  string(e.account),
		Network:    &riskv1.Network{Ip: string(e.ip), UserAgent: string(e.userAgent)},
		ServiceLog: &riskv1.ServiceLog{Action: e.action, Resource: string(e.resource), Query: string(e.query), Status: e.status},
	}
	if len(e.referer) > 0 {
		ev.Attributes = map[string]string{"referer": string(e.referer)}
	}
	return ev
}

// Tags of the fields appendEvent writes (api/risk/v1/risk_service.proto,
// event.proto and google/protobuf/timestamp.proto), as their one-byte
// varints. TestAccessEventWire holds appendEvent to proto.Marshal.
const (
	tagIngestRequestEvents = 1<<3 | byte(protowire.BytesType)

	tagEventID         = 1<<3 | byte(protowire.BytesType)
	tagEventType       = 2<<3 | byte(protowire.VarintType)
	tagEventOccurredAt = 3<<3 | byte(protowire.BytesType)
	tagEventAccountID  = 4<<3 | byte(protowire.BytesType)
	tagEventNetwork    = 7<<3 | byte(protowire.BytesType)
	tagEventServiceLog = 13<<3 | byte(protowire.BytesType)
	fieldEventAttrs    = 20 // two bytes

	tagTimestampSeconds = 1<<3 | byte(protowire.VarintType)
	tagTimestampNanos   = 2<<3 | byte(protowire.VarintType)

	tagNetworkIP        = 1<<3 | byte(protowire.BytesType)
	tagNetworkUserAgent = 2<<3 | byte(protowire.BytesType)

	tagServiceLogAction   = 1<<3 | byte(protowire.BytesType)
	tagServiceLogResource = 2<<3 | byte(protowire.BytesType)
	tagServiceLogQuery    = 3<<3 | byte(protowire.BytesType)
	tagServiceLogStatus   = 4<<3 | byte(protowire.VarintType)

	tagMapKey   = 1<<3 | byte(protowire.BytesType)
	tagMapValue = 2<<3 | byte(protowire.BytesType)
)

// referer is the attribute a line's referer goes to.
const referer = "referer"

// appendEvent appends e as one element of
// IngestRequest.events in the protobuf encoding: the bytes proto.Marshal
// writes for IngestRequest{Events: {e.event()}}, without building the
// messages.
func (e *accessEvent) appendEvent(b []byte) []byte {
	// Sizes first: a message's length precedes it. Proto3 leaves out
	// fields that hold their zero value.
	at := varintFieldSize(uint64(e.seconds)) + varintFieldSize(uint64(int64(e.nanos)))
	network := bytesFieldSize(len(e.ip)) + bytesFieldSize(len(e.userAgent))
	log := bytesFieldSize(len(e.action)) + bytesFieldSize(len(e.resource)) +
		bytesFieldSize(len(e.query)) + varintFieldSize(uint64(int64(e.status)))
	attrs := 0
	if len(e.referer) > 0 {
		// A map entry writes its key and value even when empty.
		attrs = 2 + len(referer) + 1 + protowire.SizeBytes(len(e.referer))
	}
	event := 2 + len(e.id) + 2 + 1 + protowire.SizeBytes(at) + bytesFieldSize(len(e.account)) +
		1 + protowire.SizeBytes(network) + 1 + protowire.SizeBytes(log)
	if attrs > 0 {
		event += protowire.SizeTag(fieldEventAttrs) + protowire.SizeBytes(attrs)
	}

	b = append(b, tagIngestRequestEvents)
	b = appendVarint(b, uint64(event))
	b = append(b, tagEventID, byte(len(e.id)))
	b = append(b, e.id[:]...)
	b = append(b, tagEventType, byte(riskv1.EventType_EVENT_TYPE_SERVICE_LOG))
	b = append(b, tagEventOccurredAt)
	b = appendVarint(b, uint64(at))
	b = appendVarintField(b, tagTimestampSeconds, uint64(e.seconds))
	b = appendVarintField(b, tagTimestampNanos, uint64(int64(e.nanos)))
	b = appendBytesField(b, tagEventAccountID, e.account)
	b = append(b, tagEventNetwork)
	b = appendVarint(b, uint64(network))
	b = appendBytesField(b, tagNetworkIP, e.ip)
	b = appendBytesField(b, tagNetworkUserAgent, e.userAgent)
	b = append(b, tagEventServiceLog)
	b = appendVarint(b, uint64(log))
	if e.action != "" {
		b = append(b, tagServiceLogAction)
		b = appendVarint(b, uint64(len(e.action)))
		b = append(b, e.action...)
	}
	b = appendBytesField(b, tagServiceLogResource, e.resource)
	b = appendBytesField(b, tagServiceLogQuery, e.query)
	b = appendVarintField(b, tagServiceLogStatus, uint64(int64(e.status)))
	if attrs > 0 {
		b = protowire.AppendTag(b, fieldEventAttrs, protowire.BytesType)
		b = appendVarint(b, uint64(attrs))
		b = append(b, tagMapKey, byte(len(referer)))
		b = append(b, referer...)
		b = appendBytesField(b, tagMapValue, e.referer)
	}
	return b
}

func bytesFieldSize(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + protowire.SizeBytes(n)
}

func appendBytesField(b []byte, tag byte, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(b, tag)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

func varintFieldSize(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func appendVarintField(b []byte, tag byte, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, tag)
	return appendVarint(b, v)
}

// appendVarint is protowire.AppendVarint with the one-byte case inline.
func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// parseFields parses line into e, whose fields are then parts of line: e
// is valid only as long as line is unchanged.
func (a *accessLog) parseFields(line []byte, e *accessEvent) error {
	text := line
	if !utf8.Valid(text) {
		// Protobuf strings must be UTF-8; the id still hashes the raw line.
		text = bytes.ToValidUTF8(text, []byte("\uFFFD"))
	}
	p := clfParser{s: text}
	host := p.word()
	p.word() // ident (RFC 1413), always "-" in practice
	user := p.word()
	ts, err := p.bracketed()
	if err != nil {
		return err
	}
	request, requestRaw, err := p.quoted()
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	statusText := p.word()
	p.word() // bytes sent
	n := 0   // quoted fields present
	for ; n < len(a.fields) && !p.done(); n++ {
		a.values[n], a.raw[n], err = p.quoted()
		if err != nil {
			return fmt.Errorf("%s: %w", a.fields[n], err)
		}
	}
	if len(host) == 0 {
		return errors.New("empty line")
	}
	at, err := a.parseTime(ts)
	if err != nil {
		return err
	}
	status, err := strconv.Atoi(string(statusText))
	if err != nil || status < 0 || status > 999 {
		return fmt.Errorf("status %q: want 0..999", statusText)
	}
	method, target, _ := bytes.Cut(request, []byte(" "))
	target, _, _ = bytes.Cut(target, []byte(" ")) // drop the protocol
	path, rawQuery, _ := bytes.Cut(target, []byte("?"))

	var account []byte
	switch a.source {
	case "user":
		account = user
	case "query":
		account, err = queryValue(rawQuery, a.name)
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
	case "header":
		account, _ = a.field(a.header, n)
	case "cookie":
		if c, _ := a.field(a.cookie, n); len(c) > 0 && string(c) != "-" {
			cookies, err := http.ParseCookie(string(c))
			if err != nil {
				return fmt.Errorf("cookie: %w", err)
			}
			for _, ck := range cookies {
				if ck.Name == a.name {
					account = []byte(ck.Value)
				}
			}
		}
	}
	if len(account) == 0 || string(account) == "-" {
		return fmt.Errorf("%w (--account-from %s)", errNoAccount, a.accountFrom)
	}
	if len(account) > maxAccountID {
		return fmt.Errorf("account id longer than %d bytes", maxAccountID)
	}
	if !utf8.Valid(account) {
		// An escape may decode to any bytes; the API's strings are UTF-8.
		return fmt.Errorf("account id is not valid UTF-8 (--account-from %s)", a.accountFrom)
	}

	sum := sha256.Sum256(line)
	copy(e.id[:], "clf-")
	hex.Encode(e.id[4:], sum[:16])
	e.seconds, e.nanos = at.Unix(), int32(at.Nanosecond())
	e.account, e.ip, e.status = account, host, int32(status)
	// A quoted field with escapes may hold any bytes; the rest of the line
	// is valid UTF-8 already, and so are its parts cut at ASCII bytes.
	e.action = lowerMethod(fit(method, requestRaw, 64))
	e.resource = fit(path, requestRaw, maxResource)
	e.query = fit(rawQuery, requestRaw, maxQuery)
	e.userAgent, e.referer = nil, nil
	if ua, raw := a.field(a.agent, n); len(ua) > 0 && string(ua) != "-" {
		e.userAgent = fit(ua, raw, maxUserAgent)
	}
	if ref, raw := a.field(a.referer, n); len(ref) > 0 && string(ref) != "-" {
		e.referer = fit(ref, raw, maxAttribute)
	}
	return nil
}

// field returns the value of the last of the quoted fields at indexes that
// the line has (it has the first n), and whether it is a slice of the line.
func (a *accessLog) field(indexes []int, n int) ([]byte, bool) {
	for i := len(indexes) - 1; i >= 0; i-- {
		if indexes[i] < n {
			return a.values[indexes[i]], a.raw[indexes[i]]
		}
	}
	return nil, true
}

// parseTime parses a log time. Consecutive lines mostly share their
// second, so the last one parsed is remembered.
func (a *accessLog) parseTime(ts []byte) (time.Time, error) {
	if a.lastOK && string(ts) == a.lastTime {
		return a.lastAt, nil
	}
	text := string(ts)
	at, err := time.Parse(clfTime, text)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want like 10/Oct/2026:13:55:36 +0800", text)
	}
	a.lastTime, a.lastAt, a.lastOK = text, at, true
	return at, nil
}

// queryValue is url.ParseQuery(rawQuery).Get(name), with its errors,
// without building the map when nothing in rawQuery needs unescaping.
func queryValue(rawQuery []byte, name string) ([]byte, error) {
	// ParseQuery refuses a query of more parameters than its limit
	// (10,000 by default), which a shorter query cannot have.
	if len(rawQuery) >= 10000 || bytes.ContainsAny(rawQuery, "%+;") {
		q, err := url.ParseQuery(string(rawQuery))
		if err != nil {
			return nil, err
		}
		return []byte(q.Get(name)), nil
	}
	for len(rawQuery) > 0 {
		var kv []byte
		kv, rawQuery, _ = bytes.Cut(rawQuery, []byte("&"))
		if len(kv) == 0 {
			continue
		}
		if k, v, _ := bytes.Cut(kv, []byte("=")); string(k) == name {
			return v, nil
		}
	}
	return nil, nil
}

// lowerMethod is strings.ToLower(string(m)), without allocating for the
// usual methods.
func lowerMethod(m []byte) string {
	switch string(m) {
	case "GET":
		return "get"
	case "POST":
		return "post"
	case "HEAD":
		return "head"
	case "PUT":
		return "put"
	case "DELETE":
		return "delete"
	case "PATCH":
		return "patch"
	case "OPTIONS":
		return "options"
	}
	return strings.ToLower(string(m))
}

// fit is truncate, or cut when s is known to be valid UTF-8.
func fit(s []byte, valid bool, n int) []byte {
	if valid {
		return cut(s, n)
	}
	return truncate(s, n)
}

// truncate cuts s to at most n bytes without splitting a character, and
// replaces invalid UTF-8, which protobuf strings may not hold.
func truncate(s []byte, n int) []byte {
	if !utf8.Valid(s) {
		s = bytes.ToValidUTF8(s, []byte("\uFFFD"))
	}
	return cut(s, n)
}

// cut cuts valid UTF-8 s to at most n bytes without splitting a character.
func cut(s []byte, n int) []byte {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// clfParser reads the fields of a combined log line left to right; the
// fields it returns are parts of the line, except quoted fields with
// escapes.
type clfParser struct {
	s []byte
	i int // the next byte to read
}

func (p *clfParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *clfParser) done() bool {
	p.skipSpace()
	return p.i == len(p.s)
}

// word reads up to the next space.
func (p *clfParser) word() []byte {
	p.skipSpace()
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != '\t' {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *clfParser) bracketed() ([]byte, error) {
	p.skipSpace()
	rest := p.s[p.i:]
	if len(rest) == 0 || rest[0] != '[' {
		return nil, errors.New("time: want [dd/Mon/yyyy:hh:mm:ss zone]")
	}
	end := bytes.IndexByte(rest, ']')
	if end < 0 {
		return nil, errors.New("time: no closing ]")
	}
	p.i += end + 1
	return rest[1:end], nil
}

// quoted reads a double-quoted field. Apache escapes a quote inside as \"
// and nginx as \x22; both are undone, as are \\ and the other \xHH. raw
// says the field had no escapes, so it is a part of the line.
func (p *clfParser) quoted() (v []byte, raw bool, err error) {
	p.skipSpace()
	s := p.s[p.i:]
	if len(s) == 0 || s[0] != '"' {
		return nil, false, errors.New(`want a "quoted" field`)
	}
	if end := bytes.IndexByte(s[1:], '"') + 1; end > 0 && bytes.IndexByte(s[1:end], '\\') < 0 {
		p.i += end + 1
		return s[1:end], true, nil
	}
	var b []byte
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			p.i += i + 1
			return b, false, nil
		case c == '\\' && i+1 < len(s):
			next := s[i+1]
			if next == 'x' && i+3 < len(s) {
				if v, err := strconv.ParseUint(string(s[i+2:i+4]), 16, 8); err == nil {
					b = append(b, byte(v))
					i += 3
					continue
				}
			}
			if next == '"' || next == '\\' {
				b = append(b, next)
				i++
				continue
			}
			b = append(b, c)
		default:
			b = append(b, c)
		}
	}
	return nil, false, errors.New("unterminated quoted field")
}
