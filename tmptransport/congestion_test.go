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

// Loss with an empty queue is taken for link errors while it stays under
// 3 % of the packets sent lately: 1 % random loss never backs off, heavier
// loss does. (More than 4 loss events in one round trip is congestion
// too: TestMulTCPBurstIsOneLossEvent.)
func TestMulTCPHeavyLossIsCongestion(t *testing.T) {
	empty := &RTTSnapshot{Smoothed: 80 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 80 * time.Millisecond}
	m := NewMulTCP(100, 64, 1<<16)
	m.SetFlows(1)
	m.ssthresh = 100
	pn := uint64(0)
	// 1 % loss for 100 round trips of 100 packets.
	for round := 0; round < 100; round++ {
		for i := 0; i < 100; i++ {
			m.OnPacketSent(time.Time{}, pn, 1200)
			if pn%100 == 37 {
				m.OnPacketLost(time.Time{}, pn, 1200, empty)
			} else {
				m.OnPacketAcked(time.Time{}, pn, 1200, empty)
			}
			pn++
		}
	}
	if m.lossSeen {
		t.Fatalf("1 %% random loss with an empty queue was taken for congestion (cwnd %.1f)", m.cwnd)
	}
	// 10 % loss: congestion within a few hundred packets.
	sent := 0
	for ; !m.lossSeen && sent < 1000; sent++ {
		m.OnPacketSent(time.Time{}, pn, 1200)
		if pn%10 == 3 {
			m.OnPacketLost(time.Time{}, pn, 1200, empty)
		} else {
			m.OnPacketAcked(time.Time{}, pn, 1200, empty)
		}
		pn++
	}
	if !m.lossSeen || sent > 500 {
		t.Fatalf("10 %% loss: congestion after %d packets (seen %v), want within 500", sent, m.lossSeen)
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
// loss event against the per-round cap, not one per packet.
func TestMulTCPBurstIsOneLossEvent(t *testing.T) {
	m := NewMulTCP(80, 64, 1<<16)
	m.SetFlows(4)
	m.largestSent = 1000
	empty := &RTTSnapshot{Smoothed: 80 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 80 * time.Millisecond}
	for pn := uint64(1); pn <= 5; pn++ {
		m.OnPacketLost(time.Time{}, pn, 1200, empty)
	}
	for _, pn := range []uint64{10, 20, 30} {
		m.OnPacketLost(time.Time{}, pn, 1200, empty)
	}
	if m.cwnd != 80 || m.RandomLosses() != 8 {
		t.Fatalf("a 5-packet burst and 3 more losses (4 events): cwnd %.1f, random losses %d; want 80 and 8", m.cwnd, m.RandomLosses())
	}
	m.OnPacketLost(time.Time{}, 40, 1200, empty)
	if m.cwnd >= 80 {
		t.Fatal("a fifth loss event in one round trip was not taken for congestion")
	}
}

// A congestion loss that a queue shows backs off no further than the
// window that drains the queue (cwnd × minRTT / sRTT, or the delivery rate
// times minRTT), so one flow on a long fat path keeps it full; with a deep
// queue that is TCP's halving, and a loss rate too high for link errors
// still gets MulTCP's own step.
func TestMulTCPBackOffDrainsTheQueueNoFurther(t *testing.T) {
	m := NewMulTCP(700, 64, 1<<16)
	m.SetFlows(1)
	m.largestSent = 10_000
	shallow := &RTTSnapshot{Smoothed: 87 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 87 * time.Millisecond}
	m.OnPacketLost(time.Time{}, 1, 1200, shallow) // 56 packets queued, over 5 % of the window: congestion
	if want := 700 * 80.0 / 87; m.cwnd < want-0.01 || m.cwnd > want+0.01 {
		t.Fatalf("one flow, 7 ms of queue: cwnd 700 → %.1f, want the queue drained, %.1f (not halved)", m.cwnd, want)
	}

	m = NewMulTCP(700, 64, 1<<16)
	m.SetFlows(1)
	m.largestSent = 10_000
	deep := &RTTSnapshot{Smoothed: 200 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 200 * time.Millisecond}
	m.OnPacketLost(time.Time{}, 1, 1200, deep)
	if m.cwnd != 350 {
		t.Fatalf("one flow, RTT 2.5× its minimum: cwnd 700 → %.1f, want TCP's halving, 350", m.cwnd)
	}

	m = NewMulTCP(80, 64, 1<<16)
	m.SetFlows(1)
	m.largestSent = 10_000
	calm := &RTTSnapshot{Smoothed: 82 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 82 * time.Millisecond}
	for i := 0; i < 5; i++ { // 5 loss events in one round trip of a 80-packet window
		m.OnPacketLost(time.Time{}, uint64(10*i+1), 1200, calm)
		if i < 4 && m.cwnd != 80 {
			t.Fatalf("loss %d with %.1f packets queued (under 3) backed off", i+1, 80*(1-80.0/82))
		}
	}
	if m.cwnd != 40 {
		t.Fatalf("a loss rate beyond link errors, no queue to drain: cwnd 80 → %.1f, want MulTCP's halving, 40", m.cwnd)
	}
}

// sRTT lags a queue that is draining; the floor is also the best delivery
// rate of recent round trips times minRTT, so back-offs in a row do not
// compound below what the path carries.
func TestMulTCPBackOffFloorIsTheDeliveryRate(t *testing.T) {
	m := NewMulTCP(700, 64, 1<<16)
	m.SetFlows(1)
	m.ssthresh = 700
	at := time.Unix(0, 0)
	pn := uint64(0)
	calm := &RTTSnapshot{Smoothed: 80 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 80 * time.Millisecond}
	for round := 0; round < 5; round++ { // 700 packets every 80 ms
		first := pn
		for i := 0; i < 700; i++ {
			m.OnPacketSent(at, pn, 1200)
			pn++
		}
		for p := first; p < pn; p++ {
			at = at.Add(80 * time.Millisecond / 700)
			m.OnPacketAcked(at, p, 1200, calm)
		}
	}
	m.cwnd = 800
	lagging := &RTTSnapshot{Smoothed: 120 * time.Millisecond, Min: 80 * time.Millisecond, Latest: 90 * time.Millisecond}
	m.OnPacketLost(at, pn-1, 1200, lagging)
	if m.cwnd < 695 || m.cwnd > 705 {
		t.Fatalf("cwnd 800 → %.1f after a loss with sRTT 1.5× minRTT; want the path's 700 packets, not 800 × 80/120 = 533", m.cwnd)
	}
}

// In congestion avoidance a session grows by N packets per round trip
// while a queue shows, and by 1 % per round trip while none does.
func TestMulTCPGrowsFastOnlyWithoutAQueue(t *testing.T) {
	for _, c := range []struct {
		name     string
		srtt     time.Duration
		min, max float64
	}{
		{"no queue", 80 * time.Millisecond, 605.9, 606.1},
		{"a queue", 100 * time.Millisecond, 600.9, 601.1},
	} {
		m := NewMulTCP(600, 64, 1<<16)
		m.SetFlows(1)
		m.ssthresh = 600
		rtt := &RTTSnapshot{Smoothed: c.srtt, Min: 80 * time.Millisecond, Latest: c.srtt}
		for i := 0; i < 600; i++ { // one window of ACKs ≈ one RTT
			m.OnPacketAcked(time.Time{}, uint64(i), 1200, rtt)
		}
		if m.cwnd < c.min || m.cwnd > c.max {
			t.Errorf("%s: one round trip took cwnd 600 → %.2f, want %.1f–%.1f", c.name, m.cwnd, c.min, c.max)
		}
	}
}
