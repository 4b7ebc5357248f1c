// Package mallocarenas caps the C allocator's arenas at Max in a process
// that links it, when the C library is glibc and the build uses cgo, unless
// MALLOC_ARENA_MAX in the environment already says how many.
//
// Pebble's block cache and memtables are C memory in a cgo build. glibc
// gives threads arenas of their own, up to 8 a core, and keeps the freed
// blocks of each: a riskd holding a 1M-account population's state was
// 100-250 MiB more resident than Pebble had allocated, against about 85 MiB
// with two arenas (README "Performance"). riskd runs Go code on at most
// GOMAXPROCS threads at once, so two arenas see little contention.
//
// The cap is set by a C constructor, which runs when the program is loaded,
// before the Go runtime starts a thread: an arena a thread already has is
// kept, so setting it later from Go would cap little. Linking the package is
// what sets it; Capped reports what happened.
package mallocarenas

// Max is the arena cap.
const Max = 2

// Capped reports whether the process's malloc arenas were capped at Max.
// It is false without cgo, on a C library other than glibc, and when
// MALLOC_ARENA_MAX was set.
func Capped() bool { return capped() }
