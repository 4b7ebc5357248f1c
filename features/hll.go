package features

import (
	"encoding/binary"

	"github.com/axiomhq/hyperloglog"
)

type hllSketch = hyperloglog.Sketch

// newHLL returns a dense scratch sketch for reads: merging sparse sketches
// into a dense one is a register max, not a sort.
func newHLL() *hllSketch { return hyperloglog.NewNoSparse() }

func appendVarint(dst []byte, n int64) []byte { return binary.AppendVarint(dst, n) }
func appendU64(dst []byte, v uint64) []byte   { return binary.BigEndian.AppendUint64(dst, v) }
