// Package population is the synthetic world that bench/ workloads act in:
// accounts, the devices they use, the organizations they work for with their
// attendance sites (coordinates, Wi-Fi BSSIDs, an office /24 behind NAT),
// merchants they pay, and the Android packages found on phones, benign and
// cheating.
//
// Invariants: every entity is a pure function of (seed, kind, index),
// generated on demand, so a population of millions costs no memory and the
// same seed always yields the same world. Accounts 3h, 3h+1 and 3h+2 are a
// household: one home, one org (h mod Orgs); account i's primary device is device i mod Devices; when there are more
// devices than accounts, the extra devices are household tablets, each shared
// by at most three accounts (never by more, so that a benign tablet stays
// under any per-device account threshold). Device indices at or beyond
// Devices are valid too: they are phones outside the registered population
// (new phones, attackers' devices) and never collide with registered ones.
//
// A Population is immutable after New and safe for concurrent use.
package population
