package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/riskd/riskd/internal/clock"
)

// ErrUnauthenticated matches every failure to authenticate: a missing or
// malformed header, an unknown token, a subject token that is expired, badly
// signed or malformed. The API edge maps it to unauthenticated and tells the
// caller nothing more.
var ErrUnauthenticated = errors.New("auth: unauthenticated")

// Bounds on subject tokens.
const (
	// MaxTokenLen bounds the bearer token; longer ones are refused unread.
	MaxTokenLen = 4096
	// MaxAccountIDLen bounds a subject token's sub, as ingest bounds
	// account_id.
	MaxAccountIDLen = 128
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway = 30 * time.Second
)

// Authenticator authenticates Authorization headers.
type Authenticator struct {
	static     [3]staticToken
	subjectKey []byte
	parser     *jwt.Parser
}

type staticToken struct {
	hash      [sha256.Size]byte
	set       int // 1 when the token is configured; an unset one matches nothing
	principal Principal
}

// NewAuthenticator returns an Authenticator for c. clk is the time subject
// tokens are checked against (nil: the real clock). An empty SubjectKey
// disables subject tokens; an empty static token matches nothing.
func NewAuthenticator(c Credentials, clk clock.Clock) *Authenticator {
	clk = clock.Or(clk)
	a := &Authenticator{
		subjectKey: []byte(c.SubjectKey),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(Leeway),
			jwt.WithTimeFunc(clk.Now),
		),
	}
	for i, s := range []struct {
		token string
		role  Role
	}{{c.Service, RoleService}, {c.Analyst, RoleAnalyst}, {c.Admin, RoleAdmin}} {
		a.static[i].principal = Principal{Role: s.role, Name: s.role.String()}
		if s.token != "" {
			a.static[i].hash = sha256.Sum256([]byte(s.token))
			a.static[i].set = 1
		}
	}
	return a
}

// Authenticate returns the principal an Authorization header
// ("Bearer <token>") names. Static tokens are compared in constant time:
// the presented token is hashed and compared with the hash of each of the
// three tokens, all three always, so neither a token's length nor which
// comparison failed shows in the timing. Anything else is tried as a
// subject JWT: HS256 only, sub = account id, exp required, nbf and iat
// honoured with Leeway.
func (a *Authenticator) Authenticate(header string) (Principal, error) {
	token, err := bearer(header)
	if err != nil {
		return Principal{}, err
	}
	h := sha256.Sum256([]byte(token))
	match := -1
	for i := range a.static {
		if subtle.ConstantTimeCompare(h[:], a.static[i].hash[:])&a.static[i].set == 1 {
			match = i
		}
	}
	if match >= 0 {
		return a.static[match].principal, nil
	}
	if strings.Count(token, ".") != 2 {
		return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	return a.subject(token)
}

func bearer(header string) (string, error) {
	if header == "" {
		return "", fmt.Errorf("%w: no Authorization header", ErrUnauthenticated)
	}
	const scheme = "bearer "
	if len(header) < len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", fmt.Errorf("%w: Authorization is not a Bearer token", ErrUnauthenticated)
	}
	token := strings.TrimSpace(header[len(scheme):])
	switch {
	case token == "":
		return "", fmt.Errorf("%w: empty bearer token", ErrUnauthenticated)
	case len(token) > MaxTokenLen:
		return "", fmt.Errorf("%w: bearer token longer than %d bytes", ErrUnauthenticated, MaxTokenLen)
	}
	return token, nil
}

func (a *Authenticator) subject(token string) (Principal, error) {
	if len(a.subjectKey) == 0 {
		return Principal{}, fmt.Errorf("%w: subject tokens are not configured", ErrUnauthenticated)
	}
	var claims jwt.RegisteredClaims
	_, err := a.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		// WithValidMethods already insists on HS256; check the type too, so
		// that the key is never handed to another algorithm.
		if t.Method != jwt.SigningMethodHS256 {
			return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
		}
		return a.subjectKey, nil
	})
	if err != nil {
		return Principal{}, fmt.Errorf("%w: subject token: %v", ErrUnauthenticated, err)
	}
	if err := checkAccountID(claims.Subject); err != nil {
		return Principal{}, fmt.Errorf("%w: subject token: %v", ErrUnauthenticated, err)
	}
	return Principal{Role: RoleSubject, Name: RoleSubject.String(), AccountID: claims.Subject}, nil
}

func checkAccountID(sub string) error {
	switch {
	case sub == "":
		return errors.New("no sub claim")
	case len(sub) > MaxAccountIDLen:
		return fmt.Errorf("sub longer than %d bytes", MaxAccountIDLen)
	case !utf8.ValidString(sub) || strings.TrimSpace(sub) != sub:
		return errors.New("sub is not a clean account id")
	}
	return nil
}

// MintSubjectToken returns an HS256 subject token for accountID, issued at
// now and valid for ttl, signed with key (Credentials.SubjectKey). riskctl
// token subject prints one; a caller's identity system mints the same.
func MintSubjectToken(key []byte, accountID string, ttl time.Duration, now time.Time) (string, error) {
	if len(key) == 0 {
		return "", errors.New("auth: mint subject token: no subject key")
	}
	if ttl <= 0 {
		return "", errors.New("auth: mint subject token: ttl must be positive")
	}
	if err := checkAccountID(accountID); err != nil {
		return "", fmt.Errorf("auth: mint subject token: %w", err)
	}
	claims := jwt.RegisteredClaims{
		Subject:   accountID,
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: mint subject token: %w", err)
	}
	return s, nil
}
