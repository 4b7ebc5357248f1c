package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FileName is the credentials file's name inside the data directory.
const FileName = "credentials.json"

// Token prefixes say what a secret is when it turns up in a shell history or
// a secret scanner.
const (
	PrefixService = "rsk_svc_"
	PrefixAnalyst = "rsk_ana_"
	PrefixAdmin   = "rsk_adm_"
	PrefixSubject = "rsk_sub_"
	PrefixPseudo  = "rsk_psk_"
)

// secretBytes is the entropy of every generated token and key.
const secretBytes = 32

// minSecretLen is the shortest secret Load accepts: configured by hand, a
// secret must still carry about 128 bits.
const minSecretLen = 22

// Credentials are riskd's secrets. SubjectKey signs subject tokens (HS256);
// PseudonymKey keys the pseudonyms of package ingest: changing it makes
// stored pseudonyms unreachable (see ingest.Options.OldKeys for rotation).
type Credentials struct {
	Service      string `json:"service"`
	Analyst      string `json:"analyst"`
	Admin        string `json:"admin"`
	SubjectKey   string `json:"subject_key"`
	PseudonymKey string `json:"pseudonym_key"`
}

// ErrInvalidCredentials matches a credentials file that is unreadable as
// JSON or misses a field.
var ErrInvalidCredentials = errors.New("auth: invalid credentials")

// InsecureFileError says the credentials file is readable or writable by
// group or others. Load refuses such a file, as ssh refuses a private key
// others can read: the tokens in it may have leaked.
type InsecureFileError struct {
	Path string
	Mode fs.FileMode
}

func (e *InsecureFileError) Error() string {
	return fmt.Sprintf("auth: %s has mode %#o, accessible by group or others; chmod 600 it (and rotate its tokens if others could read them)", e.Path, e.Mode.Perm())
}

// Validate checks that every field is set, long enough, and that the three
// static tokens differ.
func (c Credentials) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"service", c.Service}, {"analyst", c.Analyst}, {"admin", c.Admin},
		{"subject_key", c.SubjectKey}, {"pseudonym_key", c.PseudonymKey},
	} {
		if len(f.v) < minSecretLen {
			return fmt.Errorf("%w: %s must be at least %d characters", ErrInvalidCredentials, f.name, minSecretLen)
		}
		if strings.TrimSpace(f.v) != f.v {
			return fmt.Errorf("%w: %s has surrounding white space", ErrInvalidCredentials, f.name)
		}
	}
	if c.Service == c.Analyst || c.Service == c.Admin || c.Analyst == c.Admin {
		return fmt.Errorf("%w: the service, analyst and admin tokens must differ", ErrInvalidCredentials)
	}
	return nil
}

// Generate returns fresh random credentials.
func Generate() (Credentials, error) {
	var c Credentials
	for _, f := range []struct {
		dst    *string
		prefix string
	}{
		{&c.Service, PrefixService}, {&c.Analyst, PrefixAnalyst}, {&c.Admin, PrefixAdmin},
		{&c.SubjectKey, PrefixSubject}, {&c.PseudonymKey, PrefixPseudo},
	} {
		b := make([]byte, secretBytes)
		if _, err := rand.Read(b); err != nil {
			return Credentials{}, fmt.Errorf("auth: generate credentials: %w", err)
		}
		*f.dst = f.prefix + base64.RawURLEncoding.EncodeToString(b)
	}
	return c, nil
}

// Load reads and validates a credentials file. A file accessible by group or
// others is refused with *InsecureFileError (on systems with Unix modes).
func Load(path string) (Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Credentials{}, fmt.Errorf("auth: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 && modesMeanSomething() {
		return Credentials{}, &InsecureFileError{Path: path, Mode: st.Mode()}
	}
	var c Credentials
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Credentials{}, fmt.Errorf("%w: %s: %v", ErrInvalidCredentials, path, err)
	}
	if err := c.Validate(); err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// LoadOrCreate returns the credentials in <dataDir>/credentials.json,
// creating the directory (mode 0700) and the file (mode 0600, written
// atomically) with fresh random credentials when the file does not exist.
// created says whether it wrote the file; path is where the file is.
func LoadOrCreate(dataDir string) (c Credentials, created bool, path string, err error) {
	path = filepath.Join(dataDir, FileName)
	c, err = Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return c, false, path, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return Credentials{}, false, path, fmt.Errorf("auth: %w", err)
	}
	if c, err = Generate(); err != nil {
		return Credentials{}, false, path, err
	}
	if err := writeFile(path, c); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			c, err = Load(path)
			return c, false, path, err
		}
		return Credentials{}, false, path, err
	}
	return c, true, path, nil
}

// writeFile writes c to a temporary file with mode 0600, syncs it and links
// it into place, so that a crash leaves either no file or a whole one, and
// two processes starting at once do not overwrite each other's secrets.
func writeFile(path string, c Credentials) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+FileName+".*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: write credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: write credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: write credentials: %w", err)
	}
	// Link, not rename: it fails if the file appeared meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("auth: write credentials: %w", err)
		}
		// A file system without hard links: rename, which replaces.
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("auth: write credentials: %w", err)
		}
	}
	syncDir(filepath.Dir(path))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
