package tmptransport

import "time"

// ackRoom is the congestion window's room for ACKs that arrive late and
// together: BBR's extra_acked (draft-ietf-ccwg-bbr, "Estimating the Amount
// of Aggregation"). TMP's receiver acknowledges from user space, so its
// ACKs leave only when its process gets a CPU. On a busy host they stop for
// a millisecond or more, and then arrive in a clump. A sender whose window
// is the path's BDP, and a little queue, has nothing in flight for the rest
// of such a stall, and the link goes idle. In `bench proxy` on the lan
// profile, TMP's bottleneck was idle 29 % of the time, in about 1 500 gaps
// of 0.2–3.2 ms per 3.4 s, with the window full at 97–99 % of the sender's
// stops. TCP's ACKs, sent from the kernel's softirq, kept HTTP/2+BBR's link
// 88 % busy, and BBR's window has this room (bench/RESULTS.md, session 12).
//
// An aggregation epoch starts whenever the ACKs have not run ahead of the
// delivery rate. The room is the most packets acknowledged beyond that
// rate since an epoch began, over the last deliveryRounds round trips. It
// is bounded by the window itself and by ackRoomTime of the delivery rate.
// On a long path that makes it a small share of the window, so TMP stays
// as fair to TCP as before.
type ackRoom struct {
	start  time.Time // the current epoch's start; zero: none yet
	acked  float64   // packets acknowledged in the epoch
	maxima [deliveryRounds]float64
	round  int
	// most is the largest of maxima, kept as they change (on ACKs, not on
	// each packet sent, where the window is read), and extra is most
	// within ackRoomTime of the rate.
	most, extra float64
}

// ackRoomTime is the longest stall the room covers, at the delivery rate.
// The stalls measured were 0.2–3.2 ms, and a few up to 12.8 ms. Five
// milliseconds covers the first kind on a LAN, and stays a small part of a
// window on a path of tens of milliseconds.
const ackRoomTime = 5 * time.Millisecond

// onAck counts one packet acknowledged at now. rate is the path's
// delivery rate in packets a second (deliveryRate.best), 0 before one is
// measured; newRound: a round trip has passed.
func (a *ackRoom) onAck(now time.Time, rate float64, newRound bool) {
	if newRound {
		a.round++
		a.maxima[a.round%deliveryRounds] = 0
		a.most = 0
		for _, m := range a.maxima {
			a.most = max(a.most, m)
		}
	}
	if rate <= 0 {
		return // nothing to measure against before a round trip
	}
	expected := rate * now.Sub(a.start).Seconds()
	if a.start.IsZero() || a.acked <= expected {
		// The ACKs keep pace with the rate: a new epoch.
		a.start, a.acked, expected = now, 0, 0
	}
	a.acked++
	if extra := a.acked - expected; extra > a.maxima[a.round%deliveryRounds] {
		a.maxima[a.round%deliveryRounds] = extra
		a.most = max(a.most, extra)
	}
	a.extra = max(0, min(a.most, rate*ackRoomTime.Seconds()))
}

// room is how many packets a window of cwnd may hold beyond it.
func (a *ackRoom) room(cwnd float64) float64 { return min(a.extra, cwnd) }

// reset forgets the estimate: after a retransmission timeout the path is
// not the one it measured.
func (a *ackRoom) reset() { *a = ackRoom{} }
