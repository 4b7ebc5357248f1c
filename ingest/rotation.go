package ingest

import (
	"net/netip"

	"github.com/riskd/riskd/event"
)

// OldPseudonyms returns ev's pseudonyms (ev.P) as each old key would have
// made them, newest key first; nil when no rotation is under way. It reads
// the raw values ev holds in memory, so it applies to events from
// Normalize, not to FromStored ones. Feature reads use it to find state
// written before a rotation (features.Options.Aliases).
func (n *Normalizer) OldPseudonyms(ev *event.Event) []event.Pseudonyms {
	if len(n.macs) < 2 {
		return nil
	}
	out := make([]event.Pseudonyms, 0, len(n.macs)-1)
	for _, m := range n.macs[1:] {
		ps := func(kind, v string) string {
			if v == "" {
				return ""
			}
			return pseudonymOf(m, kind, v)
		}
		p := ev.P // keeps the coarse coordinates, which are no pseudonyms
		p.Account = ps(KindAccount, ev.AccountID)
		p.Org = ps(KindOrg, ev.OrgID)
		d := &ev.Device
		p.Device, p.IMEI, p.IDFA = ps(KindDevice, d.DeviceID), ps(KindIMEI, d.IMEI), ps(KindIDFA, d.IDFA)
		p.AndroidID, p.OAID = ps(KindAndroidID, d.AndroidID), ps(KindOAID, d.OAID)
		p.MAC, p.IMSI = ps(KindMAC, d.MAC), ps(KindIMSI, d.IMSI)
		p.IP, p.IPPrefix = "", ""
		if addr, err := netip.ParseAddr(ev.Network.IP); err == nil {
			p.IP = ps(KindIP, ev.Network.IP)
			bits := 64
			if addr.Is4() {
				bits = 24
			}
			pfx, _ := addr.Prefix(bits)
			p.IPPrefix = ps(KindIPPrefix, pfx.String())
		}
		p.BSSID = ps(KindBSSID, ev.Network.WifiBSSID)
		p.Payee = ps(KindAccount, ev.Payment.PayeeAccountID)
		p.Instrument = ps(KindInstrument, ev.Payment.InstrumentID)
		p.Site = ps(KindSite, ev.Attendance.SiteID)
		out = append(out, p)
	}
	return out
}
