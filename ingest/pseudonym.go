package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"sync"
	"unsafe"
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

// keyedMAC computes HMAC-SHA-256 under one key. hmac.New precomputes the
// padded key states, so a pooled hash resets cheaply; the pool keeps the hot
// path free of per-call allocation except the returned string.
type keyedMAC struct {
	pool sync.Pool // of *macState
}

type macState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func newKeyedMAC(key []byte) *keyedMAC {
	k := append([]byte(nil), key...)
	m := &keyedMAC{}
	m.pool.New = func() any {
		return &macState{h: hmac.New(sha256.New, k), buf: make([]byte, 0, 128)}
	}
	return m
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
	s.h.Reset()
	s.h.Write(s.buf)
	s.h.Sum(s.sum[:0])
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

func (a *arena) pseudonym(m *keyedMAC, kind, value string) string {
	if value == "" {
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
	out := make([]string, len(n.macs))
	for i, m := range n.macs {
		out[i] = pseudonymOf(m, kind, value)
	}
	return out
}
