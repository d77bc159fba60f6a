package tmptransport

import (
	"math"
	"time"
)

// CongestionController decides how many packets may be in flight. It sits
// behind an interface, as in quic-go's internal/congestion, so that other
// controllers can be swapped in through Config.Congestion and compared.
// All methods are called with the session lock held, from one goroutine at a
// time.
type CongestionController interface {
	// SetFlows tells the controller how many streams the session is
	// carrying; a multi-flow controller claims bandwidth like that many flows.
	SetFlows(n int)
	// OnPacketSent is called for each ack-eliciting packet sent.
	OnPacketSent(now time.Time, pn uint64, bytes int)
	// OnPacketAcked is called for each newly acknowledged ack-eliciting packet.
	OnPacketAcked(now time.Time, pn uint64, bytes int, rtt *RTTSnapshot)
	// OnPacketLost is called for each packet declared lost.
	OnPacketLost(now time.Time, pn uint64, bytes int, rtt *RTTSnapshot)
	// OnRetransmissionTimeout is called when a probe timeout fires.
	OnRetransmissionTimeout(now time.Time)
	// Window returns the congestion window in packets.
	Window() int
	// PacingRate returns the pacing rate in bytes per second.
	PacingRate(rtt *RTTSnapshot, packetSize int) float64
	// InSlowStart reports whether the controller is in slow start.
	InSlowStart() bool
}

// RTTSnapshot is the RTT estimate a controller sees.
type RTTSnapshot struct {
	Smoothed, Min, Latest time.Duration
}

// MulTCP emulates N TCP NewReno flows in one window (Crowcroft & Oechslin,
// "Differentiated end-to-end Internet services using a weighted proportional
// fair sharing TCP", 1998), N being the number of streams the session hosts.
// In congestion avoidance it grows by N packets per RTT, and on loss it backs
// off by 1/(2N) instead of 1/2. The window never falls below N (seed: "A TMP
// should not go down to a window size of less than the number of TCP
// connections that it is hosting").
type MulTCP struct {
	cwnd, ssthresh float64
	flows          int
	maxFlows       int
	maxWindow      float64
	// recoveryEnd: losses of packets sent before it belong to the same
	// congestion event (one back-off per RTT, RFC 6582's NewReno rule).
	recoveryEnd uint64
	inRecovery  bool
	backoffs    int // back-offs in the current recovery period
	largestSent uint64

	// DisableLossDiscrimination makes every loss a congestion signal (plain
	// MulTCP), for comparison.
	DisableLossDiscrimination bool
	randomLosses              uint64
	epochEnd                  uint64
	epochLosses               int // loss events in the current round trip
	// lossRate is loss events per packet sent, averaged exponentially
	// over about lossRateWindow packets.
	lossRate float64
	lastLost uint64
	lostAny  bool

	// delivery measures what the path delivers, for the back-off's floor.
	delivery deliveryRate
	// ackRoom is the window's room for ACKs that come in clumps
	// (ackroom.go).
	ackRoom ackRoom

	// lossSeen: a congestion loss or a timeout has happened. Until then,
	// flows that join bring their initial windows (SetFlows).
	lossSeen bool
	hystart  hystart
}

// NewMulTCP returns a MulTCP controller with the given initial window in
// packets and a cap on the number of flows it emulates.
func NewMulTCP(initialWindow, maxFlows, maxWindow int) *MulTCP {
	return &MulTCP{
		cwnd:      float64(initialWindow),
		ssthresh:  math.Inf(1),
		flows:     1,
		maxFlows:  maxFlows,
		maxWindow: float64(maxWindow),
	}
}

// SetFlows sets N. Until the first loss, the window is at least N times a
// TCP initial window: N TCP connections opened side by side would each start
// with one (RFC 6928's 10 packets), and a link that hosts them must not start
// slower than they would (seed: "the TMP connection becomes more aggressive"
// as connections are added).
func (m *MulTCP) SetFlows(n int) {
	m.flows = min(max(n, 1), m.maxFlows)
	floor := float64(m.flows)
	if !m.lossSeen {
		floor = float64(m.flows * tcpInitialWindow)
	}
	m.cwnd = min(max(m.cwnd, floor), m.maxWindow)
}

// deliveryRate is the highest rate, in packets per second, at which the
// peer acknowledged packets in any of the last deliveryRounds round trips:
// a windowed maximum, as BBR keeps its max_bw (draft-ietf-ccwg-bbr), since
// rounds the application left idle deliver less than the path can. sRTT
// lags a queue that is draining, so cwnd × minRTT / sRTT alone compounded
// over successive back-offs (722 → 594 packets after one slow-start
// overshoot, where the path holds 714).
type deliveryRate struct {
	roundStart time.Time
	packets    int
	rates      [deliveryRounds]float64
	next       int
}

const deliveryRounds = 10

func (d *deliveryRate) onAck(now time.Time, newRound bool) {
	if newRound {
		if el := now.Sub(d.roundStart); !d.roundStart.IsZero() && el > 0 {
			d.rates[d.next%deliveryRounds] = float64(d.packets) / el.Seconds()
			d.next++
		}
		d.roundStart, d.packets = now, 0
	}
	d.packets++
}

// best is the best recent rate in packets a second (0 before a round
// trip was measured).
func (d *deliveryRate) best() float64 {
	best := 0.0
	for _, r := range d.rates {
		best = max(best, r)
	}
	return best
}

// bdp is the bandwidth-delay product in packets: the best recent rate
// times minRTT.
func (d *deliveryRate) bdp(minRTT time.Duration) float64 {
	return d.best() * minRTT.Seconds()
}

// tcpInitialWindow is TCP's initial window in segments (RFC 6928).
const tcpInitialWindow = 10

func (m *MulTCP) OnPacketSent(_ time.Time, pn uint64, _ int) {
	m.largestSent = pn
	m.lossRate -= m.lossRate / lossRateWindow
}

func (m *MulTCP) OnPacketAcked(now time.Time, pn uint64, _ int, rtt *RTTSnapshot) {
	newRound := pn >= m.epochEnd
	m.delivery.onAck(now, newRound)
	m.ackRoom.onAck(now, m.delivery.best(), newRound)
	if newRound {
		// A round trip has passed: start counting losses afresh.
		m.epochEnd = m.largestSent + 1
		m.epochLosses = 0
	}
	if m.inRecovery && pn >= m.recoveryEnd {
		m.inRecovery = false
	}
	if m.inRecovery {
		return
	}
	if m.cwnd < m.ssthresh {
		switch m.hystart.onAck(newRound, rtt) {
		case hystartSlowStart:
			m.cwnd++ // double per RTT
		case hystartConservative:
			m.cwnd += 1.0 / cssGrowthDivisor
		case hystartDone:
			m.ssthresh = m.cwnd
		}
	} else {
		grow := float64(m.flows) / m.cwnd // N packets per RTT
		if rtt != nil && rtt.Min > 0 && !m.queueShows(rtt) {
			grow = max(grow, scalableGain)
		}
		m.cwnd += grow
	}
	m.cwnd = min(m.cwnd, m.maxWindow)
}

// OnPacketLost backs off by 1/(2N) per loss, for up to N losses per round
// trip. N real TCP flows would each halve at most once per RTT, and the
// losses of one RTT fall on different flows; backing off only once per RTT,
// as a single NewReno does, would make the aggregate far more aggressive
// than N flows (it settles at a window of about 2N² packets whatever the loss
// rate).
//
// When the loss counts as congestion because a queue shows in the RTT, the
// back-off never goes below the window that drains that queue: the path's
// delivery rate times minRTT, or at least cwnd × minRTT / sRTT, what the
// path delivered without queueing, the estimate TCP Westwood+ backs off to (Mascolo et al., "TCP Westwood: Bandwidth
// Estimation for Enhanced Transport over Wireless Links", 2001). With a
// few flows (one TCP connection carried as one stream) the 1/(2N) step is
// a halving, and growing back by N packets per RTT would take hundreds of
// round trips on a long fat path: one bulk stream got 8 Mbit/s of 100 on
// the lossy profile (issue 18's TCP benchmark). When other flows fill the
// bottleneck's queue, sRTT is well above minRTT and the floor is no higher
// than TCP's own back-off, so TMP stays fair to them.
func (m *MulTCP) OnPacketLost(_ time.Time, pn uint64, _ int, rtt *RTTSnapshot) {
	random, queued := m.classifyLoss(pn, rtt)
	if random {
		m.randomLosses++
		return
	}
	if m.inRecovery && pn < m.recoveryEnd {
		if m.backoffs >= m.flows {
			return
		}
	} else {
		m.inRecovery = true
		m.recoveryEnd = m.largestSent + 1
		m.backoffs = 0
	}
	m.backoffs++
	m.lossSeen = true
	n := float64(m.flows)
	next := m.cwnd * (1 - 1/(2*n))
	if queued {
		next = max(next, min(m.cwnd, max(m.cwnd*float64(rtt.Min)/float64(rtt.Smoothed), m.delivery.bdp(rtt.Min))))
	}
	m.cwnd = max(next, n, 2)
	m.ssthresh = m.cwnd
}

// classifyLoss tells a link error from congestion, as TCP Veno does (Fu &
// Liew, "TCP Veno: TCP Enhancement for Transmission Over Wireless Access
// Networks", 2003): the packets the session keeps queued at the bottleneck
// are backlog = cwnd × (1 − minRTT / RTT). If that is under vegasBeta
// packets per emulated flow, the queue is all but empty, so the loss did
// not come from congestion: it is not answered with a back-off. When the
// link is shared, competing flows fill the queue, the backlog grows, and
// losses count as congestion again, so TMP stays fair to TCP.
//
// It reports whether the loss is random and, if not, whether it counts as
// congestion because of the queue (queued) rather than the loss rate alone.
func (m *MulTCP) classifyLoss(pn uint64, rtt *RTTSnapshot) (random, queued bool) {
	// A run of consecutive packets lost together is one event: a fade on
	// a radio link takes several packets at once.
	if !m.lostAny || pn != m.lastLost+1 {
		m.lossRate += 1.0 / lossRateWindow
		m.epochLosses++
	}
	m.lostAny, m.lastLost = true, pn
	if m.DisableLossDiscrimination || rtt == nil || rtt.Min <= 0 || rtt.Smoothed <= 0 {
		return false, false
	}
	// A queue too shallow to show in the RTT can still overflow (or a
	// policer drops without queueing): beyond maxRandomLoss of the packets
	// sent lately, or a burst of loss events in one round trip, loss is
	// congestion whatever the delay says, and the back-off is MulTCP's own.
	if m.lossRate > maxRandomLoss || float64(m.epochLosses) > max(maxRoundLosses, maxRoundLossShare*m.cwnd) {
		return false, false
	}
	queued = m.queueShows(rtt)
	return !queued, queued
}

// queueShows reports whether the session keeps a queue at the bottleneck:
// backlog = cwnd × (1 − minRTT / sRTT) packets, against Veno's threshold.
func (m *MulTCP) queueShows(rtt *RTTSnapshot) bool {
	if rtt.Smoothed <= rtt.Min {
		return false
	}
	backlog := m.cwnd * (1 - float64(rtt.Min)/float64(rtt.Smoothed))
	return backlog >= max(vegasBeta*float64(m.flows), rttNoise*m.cwnd)
}

// scalableGain is congestion avoidance's growth per acknowledged packet
// while no queue shows: 1 % of the window per round trip, Scalable TCP's
// rate (Kelly, "Scalable TCP: Improving Performance in Highspeed Wide Area
// Networks", 2003), rather than N packets per round trip. With no queue
// the path has room, and a few emulated flows (one carried TCP connection)
// would take hundreds of round trips to reach a long fat path's window:
// 100 packets took 8 s at 80 ms. As soon as a queue shows, growth is
// MulTCP's again, so against loss-based flows, which keep a queue, TMP
// grows as N of them would; Compound TCP splits its growth on the same
// signal (Tan et al., "A Compound TCP Approach for High-Speed and Long
// Distance Networks", 2006).
const scalableGain = 0.01

// vegasBeta is Veno's threshold of queued packets per flow.
const vegasBeta = 3

// rttNoise is the share of the window that a queue must exceed to count:
// sRTT over minRTT by less than about 5 % is noise (the peer's timers, the
// pacer's bursts, the path's own jitter), and Veno's 3 packets per flow,
// meant for windows of tens of packets, is under that noise once a single
// flow's window reaches hundreds: one stream on the lossy profile sat at
// 170 packets of the path's 700, 1.3 ms of "queue" over 79 ms.
const rttNoise = 0.05

// maxRandomLoss is the rate of loss events per packet sent (a run of
// consecutive packets is one event) up to which losses with an empty queue
// are taken for link errors, averaged over lossRateWindow packets. One round
// trip is too few packets to tell: a single flow starting out, with a
// window of 40–90 packets, saw 3 random losses in a round trip often enough
// that taking them for congestion (the rule before) kept it there on the
// lossy profile, where the path holds 700. The window is long enough that
// 1 % random loss does not reach 3 % by chance (10 events expected, 30
// needed), and heavy loss (10 %) crosses it within about 350 packets.
// Within one round trip, more than maxRoundLosses events, and more than
// maxRoundLossShare of the window, is congestion at once.
const (
	maxRandomLoss     = 0.03
	lossRateWindow    = 1000
	maxRoundLosses    = 4
	maxRoundLossShare = 0.05
)

// RandomLosses counts losses taken for link errors rather than congestion.
func (m *MulTCP) RandomLosses() uint64 { return m.randomLosses }

func (m *MulTCP) OnRetransmissionTimeout(time.Time) {
	m.lossSeen = true
	m.ackRoom.reset()
	// Persistent loss: fall back to the floor, but never below N.
	m.ssthresh = max(m.cwnd/2, float64(m.flows), 2)
	m.cwnd = max(float64(m.flows), 2)
}

// Window is cwnd and the room for ACKs that come in clumps (ackroom.go).
func (m *MulTCP) Window() int {
	return int(min(m.cwnd+m.ackRoom.room(m.cwnd), m.maxWindow))
}

func (m *MulTCP) InSlowStart() bool { return m.cwnd < m.ssthresh }

// PacingRate spreads a window over the RTT, with headroom (RFC 9002 §7.7
// suggests N = 1.25; slow start uses 2 so pacing does not slow the doubling).
func (m *MulTCP) PacingRate(rtt *RTTSnapshot, packetSize int) float64 {
	srtt := rtt.Smoothed
	if srtt <= 0 {
		srtt = initialRTT
	}
	gain := 1.25
	if m.InSlowStart() {
		gain = 2
	}
	return gain * m.cwnd * float64(packetSize) / srtt.Seconds()
}

// pacer is a token bucket that releases packets at the controller's pacing
// rate, with bursts of up to maxBurst packets.
type pacer struct {
	tokens   float64 // bytes
	last     time.Time
	maxBurst float64
}

// allow reports when the next packet of size bytes may leave: zero means now.
func (p *pacer) delay(now time.Time, rate float64, size int) time.Duration {
	if rate <= 0 {
		return 0
	}
	burst := max(p.maxBurst, rate*0.002) // never less than 2 ms of data
	if p.last.IsZero() {
		p.tokens = burst
	} else {
		p.tokens = min(burst, p.tokens+rate*now.Sub(p.last).Seconds())
	}
	p.last = now
	if p.tokens >= float64(size) {
		return 0
	}
	need := (float64(size) - p.tokens) / rate
	return max(time.Duration(need*float64(time.Second)), 200*time.Microsecond)
}

func (p *pacer) onSent(size int) { p.tokens -= float64(size) }
