package ingest

import "time"

// Bounds on what an event may carry, as documented in api/risk/v1/event.proto.
// Validation rejects anything past them. Lengths are in bytes of UTF-8.
const (
	MaxIDLen          = 128 // event_id, account_id, org_id, device and payment identifiers, site_id, beacon ids
	MaxShortLen       = 32  // platform, provider, login.method, payment.kind, attendance.method
	MaxTextLen        = 128 // model, os_version, app_version, carrier, wifi_ssid, cell_id, failure_reason, hook framework names
	MaxUserAgentLen   = 512
	MaxBSSIDLen       = 64
	MaxIPLen          = 64 // an IPv6 literal with a zone fits
	MaxTimezoneLen    = 64
	MaxLanguageLen    = 35 // BCP 47
	MaxActionLen      = 64 // service_log.action
	MaxResourceLen    = 1024
	MaxQueryLen       = 1024
	MaxPackageLen     = 256 // one installed or flagged package name
	MaxPackages       = 1000
	MaxHookFrameworks = 32
	MaxBeacons        = 32
	MaxAttributes     = 32
	MaxAttrKeyLen     = 64
	MaxAttrValueLen   = 256
	MaxAmountMinor    = 1_000_000_000_000_000 // 10^15 minor units
	MaxAccuracyM      = 100_000
	MaxStatus         = 999

	// MaxEventBytes bounds the wire size of one valid Event (every field at its
	// bound, with protobuf framing, rounded up). A server can size its request
	// limit as MaxEventBytes times the events it accepts per message.
	MaxEventBytes = 1 << 20

	// MaxFuture is how far ahead of the server's clock occurred_at may be
	// (DESIGN.md: clocks drift; more than this is a caller bug).
	MaxFuture = 5 * time.Minute

	// DefaultMaxEventAge is the default lateness bound (--max-event-age).
	DefaultMaxEventAge = 24 * time.Hour

	// CoordDecimals is how many decimal places stored coordinates keep:
	// 0.001° is about 111 m of latitude (less of longitude away from the
	// equator), DESIGN.md's "about 100 m".
	CoordDecimals = 3
)
