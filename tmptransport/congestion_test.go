package tmptransport

import (
	"testing"
	"time"
)

// MulTCP emulates N flows: it grows by about N packets per RTT, backs off
// by 1/(2N) per congestion loss (at most N per RTT), and never goes below N.
func TestMulTCPEmulatesNFlows(t *testing.T) {
	m := NewMulTCP(200, 64, 1<<16)
	m.DisableLossDiscrimination = true
	m.SetFlows(8)
	m.ssthresh = 200 // congestion avoidance from the start
	w0 := m.cwnd
	for i := 0; i < int(w0); i++ { // one window of ACKs ≈ one RTT
		m.OnPacketAcked(time.Time{}, uint64(i), 1200, nil)
	}
	if grew := m.cwnd - w0; grew < 7 || grew > 9 {
		t.Fatalf("grew by %.1f packets in one RTT, want about N = 8", grew)
	}
	m.largestSent = 100
	before := m.cwnd
	m.OnPacketLost(time.Time{}, 50, 1200, nil)
	if want := before * (1 - 1.0/16); m.cwnd < want-0.01 || m.cwnd > want+0.01 {
		t.Fatalf("one loss took cwnd %.2f → %.2f, want ×(1 − 1/2N) = %.2f", before, m.cwnd, want)
	}
	for i := 0; i < 49; i++ { // a loss storm in one RTT: at most N back-offs
		m.OnPacketLost(time.Time{}, 51+uint64(i), 1200, nil)
	}
	if m.backoffs != 8 {
		t.Fatalf("%d back-offs in one recovery period, want N = 8", m.backoffs)
	}
	m.cwnd = 3
	m.OnRetransmissionTimeout(time.Time{})
	if m.Window() < 8 {
		t.Fatalf("window %d below N = 8 (seed: never below the connections hosted)", m.Window())
	}
}

// With an empty bottleneck queue (RTT at its minimum), a loss is a link
// error and draws no back-off; with a standing queue it is congestion.
func TestMulTCPTellsRandomLossFromCongestion(t *testing.T) {
	m := NewMulTCP(100, 64, 1<<16)
	m.SetFlows(4)
	m.largestSent = 1000
	empty := &RTTSnapshot{Smoothed: 80 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 80 * time.Millisecond}
	m.OnPacketLost(time.Time{}, 1, 1200, empty)
	if m.cwnd != 100 || m.RandomLosses() != 1 {
		t.Fatalf("random loss: cwnd %.1f, random losses %d; want 100 and 1", m.cwnd, m.RandomLosses())
	}
	// 100 packets in flight and RTT 1.5× the minimum: 33 queued > 3 × 4.
	queued := &RTTSnapshot{Smoothed: 120 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 120 * time.Millisecond}
	m.OnPacketLost(time.Time{}, 2, 1200, queued)
	if m.cwnd >= 100 {
		t.Fatalf("congestion loss left cwnd at %.1f", m.cwnd)
	}
}

// Beyond 2 % of a window in one round trip, even losses with an empty
// queue are congestion (a shallow buffer can overflow without delay).
func TestMulTCPHeavyLossIsCongestion(t *testing.T) {
	m := NewMulTCP(100, 64, 1<<16)
	m.SetFlows(4)
	m.largestSent = 1000
	empty := &RTTSnapshot{Smoothed: 80 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 80 * time.Millisecond}
	for i := 0; i < 2; i++ {
		m.OnPacketLost(time.Time{}, uint64(10*i+1), 1200, empty)
	}
	if m.cwnd != 100 {
		t.Fatalf("2 losses in a window of 100 backed off (cwnd %.1f)", m.cwnd)
	}
	m.OnPacketLost(time.Time{}, 30, 1200, empty)
	if m.cwnd >= 100 {
		t.Fatal("a third loss in the same round trip was not taken for congestion")
	}
}

// N TCP connections would start with N initial windows, so a session that
// hosts N streams starts with N × 10 packets, until its first loss.
func TestMulTCPInitialWindowGrowsWithFlows(t *testing.T) {
	m := NewMulTCP(32, 64, 1<<16)
	m.SetFlows(32)
	if m.Window() != 320 {
		t.Fatalf("32 flows before any loss: window %d, want 32 × 10", m.Window())
	}
	m.SetFlows(100)
	if m.Window() != 640 {
		t.Fatalf("flows beyond MaxEmulatedFlows: window %d, want 64 × 10", m.Window())
	}
	m.largestSent = 10
	m.OnPacketLost(time.Time{}, 1, 1200, nil)
	w := m.Window()
	m.SetFlows(1)
	m.SetFlows(64)
	if m.Window() != w {
		t.Fatalf("after a loss, new flows moved the window %d → %d; only the initial slow start gets initial windows", w, m.Window())
	}
}

// ackRound acknowledges one round of n packets, every one with the given
// RTT, and opens the next round.
func ackRound(m *MulTCP, next *uint64, n int, rtt time.Duration) {
	snap := &RTTSnapshot{Smoothed: rtt, Min: 40 * time.Millisecond, Latest: rtt}
	first := *next
	for i := 0; i < n; i++ {
		m.OnPacketSent(time.Time{}, *next, 1200)
		*next++
	}
	for pn := first; pn < *next; pn++ {
		m.OnPacketAcked(time.Time{}, pn, 1200, snap)
	}
}

// HyStart++ (RFC 9406): slow start doubles while the round trip holds; when
// a round's minimum RTT rises by eta = clamp(RTT/8, 4 ms, 16 ms), growth
// drops to a quarter (Conservative Slow Start), and after five such rounds
// congestion avoidance takes over, without a single loss.
func TestHyStartLeavesSlowStartOnDelay(t *testing.T) {
	m := NewMulTCP(10, 64, 1<<16)
	var pn uint64
	for i := 0; i < 3; i++ {
		w := m.cwnd
		ackRound(m, &pn, int(w), 40*time.Millisecond)
		if m.cwnd < 2*w-1 {
			t.Fatalf("round %d at a steady RTT: window %.0f → %.0f, want it doubled", i, w, m.cwnd)
		}
	}
	// The queue builds: +6 ms is beyond eta = 40/8 = 5 ms.
	w := m.cwnd
	ackRound(m, &pn, int(w), 46*time.Millisecond)
	grew := m.cwnd - w
	if !m.InSlowStart() || grew > w/2 {
		t.Fatalf("RTT up 6 ms: window grew by %.0f of %.0f (slow start %v); want Conservative Slow Start's quarter", grew, w, m.InSlowStart())
	}
	for i := 0; i < cssRounds; i++ {
		ackRound(m, &pn, int(m.cwnd), 46*time.Millisecond)
	}
	if m.InSlowStart() {
		t.Fatalf("still in slow start after %d rounds of Conservative Slow Start", cssRounds)
	}
	if m.lossSeen {
		t.Fatal("HyStart++ exit counted as a loss")
	}
}

// A rise that does not last (the next round's minimum is back below the
// baseline) was noise: slow start resumes (RFC 9406 §4.2).
func TestHyStartResumesAfterSpuriousRise(t *testing.T) {
	m := NewMulTCP(10, 64, 1<<16)
	var pn uint64
	ackRound(m, &pn, int(m.cwnd), 40*time.Millisecond)
	ackRound(m, &pn, int(m.cwnd), 60*time.Millisecond)
	if !m.hystart.css {
		t.Fatal("a 20 ms rise did not enter Conservative Slow Start")
	}
	ackRound(m, &pn, int(m.cwnd), 40*time.Millisecond)
	if m.hystart.css {
		t.Fatal("RTT back at its minimum, still in Conservative Slow Start")
	}
	w := m.cwnd
	ackRound(m, &pn, int(w), 40*time.Millisecond)
	if m.cwnd < 2*w-1 {
		t.Fatalf("after a spurious rise: window %.0f → %.0f, want slow start's doubling", w, m.cwnd)
	}
}

// A run of consecutive packets lost together (a fade on a radio link) is one
// loss event against the 2 % cap, not one per packet.
func TestMulTCPBurstIsOneLossEvent(t *testing.T) {
	m := NewMulTCP(100, 64, 1<<16)
	m.SetFlows(4)
	m.largestSent = 1000
	empty := &RTTSnapshot{Smoothed: 80 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 80 * time.Millisecond}
	for pn := uint64(1); pn <= 5; pn++ {
		m.OnPacketLost(time.Time{}, pn, 1200, empty)
	}
	m.OnPacketLost(time.Time{}, 10, 1200, empty)
	if m.cwnd != 100 || m.RandomLosses() != 6 {
		t.Fatalf("a 5-packet burst and one more loss (2 events): cwnd %.1f, random losses %d; want 100 and 6", m.cwnd, m.RandomLosses())
	}
	m.OnPacketLost(time.Time{}, 20, 1200, empty)
	if m.cwnd >= 100 {
		t.Fatal("a third loss event in one round trip was not taken for congestion")
	}
}
