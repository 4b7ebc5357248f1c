package main

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
)

// The default catalog on Redis, as teams usually build it. Window
// arithmetic follows riskd's (60 slots per window; an event at t counts in
// slot ceil(t/gran); a read at t covers the 60 slots ending at t's), so that
// counts and sums can be compared exactly.
const slots = 60

type window struct {
	gran int64 // ns
	ttl  time.Duration
}

func win(w time.Duration) window {
	return window{gran: int64(w) / slots, ttl: w + w/slots}
}

var (
	w10m = win(10 * time.Minute)
	w1h  = win(time.Hour)
	w24h = win(24 * time.Hour)
	w7d  = win(7 * 24 * time.Hour)
	w30d = win(30 * 24 * time.Hour)
)

const horizon = 90 * 24 * time.Hour

// redisFeatures are the catalog features built on Redis here: the stateful
// ones of riskd's original default catalog.
var redisFeatures = []string{
	"login_failures_account_10m", "login_failures_ip_1h", "ip_distinct_accounts_login_1h",
	"device_distinct_accounts_24h", "account_distinct_devices_30d", "account_device_seen_before",
	"account_ip_prefix_seen_before", "seconds_since_last_login_account", "km_from_last_location_account",
	"speed_kmh_from_last_location_account", "payments_account_1h", "payment_amount_account_24h",
	"payee_distinct_payers_24h", "attendance_device_distinct_accounts_7d", "attendance_same_coordinates_account_30d",
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) == (b < 0) {
		q++
	}
	return q
}

func (w window) slot(t int64) int64 { return ceilDiv(t, w.gran) }

// buckets are the 60 bucket keys a read at slot hi covers.
func buckets(prefix string, hi int64) []string {
	out := make([]string, slots)
	for i := range out {
		out[i] = prefix + strconv.FormatInt(hi-int64(i), 10)
	}
	return out
}

// redisOp is one feature's read, queued on the pipeline, and what it
// yields once the pipeline has run.
type redisOp struct {
	name  string
	value func() (features.Value, error)
}

// redisApply reads every applicable feature of ev as of its time and then
// records ev, in one pipelined round trip: reads first, then writes, which
// Redis runs in order. It returns the values read, by feature name.
func redisApply(ctx context.Context, rdb *redis.Client, ev *event.Event) (map[string]features.Value, error) {
	t := ev.OccurredAt.UnixNano()
	p := &ev.P
	pipe := rdb.Pipeline()
	var ops []redisOp
	login, payment, attendance := ev.Type == event.Login, ev.Type == event.Payment, ev.Type == event.Attendance
	failed := login && !ev.Login.Success

	// Sliding-window counts on sorted sets (score: the slot).
	zcount := func(name, key string, w window, counts bool) {
		hi := w.slot(t)
		c := pipe.ZCount(ctx, key, strconv.FormatInt(hi-slots+1, 10), strconv.FormatInt(hi, 10))
		ops = append(ops, redisOp{name, func() (features.Value, error) { return features.IntValue(c.Val()), c.Err() }})
		if counts {
			pipe.ZAdd(ctx, key, redis.Z{Score: float64(hi), Member: ev.EventID})
			pipe.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(hi-slots+1, 10))
			pipe.Expire(ctx, key, w.ttl)
		}
	}
	// Per-bucket counters (INCRBY/EXPIRE), read with MGET.
	bucketSum := func(name, prefix string, w window, add int64, counts bool) {
		hi := w.slot(t)
		c := pipe.MGet(ctx, buckets(prefix, hi)...)
		ops = append(ops, redisOp{name, func() (features.Value, error) {
			var n int64
			for _, v := range c.Val() {
				if s, ok := v.(string); ok {
					x, err := strconv.ParseInt(s, 10, 64)
					if err != nil {
						return features.Value{}, err
					}
					n += x
				}
			}
			return features.IntValue(n), c.Err()
		}})
		if counts {
			k := prefix + strconv.FormatInt(hi, 10)
			pipe.IncrBy(ctx, k, add)
			pipe.Expire(ctx, k, w.ttl)
		}
	}
	// Distinct counts: a HyperLogLog per bucket, PFCOUNT over the window's.
	distinct := func(name, prefix string, w window, member string) {
		hi := w.slot(t)
		c := pipe.PFCount(ctx, buckets(prefix, hi)...)
		ops = append(ops, redisOp{name, func() (features.Value, error) { return features.IntValue(c.Val()), c.Err() }})
		if member != "" {
			k := prefix + strconv.FormatInt(hi, 10)
			pipe.PFAdd(ctx, k, member)
			pipe.Expire(ctx, k, w.ttl)
		}
	}
	// Seen-before: a hash per account, field -> last time.
	seen := func(name, key, field string) {
		c := pipe.HGet(ctx, key, field)
		ops = append(ops, redisOp{name, func() (features.Value, error) {
			s, err := c.Result()
			if errors.Is(err, redis.Nil) {
				return features.BoolValue(false), nil
			}
			if err != nil {
				return features.Value{}, err
			}
			at, err := strconv.ParseInt(s, 10, 64)
			return features.BoolValue(err == nil && at > t-int64(horizon)), err
		}})
		pipe.HSet(ctx, key, field, strconv.FormatInt(t, 10))
		pipe.Expire(ctx, key, horizon)
	}

	acct := "{" + p.Account + "}"
	if login {
		zcount("login_failures_account_10m", "lf10m:"+acct, w10m, failed)
		if p.IP != "" {
			zcount("login_failures_ip_1h", "lfip1h:"+p.IP, w1h, failed)
			distinct("ip_distinct_accounts_login_1h", "ipda1h:"+p.IP+":", w1h, p.Account)
		}
	}
	if p.Device != "" {
		distinct("device_distinct_accounts_24h", "dda24h:"+p.Device+":", w24h, p.Account)
	}
	distinct("account_distinct_devices_30d", "add30d:"+acct+":", w30d, p.Device)
	if p.Device != "" {
		seen("account_device_seen_before", "seendev:"+acct, p.Device)
	}
	if p.IPPrefix != "" {
		seen("account_ip_prefix_seen_before", "seenpfx:"+acct, p.IPPrefix)
	}
	// Last values: one hash per account.
	lastKey := "last:" + acct
	var last *redis.SliceCmd
	if login || ev.Has.Location {
		last = pipe.HMGet(ctx, lastKey, "login", "loc_t", "lat", "lon")
	}
	if payment {
		zcount("payments_account_1h", "pay1h:"+acct, w1h, true)
		bucketSum("payment_amount_account_24h", "paysum24h:"+acct+":", w24h, ev.Payment.AmountMinor, true)
		if p.Payee != "" {
			distinct("payee_distinct_payers_24h", "payee24h:"+p.Payee+":", w24h, p.Account)
		}
	}
	if attendance {
		if p.Device != "" {
			distinct("attendance_device_distinct_accounts_7d", "att7d:"+p.Device+":", w7d, p.Account)
		}
		if ev.Has.Location {
			loc := strconv.FormatFloat(p.CoarseLat, 'f', -1, 64) + "," + strconv.FormatFloat(p.CoarseLon, 'f', -1, 64)
			bucketSum("attendance_same_coordinates_account_30d", "attloc30d:"+acct+":"+loc+":", w30d, 1, true)
		}
	}
	if login || ev.Has.Location {
		var fields []any
		if login {
			fields = append(fields, "login", strconv.FormatInt(t, 10))
		}
		if ev.Has.Location {
			fields = append(fields, "loc_t", strconv.FormatInt(t, 10),
				"lat", strconv.FormatFloat(p.CoarseLat, 'g', -1, 64), "lon", strconv.FormatFloat(p.CoarseLon, 'g', -1, 64))
		}
		pipe.HSet(ctx, lastKey, fields...)
		pipe.Expire(ctx, lastKey, horizon)
	}

	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make(map[string]features.Value, len(ops)+3)
	for _, op := range ops {
		v, err := op.value()
		if err != nil {
			return nil, err
		}
		out[op.name] = v
	}
	if last != nil {
		vals := last.Val()
		num := func(i int) (float64, bool) {
			if i >= len(vals) {
				return 0, false
			}
			s, ok := vals[i].(string)
			if !ok {
				return 0, false
			}
			f, err := strconv.ParseFloat(s, 64)
			return f, err == nil
		}
		within := func(at float64) bool { return int64(at) <= t && int64(at) > t-int64(horizon) }
		if login {
			if at, ok := num(0); ok && within(at) {
				out["seconds_since_last_login_account"] = features.FloatValue(float64(t-int64(at)) / 1e9)
			} else {
				out["seconds_since_last_login_account"] = features.Absent(features.KindFloat)
			}
		}
		if ev.Has.Location {
			at, ok1 := num(1)
			lat, ok2 := num(2)
			lon, ok3 := num(3)
			if ok1 && ok2 && ok3 && within(at) {
				km := haversineKM(lat, lon, p.CoarseLat, p.CoarseLon)
				secs := float64(t-int64(at)) / 1e9
				out["km_from_last_location_account"] = features.FloatValue(km)
				out["speed_kmh_from_last_location_account"] = features.FloatValue(km / (max(secs, 1) / 3600))
			} else {
				out["km_from_last_location_account"] = features.Absent(features.KindFloat)
				out["speed_kmh_from_last_location_account"] = features.Absent(features.KindFloat)
			}
		}
	}
	return out, nil
}

// haversineKM is the great-circle distance in km (the formula riskd uses).
func haversineKM(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0088
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}
