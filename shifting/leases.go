package shifting

import (
	"math"
	"slices"
	"strings"
	"time"
)

// One admission limit per site across the fleet. A waiting room's
// capacity and new-user rate, and a load gate's share of the origin's
// capacity, are the site's, not each front-end's: the manager hands each
// front-end a lease, a share sized from what every front-end reports, and
// renews it with every report (each second by default). A front-end that
// stops hearing from the manager keeps its lease until it expires, then
// falls back to a conservative share of its own (caddymodule/waitingroom,
// caddymodule/loadindex). Cloudflare's Waiting Room keeps one limit
// across its data centres the same way, as shares of the total.

// RoomReport is one waiting room on a front-end.
type RoomReport struct {
	// Capacity and RatePerMinute are the site-wide figures configured
	// (total_active_users, new_users_per_minute).
	Capacity      int `json:"capacity"`
	RatePerMinute int `json:"rate_per_minute"`
	// Active are the visitors in session here, Waiting those in line.
	Active  int `json:"active"`
	Waiting int `json:"waiting"`
}

// GateReport is one load gate on a front-end: its paced demand.
type GateReport struct {
	// Demand is the requests/s offered to the pacer here.
	Demand float64 `json:"demand"`
}

// RoomLease is a front-end's share of a room.
type RoomLease struct {
	Capacity      int `json:"capacity"`
	RatePerMinute int `json:"rate_per_minute"`
	// Frontends is how many front-ends share the room: a front-end whose
	// lease expired divides the room by it.
	Frontends int   `json:"frontends"`
	TTLMS     int64 `json:"ttl_ms"`
}

// GateLease is a front-end's share (0-1] of the origin's paced capacity.
type GateLease struct {
	Share     float64 `json:"share"`
	Frontends int     `json:"frontends"`
	TTLMS     int64   `json:"ttl_ms"`
}

// ReportAnswer is the manager's answer to a report.
type ReportAnswer struct {
	Rooms map[string]RoomLease `json:"rooms,omitempty"`
	Gates map[string]GateLease `json:"gates,omitempty"`
}

const (
	// LeaseTTL is how long a lease holds without renewal.
	LeaseTTL = 10 * time.Second
	// maxFleetLimits bounds the rooms and gates one report may name.
	maxFleetLimits = 64
)

// issuedLease is a room lease the manager gave, until it expires: what a
// front-end may admit up to, which another's lease must leave room for.
type issuedLease struct {
	capacity int
	until    time.Time
}

// leasesLocked computes node's leases from the healthy front-ends'
// reports and the room leases the others hold; with issue, it records
// node's room leases as given.
func (m *Manager) leasesLocked(node string, now time.Time, issue bool) ReportAnswer {
	me := m.state.Nodes[node]
	if me == nil || (len(me.Report.Rooms) == 0 && len(me.Report.Gates) == 0) {
		return ReportAnswer{}
	}
	fes := map[string]*Node{}
	for id, n := range m.state.Nodes {
		if n.Report.Role == "frontend" && n.Healthy(now) {
			fes[id] = n
		}
	}
	ans := ReportAnswer{Rooms: map[string]RoomLease{}, Gates: map[string]GateLease{}}
	for room := range me.Report.Rooms {
		var shares []RoomReport
		var held []int
		mine := 0
		for id, n := range fes {
			if r, ok := n.Report.Rooms[room]; ok {
				if n == me {
					mine = len(shares)
				}
				shares = append(shares, r)
				h := r.Active
				if l, ok := m.issued[id][room]; ok && now.Before(l.until) {
					h = max(h, l.capacity)
				}
				held = append(held, h)
			}
		}
		l := roomLease(shares, held, mine)
		ans.Rooms[room] = l
		if issue {
			if m.issued[node] == nil {
				m.issued[node] = map[string]issuedLease{}
			}
			m.issued[node][room] = issuedLease{capacity: l.Capacity, until: now.Add(LeaseTTL)}
		}
	}
	for gate := range me.Report.Gates {
		total, count, mine := 0.0, 0, 0.0
		for _, n := range fes {
			if g, ok := n.Report.Gates[gate]; ok {
				d := math.Max(g.Demand, 0.1) // a share for a gate idle now
				total += d
				count++
				if n == me {
					mine = d
				}
			}
		}
		ans.Gates[gate] = GateLease{Share: mine / total, Frontends: count, TTLMS: LeaseTTL.Milliseconds()}
	}
	return ans
}

// roomLease is front-end i's share of a room reported by every front-end
// in rs, while the others hold held[j] places each (their valid leases, or
// more if their visitors are more). The room's capacity is the smallest
// configured (front-ends that disagree get the stricter). The target keeps
// the places i's active visitors hold and adds a share of the room's free
// places by demand (its line, plus one for arrivals); the lease is the
// target within what the others' leases leave, so leases given one after
// another never add up to more than the room: a front-end grows as
// another's lease shrinks, one report later. The new-user rate is divided
// by the same demand. Every front-end gets at least one place and one new
// visitor a minute: that is the slack, one of each per front-end.
func roomLease(rs []RoomReport, held []int, i int) RoomLease {
	capacity, rate := math.MaxInt, math.MaxInt
	active, demand, others := 0, 0, 0
	for j, r := range rs {
		capacity, rate = min(capacity, r.Capacity), min(rate, r.RatePerMinute)
		active += r.Active
		demand += r.Waiting + 1
		if j != i {
			others += max(r.Active, held[j])
		}
	}
	free := max(0, capacity-active)
	mineDemand := rs[i].Waiting + 1
	target := rs[i].Active + free*mineDemand/demand
	return RoomLease{
		Capacity:      max(1, min(target, capacity-others)),
		RatePerMinute: max(1, rate*mineDemand/demand),
		Frontends:     len(rs),
		TTLMS:         LeaseTTL.Milliseconds(),
	}
}

// leaseView is a node's leases for the status page.
type leaseView struct {
	Node  string               `json:"node"`
	Rooms map[string]RoomLease `json:"rooms,omitempty"`
	Gates map[string]GateLease `json:"gates,omitempty"`
}

// leasesViewLocked lists every front-end's current leases, by node name,
// for the status page.
func (m *Manager) leasesViewLocked(now time.Time) []leaseView {
	out := []leaseView{}
	for id := range m.state.Nodes {
		if a := m.leasesLocked(id, now, false); len(a.Rooms)+len(a.Gates) > 0 {
			out = append(out, leaseView{Node: id, Rooms: a.Rooms, Gates: a.Gates})
		}
	}
	slices.SortFunc(out, func(a, b leaseView) int { return strings.Compare(a.Node, b.Node) })
	return out
}
