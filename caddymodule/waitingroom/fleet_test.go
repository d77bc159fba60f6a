package waitingroom

import (
	"testing"
	"time"

	"github.com/conductor-edge/conductor/shifting"
)

// A fleet-mode room admits its lease; before the first lease, and once a
// lease expires, it takes 1/N of the site's room (N: the front-ends of the
// last lease, at least FleetFrontends); an active visitor of another
// front-end is honoured.
func TestFleetRoomFollowsItsLease(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newMemState(Config{TotalActiveUsers: 100, NewUsersPerMinute: 60000, SessionDuration: time.Minute, AbandonAfter: time.Minute, Fleet: true, FleetFrontends: 2})
	s.mu.Lock()
	s.limits(now)
	if s.capacity != 50 || s.perMinute != 30000 {
		t.Fatalf("before a lease: %d places, %d/min; want half", s.capacity, s.perMinute)
	}
	s.mu.Unlock()
	if got := s.setLease(shifting.RoomLease{Capacity: 30, RatePerMinute: 6000, Frontends: 3, TTLMS: 10000}, now); got != 30 {
		t.Fatalf("leased capacity %d", got)
	}
	admitted := 0
	for i := range 200 {
		if d := s.Arrive(now.Add(time.Duration(i)*10*time.Millisecond), userID{byte(i), byte(i >> 8)}); d.Admitted {
			admitted++
		}
	}
	if admitted != 30 {
		t.Fatalf("admitted %d under a lease of 30", admitted)
	}
	// The lease expired 10 s after it came: a third of the room now.
	s.mu.Lock()
	s.limits(now.Add(11 * time.Second))
	if s.capacity != 33 || s.perMinute != 20000 {
		t.Fatalf("after the lease: %d places, %d/min; want a third", s.capacity, s.perMinute)
	}
	s.mu.Unlock()
	if !s.Touch(now, userID{0xee}) {
		t.Fatal("another front-end's visitor in session was not honoured")
	}
	// Outside fleet mode an unknown visitor's session has ended.
	plain := newMemState(Config{TotalActiveUsers: 100, NewUsersPerMinute: 600, SessionDuration: time.Minute})
	if plain.Touch(now, userID{0xee}) {
		t.Fatal("an unknown visitor kept a session outside fleet mode")
	}
}
