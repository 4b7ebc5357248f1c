package ingest

import (
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"hash"
	"sync"
	"unsafe"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// Pseudonym kinds: the domain that separates one kind of identifier from
// another, so that the same string as an IMEI and as an account id yields
// unrelated pseudonyms. A payee is an account, so payee_account_id uses
// KindAccount: a payee's pseudonym equals its own account's.
const (
	KindAccount    = "account"
	KindOrg        = "org"
	KindDevice     = "device"
	KindIMEI       = "imei"
	KindIDFA       = "idfa"
	KindAndroidID  = "android_id"
	KindOAID       = "oaid"
	KindMAC        = "mac"
	KindIMSI       = "imsi"
	KindIP         = "ip"
	KindIPPrefix   = "ip_prefix"
	KindBSSID      = "bssid"
	KindSSID       = "ssid"
	KindInstrument = "instrument"
	KindSite       = "site"
	KindPhone      = "phone"
	KindEmail      = "email"
	KindQuery      = "query"
)

// PseudonymLen is the length of every pseudonym: base64url (no padding) of
// the first 16 bytes of the HMAC, 128 bits, ample against collisions.
const PseudonymLen = 22

const macBytes = 16

// keyedMAC computes HMAC-SHA-256 (RFC 2104) under one key. The SHA-256
// states after absorbing the inner and outer padded keys are computed once;
// each pseudonym restores them into pooled digests, so it costs two
// compressions for a short value and allocates nothing but its result.
// TestHMACMatchesStdlib checks it against crypto/hmac.
type keyedMAC struct {
	innerState, outerState []byte    // marshaled sha256 states
	pool                   sync.Pool // of *macState
}

type resumable interface {
	hash.Hash
	encoding.BinaryUnmarshaler
}

type macState struct {
	inner, outer resumable
	buf          []byte
	sum          [sha256.Size]byte
}

func newKeyedMAC(key []byte) *keyedMAC {
	if len(key) > sha256.BlockSize {
		k := sha256.Sum256(key)
		key = k[:]
	}
	var ipad, opad [sha256.BlockSize]byte
	copy(ipad[:], key)
	copy(opad[:], key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	state := func(pad []byte) []byte {
		h := sha256.New()
		h.Write(pad)
		b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic("ingest: sha256 state does not marshal: " + err.Error())
		}
		return b
	}
	m := &keyedMAC{innerState: state(ipad[:]), outerState: state(opad[:])}
	m.pool.New = func() any {
		return &macState{
			inner: sha256.New().(resumable),
			outer: sha256.New().(resumable),
			buf:   make([]byte, 0, 128),
		}
	}
	return m
}

// sum computes HMAC(key, msg) into s.sum.
func (m *keyedMAC) sum(s *macState, msg []byte) {
	// Unmarshal of a state that Marshal produced cannot fail.
	_ = s.inner.UnmarshalBinary(m.innerState)
	s.inner.Write(msg)
	s.inner.Sum(s.sum[:0])
	_ = s.outer.UnmarshalBinary(m.outerState)
	s.outer.Write(s.sum[:])
	s.outer.Sum(s.sum[:0])
}

// appendPseudonym appends the pseudonym of value (a string or []byte) under
// kind to dst.
func appendPseudonym[T string | []byte](dst []byte, m *keyedMAC, kind string, value T) []byte {
	s := m.pool.Get().(*macState)
	// Domain separation: one length byte, the kind, then the value. Kinds are
	// package constants shorter than 256 bytes.
	s.buf = append(s.buf[:0], byte(len(kind)))
	s.buf = append(s.buf, kind...)
	s.buf = append(s.buf, value...)
	m.sum(s, s.buf)
	if cap(s.buf) > 4096 {
		s.buf = make([]byte, 0, 128)
	}
	dst = base64.RawURLEncoding.AppendEncode(dst, s.sum[:macBytes])
	m.pool.Put(s)
	return dst
}

func pseudonymOf[T string | []byte](m *keyedMAC, kind string, value T) string {
	var out [PseudonymLen]byte
	return string(appendPseudonym(out[:0], m, kind, value))
}

// arena holds the pseudonyms of one event in one allocation. Bytes once
// appended are never written again (append past the capacity moves on to a
// new array and leaves the old one to the strings that point into it), which
// is what makes the unsafe.String views immutable.
type arena struct {
	buf []byte
}

// newArena returns an arena with room for every pseudonym pb may need:
// account and org, seven device identifiers, IP, IP prefix, BSSID and SSID,
// payee and instrument, the query.
func newArena(pb *riskv1.Event) arena {
	n := 2
	if pb.Device != nil {
		n += 7
	}
	if pb.Network != nil {
		n += 4
	}
	if pb.Payment != nil {
		n += 2
	}
	if pb.ServiceLog != nil {
		n++
	}
	return arena{buf: make([]byte, 0, n*PseudonymLen)}
}

func (a *arena) pseudonym(m *keyedMAC, kind, value string) string {
	return arenaPseudonym(a, m, kind, value)
}

func arenaPseudonym[T string | []byte](a *arena, m *keyedMAC, kind string, value T) string {
	if len(value) == 0 {
		return ""
	}
	if cap(a.buf)-len(a.buf) < PseudonymLen {
		a.buf = make([]byte, 0, 16*PseudonymLen)
	}
	start := len(a.buf)
	a.buf = appendPseudonym(a.buf, m, kind, value)
	return unsafe.String(&a.buf[start], PseudonymLen)
}

// Pseudonym returns the keyed pseudonym of value as an identifier of the
// given kind (one of the Kind constants) under the current key. The cost
// depends only on the lengths of kind and value.
func (n *Normalizer) Pseudonym(kind, value string) string {
	return pseudonymOf(n.macs[0], kind, value)
}

// Pseudonyms returns the pseudonym of value under the current key and then
// under each old key, in Options order. Lookups during a key rotation try
// each, so that data written under an old key is still found until it
// expires.
func (n *Normalizer) Pseudonyms(kind, value string) []string {
	return pseudonymsUnder(n.macs, kind, value)
}

// OldKeyPseudonyms is Pseudonyms without the current key's, for a caller
// that has that one already; nil without a rotation.
func (n *Normalizer) OldKeyPseudonyms(kind, value string) []string {
	if len(n.macs) < 2 {
		return nil
	}
	return pseudonymsUnder(n.macs[1:], kind, value)
}

func pseudonymsUnder(macs []*keyedMAC, kind, value string) []string {
	out := make([]string, len(macs))
	for i, m := range macs {
		out[i] = pseudonymOf(m, kind, value)
	}
	return out
}
