package server

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/riskd/riskd/auth"
)

// PseudonymKeys returns the pseudonym key in force and the old keys of a
// rotation. The key comes from --pseudonym-key-file, else
// RISKD_PSEUDONYM_KEY, else credentials.json's pseudonym_key. Old keys come
// from --pseudonym-old-keys-file: one key a line, newest first, blank lines
// and lines starting with # ignored. A key is used as the bytes of its line
// (surrounding spaces trimmed), as credentials.json's is.
//
// To rotate: put the current key first in the old-keys file, make the new
// key current, restart. Drop an old key once the longest retention class
// has passed since it was replaced (README "Key rotation").
func PseudonymKeys(c Config, creds auth.Credentials) (key []byte, old [][]byte, err error) {
	switch {
	case c.PseudonymKeyFile != "":
		data, err := os.ReadFile(c.PseudonymKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("pseudonym key: %w", err)
		}
		key = bytes.TrimSpace(data)
	case c.PseudonymKey != "":
		key = []byte(strings.TrimSpace(c.PseudonymKey))
	default:
		key = []byte(creds.PseudonymKey)
	}
	if len(key) < 16 {
		return nil, nil, fmt.Errorf("pseudonym key: %d bytes; at least 16 are needed", len(key))
	}
	if c.PseudonymOldKeysFile == "" {
		return key, nil, nil
	}
	f, err := os.Open(c.PseudonymOldKeysFile)
	if err != nil {
		return nil, nil, fmt.Errorf("old pseudonym keys: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		k := strings.TrimSpace(sc.Text())
		if k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		if len(k) < 16 {
			return nil, nil, fmt.Errorf("old pseudonym keys %s:%d: %d bytes; at least 16 are needed", c.PseudonymOldKeysFile, line, len(k))
		}
		if k == string(key) {
			continue // the current key listed too: harmless
		}
		old = append(old, []byte(k))
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("old pseudonym keys: %w", err)
	}
	return key, old, nil
}
