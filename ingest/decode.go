package ingest

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/riskd/riskd/event"
)

// errMalformed: stored bytes that are not a riskv1.Event.
var errMalformed = errors.New("ingest: malformed stored event")

// DecodeStored is FromStored(proto.Unmarshal(data)) into dst, which it
// overwrites, for replays that decode millions of events: no proto message
// is built, and all strings are substrings of one copy of data (one
// allocation, plus one per repeated field and for attributes). The result
// and the failures are the same as FromStored's on what proto.Unmarshal
// accepts (a test compares them, field by field and under fuzzing); bytes
// proto.Unmarshal refuses (malformed, invalid UTF-8) fail here too.
// Unknown fields are skipped, as proto.Unmarshal does.
func DecodeStored(dst *event.Event, data []byte) error {
	*dst = event.Event{}
	s := string(data)
	d := storedDecoder{s: s, b: unsafe.Slice(unsafe.StringData(s), len(s))}
	if err := d.event(dst, 0, len(s)); err != nil {
		return err
	}
	validTime := d.hasTime && d.sec >= minTimestamp && d.sec <= maxTimestamp && d.nanos >= 0 && d.nanos < 1e9
	if err := checkStored(dst.EventID, d.typ, validTime, dst.AccountID); err != nil {
		return err
	}
	dst.Type = event.Type(d.typ)
	dst.TypeName = dst.Type.String()
	dst.OccurredAt = time.Unix(d.sec, int64(d.nanos)).UTC()
	storedPseudonyms(dst) // P.IPPrefix was decoded in place
	return nil
}

// The range of google.protobuf.Timestamp (Timestamp.CheckValid).
const (
	minTimestamp = -62135596800 // 0001-01-01T00:00:00Z
	maxTimestamp = 253402300799 // 9999-12-31T23:59:59Z
)

// storedDecoder walks the protobuf wire format of a riskv1.Event. b is s as
// bytes (read only), so that values come out as substrings of s.
type storedDecoder struct {
	s string
	b []byte

	typ          int32
	hasTime      bool
	sec          int64
	nanos        int32
	pos, end     int // the field being read
	num          protowire.Number
	wt           protowire.Type
	vint         uint64
	va, vb       int // a length-delimited value: s[va:vb]
	malformedErr error
}

// next reads the next field of s[pos:end] and its value: vint for varint
// and fixed64 values, va:vb for length-delimited ones. It returns false at
// end or on malformed input (d.malformedErr). A group is skipped.
func (d *storedDecoder) next() bool {
	for d.pos < d.end {
		num, wt, n := protowire.ConsumeTag(d.b[d.pos:d.end])
		if n < 0 {
			return d.fail(n)
		}
		if num > protowire.MaxValidNumber { // ConsumeTag checks only the lower bound; proto.Unmarshal both
			d.malformedErr = fmt.Errorf("%w: field number %d out of range at byte %d", errMalformed, num, d.pos)
			return false
		}
		d.pos += n
		d.num, d.wt = num, wt
		rest := d.b[d.pos:d.end]
		switch wt {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(rest)
			if n < 0 {
				return d.fail(n)
			}
			d.vint, d.pos = v, d.pos+n
		case protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(rest)
			if n < 0 {
				return d.fail(n)
			}
			d.vint, d.pos = v, d.pos+n
		case protowire.BytesType:
			l, n := protowire.ConsumeVarint(rest)
			if n < 0 {
				return d.fail(n)
			}
			if l > uint64(len(rest)-n) {
				return d.fail(-1)
			}
			d.va = d.pos + n
			d.vb = d.va + int(l)
			d.pos = d.vb
		default:
			n := protowire.ConsumeFieldValue(num, wt, rest)
			if n < 0 {
				return d.fail(n)
			}
			d.pos += n
			continue // no field of ours: skip
		}
		return true
	}
	return false
}

func (d *storedDecoder) fail(n int) bool {
	d.malformedErr = fmt.Errorf("%w: %v at byte %d", errMalformed, protowire.ParseError(n), d.pos)
	return false
}

// str returns the current length-delimited value as a string.
func (d *storedDecoder) str() (string, bool) {
	v := d.s[d.va:d.vb]
	if !utf8.ValidString(v) {
		d.malformedErr = fmt.Errorf("%w: invalid UTF-8 in field %d", errMalformed, d.num)
		return "", false
	}
	return v, true
}

// within runs fn over the sub-message s[va:vb] and resumes after it.
func (d *storedDecoder) within(fn func() bool) bool {
	pos, end := d.pos, d.end
	d.pos, d.end = d.va, d.vb
	ok := fn()
	d.pos, d.end = pos, end
	return ok && d.malformedErr == nil
}

// fields calls set for each field of the current message; set returns
// false to stop (with malformedErr set). Values of the wrong wire type are
// unknown fields, as proto.Unmarshal treats them.
func (d *storedDecoder) fields(set func(num protowire.Number, wt protowire.Type) bool) bool {
	for d.next() {
		if !set(d.num, d.wt) {
			return false
		}
	}
	return d.malformedErr == nil
}

// setStr stores a string field when the wire type fits.
func (d *storedDecoder) setStr(wt protowire.Type, dst *string) bool {
	if wt != protowire.BytesType {
		return true
	}
	v, ok := d.str()
	*dst = v
	return ok
}

func (d *storedDecoder) addStr(wt protowire.Type, dst *[]string) bool {
	if wt != protowire.BytesType {
		return true
	}
	v, ok := d.str()
	*dst = append(*dst, v)
	return ok
}

func (d *storedDecoder) setBool(wt protowire.Type, dst *bool) bool {
	if wt == protowire.VarintType {
		*dst = d.vint != 0
	}
	return true
}

func (d *storedDecoder) setDouble(wt protowire.Type, dst *float64) bool {
	if wt == protowire.Fixed64Type {
		*dst = math.Float64frombits(d.vint)
	}
	return true
}

func (d *storedDecoder) event(ev *event.Event, start, end int) error {
	d.pos, d.end = start, end
	ok := d.fields(func(num protowire.Number, wt protowire.Type) bool {
		msg := wt == protowire.BytesType
		switch num {
		case 1:
			return d.setStr(wt, &ev.EventID)
		case 2:
			if wt == protowire.VarintType {
				d.typ = int32(d.vint)
			}
		case 3:
			if msg {
				d.hasTime = true
				return d.within(func() bool { return d.timestamp() })
			}
		case 4:
			return d.setStr(wt, &ev.AccountID)
		case 5:
			return d.setStr(wt, &ev.OrgID)
		case 6:
			if msg {
				ev.Has.Device = true
				return d.within(func() bool { return d.device(&ev.Device) })
			}
		case 7:
			if msg {
				ev.Has.Network = true
				return d.within(func() bool { return d.network(&ev.Network, &ev.P.IPPrefix) })
			}
		case 8:
			if msg {
				ev.Has.Location = true
				return d.within(func() bool { return d.location(&ev.Location) })
			}
		case 10:
			if msg {
				ev.Has.Login = true
				return d.within(func() bool { return d.login(&ev.Login) })
			}
		case 11:
			if msg {
				ev.Has.Payment = true
				return d.within(func() bool { return d.payment(&ev.Payment) })
			}
		case 12:
			if msg {
				ev.Has.Attendance = true
				return d.within(func() bool { return d.attendance(&ev.Attendance) })
			}
		case 13:
			if msg {
				ev.Has.ServiceLog = true
				return d.within(func() bool { return d.serviceLog(&ev.ServiceLog) })
			}
		case 20:
			if msg {
				if ev.Attributes == nil {
					ev.Attributes = map[string]string{}
				}
				return d.within(func() bool { return d.attribute(ev.Attributes) })
			}
		}
		return true
	})
	if !ok {
		return d.malformedErr
	}
	return nil
}

func (d *storedDecoder) timestamp() bool {
	return d.fields(func(num protowire.Number, wt protowire.Type) bool {
		if wt != protowire.VarintType {
			return true
		}
		switch num {
		case 1:
			d.sec = int64(d.vint)
		case 2:
			d.nanos = int32(d.vint)
		}
		return true
	})
}

func (d *storedDecoder) device(dv *event.Device) bool {
	return d.fields(func(num protowire.Number, wt protowire.Type) bool {
		switch num {
		case 1:
			return d.setStr(wt, &dv.DeviceID)
		case 2:
			return d.setStr(wt, &dv.IMEI)
		case 3:
			return d.setStr(wt, &dv.IDFA)
		case 4:
			return d.setStr(wt, &dv.AndroidID)
		case 5:
			return d.setStr(wt, &dv.OAID)
		case 6:
			return d.setStr(wt, &dv.MAC)
		case 7:
			return d.setStr(wt, &dv.IMSI)
		case 8:
			return d.setStr(wt, &dv.Platform)
		case 9:
			return d.setStr(wt, &dv.Model)
		case 10:
			return d.setStr(wt, &dv.OSVersion)
		case 11:
			return d.setStr(wt, &dv.AppVersion)
		case 12:
			return d.setBool(wt, &dv.Rooted)
		case 13:
			return d.setBool(wt, &dv.Emulator)
		case 14:
			return d.setBool(wt, &dv.MockLocationEnabled)
		case 15:
			return d.setBool(wt, &dv.DeveloperMode)
		case 16:
			return d.addStr(wt, &dv.HookFrameworks)
		case 17:
			return d.addStr(wt, &dv.InstalledPackages)
		case 18:
			return d.setStr(wt, &dv.Timezone)
		case 19:
			return d.setStr(wt, &dv.Language)
		case 20:
			return d.addStr(wt, &dv.FlaggedPackages)
		}
		return true
	})
}

func (d *storedDecoder) network(nw *event.Network, prefix *string) bool {
	return d.fields(func(num protowire.Number, wt protowire.Type) bool {
		switch num {
		case 1:
			return d.setStr(wt, &nw.IP)
		case 2:
			return d.setStr(wt, &nw.UserAgent)
		case 3:
			return d.setStr(wt, &nw.Carrier)
		case 4:
			return d.setStr(wt, &nw.WifiBSSID)
		case 5:
			return d.setStr(wt, &nw.WifiSSID)
		case 6:
			return d.setStr(wt, &nw.CellID)
		case 7:
			return d.setBool(wt, &nw.VPN)
		case 8:
			return d.setBool(wt, &nw.Proxy)
		case 9:
			return d.setStr(wt, prefix)
		}
		return true
	})
}

func (d *storedDecoder) location(l *event.Location) bool {
	return d.fields(func(num protowire.Number, wt protowire.Type) bool {
		switch num {
		case 1:
			return d.setDouble(wt, &l.Latitude)
		case 2:
			return d.setDouble(wt, &l.Longitude)
		case 3:
			return d.setDouble(wt, &l.AccuracyM)
		case 4:
			return d.setStr(wt, &l.Provider)
		case 5:
			return d.setBool(wt, &l.Mocked)
		}
		return true
	})
}

func (d *storedDecoder) login(l *event.LoginDetail) bool {
	return d.fields(func(num protowire.Number, wt protowire.Type) bool {
		switch num {
		case 1:
			return d.setBool(wt, &l.Success)
		case 2:
			return d.setStr(wt, &l.Method)
		case 3:
			return d.setStr(wt, &l.FailureReason)
		}
		return true
	})
}

func (d *storedDecoder) payment(p *event.PaymentDetail) bool {
	return d.fields(func(num protowire.Number, wt protowire.Type) bool {
		switch num {
		case 1:
			if wt == protowire.VarintType {
				p.AmountMinor = int64(d.vint)
			}
		case 2:
			return d.setStr(wt, &p.Currency)
		case 3:
			return d.setStr(wt, &p.Kind)
		case 4:
			return d.setStr(wt, &p.PayeeAccountID)
		case 5:
			return d.setStr(wt, &p.InstrumentID)
		}
		return true
	})
}

func (d *storedDecoder) attendance(a *event.AttendanceDetail) bool {
	return d.fields(func(num protowire.Number, wt protowire.Type) bool {
		switch num {
		case 1:
			return d.setStr(wt, &a.SiteID)
		case 2:
			return d.setStr(wt, &a.Method)
		case 3:
			return d.addStr(wt, &a.BeaconIDs)
		}
		return true
	})
}

func (d *storedDecoder) serviceLog(sl *event.ServiceLogDetail) bool {
	return d.fields(func(num protowire.Number, wt protowire.Type) bool {
		switch num {
		case 1:
			return d.setStr(wt, &sl.Action)
		case 2:
			return d.setStr(wt, &sl.Resource)
		case 3:
			return d.setStr(wt, &sl.Query)
		case 4:
			if wt == protowire.VarintType {
				sl.Status = int32(d.vint)
			}
		}
		return true
	})
}

// attribute decodes one map entry (key 1, value 2; either may be absent).
func (d *storedDecoder) attribute(m map[string]string) bool {
	var k, v string
	ok := d.fields(func(num protowire.Number, wt protowire.Type) bool {
		switch num {
		case 1:
			return d.setStr(wt, &k)
		case 2:
			return d.setStr(wt, &v)
		}
		return true
	})
	if ok {
		m[k] = v
	}
	return ok
}
