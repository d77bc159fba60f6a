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
		m.OnPacketLost(time.Time{}, uint64(i+1), 1200, empty)
	}
	if m.cwnd != 100 {
		t.Fatalf("2 losses in a window of 100 backed off (cwnd %.1f)", m.cwnd)
	}
	m.OnPacketLost(time.Time{}, 3, 1200, empty)
	if m.cwnd >= 100 {
		t.Fatal("a third loss in the same round trip was not taken for congestion")
	}
}
