package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/features/lists"
	"github.com/riskd/riskd/ingest"
)

// listsService serves ListsService over the engine's lists. Changes are
// attributed in the access audit (role, token, list name) and logged.
type listsService struct {
	eng *engine.Engine
	log *slog.Logger
}

var errNoLists = errors.New("server: the engine has no lists store")

func (s *listsService) lists() (*lists.Lists, error) {
	l := s.eng.Lists()
	if l == nil {
		return nil, errNoLists
	}
	return l, nil
}

// identifierKinds are the identifier kinds a list may hold: the ingest
// kinds, so that a list's pseudonyms equal the ones events carry. The
// proto field names are accepted for the common ones.
var identifierKinds = map[string]string{
	ingest.KindAccount: ingest.KindAccount, "account_id": ingest.KindAccount, "payee_account_id": ingest.KindAccount,
	ingest.KindDevice: ingest.KindDevice, "device_id": ingest.KindDevice,
	ingest.KindIP: ingest.KindIP, ingest.KindIMEI: ingest.KindIMEI, ingest.KindIDFA: ingest.KindIDFA,
	ingest.KindAndroidID: ingest.KindAndroidID, ingest.KindOAID: ingest.KindOAID, ingest.KindMAC: ingest.KindMAC,
	ingest.KindIMSI: ingest.KindIMSI, ingest.KindBSSID: ingest.KindBSSID, ingest.KindPhone: ingest.KindPhone,
	ingest.KindEmail: ingest.KindEmail, ingest.KindInstrument: ingest.KindInstrument, "instrument_id": ingest.KindInstrument,
	ingest.KindSite: ingest.KindSite, "site_id": ingest.KindSite, ingest.KindOrg: ingest.KindOrg, "org_id": ingest.KindOrg,
}

func listKindPB(k lists.Kind) riskv1.ListKind {
	switch k {
	case lists.Plain:
		return riskv1.ListKind_LIST_KIND_PLAIN
	case lists.Identifier:
		return riskv1.ListKind_LIST_KIND_IDENTIFIER
	case lists.CIDR:
		return riskv1.ListKind_LIST_KIND_CIDR
	}
	return riskv1.ListKind_LIST_KIND_UNSPECIFIED
}

func listInfoPB(m lists.Meta) *riskv1.ListInfo {
	return &riskv1.ListInfo{
		Name: m.Name, Kind: listKindPB(m.Kind), IdentifierKind: m.IdentifierKind, Description: m.Description,
		Version: m.Version, Count: int64(m.Count), CreatedAt: tsPB(m.CreatedAt), UpdatedAt: tsPB(m.UpdatedAt),
	}
}

// noted logs a list change with who made it; the access audit keeps the
// same facts durably.
func (s *listsService) noted(ctx context.Context, action, list string, n int) {
	p := principal(ctx)
	s.log.InfoContext(ctx, "list changed", "action", action, "list", list, "values", n, "role", p.Role.String(), "token", p.Name)
}

// maxListValue bounds one value; maxListValues bounds one message's values.
const (
	maxListValue  = 512
	maxListValues = 100000
)

// checkValues rejects values Load would read differently (it splits lines,
// trims them and skips comments).
func checkValues(field string, vs []string) error {
	if len(vs) > maxListValues {
		return invalid(field, fmt.Sprintf("at most %d values a message", maxListValues))
	}
	for i, v := range vs {
		switch {
		case v == "" || strings.TrimSpace(v) != v:
			return invalid(fmt.Sprintf("%s[%d]", field, i), "must be non-empty without leading or trailing space")
		case len(v) > maxListValue:
			return invalid(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("longer than %d bytes", maxListValue))
		case strings.ContainsAny(v, "\r\n"):
			return invalid(fmt.Sprintf("%s[%d]", field, i), "must be one line")
		case strings.HasPrefix(v, "#"):
			return invalid(fmt.Sprintf("%s[%d]", field, i), "must not start with #")
		}
	}
	return nil
}

func (s *listsService) expiry(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, invalid(field, "not a valid time")
	}
	t := ts.AsTime()
	if !t.After(s.eng.Clock().Now()) {
		return time.Time{}, invalid(field, "must be in the future")
	}
	return t, nil
}

func (s *listsService) CreateList(ctx context.Context, req *connect.Request[riskv1.CreateListRequest]) (*connect.Response[riskv1.CreateListResponse], error) {
	l, err := s.lists()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	m := req.Msg
	var kind lists.Kind
	opts := lists.CreateOptions{Description: m.GetDescription()}
	switch m.GetKind() {
	case riskv1.ListKind_LIST_KIND_PLAIN:
		kind = lists.Plain
	case riskv1.ListKind_LIST_KIND_CIDR:
		kind = lists.CIDR
	case riskv1.ListKind_LIST_KIND_IDENTIFIER:
		kind = lists.Identifier
		ik, ok := identifierKinds[m.GetIdentifierKind()]
		if !ok {
			return nil, invalid("identifier_kind", "must be one of account, device, ip, imei, idfa, android_id, oaid, mac, imsi, bssid, phone, email, instrument, site, org")
		}
		opts.IdentifierKind = ik
	default:
		return nil, invalid("kind", "must be PLAIN, IDENTIFIER or CIDR")
	}
	if kind != lists.Identifier && m.GetIdentifierKind() != "" {
		return nil, invalid("identifier_kind", "only identifier lists have one")
	}
	meta, err := l.Create(m.GetName(), kind, opts)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	s.noted(ctx, "create", meta.Name, 0)
	return connect.NewResponse(&riskv1.CreateListResponse{List: listInfoPB(meta)}), nil
}

func (s *listsService) DeleteList(ctx context.Context, req *connect.Request[riskv1.DeleteListRequest]) (*connect.Response[riskv1.DeleteListResponse], error) {
	l, err := s.lists()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if err := l.Delete(req.Msg.GetName()); err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	s.noted(ctx, "delete", req.Msg.GetName(), 0)
	return connect.NewResponse(&riskv1.DeleteListResponse{}), nil
}

func (s *listsService) ListLists(ctx context.Context, _ *connect.Request[riskv1.ListListsRequest]) (*connect.Response[riskv1.ListListsResponse], error) {
	l, err := s.lists()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	out := &riskv1.ListListsResponse{}
	for _, m := range l.All() {
		out.Lists = append(out.Lists, listInfoPB(m))
	}
	return connect.NewResponse(out), nil
}

func (s *listsService) GetList(ctx context.Context, req *connect.Request[riskv1.GetListRequest]) (*connect.Response[riskv1.GetListResponse], error) {
	l, err := s.lists()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	m := req.Msg
	size := int(m.GetPageSize())
	switch {
	case size < 0 || size > 10000:
		return nil, invalid("page_size", "must be 0..10000")
	case size == 0:
		size = 1000
	}
	var after string
	if tok := m.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) == 0 {
			return nil, invalid("page_token", "not a token this server issued")
		}
		after = string(b)
	}
	meta, err := l.Meta(m.GetName())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	ents, err := l.Entries(m.GetName())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	i := 0
	if after != "" {
		i = sort.Search(len(ents), func(i int) bool { return ents[i].Value > after })
	}
	out := &riskv1.GetListResponse{List: listInfoPB(meta)}
	for ; i < len(ents) && len(out.Entries) < size; i++ {
		e := ents[i]
		out.Entries = append(out.Entries, &riskv1.ListEntry{Value: e.Value, ExpiresAt: tsPB(e.Expires), AddedAt: tsPB(e.AddedAt)})
	}
	if i < len(ents) && len(out.Entries) > 0 {
		out.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(out.Entries[len(out.Entries)-1].GetValue()))
	}
	return connect.NewResponse(out), nil
}

// load adds values to a list in one synced commit.
func load(l *lists.Lists, name string, values []string, exp time.Time) (int, error) {
	if len(values) == 1 {
		return 1, l.Add(name, values[0], exp)
	}
	return l.Load(name, strings.NewReader(strings.Join(values, "\n")), exp)
}

func (s *listsService) AddEntries(ctx context.Context, req *connect.Request[riskv1.AddEntriesRequest]) (*connect.Response[riskv1.AddEntriesResponse], error) {
	l, err := s.lists()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	m := req.Msg
	if len(m.GetValues()) == 0 {
		return nil, invalid("values", "at least one value is required")
	}
	if err := checkValues("values", m.GetValues()); err != nil {
		return nil, err
	}
	exp, err := s.expiry("expires_at", m.GetExpiresAt())
	if err != nil {
		return nil, err
	}
	n, err := load(l, m.GetName(), m.GetValues(), exp)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	s.noted(ctx, "add", m.GetName(), n)
	meta, err := l.Meta(m.GetName())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.AddEntriesResponse{Added: int64(n), List: listInfoPB(meta)}), nil
}

func (s *listsService) RemoveEntries(ctx context.Context, req *connect.Request[riskv1.RemoveEntriesRequest]) (*connect.Response[riskv1.RemoveEntriesResponse], error) {
	l, err := s.lists()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	m := req.Msg
	if len(m.GetValues()) == 0 {
		return nil, invalid("values", "at least one value is required")
	}
	if len(m.GetValues()) > 10000 {
		return nil, invalid("values", "at most 10000 values a request")
	}
	var removed int64
	for _, v := range m.GetValues() {
		ok, err := l.Remove(m.GetName(), v)
		if err != nil {
			return nil, connectError(ctx, s.log, "", err)
		}
		if ok {
			removed++
		}
	}
	s.noted(ctx, "remove", m.GetName(), int(removed))
	meta, err := l.Meta(m.GetName())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.RemoveEntriesResponse{Removed: removed, List: listInfoPB(meta)}), nil
}

func (s *listsService) BulkLoad(ctx context.Context, stream *connect.ClientStream[riskv1.BulkLoadRequest]) (*connect.Response[riskv1.BulkLoadResponse], error) {
	l, err := s.lists()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	var name string
	var loaded int64
	for stream.Receive() {
		m := stream.Msg()
		if name == "" {
			if name = m.GetName(); name == "" {
				return nil, invalid("name", "required in the first message")
			}
			if _, err := l.Meta(name); err != nil {
				return nil, connectError(ctx, s.log, "", err)
			}
		}
		if len(m.GetValues()) == 0 {
			continue
		}
		if err := checkValues("values", m.GetValues()); err != nil {
			return nil, err
		}
		exp, err := s.expiry("expires_at", m.GetExpiresAt())
		if err != nil {
			return nil, err
		}
		n, err := load(l, name, m.GetValues(), exp)
		if err != nil {
			return nil, connectError(ctx, s.log, "", err)
		}
		loaded += int64(n)
	}
	if err := stream.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, connectError(ctx, s.log, "", err)
	}
	if name == "" {
		return nil, invalid("name", "required in the first message")
	}
	s.noted(ctx, "bulk_load", name, int(loaded))
	meta, err := l.Meta(name)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.BulkLoadResponse{Loaded: loaded, List: listInfoPB(meta)}), nil
}

// BloomFormat names the serialization of ExportListResponse.filter.
const BloomFormat = "bits-and-blooms/bloom/v3"

func (s *listsService) ExportList(ctx context.Context, req *connect.Request[riskv1.ExportListRequest]) (*connect.Response[riskv1.ExportListResponse], error) {
	l, err := s.lists()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	v, data, err := l.Export(req.Msg.GetName())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	meta, err := l.Meta(req.Msg.GetName())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.ExportListResponse{
		Name: meta.Name, Version: v, Filter: data, Format: BloomFormat, Count: int64(meta.Count),
	}), nil
}

// featuresService shows the current feature state of one entity.
type featuresService struct {
	eng *engine.Engine
	log *slog.Logger
}

func (s *featuresService) ShowFeatures(ctx context.Context, req *connect.Request[riskv1.ShowFeaturesRequest]) (*connect.Response[riskv1.ShowFeaturesResponse], error) {
	m := req.Msg
	v := m.GetValue()
	if v == "" {
		return nil, invalid("value", "required")
	}
	if len(v) > maxListValue {
		return nil, invalid("value", fmt.Sprintf("longer than %d bytes", maxListValue))
	}
	norm := s.eng.Normalizer()
	var p event.Pseudonyms
	switch m.GetKind() {
	case riskv1.EntityKind_ENTITY_KIND_ACCOUNT:
		p.Account = norm.Pseudonym(ingest.KindAccount, v)
	case riskv1.EntityKind_ENTITY_KIND_DEVICE:
		p.Device = norm.Pseudonym(ingest.KindDevice, v)
	case riskv1.EntityKind_ENTITY_KIND_IP:
		addr, err := netip.ParseAddr(v)
		if err != nil {
			return nil, invalid("value", "not an IP address")
		}
		addr = addr.Unmap()
		bits := 64
		if addr.Is4() {
			bits = 24
		}
		pfx, _ := addr.Prefix(bits)
		p.IP = norm.Pseudonym(ingest.KindIP, addr.String())
		p.IPPrefix = norm.Pseudonym(ingest.KindIPPrefix, pfx.String())
	default:
		return nil, invalid("kind", "must be ACCOUNT, DEVICE or IP")
	}
	shown, err := s.eng.Features().Show(p)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	defs := map[string]features.Def{}
	for _, d := range s.eng.Rules().Features() {
		defs[d.Name] = d
	}
	out := &riskv1.ShowFeaturesResponse{AsOf: timestamppb.New(s.eng.Clock().Now())}
	for _, sh := range shown {
		d := defs[sh.Name]
		f := &riskv1.ShownFeature{Name: sh.Name, Key: sh.Key, Aggregation: d.Agg.String(), LastAt: tsPB(sh.LastAt)}
		switch {
		case !sh.Value.Present:
			f.Value = structpb.NewNullValue()
		case d.Kind == features.KindBool:
			f.Value = structpb.NewBoolValue(sh.Value.Bool)
		case d.Kind == features.KindFloat:
			f.Value = structpb.NewNumberValue(sh.Value.Float)
		default:
			f.Value = structpb.NewNumberValue(float64(sh.Value.Int))
		}
		out.Features = append(out.Features, f)
	}
	return connect.NewResponse(out), nil
}
