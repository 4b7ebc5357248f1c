package cputime

import "testing"

// Spinning uses CPU time, and Process sees it grow.
func TestProcessGrows(t *testing.T) {
	start := Process()
	if start <= 0 {
		t.Fatalf("Process() = %v at start, want the CPU time used so far", start)
	}
	x := uint64(1)
	for Process()-start < 5e6 { // 5 ms of CPU
		for range 100000 {
			x = x*6364136223846793005 + 1
		}
	}
	if x == 0 {
		t.Log(x) // keeps the loop
	}
}
