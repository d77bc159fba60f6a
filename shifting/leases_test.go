package shifting

import (
	"math/rand/v2"
	"testing"
)

// The leases of a room never add up to more than its capacity while the
// front-ends' active visitors fit in it, whatever the demand; each
// front-end keeps the places its visitors hold; the new-user rate is
// split within a place a minute per front-end.
func TestRoomLeasesShareTheCapacity(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := 1 + rng.IntN(8)
		capacity, rate := 1+rng.IntN(500), 1+rng.IntN(1000)
		rs := make([]RoomReport, n)
		left := capacity
		for i := range rs {
			a := rng.IntN(left + 1)
			left -= a
			rs[i] = RoomReport{Capacity: capacity, RatePerMinute: rate, Active: a, Waiting: rng.IntN(300)}
		}
		// Leases are given one at a time; each front-end holds what it
		// got (or its visitors, if more).
		held := make([]int, n)
		for i := range rs {
			held[i] = rs[i].Active
		}
		sumCap, sumRate := 0, 0
		for i := range rs {
			l := roomLease(rs, held, i)
			held[i] = max(rs[i].Active, l.Capacity)

			if l.Frontends != n {
				t.Fatalf("frontends %d, want %d", l.Frontends, n)
			}
			sumCap += l.Capacity
			sumRate += l.RatePerMinute
		}
		if sumCap > capacity+n || sumRate > rate+n {
			t.Fatalf("%d front-ends: leases add to %d places (capacity %d) and %d/min (rate %d): %+v", n, sumCap, capacity, sumRate, rate, rs)
		}
	}
	// Two front-ends, nobody in yet, one with a line: the line's side gets
	// the larger share (10 to 1: its line, and one each for arrivals).
	rs := []RoomReport{{Capacity: 100, RatePerMinute: 600, Waiting: 9}, {Capacity: 100, RatePerMinute: 600}}
	a := roomLease(rs, []int{0, 0}, 0)
	b := roomLease(rs, []int{a.Capacity, 0}, 1)
	if a.Capacity != 90 || b.Capacity != 9 || a.RatePerMinute != 545 || b.RatePerMinute != 54 {
		t.Fatalf("leases %+v %+v", a, b)
	}
	// A front-end grows only into what the other's lease leaves: the
	// other holds 90, so the one with the line now gets 10, not its
	// target of 90, until the first's next lease shrinks.
	rs = []RoomReport{{Capacity: 100, RatePerMinute: 600}, {Capacity: 100, RatePerMinute: 600, Waiting: 9}}
	if l := roomLease(rs, []int{90, 9}, 1); l.Capacity != 10 {
		t.Fatalf("growing past the other's lease: %+v", l)
	}
	// Front-ends that disagree get the stricter capacity.
	rs = []RoomReport{{Capacity: 100, RatePerMinute: 60}, {Capacity: 50, RatePerMinute: 60}}
	a = roomLease(rs, []int{0, 0}, 0)
	if b := roomLease(rs, []int{a.Capacity, 0}, 1); a.Capacity+b.Capacity != 50 {
		t.Fatalf("disagreeing capacities: %+v %+v", a, b)
	}
}
