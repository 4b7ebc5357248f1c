package mallocarenas

import (
	"os"
	"os/exec"
	"testing"
)

// The test binary links the package, so its constructor ran at load.
func TestCappedAtLoad(t *testing.T) {
	if os.Getenv("MALLOCARENAS_CHILD") != "" {
		if Capped() {
			os.Exit(3)
		}
		os.Exit(0)
	}
	if !glibc() {
		if Capped() {
			t.Fatal("Capped without glibc")
		}
		t.Skip("not a cgo build on glibc: nothing to cap")
	}
	if os.Getenv("MALLOC_ARENA_MAX") == "" && !Capped() {
		t.Fatal("arenas not capped at load, and MALLOC_ARENA_MAX is not set")
	}
	// MALLOC_ARENA_MAX is the operator's: the constructor leaves it alone.
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCappedAtLoad$")
	cmd.Env = append(os.Environ(), "MALLOCARENAS_CHILD=1", "MALLOC_ARENA_MAX=4")
	if err := cmd.Run(); err != nil {
		t.Fatalf("with MALLOC_ARENA_MAX=4 set: %v (exit status 3: capped anyway)", err)
	}
}
