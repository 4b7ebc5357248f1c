package cli

import (
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
	buf      []byte   // the event id and the line, before they become one string
	values   []string // the quoted fields of the line, by index in fields
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
	a.values = make([]string, len(a.fields))
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

// clfEvent is an event with the messages it points to, in one allocation.
type clfEvent struct {
	ev  riskv1.Event
	net riskv1.Network
	log riskv1.ServiceLog
	at  timestamppb.Timestamp
}

// parse maps one line (without its newline) to an event.
func (a *accessLog) parse(line []byte) (*riskv1.Event, error) {
	return a.parseInto(line, new(clfEvent))
}

// parseInto is parse with the event's messages in e, which must be zero. It
// writes e only when it succeeds, so a zero e the line was rejected into is
// still zero.
func (a *accessLog) parseInto(line []byte, e *clfEvent) (*riskv1.Event, error) {
	// The event id and the line's text become one string, which every
	// field of the event is a part of.
	sum := sha256.Sum256(line)
	b := append(a.buf[:0], "clf-"...)
	b = hex.AppendEncode(b, sum[:16])
	b = append(b, line...)
	if cap(b) <= 64<<10 {
		a.buf = b // keep only ordinary lines' worth of scratch
	}
	all := string(b)
	id, text := all[:len(all)-len(line)], all[len(all)-len(line):]
	if !utf8.ValidString(text) {
		// Protobuf strings must be UTF-8; the id still hashes the raw line.
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	p := clfParser{s: text}
	host := p.word()
	p.word() // ident (RFC 1413), always "-" in practice
	user := p.word()
	ts, err := p.bracketed()
	if err != nil {
		return nil, err
	}
	request, requestRaw, err := p.quoted()
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	statusText := p.word()
	p.word() // bytes sent
	n := 0   // quoted fields present
	for ; n < len(a.fields) && !p.done(); n++ {
		a.values[n], a.raw[n], err = p.quoted()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.fields[n], err)
		}
	}
	if host == "" {
		return nil, errors.New("empty line")
	}
	at, err := a.parseTime(ts)
	if err != nil {
		return nil, err
	}
	status, err := strconv.Atoi(statusText)
	if err != nil || status < 0 || status > 999 {
		return nil, fmt.Errorf("status %q: want 0..999", statusText)
	}
	method, target, _ := strings.Cut(request, " ")
	target, _, _ = strings.Cut(target, " ") // drop the protocol
	path, rawQuery, _ := strings.Cut(target, "?")

	var account string
	switch a.source {
	case "user":
		account = user
	case "query":
		account, err = queryValue(rawQuery, a.name)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
	case "header":
		account, _ = a.field(a.header, n)
	case "cookie":
		if c, _ := a.field(a.cookie, n); c != "" && c != "-" {
			cookies, err := http.ParseCookie(c)
			if err != nil {
				return nil, fmt.Errorf("cookie: %w", err)
			}
			for _, ck := range cookies {
				if ck.Name == a.name {
					account = ck.Value
				}
			}
		}
	}
	if account == "" || account == "-" {
		return nil, fmt.Errorf("%w (--account-from %s)", errNoAccount, a.accountFrom)
	}
	if len(account) > maxAccountID {
		return nil, fmt.Errorf("account id longer than %d bytes", maxAccountID)
	}

	// A quoted field with escapes may hold any bytes; the rest of the line
	// is valid UTF-8 already, and so are its parts cut at ASCII bytes.
	fit := truncate
	if requestRaw {
		fit = cut
	}
	e.ev.EventId = id
	e.ev.Type = riskv1.EventType_EVENT_TYPE_SERVICE_LOG
	e.at.Seconds, e.at.Nanos = at.Unix(), int32(at.Nanosecond())
	e.ev.OccurredAt = &e.at
	e.ev.AccountId = account
	e.net.Ip = host
	e.ev.Network = &e.net
	e.log.Action = lowerMethod(fit(method, 64))
	e.log.Resource = fit(path, maxResource)
	e.log.Query = fit(rawQuery, maxQuery)
	e.log.Status = int32(status)
	e.ev.ServiceLog = &e.log
	if ua, raw := a.field(a.agent, n); ua != "" && ua != "-" {
		e.net.UserAgent = fitField(ua, raw, maxUserAgent)
	}
	if ref, raw := a.field(a.referer, n); ref != "" && ref != "-" {
		e.ev.Attributes = map[string]string{"referer": fitField(ref, raw, maxAttribute)}
	}
	return &e.ev, nil
}

// field returns the value of the last of the quoted fields at indexes that
// the line has (it has the first n), and whether it is a slice of the line.
func (a *accessLog) field(indexes []int, n int) (string, bool) {
	for i := len(indexes) - 1; i >= 0; i-- {
		if indexes[i] < n {
			return a.values[indexes[i]], a.raw[indexes[i]]
		}
	}
	return "", true
}

// parseTime parses a log time. Consecutive lines mostly share their second, so
// the last one parsed is remembered.
func (a *accessLog) parseTime(ts string) (time.Time, error) {
	if a.lastOK && ts == a.lastTime {
		return a.lastAt, nil
	}
	at, err := time.Parse(clfTime, ts)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want like 10/Oct/2026:13:55:36 +0800", ts)
	}
	a.lastTime, a.lastAt, a.lastOK = ts, at, true
	return at, nil
}

// queryValue is url.ParseQuery(rawQuery).Get(name), with its errors,
// without building the map when nothing in rawQuery needs unescaping.
func queryValue(rawQuery, name string) (string, error) {
	// ParseQuery refuses a query of more parameters than its limit
	// (10,000 by default), which a shorter query cannot have.
	if len(rawQuery) >= 10000 || strings.ContainsAny(rawQuery, "%+;") {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return "", err
		}
		return q.Get(name), nil
	}
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		if kv == "" {
			continue
		}
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, nil
		}
	}
	return "", nil
}

// lowerMethod is strings.ToLower without allocating for the usual methods.
func lowerMethod(m string) string {
	switch m {
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
	return strings.ToLower(m)
}

// fitField is truncate, or cut when s is known to be valid UTF-8.
func fitField(s string, valid bool, n int) string {
	if valid {
		return cut(s, n)
	}
	return truncate(s, n)
}

// truncate cuts s to at most n bytes without splitting a character, and
// replaces invalid UTF-8, which protobuf strings may not hold.
func truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return cut(s, n)
}

// cut cuts valid UTF-8 s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// clfParser reads the fields of a combined log line left to right.
type clfParser struct {
	s string
}

func (p *clfParser) skipSpace() {
	i := 0
	for i < len(p.s) && (p.s[i] == ' ' || p.s[i] == '\t') {
		i++
	}
	p.s = p.s[i:]
}

func (p *clfParser) done() bool {
	p.skipSpace()
	return p.s == ""
}

// word reads up to the next space.
func (p *clfParser) word() string {
	p.skipSpace()
	i := 0
	for i < len(p.s) && p.s[i] != ' ' && p.s[i] != '\t' {
		i++
	}
	w := p.s[:i]
	p.s = p.s[i:]
	return w
}

func (p *clfParser) bracketed() (string, error) {
	p.skipSpace()
	if !strings.HasPrefix(p.s, "[") {
		return "", errors.New("time: want [dd/Mon/yyyy:hh:mm:ss zone]")
	}
	end := strings.IndexByte(p.s, ']')
	if end < 0 {
		return "", errors.New("time: no closing ]")
	}
	v := p.s[1:end]
	p.s = p.s[end+1:]
	return v, nil
}

// quoted reads a double-quoted field. Apache escapes a quote inside as \"
// and nginx as \x22; both are undone, as are \\ and the other \xHH. raw
// says the field had no escapes, so it is a slice of the line.
func (p *clfParser) quoted() (v string, raw bool, err error) {
	p.skipSpace()
	if !strings.HasPrefix(p.s, `"`) {
		return "", false, errors.New(`want a "quoted" field`)
	}
	if end := strings.IndexByte(p.s[1:], '"') + 1; end > 0 && strings.IndexByte(p.s[1:end], '\\') < 0 {
		v, p.s = p.s[1:end], p.s[end+1:]
		return v, true, nil
	}
	var b strings.Builder
	for i := 1; i < len(p.s); i++ {
		c := p.s[i]
		switch {
		case c == '"':
			p.s = p.s[i+1:]
			return b.String(), false, nil
		case c == '\\' && i+1 < len(p.s):
			next := p.s[i+1]
			if next == 'x' && i+3 < len(p.s) {
				if v, err := strconv.ParseUint(p.s[i+2:i+4], 16, 8); err == nil {
					b.WriteByte(byte(v))
					i += 3
					continue
				}
			}
			if next == '"' || next == '\\' {
				b.WriteByte(next)
				i++
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return "", false, errors.New("unterminated quoted field")
}
