// Package load drives a RiskService over Connect and measures it: open loop at
// a fixed arrival rate, with latency measured from each request's scheduled
// send time so that queueing is never hidden (coordinated omission corrected),
// or closed loop with a fixed number of clients. It records latencies in HDR
// histograms, counts errors by Connect code and decisions by outcome, and
// writes a text report, a JSON report and SVG plots.
//
// It also provides the transport floor: an empty RiskService handler that
// takes the same request and returns a decision-sized response, served
// in-process on loopback, so that a run against riskd can be set against what
// the same client gets from Connect alone.
//
// Run is safe to call from one goroutine per run; a Source is only ever called
// by one goroutine at a time (Run serializes it). Reports are plain values.
package load
