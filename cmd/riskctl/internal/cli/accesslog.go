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
type accessLog struct {
	// accountFrom is "user", "query:NAME" or "header:NAME".
	accountFrom string
	// extra names the quoted fields that follow the user agent (headers the
	// server was told to log, such as $http_x_account_id), lower case.
	extra []string
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

// parse maps one line (without its newline) to an event.
func (a *accessLog) parse(line []byte) (*riskv1.Event, error) {
	text := string(line)
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
	request, err := p.quoted()
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	statusText := p.word()
	p.word() // bytes sent
	headers := map[string]string{}
	for _, name := range append([]string{"referer", "user-agent"}, a.extra...) {
		if p.done() {
			break
		}
		v, err := p.quoted()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		headers[name] = v
	}
	if host == "" {
		return nil, errors.New("empty line")
	}
	at, err := time.Parse(clfTime, ts)
	if err != nil {
		return nil, fmt.Errorf("time %q: want like 10/Oct/2026:13:55:36 +0800", ts)
	}
	status, err := strconv.Atoi(statusText)
	if err != nil || status < 0 || status > 999 {
		return nil, fmt.Errorf("status %q: want 0..999", statusText)
	}
	method, target, _ := strings.Cut(request, " ")
	target, _, _ = strings.Cut(target, " ") // drop the protocol
	path, rawQuery, _ := strings.Cut(target, "?")

	var account string
	kind, name, _ := strings.Cut(a.accountFrom, ":")
	switch kind {
	case "user":
		account = user
	case "query":
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		account = q.Get(name)
	case "header":
		account = headers[name]
	case "cookie":
		if c := headers["cookie"]; c != "" && c != "-" {
			cookies, err := http.ParseCookie(c)
			if err != nil {
				return nil, fmt.Errorf("cookie: %w", err)
			}
			for _, ck := range cookies {
				if ck.Name == name {
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

	sum := sha256.Sum256(line)
	ev := &riskv1.Event{
		EventId:    "clf-" + hex.EncodeToString(sum[:16]),
		Type:       riskv1.EventType_EVENT_TYPE_SERVICE_LOG,
		OccurredAt: timestamppb.New(at),
		AccountId:  account,
		Network:    &riskv1.Network{Ip: host},
		ServiceLog: &riskv1.ServiceLog{
			Action:   strings.ToLower(truncate(method, 64)),
			Resource: truncate(path, maxResource),
			Query:    truncate(rawQuery, maxQuery),
			Status:   int32(status),
		},
	}
	if ua := headers["user-agent"]; ua != "" && ua != "-" {
		ev.Network.UserAgent = truncate(ua, maxUserAgent)
	}
	if ref := headers["referer"]; ref != "" && ref != "-" {
		ev.Attributes = map[string]string{"referer": truncate(ref, maxAttribute)}
	}
	return ev, nil
}

// truncate cuts s to at most n bytes without splitting a character, and
// replaces invalid UTF-8, which protobuf strings may not hold.
func truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
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

func (p *clfParser) skipSpace() { p.s = strings.TrimLeft(p.s, " \t") }

func (p *clfParser) done() bool {
	p.skipSpace()
	return p.s == ""
}

// word reads up to the next space.
func (p *clfParser) word() string {
	p.skipSpace()
	i := strings.IndexAny(p.s, " \t")
	if i < 0 {
		w := p.s
		p.s = ""
		return w
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
// and nginx as \x22; both are undone, as are \\ and the other \xHH.
func (p *clfParser) quoted() (string, error) {
	p.skipSpace()
	if !strings.HasPrefix(p.s, `"`) {
		return "", errors.New(`want a "quoted" field`)
	}
	var b strings.Builder
	for i := 1; i < len(p.s); i++ {
		c := p.s[i]
		switch {
		case c == '"':
			p.s = p.s[i+1:]
			return b.String(), nil
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
	return "", errors.New("unterminated quoted field")
}
