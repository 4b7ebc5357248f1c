// Package cputime reads the CPU time the process has used. riskd's
// benchmarks report work per operation in it (cpu-µs/op, cpu-ns/op): on a
// shared, loaded machine it measures an operation better than the wall
// clock, which counts the time other processes had the cores.
package cputime
