//go:build cgo && linux

package mallocarenas

/*
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
static int riskd_arenas_capped;
static int riskd_glibc = 1;
// 2 is mallocarenas.Max.
__attribute__((constructor)) static void riskd_cap_arenas(void) {
	if (getenv("MALLOC_ARENA_MAX") == NULL) {
		riskd_arenas_capped = mallopt(M_ARENA_MAX, 2) == 1;
	}
}
#else
static int riskd_arenas_capped;
static int riskd_glibc;
#endif
static int riskd_capped(void) { return riskd_arenas_capped; }
static int riskd_is_glibc(void) { return riskd_glibc; }
*/
import "C"

func capped() bool { return C.riskd_capped() != 0 }

func glibc() bool { return C.riskd_is_glibc() != 0 }
