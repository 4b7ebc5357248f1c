//go:build race

package server

// raceEnabled: the race detector slows the engine about tenfold, so the
// heaviest tests draw smaller workloads under it.
const raceEnabled = true
