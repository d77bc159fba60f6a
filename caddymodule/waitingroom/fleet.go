package waitingroom

import (
	"time"

	"github.com/conductor-edge/conductor/shifting"
)

// A room in fleet mode (the `fleet` option) shares its site's limits with
// the site's other front-ends: the node's agent reports every such room's
// figures to the manager and applies the lease the manager answers with.
// The rooms are found in the process's room pool (rooms), which outlives
// config reloads as the rooms do.

// lease is a room's share, until it expires.
type lease struct {
	capacity, perMinute int
	until               time.Time
}

// FleetRooms reports this process's fleet-mode rooms, by name.
func FleetRooms() map[string]shifting.RoomReport {
	out := map[string]shifting.RoomReport{}
	rooms.Range(func(key, value any) bool {
		s, ok := value.(*memState)
		name, _ := key.(string)
		if !ok {
			return true
		}
		s.mu.Lock()
		if s.cfg.Fleet {
			out[name] = shifting.RoomReport{Capacity: s.cfg.TotalActiveUsers, RatePerMinute: s.cfg.NewUsersPerMinute, Active: len(s.active) + s.reserved, Waiting: s.waiting}
		}
		s.mu.Unlock()
		return true
	})
	return out
}

// ApplyLeases gives the rooms their leases, received now.
func ApplyLeases(leases map[string]shifting.RoomLease, now time.Time) {
	rooms.Range(func(key, value any) bool {
		name, _ := key.(string)
		s, ok := value.(*memState)
		if l, have := leases[name]; ok && have {
			leaseCapacity.WithLabelValues(name).Set(float64(s.setLease(l, now)))
		}
		return true
	})
}

// setLease takes a lease and returns the capacity it gives now.
func (s *memState) setLease(l shifting.RoomLease, now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lease = lease{capacity: l.Capacity, perMinute: l.RatePerMinute, until: now.Add(time.Duration(l.TTLMS) * time.Millisecond)}
	s.lastN = l.Frontends
	s.limits(now)
	return s.capacity
}
