package server

import (
	"context"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
)

// metrics holds riskd's Prometheus instruments. Registered on a registry of
// its own, so that tests can run many servers in one process.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec   // procedure, code
	latency   *prometheus.HistogramVec // procedure
	decisions *prometheus.CounterVec   // event_type, outcome, degraded
	groupSize prometheus.Histogram
	groupTime prometheus.Histogram
	stalls    prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "riskd", Name: "requests_total", Help: "RPCs served, by procedure and Connect code.",
		}, []string{"procedure", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "riskd", Name: "request_duration_seconds", Help: "RPC latency as the server sees it.",
			Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"procedure"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "riskd", Name: "decisions_total", Help: "Decisions answered, by event type, outcome and whether degraded.",
		}, []string{"event_type", "outcome", "degraded"}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "riskd", Name: "group_commit_size", Help: "Callers served by one synced group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		groupTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "riskd", Name: "group_commit_duration_seconds", Help: "Time of one synced group commit.",
			Buckets: prometheus.ExponentialBuckets(.00005, 2, 12),
		}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "riskd", Name: "store_write_stalls_total", Help: "Times Pebble began stalling writes.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.decisions, m.groupSize, m.groupTime, m.stalls,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// GroupCommitted implements engine.Observer.
func (m *metrics) GroupCommitted(size int, took time.Duration) {
	m.groupSize.Observe(float64(size))
	m.groupTime.Observe(took.Seconds())
}

// WriteStall implements engine.Observer.
func (m *metrics) WriteStall(string) { m.stalls.Inc() }

func (m *metrics) observe(procedure string, start time.Time, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	m.requests.WithLabelValues(procedure, code).Inc()
	m.latency.WithLabelValues(procedure).Observe(time.Since(start).Seconds())
}

func (m *metrics) decided(d *riskv1.Decision) {
	deg := "false"
	if d.GetDegraded() {
		deg = "true"
	}
	m.decisions.WithLabelValues(strings.TrimPrefix(d.GetEventType().String(), "EVENT_TYPE_"),
		strings.TrimPrefix(d.GetOutcome().String(), "OUTCOME_"), deg).Inc()
}

// engineCollector reads the engine's, the rules' and Pebble's own counters
// at scrape time.
type engineCollector struct{ eng *engine.Engine }

var (
	descRuleEvals     = prometheus.NewDesc("riskd_rule_evaluations_total", "Events each rule of the live set was evaluated on.", []string{"rule_id", "mode"}, nil)
	descRuleHits      = prometheus.NewDesc("riskd_rule_hits_total", "Events each rule of the live set fired on.", []string{"rule_id", "mode"}, nil)
	descInFlight      = prometheus.NewDesc("riskd_evaluations_in_flight", "Evaluations under way.", nil, nil)
	descInFlightLimit = prometheus.NewDesc("riskd_evaluations_in_flight_limit", "Evaluations admitted at once now: the adaptive limit, between the minimum and maximum in flight.", nil, nil)
	descCompactions   = prometheus.NewDesc("riskd_pebble_compactions_total", "Pebble compactions.", nil, nil)
	descCompRunning   = prometheus.NewDesc("riskd_pebble_compactions_in_progress", "Pebble compactions running now.", nil, nil)
	descCompDebt      = prometheus.NewDesc("riskd_pebble_compaction_debt_bytes", "Bytes Pebble estimates its compactions must still rewrite to bring the LSM back into shape.", nil, nil)
	descCacheHits     = prometheus.NewDesc("riskd_pebble_block_cache_hits_total", "Pebble block cache hits.", nil, nil)
	descCacheMisses   = prometheus.NewDesc("riskd_pebble_block_cache_misses_total", "Pebble block cache misses.", nil, nil)
	descCacheSize     = prometheus.NewDesc("riskd_pebble_block_cache_bytes", "Pebble block cache size.", nil, nil)
	descMemtable      = prometheus.NewDesc("riskd_pebble_memtable_bytes", "Pebble memtable size.", nil, nil)
	descDiskUsage     = prometheus.NewDesc("riskd_pebble_disk_usage_bytes", "Bytes the store takes on disk.", nil, nil)
	descReadAmp       = prometheus.NewDesc("riskd_pebble_read_amplification", "Pebble read amplification.", nil, nil)
	descFlushes       = prometheus.NewDesc("riskd_pebble_flushes_total", "Pebble memtable flushes.", nil, nil)
	descWALBytes      = prometheus.NewDesc("riskd_pebble_wal_bytes_total", "Bytes written to Pebble's write-ahead log.", nil, nil)
	descFlushBytes    = prometheus.NewDesc("riskd_pebble_flushed_bytes_total", "Table bytes Pebble's flushes wrote.", nil, nil)
	descWALSync       = prometheus.NewDesc("riskd_pebble_wal_sync_seconds", "Time each of Pebble's write-ahead log syncs took; its count is the syncs, each shared by a group commit or more.", nil, nil)
	descCompBytes     = prometheus.NewDesc("riskd_pebble_compacted_bytes_total", "Table bytes Pebble's compactions wrote: with the flushed bytes, the write amplification.", nil, nil)

	descFeatureHits      = prometheus.NewDesc("riskd_feature_state_hits_total", "Feature state periods found in the hot-state cache.", nil, nil)
	descFeatureLoads     = prometheus.NewDesc("riskd_feature_state_loads_total", "Feature state periods not in the cache, read from Pebble.", nil, nil)
	descFeatureFlushes   = prometheus.NewDesc("riskd_feature_flushes_total", "Feature write-back flushes.", nil, nil)
	descFeatureFlushTime = prometheus.NewDesc("riskd_feature_flush_seconds_total", "Time the feature write-back flushes took.", nil, nil)
	descFeatureMerged    = prometheus.NewDesc("riskd_feature_deltas_merged_total", "Merge operands the feature flushes wrote.", nil, nil)
	descFeatureWaiting   = prometheus.NewDesc("riskd_feature_deltas_waiting", "Feature deltas waiting for the next flush.", nil, nil)
	descFeatureRebuilds  = prometheus.NewDesc("riskd_feature_rebuilds_total", "Feature store rebuilds after a failed commit.", nil, nil)
)

func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRuleEvals, descRuleHits, descInFlight, descInFlightLimit, descCompactions, descCompRunning, descCompDebt, descCacheHits,
		descCacheMisses, descCacheSize, descMemtable, descDiskUsage, descReadAmp,
		descFlushes, descWALBytes, descFlushBytes, descCompBytes,
		descFeatureHits, descFeatureLoads, descFeatureFlushes, descFeatureFlushTime, descFeatureMerged, descFeatureWaiting, descFeatureRebuilds, descWALSync} {
		ch <- d
	}
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.eng.Rules().Stats() {
		ch <- prometheus.MustNewConstMetric(descRuleEvals, prometheus.CounterValue, float64(s.Evaluations), s.RuleID, string(s.Mode))
		ch <- prometheus.MustNewConstMetric(descRuleHits, prometheus.CounterValue, float64(s.Hits), s.RuleID, string(s.Mode))
	}
	es := c.eng.Stats()
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(es.InFlight))
	ch <- prometheus.MustNewConstMetric(descInFlightLimit, prometheus.GaugeValue, float64(es.InFlightLimit))
	pm := c.eng.DB().Metrics()
	ch <- prometheus.MustNewConstMetric(descCompactions, prometheus.CounterValue, float64(pm.Compact.Count))
	ch <- prometheus.MustNewConstMetric(descCompRunning, prometheus.GaugeValue, float64(pm.Compact.NumInProgress))
	ch <- prometheus.MustNewConstMetric(descCompDebt, prometheus.GaugeValue, float64(pm.Compact.EstimatedDebt))
	ch <- prometheus.MustNewConstMetric(descCacheHits, prometheus.CounterValue, float64(pm.BlockCache.Hits))
	ch <- prometheus.MustNewConstMetric(descCacheMisses, prometheus.CounterValue, float64(pm.BlockCache.Misses))
	ch <- prometheus.MustNewConstMetric(descCacheSize, prometheus.GaugeValue, float64(pm.BlockCache.Size))
	ch <- prometheus.MustNewConstMetric(descMemtable, prometheus.GaugeValue, float64(pm.MemTable.Size))
	ch <- prometheus.MustNewConstMetric(descDiskUsage, prometheus.GaugeValue, float64(pm.DiskSpaceUsage()))
	ch <- prometheus.MustNewConstMetric(descReadAmp, prometheus.GaugeValue, float64(pm.ReadAmp()))
	w := c.eng.Writes()
	ch <- prometheus.MustNewConstMetric(descFlushes, prometheus.CounterValue, float64(pm.Flush.Count))
	ch <- prometheus.MustNewConstMetric(descWALBytes, prometheus.CounterValue, float64(w.WAL))
	ch <- prometheus.MustNewConstMetric(descFlushBytes, prometheus.CounterValue, float64(w.Flushed))
	ch <- prometheus.MustNewConstMetric(descCompBytes, prometheus.CounterValue, float64(w.Compacted))
	if m, ok := walSyncHistogram(pm.LogWriter.FsyncLatency); ok {
		ch <- m
	}
	fs := c.eng.Features().Stats()
	ch <- prometheus.MustNewConstMetric(descFeatureHits, prometheus.CounterValue, float64(fs.PeriodHits))
	ch <- prometheus.MustNewConstMetric(descFeatureLoads, prometheus.CounterValue, float64(fs.PeriodLoads))
	ch <- prometheus.MustNewConstMetric(descFeatureFlushes, prometheus.CounterValue, float64(fs.Flushes))
	ch <- prometheus.MustNewConstMetric(descFeatureFlushTime, prometheus.CounterValue, fs.FlushTime.Seconds())
	ch <- prometheus.MustNewConstMetric(descFeatureMerged, prometheus.CounterValue, float64(fs.DeltasMerged))
	ch <- prometheus.MustNewConstMetric(descFeatureWaiting, prometheus.GaugeValue, float64(fs.DeltasWaiting))
	ch <- prometheus.MustNewConstMetric(descFeatureRebuilds, prometheus.CounterValue, float64(fs.Rebuilds))
}

// metricsInterceptor counts and times every RPC.
type metricsInterceptor struct{ m *metrics }

func (i metricsInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		res, err := next(ctx, req)
		i.m.observe(req.Spec().Procedure, start, err)
		if err == nil {
			if er, ok := res.Any().(*riskv1.EvaluateResponse); ok {
				i.m.decided(er.GetDecision())
			}
		}
		return res, err
	}
}

func (i metricsInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i metricsInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		i.m.observe(conn.Spec().Procedure, start, err)
		return err
	}
}

// adminOnly serves h to callers with the admin token only: pprof exposes
// memory that may hold raw identifiers of in-flight evaluations.
func adminOnly(authn *auth.Authenticator, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := authn.Authenticate(r.Header.Get("Authorization"))
		switch {
		case err != nil:
			http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
		case p.Role != auth.RoleAdmin:
			http.Error(w, "admin only", http.StatusForbidden)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// pprofMux serves the runtime profiles under /debug/pprof/.
func pprofMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// metricsHandler serves /metrics for scrapers. Metrics carry no personal
// data, so they are open like health.
func (m *metrics) handler(eng *engine.Engine) http.Handler {
	m.reg.MustRegister(engineCollector{eng})
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// walSyncHistogram restates Pebble's histogram of WAL sync latencies, which
// it keeps in nanoseconds, in seconds.
func walSyncHistogram(h prometheus.Histogram) (prometheus.Metric, bool) {
	var m dto.Metric
	if h == nil || h.Write(&m) != nil {
		return nil, false
	}
	hist := m.GetHistogram()
	buckets := make(map[float64]uint64, len(hist.GetBucket()))
	for _, b := range hist.GetBucket() {
		buckets[b.GetUpperBound()/1e9] = b.GetCumulativeCount()
	}
	return prometheus.MustNewConstHistogram(descWALSync, hist.GetSampleCount(), hist.GetSampleSum()/1e9, buckets), true
}
