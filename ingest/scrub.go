package ingest

import (
	"net/netip"
	"strings"
)

// Free text that is stored (attribute values, service_log.resource,
// login.failure_reason, network.user_agent) can carry identifiers that no
// field names. scrub replaces, inside such text:
//
//   - e-mail addresses by "#e:" + pseudonym (KindEmail, lowercased);
//   - IPv4/IPv6 literals by "#ip:" + pseudonym (KindIP, canonical form), except
//     in user agents, whose version numbers look like IPv4 addresses;
//   - 48-bit MACs by "#mac:" + pseudonym (KindMAC, canonical form);
//   - runs of 7 or more digits, optionally grouped by spaces, dashes, dots
//     (not in user agents), parentheses and a leading plus (phone numbers, IMEIs, IMSIs, card
//     numbers) by "#p:" + pseudonym (KindPhone, the digits alone), except
//     ISO dates (2026-11-28).
//
// A long plain number (an order number) is scrubbed too: at rest we prefer a
// pseudonym too many to an identifier too many. In memory, rules see the
// caller's text unchanged. Text is bounded before scrubbing; the scrubbed
// form may be longer than the input bound.
func (n *Normalizer) scrub(s string) string { return n.scrubText(s, true) }

// scrubUA (cleanua.go) scrubs a user agent: scrubText(s, false), with a
// cache of agents known clean.

func (n *Normalizer) scrubText(s string, ips bool) string {
	if !mayCarryIdentifier(s) {
		return s
	}
	// matchAt runs only where the byte and the one before it pass the first
	// tests of one of its branches, and tries only those branches: most
	// bytes cost two table lookups.
	allowed := uint8(startDigits | startIPMAC)
	if strings.IndexByte(s[1:], '@') >= 0 {
		allowed |= startEmail // an address needs an '@' after its first byte
	}
	var b strings.Builder
	last := 0
	var blocked uint8 // blockedAfter[s[i-1]]; nothing at the start
	for i := 0; i < len(s); {
		c := s[i]
		br := startClass[c] &^ blocked & allowed
		if br&startIPMAC != 0 && !ips && !macAt(s, i) {
			br &^= startIPMAC
		}
		if br != 0 {
			if end, repl := n.matchAt(s, i, ips, br); end != 0 {
				if b.Len() == 0 {
					b.Grow(len(s) + 32)
				}
				b.WriteString(s[last:i])
				b.WriteString(repl)
				last, i = end, end
				blocked = blockedAfter[s[end-1]]
				continue
			}
		}
		blocked = blockedAfter[c]
		i++
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func mayCarryIdentifier(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' || c == '@' || c == ':' {
			return true
		}
	}
	return false
}

// Branches of matchAt, as bits of startClass and blockedAfter.
const (
	startEmail  = 1 << iota // an e-mail address
	startIPMAC              // an IP or MAC literal
	startDigits             // a digit run

	allBranches = startEmail | startIPMAC | startDigits
)

// startClass[c] has the bit of each matchAt branch whose test on its first
// byte c passes; blockedAfter[p] has the bit of each branch that cannot start
// right after byte p (a match starts only at a token boundary). Both are
// built from the predicates matchAt itself uses.
var startClass, blockedAfter = func() (start, blocked [256]uint8) {
	for i := range 256 {
		c := byte(i)
		if emailLocal(c) {
			start[i] |= startEmail
			blocked[i] |= startEmail
		}
		if ipChar(c) {
			if c != '.' {
				start[i] |= startIPMAC
			}
			blocked[i] |= startIPMAC
		}
		if isDigit(c) || c == '+' || c == '(' {
			start[i] |= startDigits
		}
		if isDigit(c) {
			blocked[i] |= startDigits
		}
	}
	return start, blocked
}()

// macAt reports whether s[i:] is long enough for a MAC and has a MAC
// separator at i+2: in a user agent, the only IP/MAC literal that matchAt
// replaces.
func macAt(s string, i int) bool {
	return len(s)-i >= 17 && (s[i+2] == ':' || s[i+2] == '-')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func isAlnum(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func emailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func emailDomain(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

func ipChar(c byte) bool { return isHex(c) || c == '.' || c == ':' }

// phoneChar reports whether c may continue a digit run. Dots group digits in
// some phone formats, but in user agents they separate version numbers.
func phoneChar(c byte, dots bool) bool {
	return isDigit(c) || c == ' ' || c == '-' || c == '(' || c == ')' || dots && c == '.'
}

// matchAt returns the end of an identifier starting at s[i] and its
// replacement, or 0 when none starts there. It tries the branches in br
// (allBranches: all of them); each still makes its own first tests. Matches
// start only at token boundaries, which keeps the scan linear.
func (n *Normalizer) matchAt(s string, i int, ips bool, br uint8) (int, string) {
	c := s[i]
	var prev byte
	if i > 0 {
		prev = s[i-1]
	}
	// e-mail
	if br&startEmail != 0 && emailLocal(c) && (i == 0 || !emailLocal(prev)) {
		j := i
		for j < len(s) && emailLocal(s[j]) {
			j++
		}
		if j < len(s) && s[j] == '@' && j > i {
			k := j + 1
			for k < len(s) && emailDomain(s[k]) {
				k++
			}
			for k > j+1 && s[k-1] == '.' {
				k--
			}
			dom := s[j+1 : k]
			if dot := strings.IndexByte(dom, '.'); dot > 0 && dot < len(dom)-1 {
				return k, "#e:" + n.Pseudonym(KindEmail, lower(s[i:k]))
			}
		}
	}
	// IP or MAC literal
	if br&startIPMAC != 0 && ipChar(c) && c != '.' && (i == 0 || !ipChar(prev)) {
		j := i
		for j < len(s) && (ipChar(s[j]) || s[j] == '-' && j+1 < len(s) && isHex(s[j+1])) {
			j++
		}
		tok := s[i:j]
		for len(tok) > 0 && (tok[len(tok)-1] == '.' || tok[len(tok)-1] == ':') {
			tok = tok[:len(tok)-1]
		}
		if isCanonicalMAC(tok) {
			return i + len(tok), "#mac:" + n.Pseudonym(KindMAC, canonicalMAC(tok))
		}
		if ips && len(tok) >= 3 && strings.ContainsAny(tok, ".:") && !strings.Contains(tok, "-") {
			if a, err := netip.ParseAddr(tok); err == nil {
				return i + len(tok), "#ip:" + n.Pseudonym(KindIP, a.Unmap().String())
			}
		}
	}
	// digit runs
	if br&startDigits != 0 && (isDigit(c) || (c == '+' || c == '(') && i+1 < len(s) && isDigit(s[i+1])) && (i == 0 || !isDigit(prev)) {
		if isISODate(s[i:]) {
			return 0, ""
		}
		j := i
		if c == '+' {
			j++ // a plus only leads
		}
		for j < len(s) && phoneChar(s[j], ips) {
			j++
		}
		for j > i && !isDigit(s[j-1]) {
			j--
		}
		if j-i < 7 {
			return 0, "" // fewer than 7 digits
		}
		if d, ok := phoneDigits(s[i:j]); ok && len(d) >= 7 {
			return j, "#p:" + n.Pseudonym(KindPhone, d)
		}
	}
	return 0, ""
}

// isCanonicalMAC reports whether s is six hex pairs joined by ':' or '-'.
func isCanonicalMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	sep := s[2]
	if sep != ':' && sep != '-' {
		return false
	}
	for i := 0; i < 17; i++ {
		if i%3 == 2 {
			if s[i] != sep {
				return false
			}
		} else if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isISODate(s string) bool {
	return len(s) >= 10 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2]) && isDigit(s[3]) &&
		s[4] == '-' && isDigit(s[5]) && isDigit(s[6]) && s[7] == '-' && isDigit(s[8]) && isDigit(s[9]) &&
		(len(s) == 10 || !isDigit(s[10]))
}

// phoneDigits returns the digits of s when s is written like a phone number
// (digits grouped by spaces, dashes, dots, parentheses, a leading plus) with
// at least 5 digits.
func phoneDigits(s string) (string, bool) {
	var buf [64]byte
	d := buf[:0]
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			d = append(d, c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '+' && i == 0:
		default:
			return "", false
		}
	}
	if len(d) < 5 {
		return "", false
	}
	return string(d), true
}

// identifierKind returns the pseudonym kind an attribute key names (phone,
// mobile, tel, msisdn, imei, imsi, idfa, oaid, android_id, mac, bssid, ip,
// email), or "" when the key names none. Long words match anywhere in the
// key; short ones (tel, ip, mac) only as a whole word (snake, kebab, dotted
// or camelCase), so that "ship_to" or "machine" do not match.
func identifierKind(key string) string {
	lk := lower(key)
	for _, w := range []struct{ sub, kind string }{
		{"phone", KindPhone}, {"mobile", KindPhone}, {"msisdn", KindPhone},
		{"imei", KindIMEI}, {"imsi", KindIMSI}, {"idfa", KindIDFA}, {"oaid", KindOAID},
		{"androidid", KindAndroidID}, {"android_id", KindAndroidID}, {"bssid", KindBSSID},
		{"email", KindEmail}, {"e_mail", KindEmail},
	} {
		if strings.Contains(lk, w.sub) {
			return w.kind
		}
	}
	// Words: split at non-alphanumerics and at lower-to-upper case changes.
	start := 0
	for i := 0; i <= len(key); i++ {
		boundary := i == len(key) || !isAlnum(key[i]) ||
			i > start && key[i] >= 'A' && key[i] <= 'Z' && key[i-1] >= 'a' && key[i-1] <= 'z'
		if !boundary {
			continue
		}
		switch lower(key[start:i]) {
		case "tel":
			return KindPhone
		case "ip", "ipv4", "ipv6", "ipaddr":
			return KindIP
		case "mac":
			return KindMAC
		case "mail":
			return KindEmail
		}
		if i < len(key) && !isAlnum(key[i]) {
			start = i + 1
		} else {
			start = i
		}
	}
	return ""
}
