package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
)

func init() {
	analyst := auth.RoleAnalyst
	register(&command{
		Name:    "lists",
		Summary: "manage the named lists rules and features read",
		Help: `Lists are named sets (cheat_apps, blocked_devices, blocked_ip_cidrs,
allowed_accounts ...): plain values, identifiers (stored pseudonymized) or
CIDR prefixes. Entries may expire (--expires, RFC 3339 or a duration from now).`,
		Subs: []*command{
			{Name: "create", Args: "NAME [--kind plain|identifier|cidr] [--identifier KIND] [--description TEXT]", Summary: "create an empty list", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					kind := fs.String("kind", "plain", "plain, identifier or cidr")
					ik := fs.String("identifier", "", "for identifier lists: account, device, ip, imei ...")
					desc := fs.String("description", "", "what the list is for")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return listsCreate(ctx, inv, args, *kind, *ik, *desc)
					}
				}},
			{Name: "delete", Args: "NAME", Summary: "delete a list and its entries", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc { return listsDelete }},
			{Name: "ls", Summary: "list the lists", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc { return listsLs }},
			{Name: "show", Args: "NAME [--limit N]", Summary: "show a list's entries", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					limit := fs.Int("limit", 0, "at most `N` entries (default all)")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return listsShow(ctx, inv, args, *limit)
					}
				}},
			{Name: "add", Args: "NAME VALUE... [--expires T]", Summary: "add values", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					exp := fs.String("expires", "", "expiry: RFC 3339 time or a duration from now")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return listsAdd(ctx, inv, args, *exp)
					}
				}},
			{Name: "rm", Args: "NAME VALUE...", Summary: "remove values", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc { return listsRm }},
			{Name: "load", Args: "NAME FILE [--expires T]", Summary: "bulk load one value per line (- for stdin)", Role: analyst,
				Help: `Load streams FILE's values (one a line; blank lines and # comments skipped) in
chunks, each committed at once: 100,000 values take seconds.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					exp := fs.String("expires", "", "expiry: RFC 3339 time or a duration from now")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return listsLoad(ctx, inv, args, *exp)
					}
				}},
			{Name: "export", Args: "NAME --out FILE", Summary: "write a list's bloom filter for on-device matching", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					out := fs.String("out", "", "the `FILE` to write (required)")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return listsExport(ctx, inv, args, *out)
					}
				}},
		},
	})
}

func (inv *invocation) listsClient() (riskv1connect.ListsServiceClient, error) {
	hc, base, opts, err := inv.connectConfig()
	if err != nil {
		return nil, err
	}
	return riskv1connect.NewListsServiceClient(hc, base, opts...), nil
}

// parseExpiry reads RFC 3339 or a duration from now; "" is never.
func parseExpiry(s string, now time.Time) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return timestamppb.New(t), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return nil, usagef("--expires %q: want an RFC 3339 time or a positive duration", s)
	}
	return timestamppb.New(now.Add(d)), nil
}

func listKindName(k riskv1.ListKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "LIST_KIND_"))
}

func listsCreate(ctx context.Context, inv *invocation, args []string, kind, ik, desc string) error {
	name, err := oneArg("lists create", args, "a list NAME")
	if err != nil {
		return err
	}
	k, ok := riskv1.ListKind_value["LIST_KIND_"+strings.ToUpper(kind)]
	if !ok || k == 0 {
		return usagef("--kind %q: want plain, identifier or cidr", kind)
	}
	c, err := inv.listsClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.CreateList, &riskv1.CreateListRequest{Name: name, Kind: riskv1.ListKind(k), IdentifierKind: ik, Description: desc})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	_, err = fmt.Fprintf(inv.stdout(), "list %s created (%s)\n", name, kind)
	return err
}

func listsDelete(ctx context.Context, inv *invocation, args []string) error {
	name, err := oneArg("lists delete", args, "a list NAME")
	if err != nil {
		return err
	}
	c, err := inv.listsClient()
	if err != nil {
		return err
	}
	cctx, cancel := inv.callContext(ctx)
	defer cancel()
	if _, err := c.DeleteList(cctx, connect.NewRequest(&riskv1.DeleteListRequest{Name: name})); err != nil {
		return inv.callError(err)
	}
	_, err = fmt.Fprintf(inv.stdout(), "list %s deleted\n", name)
	return err
}

func listsLs(ctx context.Context, inv *invocation, args []string) error {
	if len(args) > 0 {
		return usagef("lists ls takes no arguments")
	}
	c, err := inv.listsClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.ListLists, &riskv1.ListListsRequest{})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	tw := tabwriter.NewWriter(inv.stdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LIST\tKIND\tENTRIES\tVERSION\tUPDATED\tDESCRIPTION")
	for _, l := range res.GetLists() {
		kind := listKindName(l.GetKind())
		if l.GetIdentifierKind() != "" {
			kind += "(" + l.GetIdentifierKind() + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", l.GetName(), kind, l.GetCount(), l.GetVersion(), formatTime(l.GetUpdatedAt()), l.GetDescription())
	}
	return tw.Flush()
}

func listsShow(ctx context.Context, inv *invocation, args []string, limit int) error {
	name, err := oneArg("lists show", args, "a list NAME")
	if err != nil {
		return err
	}
	c, err := inv.listsClient()
	if err != nil {
		return err
	}
	var all []*riskv1.ListEntry
	var info *riskv1.ListInfo
	token := ""
	for {
		cctx, cancel := inv.callContext(ctx)
		res, err := c.GetList(cctx, connect.NewRequest(&riskv1.GetListRequest{Name: name, PageSize: 10000, PageToken: token}))
		cancel()
		if err != nil {
			return inv.callError(err)
		}
		info = res.Msg.GetList()
		all = append(all, res.Msg.GetEntries()...)
		token = res.Msg.GetNextPageToken()
		if token == "" || (limit > 0 && len(all) >= limit) {
			break
		}
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), &riskv1.GetListResponse{List: info, Entries: all})
	}
	w := inv.stdout()
	fmt.Fprintf(w, "%s (%s, %d entries, version %d)\n", info.GetName(), listKindName(info.GetKind()), info.GetCount(), info.GetVersion())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VALUE\tEXPIRES\tADDED")
	for _, e := range all {
		exp := "never"
		if e.GetExpiresAt() != nil {
			exp = formatTime(e.GetExpiresAt())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.GetValue(), exp, formatTime(e.GetAddedAt()))
	}
	return tw.Flush()
}

func listsAdd(ctx context.Context, inv *invocation, args []string, expires string) error {
	if len(args) < 2 {
		return usagef("lists add takes NAME and one or more VALUEs")
	}
	exp, err := parseExpiry(expires, inv.env.Clock.Now())
	if err != nil {
		return err
	}
	c, err := inv.listsClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.AddEntries, &riskv1.AddEntriesRequest{Name: args[0], Values: args[1:], ExpiresAt: exp})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	_, err = fmt.Fprintf(inv.stdout(), "added %d to %s\n", res.GetAdded(), args[0])
	return err
}

func listsRm(ctx context.Context, inv *invocation, args []string) error {
	if len(args) < 2 {
		return usagef("lists rm takes NAME and one or more VALUEs")
	}
	c, err := inv.listsClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.RemoveEntries, &riskv1.RemoveEntriesRequest{Name: args[0], Values: args[1:]})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	_, err = fmt.Fprintf(inv.stdout(), "removed %d from %s\n", res.GetRemoved(), args[0])
	return err
}

// loadChunk is how many values one BulkLoad message carries.
const loadChunk = 5000

func listsLoad(ctx context.Context, inv *invocation, args []string, expires string) error {
	if len(args) != 2 {
		return usagef("lists load takes NAME and FILE (- for stdin)")
	}
	exp, err := parseExpiry(expires, inv.env.Clock.Now())
	if err != nil {
		return err
	}
	r := inv.env.Stdin
	if args[1] != "-" {
		f, err := os.Open(args[1])
		if err != nil {
			return usagef("%v", err)
		}
		defer f.Close()
		r = f
	}
	c, err := inv.listsClient()
	if err != nil {
		return err
	}
	// A big file takes longer than one call's timeout.
	cctx, cancel := context.WithTimeout(ctx, max(inv.g.timeout, 5*time.Minute))
	defer cancel()
	stream := c.BulkLoad(cctx)
	chunk := make([]string, 0, loadChunk)
	first := true
	send := func() error {
		if len(chunk) == 0 && !first {
			return nil
		}
		m := &riskv1.BulkLoadRequest{Values: chunk, ExpiresAt: exp}
		if first {
			m.Name = args[0]
			first = false
		}
		err := stream.Send(m)
		chunk = chunk[:0]
		return err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		v := strings.TrimSpace(sc.Text())
		if v == "" || strings.HasPrefix(v, "#") {
			continue
		}
		chunk = append(chunk, v)
		if len(chunk) == loadChunk {
			if err := send(); err != nil {
				break // the server's answer says why
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", args[1], err)
	}
	_ = send()
	res, err := stream.CloseAndReceive()
	if err != nil {
		return inv.callError(err)
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res.Msg)
	}
	_, err = fmt.Fprintf(inv.stdout(), "loaded %d values into %s (%d entries)\n", res.Msg.GetLoaded(), args[0], res.Msg.GetList().GetCount())
	return err
}

func listsExport(ctx context.Context, inv *invocation, args []string, out string) error {
	name, err := oneArg("lists export", args, "a list NAME")
	if err != nil {
		return err
	}
	if out == "" {
		return usagef("lists export needs --out FILE")
	}
	c, err := inv.listsClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.ExportList, &riskv1.ExportListRequest{Name: name})
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, res.GetFilter(), 0o644); err != nil {
		return err
	}
	_, err = fmt.Fprintf(inv.stdout(), "wrote %s version %d (%d bytes, %s) to %s\n", name, res.GetVersion(), len(res.GetFilter()), res.GetFormat(), out)
	return err
}
