package features

import (
	"encoding/binary"

	"github.com/axiomhq/hyperloglog"
)

type hllSketch = hyperloglog.Sketch

func newHLL() *hllSketch { return hyperloglog.New14() }

func appendVarint(dst []byte, n int64) []byte { return binary.AppendVarint(dst, n) }
func appendU64(dst []byte, v uint64) []byte   { return binary.BigEndian.AppendUint64(dst, v) }
