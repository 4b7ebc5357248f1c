package ingest

import (
	"strconv"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/event"
)

// FromStored rebuilds an in-memory event from its stored form (what
// Normalize returned and PutEvent wrote), for backtests and replays. The
// pseudonyms stand in for the raw values: ev.Device.IMEI holds the IMEI's
// pseudonym, ev.Network.IP the IP's (so a rule that parses the IP as an
// address does not match in a backtest), coordinates are the coarse ones. ev.P
// is filled from the stored pseudonyms, so features key exactly as they did
// live. Only the structure is checked (ids, type, time), not the input
// bounds: stored text may legitimately be longer after scrubbing.
func FromStored(pb *riskv1.Event) (*event.Event, error) {
	if pb == nil {
		return nil, fieldErr("event", "required")
	}
	if err := checkStored(pb.EventId, int32(pb.Type), pb.OccurredAt != nil && pb.OccurredAt.CheckValid() == nil, pb.AccountId); err != nil {
		return nil, err
	}
	ev := &event.Event{
		EventID:    pb.EventId,
		Type:       event.Type(pb.Type),
		OccurredAt: pb.OccurredAt.AsTime(),
		AccountID:  pb.AccountId,
		OrgID:      pb.OrgId,
		Attributes: pb.Attributes,
	}
	ev.TypeName = ev.Type.String()
	if d := pb.Device; d != nil {
		ev.Has.Device = true
		ev.Device = event.Device{
			DeviceID: d.DeviceId, IMEI: d.Imei, IDFA: d.Idfa, AndroidID: d.AndroidId, OAID: d.Oaid,
			MAC: d.Mac, IMSI: d.Imsi, Platform: d.Platform, Model: d.Model, OSVersion: d.OsVersion,
			AppVersion: d.AppVersion, Rooted: d.Rooted, Emulator: d.Emulator,
			MockLocationEnabled: d.MockLocationEnabled, DeveloperMode: d.DeveloperMode,
			HookFrameworks: d.HookFrameworks, InstalledPackages: d.InstalledPackages,
			Timezone: d.Timezone, Language: d.Language, FlaggedPackages: d.FlaggedPackages,
		}
	}
	if nw := pb.Network; nw != nil {
		ev.Has.Network = true
		ev.Network = event.Network{
			IP: nw.Ip, UserAgent: nw.UserAgent, Carrier: nw.Carrier, WifiBSSID: nw.WifiBssid,
			WifiSSID: nw.WifiSsid, CellID: nw.CellId, VPN: nw.Vpn, Proxy: nw.Proxy,
		}
		ev.P.IPPrefix = nw.IpPrefix // event.Network has no field for it
	}
	if l := pb.Location; l != nil {
		ev.Has.Location = true
		ev.Location = event.Location{Latitude: l.Latitude, Longitude: l.Longitude, AccuracyM: l.AccuracyM, Provider: l.Provider, Mocked: l.Mocked}
	}
	if l := pb.Login; l != nil {
		ev.Has.Login = true
		ev.Login = event.LoginDetail{Success: l.Success, Method: l.Method, FailureReason: l.FailureReason}
	}
	if p := pb.Payment; p != nil {
		ev.Has.Payment = true
		ev.Payment = event.PaymentDetail{AmountMinor: p.AmountMinor, Currency: p.Currency, Kind: p.Kind, PayeeAccountID: p.PayeeAccountId, InstrumentID: p.InstrumentId}
	}
	if a := pb.Attendance; a != nil {
		ev.Has.Attendance = true
		ev.Attendance = event.AttendanceDetail{SiteID: a.SiteId, Method: a.Method, BeaconIDs: a.BeaconIds}
	}
	if s := pb.ServiceLog; s != nil {
		ev.Has.ServiceLog = true
		ev.ServiceLog = event.ServiceLogDetail{Action: s.Action, Resource: s.Resource, Query: s.Query, Status: s.Status}
	}
	storedPseudonyms(ev)
	return ev, nil
}

// storedPseudonyms sets ev.P from the event's own identifiers, which in a
// stored event are the pseudonyms already. P.IPPrefix has no field of its
// own in event.Network: the caller sets it.
func storedPseudonyms(ev *event.Event) {
	p := &ev.P
	p.Account, p.Org = ev.AccountID, ev.OrgID
	if ev.Has.Device {
		dv := &ev.Device
		p.Device, p.IMEI, p.IDFA, p.AndroidID, p.OAID, p.MAC, p.IMSI = dv.DeviceID, dv.IMEI, dv.IDFA, dv.AndroidID, dv.OAID, dv.MAC, dv.IMSI
	}
	if ev.Has.Network {
		p.IP, p.BSSID = ev.Network.IP, ev.Network.WifiBSSID
	}
	if ev.Has.Location {
		p.CoarseLat, p.CoarseLon = ev.Location.Latitude, ev.Location.Longitude
	}
	if ev.Has.Payment {
		p.Payee, p.Instrument = ev.Payment.PayeeAccountID, ev.Payment.InstrumentID
	}
	if ev.Has.Attendance {
		p.Site = ev.Attendance.SiteID
	}
}

// checkStored is the structure FromStored and DecodeStored require of a
// stored event: an id, a known type, a valid time and an account.
func checkStored(id string, typ int32, validTime bool, account string) error {
	switch {
	case id == "":
		return fieldErr("event_id", "required")
	case typ <= int32(riskv1.EventType_EVENT_TYPE_UNSPECIFIED) || typ > int32(riskv1.EventType_EVENT_TYPE_SERVICE_LOG):
		return fieldErr("type", "unknown event type "+strconv.Itoa(int(typ)))
	case !validTime:
		return fieldErr("occurred_at", "not a valid timestamp")
	case account == "":
		return fieldErr("account_id", "required")
	}
	return nil
}
