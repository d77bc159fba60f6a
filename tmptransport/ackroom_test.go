package tmptransport

import (
	"testing"
	"time"
)

// steadyACKs sends and acknowledges rounds of n packets, one ACK every
// rtt/n: a path delivering n packets a round trip, with ACKs keeping pace.
func steadyACKs(m *MulTCP, at *time.Time, pn *uint64, rounds, n int, rtt *RTTSnapshot) {
	for range rounds {
		first := *pn
		for range n {
			m.OnPacketSent(*at, *pn, 1200)
			*pn++
		}
		for p := first; p < *pn; p++ {
			*at = at.Add(rtt.Min / time.Duration(n))
			m.OnPacketAcked(*at, p, 1200, rtt)
		}
	}
}

// clump sends k packets and acknowledges them all at once, after a stall:
// what a receiver that waited for a CPU sends.
func clump(m *MulTCP, at *time.Time, pn *uint64, k int, stall time.Duration, rtt *RTTSnapshot) {
	first := *pn
	for range k {
		m.OnPacketSent(*at, *pn, 1200)
		*pn++
	}
	*at = at.Add(stall)
	for p := first; p < *pn; p++ {
		m.OnPacketAcked(*at, p, 1200, rtt)
	}
}

func newRoomTestMulTCP(cwnd float64) *MulTCP {
	m := NewMulTCP(int(cwnd), 64, 1<<16)
	m.SetFlows(1)
	m.ssthresh = cwnd // congestion avoidance: the window hardly moves
	return m
}

// ACKs that arrive in a clump after a stall give the window room for
// the next stall: on a 1 ms path delivering 100 packets a round trip, a
// clump of 80 ACKs lets about 80 more packets be in flight than cwnd.
func TestWindowHasRoomForACKsThatComeTogether(t *testing.T) {
	m := newRoomTestMulTCP(100)
	rtt := &RTTSnapshot{Smoothed: time.Millisecond, Min: time.Millisecond, Latest: time.Millisecond}
	at, pn := time.Unix(0, 0), uint64(0)
	steadyACKs(m, &at, &pn, 5, 100, rtt)
	if w := m.Window(); w > int(m.cwnd)+2 {
		t.Fatalf("steady ACKs: window %d, cwnd %.1f; want no room when ACKs keep pace", w, m.cwnd)
	}
	clump(m, &at, &pn, 80, 2*time.Millisecond, rtt)
	cwnd := m.cwnd
	if w := m.Window(); float64(w) < cwnd+75 {
		t.Fatalf("after a clump of 80 ACKs: window %d, cwnd %.1f; want room for about 80 more", w, cwnd)
	}
	// The room outlives the clump by deliveryRounds round trips, then
	// steady ACKs age it out.
	steadyACKs(m, &at, &pn, deliveryRounds+1, 100, rtt)
	if w := m.Window(); w > int(m.cwnd)+2 {
		t.Fatalf("%d round trips of steady ACKs after the clump: window %d, cwnd %.1f; want the room gone", deliveryRounds+1, w, m.cwnd)
	}
}

// The room is bounded by ackRoomTime of the delivery rate: on a long path
// (100 packets per 80 ms, 1 250 a second) a clump of 300 ACKs gives room
// for 6 packets, not 300, so TMP claims no more than before against TCP.
func TestACKRoomIsBoundedByTheRate(t *testing.T) {
	m := newRoomTestMulTCP(1000)
	rtt := &RTTSnapshot{Smoothed: 80 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 80 * time.Millisecond}
	at, pn := time.Unix(0, 0), uint64(0)
	steadyACKs(m, &at, &pn, 3, 100, rtt)
	clump(m, &at, &pn, 300, 100*time.Millisecond, rtt)
	rate := m.delivery.best()
	bound := rate * ackRoomTime.Seconds()
	if room := float64(m.Window()) - m.cwnd; room > bound+1 || bound > 10 {
		t.Fatalf("delivery rate %.0f packets/s: room %.1f; want at most %.1f (%v of the rate)", rate, room, bound, ackRoomTime)
	}
}

// The room is bounded by the window itself, and a retransmission timeout
// clears it.
func TestACKRoomIsBoundedByTheWindowAndClearedByTimeout(t *testing.T) {
	m := newRoomTestMulTCP(20)
	rtt := &RTTSnapshot{Smoothed: time.Millisecond, Min: time.Millisecond, Latest: time.Millisecond}
	at, pn := time.Unix(0, 0), uint64(0)
	steadyACKs(m, &at, &pn, 5, 100, rtt) // the rate: 100 packets a millisecond
	m.cwnd = 20
	clump(m, &at, &pn, 400, 3*time.Millisecond, rtt)
	if w := m.Window(); float64(w) > 2*m.cwnd+1 {
		t.Fatalf("cwnd %.1f after a clump of 400: window %d; want at most twice cwnd", m.cwnd, w)
	}
	m.OnRetransmissionTimeout(at)
	if w := m.Window(); w != int(m.cwnd) {
		t.Fatalf("after a timeout: window %d, cwnd %.1f; want no room", w, m.cwnd)
	}
}
