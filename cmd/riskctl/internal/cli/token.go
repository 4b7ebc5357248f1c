package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/riskd/riskd/auth"
)

func init() {
	register(&command{
		Name:    "token",
		Summary: "mint tokens",
		Help:    "Mint tokens from the keys in credentials.json, without asking riskd.",
		Subs: []*command{{
			Name:    "subject",
			Args:    "[flags] ACCOUNT_ID",
			Summary: "print a subject token (JWT) for an account",
			Help: `Subject prints a subject token: an HS256 JWT whose sub is ACCOUNT_ID, signed
with the subject_key of credentials.json, valid for --ttl. The person the
account belongs to can use it to read their own decisions and appeal them:
  riskctl --token "$(riskctl token subject acct-1)" decisions list --account acct-1
In production the caller's identity system mints these with the same key.
With --json it prints {"token": ..., "expiresAt": ...}.`,
			Setup: func(fs *flag.FlagSet) runFunc {
				ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
				return func(ctx context.Context, inv *invocation, args []string) error {
					return tokenSubject(inv, args, *ttl)
				}
			},
		}},
	})
}

func tokenSubject(inv *invocation, args []string, ttl time.Duration) error {
	if len(args) != 1 || args[0] == "" {
		return usagef("token subject takes one ACCOUNT_ID")
	}
	if ttl <= 0 {
		return usagef("--ttl must be positive, got %v", ttl)
	}
	c, err := inv.loadCredentials()
	if err != nil {
		return err
	}
	now := inv.env.Clock.Now()
	tok, err := auth.MintSubjectToken([]byte(c.SubjectKey), args[0], ttl, now)
	if err != nil {
		return usagef("%v", err) // the account id or ttl; the key was validated on load
	}
	if inv.g.json {
		st, err := structpb.NewStruct(map[string]any{
			"token":     tok,
			"expiresAt": now.Add(ttl).UTC().Format(time.RFC3339),
		})
		if err != nil {
			return err
		}
		return writeJSON(inv.stdout(), st)
	}
	_, err = fmt.Fprintln(inv.stdout(), tok)
	return err
}
