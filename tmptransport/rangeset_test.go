package tmptransport

import (
	"math/rand/v2"
	"testing"
)

// TestRangeSetMatchesReference checks add/remove/contains against a plain
// bitmap over many random operations.
func TestRangeSetMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var s rangeSet
		ref := make([]bool, 300)
		for op := 0; op < 60; op++ {
			a := rng.Uint64N(280)
			b := a + rng.Uint64N(20)
			if rng.IntN(3) == 0 {
				s.remove(a, b)
				for i := a; i < b; i++ {
					ref[i] = false
				}
			} else {
				s.add(a, b)
				for i := a; i < b; i++ {
					ref[i] = true
				}
			}
			for i := range ref {
				if s.contains(uint64(i)) != ref[i] {
					t.Fatalf("round %d op %d: contains(%d)=%v, want %v; set %v", round, op, i, !ref[i], ref[i], s.r)
				}
			}
			for i := 1; i < len(s.r); i++ {
				if s.r[i-1].end >= s.r[i].start || s.r[i].start >= s.r[i].end {
					t.Fatalf("ranges not sorted, disjoint and merged: %v", s.r)
				}
			}
		}
	}
}
