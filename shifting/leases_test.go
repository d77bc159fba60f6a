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
		sumCap, sumRate := 0, 0
		for i := range rs {
			l := roomLease(rs, i)
			if l.Capacity < rs[i].Active && rs[i].Active > 0 {
				t.Fatalf("lease %d below the %d places its visitors hold", l.Capacity, rs[i].Active)
			}
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
	a, b := roomLease(rs, 0), roomLease(rs, 1)
	if a.Capacity != 90 || b.Capacity != 9 || a.RatePerMinute != 545 || b.RatePerMinute != 54 {
		t.Fatalf("leases %+v %+v", a, b)
	}
	// Front-ends that disagree get the stricter capacity.
	rs = []RoomReport{{Capacity: 100, RatePerMinute: 60}, {Capacity: 50, RatePerMinute: 60}}
	if a, b := roomLease(rs, 0), roomLease(rs, 1); a.Capacity+b.Capacity != 50 {
		t.Fatalf("disagreeing capacities: %+v %+v", a, b)
	}
}
