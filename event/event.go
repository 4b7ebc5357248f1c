// Package event defines Event, the validated and normalized form of one action
// that every stage after the API edge reads: features key on it, rules run on
// it, the engine records it.
//
// An Event holds the caller's raw values only in memory, for the one
// evaluation that needs them (a rule may test an IP against a CIDR); every
// identifier also has its keyed pseudonym in P, and only P ever reaches a
// key, a stored value or a log line. Struct tags name the fields as the proto
// does, so that a rule says login.success, device.rooted, network.ip.
//
// An Event is built once by package ingest and is read-only afterwards; it is
// safe to share between goroutines.
package event

import "time"

// Type is the kind of action. The numbers match risk.v1.EventType.
type Type uint8

// Event types.
const (
	TypeUnspecified Type = iota
	Login
	Register
	PasswordReset
	Payment
	Attendance
	DeviceReport
	ServiceLog
	numTypes
)

var typeNames = [...]string{"UNSPECIFIED", "LOGIN", "REGISTER", "PASSWORD_RESET", "PAYMENT", "ATTENDANCE", "DEVICE_REPORT", "SERVICE_LOG"}

// String returns the type's short name: LOGIN, PAYMENT ...
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "UNKNOWN"
}

// Types lists every specified type, in number order.
func Types() []Type {
	out := make([]Type, 0, numTypes-1)
	for t := Login; t < numTypes; t++ {
		out = append(out, t)
	}
	return out
}

// ParseType returns the type named s (LOGIN or EVENT_TYPE_LOGIN), and false
// when there is none.
func ParseType(s string) (Type, bool) {
	const long = "EVENT_TYPE_"
	if len(s) > len(long) && s[:len(long)] == long {
		s = s[len(long):]
	}
	for t := Login; t < numTypes; t++ {
		if typeNames[t] == s {
			return t, true
		}
	}
	return TypeUnspecified, false
}

// Event is one validated, normalized action.
type Event struct {
	EventID    string            `expr:"event_id"`
	Type       Type              `expr:"-"`
	TypeName   string            `expr:"type"` // LOGIN, PAYMENT ...
	OccurredAt time.Time         `expr:"occurred_at"`
	AccountID  string            `expr:"account_id"`
	OrgID      string            `expr:"org_id"`
	Device     Device            `expr:"device"`
	Network    Network           `expr:"network"`
	Location   Location          `expr:"location"`
	Login      LoginDetail       `expr:"login"`
	Payment    PaymentDetail     `expr:"payment"`
	Attendance AttendanceDetail  `expr:"attendance"`
	ServiceLog ServiceLogDetail  `expr:"service_log"`
	Attributes map[string]string `expr:"attributes"`

	// Has says which optional parts the caller sent.
	Has Presence `expr:"has"`
	// P holds the keyed pseudonyms of the identifiers above.
	P Pseudonyms `expr:"-"`
}

// Presence says which optional messages were set on the event.
type Presence struct {
	Device     bool `expr:"device"`
	Network    bool `expr:"network"`
	Location   bool `expr:"location"`
	Login      bool `expr:"login"`
	Payment    bool `expr:"payment"`
	Attendance bool `expr:"attendance"`
	ServiceLog bool `expr:"service_log"`
}

// Device mirrors risk.v1.Device.
type Device struct {
	DeviceID            string   `expr:"device_id"`
	IMEI                string   `expr:"imei"`
	IDFA                string   `expr:"idfa"`
	AndroidID           string   `expr:"android_id"`
	OAID                string   `expr:"oaid"`
	MAC                 string   `expr:"mac"`
	IMSI                string   `expr:"imsi"`
	Platform            string   `expr:"platform"`
	Model               string   `expr:"model"`
	OSVersion           string   `expr:"os_version"`
	AppVersion          string   `expr:"app_version"`
	Rooted              bool     `expr:"rooted"`
	Emulator            bool     `expr:"emulator"`
	MockLocationEnabled bool     `expr:"mock_location_enabled"`
	DeveloperMode       bool     `expr:"developer_mode"`
	HookFrameworks      []string `expr:"hook_frameworks"`
	InstalledPackages   []string `expr:"installed_packages"`
	Timezone            string   `expr:"timezone"`
	Language            string   `expr:"language"`
	FlaggedPackages     []string `expr:"flagged_packages"`
}

// Network mirrors risk.v1.Network.
type Network struct {
	IP        string `expr:"ip"`
	UserAgent string `expr:"user_agent"`
	Carrier   string `expr:"carrier"`
	WifiBSSID string `expr:"wifi_bssid"`
	WifiSSID  string `expr:"wifi_ssid"`
	CellID    string `expr:"cell_id"`
	VPN       bool   `expr:"vpn"`
	Proxy     bool   `expr:"proxy"`
}

// Location mirrors risk.v1.Location. In memory the coordinates are the
// caller's; what is stored is coarsened (see ingest).
type Location struct {
	Latitude  float64 `expr:"latitude"`
	Longitude float64 `expr:"longitude"`
	AccuracyM float64 `expr:"accuracy_m"`
	Provider  string  `expr:"provider"`
	Mocked    bool    `expr:"mocked"`
}

// LoginDetail mirrors risk.v1.Login.
type LoginDetail struct {
	Success       bool   `expr:"success"`
	Method        string `expr:"method"`
	FailureReason string `expr:"failure_reason"`
}

// PaymentDetail mirrors risk.v1.Payment.
type PaymentDetail struct {
	AmountMinor    int64  `expr:"amount_minor"`
	Currency       string `expr:"currency"`
	Kind           string `expr:"kind"`
	PayeeAccountID string `expr:"payee_account_id"`
	InstrumentID   string `expr:"instrument_id"`
}

// AttendanceDetail mirrors risk.v1.Attendance.
type AttendanceDetail struct {
	SiteID    string   `expr:"site_id"`
	Method    string   `expr:"method"`
	BeaconIDs []string `expr:"beacon_ids"`
}

// ServiceLogDetail mirrors risk.v1.ServiceLog.
type ServiceLogDetail struct {
	Action   string `expr:"action"`
	Resource string `expr:"resource"`
	Query    string `expr:"query"`
	Status   int32  `expr:"status"`
}

// Pseudonyms holds the keyed pseudonym of each identifier the event carries;
// empty where the identifier was absent. These, never the raw values, are
// what keys, stored records and logs use.
type Pseudonyms struct {
	Account    string
	Org        string
	Device     string // device.device_id
	IMEI       string
	IDFA       string
	AndroidID  string
	OAID       string
	MAC        string
	IMSI       string
	IP         string
	IPPrefix   string // the IP's /24 (IPv4) or /64 (IPv6)
	BSSID      string
	Payee      string
	Instrument string
	Site       string
	// Coarse location, about 100 m: what is stored and what features use.
	CoarseLat, CoarseLon float64
}
