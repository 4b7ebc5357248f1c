package features

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/riskd/riskd/internal/keys"
)

// TestMergerMatchesState checks that the pooled merger's flat fast path
// gives the same stored value as decoding every operand into a state and
// encoding it, for counts, exact sets, first-seen times and last values, in
// any grouping.
func TestMergerMatchesState(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	key := []byte{keys.FeatureState, 0, 1}
	for _, tc := range []struct {
		name string
		op   func() []byte
	}{
		{"count", func() []byte {
			return appendVarint([]byte{tagCount, byte(r.IntN(slots))}, r.Int64N(200)-50)
		}},
		{"distinct", func() []byte {
			b := []byte{tagDistinct}
			b = appendU64(b, uint64(r.IntN(300)))
			return appendU64(b, 1<<uint(r.IntN(slots)))
		}},
		{"first", func() []byte {
			b := []byte{tagFirst}
			for range r.IntN(3) { // an empty operand too
				b = appendFirst(b, uint8(r.IntN(slots)), r.Int64N(1000)-500)
			}
			return b
		}},
		{"last", func() []byte {
			return appendLast([]byte{tagLast}, lastVal{t: r.Int64N(50), lat: float64(r.IntN(3)), lon: 1})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 200 {
				ops := make([][]byte, 1+r.IntN(40))
				var want state
				for i := range ops {
					ops[i] = tc.op()
					if err := want.merge(ops[i]); err != nil {
						t.Fatal(err)
					}
				}
				wantB, err := want.encode(nil)
				if err != nil {
					t.Fatal(err)
				}
				// Merge in two groups, the first's result an operand of the second.
				cut := r.IntN(len(ops))
				got := mergeOps(t, key, ops[:cut+1])
				got = mergeOps(t, key, append([][]byte{got}, ops[cut+1:]...))
				if !bytes.Equal(got, wantB) {
					t.Fatalf("round %d: merger %x, state %x", round, got, wantB)
				}
			}
		})
	}
}

// TestMergerOverflowsToSketch checks that an exact set merged past the
// exact limit becomes a sketch estimating the number of distinct values.
func TestMergerOverflowsToSketch(t *testing.T) {
	key := []byte{keys.FeatureState, 0, 1}
	const n = 3 * ExactDistinctLimit
	var ops [][]byte
	for i := range n {
		b := []byte{tagDistinct}
		b = appendU64(b, xxhashU64(uint64(i)))
		ops = append(ops, appendU64(b, 1))
	}
	got := mergeOps(t, key, ops)
	var st state
	if err := st.merge(got); err != nil {
		t.Fatal(err)
	}
	if got[0] != tagSketched || st.big == nil || st.big.hll[0] == nil || len(st.set) != 0 {
		t.Fatalf("tag %d after %d distinct values in one granule, want them all sketched", got[0], n)
	}
	if e := float64(st.big.hll[0].Estimate()); e < n*0.98 || e > n*1.02 {
		t.Fatalf("estimate %v, want %d ±2%%", e, n)
	}
}

func xxhashU64(i uint64) uint64 { return i*0x9E3779B97F4A7C15 ^ i>>7 }

func mergeOps(t *testing.T, key []byte, ops [][]byte) []byte {
	t.Helper()
	m, err := Merger().Merge(key, ops[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops[1:] {
		if err := m.MergeNewer(op); err != nil {
			t.Fatal(err)
		}
	}
	b, closer, err := m.Finish(true)
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.Clone(b)
	if closer != nil {
		closer.Close()
	}
	return out
}
