package tmptransport

import "time"

// Loss detection and acknowledgement, after RFC 9002 §6: a packet is lost when
// a packet sent kPacketThreshold later was acknowledged, or when it is older
// than 9/8 of the RTT behind an acknowledged one. Losses are repaired by
// re-queueing the frames the packet carried, not the packet itself: stream
// bytes go back into their stream (and through the blender again, at their
// priority), control frames are regenerated with current values.

const (
	packetThreshold = 3
	timeThresholdN  = 9 // time threshold = 9/8 RTT
	timeThresholdD  = 8
	// maxReceivedRanges bounds the receive history; older packet numbers are
	// treated as duplicates (replay protection, SPEC.md §6).
	maxReceivedRanges = 64
	// maxAckRangesSent caps the ranges in one ACK frame.
	maxAckRangesSent = 32
)

// sentFrame is what a packet carried that may need repair on loss.
type sentFrame struct {
	stream *Stream // stream data or stream control; nil for session frames
	kind   uint8
	offset uint64
	length uint64
	fin    bool
}

const (
	sfStreamData = iota
	sfStreamOpen
	sfReset
	sfStopSending
	sfMaxStreamData
	sfMaxData
	sfMaxStreams
	sfPing
	sfHandshakeDone
	sfPMTUProbe // length: the probe's size
)

type sentPacket struct {
	pn           uint64
	sent         time.Time
	size         int
	ackEliciting bool
	frames       []sentFrame
	acked, lost  bool
	// one holds frames when there is one, as in most packets (a bulk
	// stream's run): the record and its frame are one allocation.
	one [1]sentFrame
}

// sentHistory holds the packets in flight in packet number order.
type sentHistory struct {
	packets       []*sentPacket // ascending pn; acked/lost ones trimmed from the front
	bytesInFlight int
	largestAcked  uint64
	hasAcked      bool
	lossTime      time.Time // earliest time-threshold loss, zero if none
	largestSent   uint64
	// free holds settled records for the next packets: a record a packet
	// was an allocation, 6 % of the back-end's CPU with its share of GC on
	// the lan profile (bench/RESULTS.md, session 11).
	free []*sentPacket
}

// maxFreePackets bounds the records kept for reuse, about 200 kB a session.
const maxFreePackets = 2048

// newPacket returns a cleared record, a settled one if there is one.
func (h *sentHistory) newPacket() *sentPacket {
	n := len(h.free)
	if n == 0 {
		p := new(sentPacket)
		p.frames = p.one[:0]
		return p
	}
	p := h.free[n-1]
	h.free[n-1] = nil
	h.free = h.free[:n-1]
	return p
}

// recycle keeps a record that left the history, once nothing refers to
// it: its frames (and their streams) are cleared, their array kept.
func (h *sentHistory) recycle(p *sentPacket) {
	if len(h.free) >= maxFreePackets {
		return
	}
	clear(p.frames)
	frames := p.frames[:0]
	*p = sentPacket{}
	if cap(frames) > 1 {
		p.frames = frames
	} else {
		p.frames = p.one[:0]
	}
	h.free = append(h.free, p)
}

func (h *sentHistory) onSent(p *sentPacket) {
	h.packets = append(h.packets, p)
	h.largestSent = p.pn
	if p.ackEliciting {
		h.bytesInFlight += p.size
	}
}

// leaveFlight takes an ack-eliciting packet out of the bytes in flight,
// once it is acknowledged or lost.
func (h *sentHistory) leaveFlight(p *sentPacket) {
	h.bytesInFlight -= p.size
}

// trim drops settled packets from the front.
func (h *sentHistory) trim() {
	i := 0
	for i < len(h.packets) && (h.packets[i].acked || h.packets[i].lost) {
		h.recycle(h.packets[i])
		h.packets[i] = nil
		i++
	}
	if i > 0 {
		h.packets = h.packets[i:]
	}
}

// detectLost marks packets lost by the packet or time threshold and returns
// them; it also sets lossTime for the earliest packet not yet lost by time.
func (h *sentHistory) detectLost(now time.Time, rtt *rttStats) []*sentPacket {
	h.lossTime = time.Time{}
	if !h.hasAcked {
		return nil
	}
	delay := max(rtt.latest, rtt.srtt()) * timeThresholdN / timeThresholdD
	delay = max(delay, time.Millisecond)
	var lost []*sentPacket
	for _, p := range h.packets {
		if p.pn > h.largestAcked {
			break
		}
		if p.acked || p.lost {
			continue
		}
		if h.largestAcked >= p.pn+packetThreshold || !p.sent.After(now.Add(-delay)) {
			p.lost = true
			if p.ackEliciting {
				h.leaveFlight(p)
			}
			lost = append(lost, p)
			continue
		}
		t := p.sent.Add(delay)
		if h.lossTime.IsZero() || t.Before(h.lossTime) {
			h.lossTime = t
		}
	}
	return lost
}

// receivedTracker records received packet numbers for ACK frames and replay
// detection.
type receivedTracker struct {
	ranges        rangeSet
	floor         uint64 // packet numbers below this are dropped as replays
	largestTime   time.Time
	ackPending    int // ack-eliciting packets not yet acknowledged
	ackDeadline   time.Time
	outOfOrder    bool
	sinceLastSent bool
	// ack is the frame buildAck fills and returns, its ranges reused:
	// the caller encodes it before the next call.
	ack ackFrame
}

// largest returns the largest packet number received, if any.
func (t *receivedTracker) largest() (uint64, bool) {
	if t.ranges.empty() {
		return 0, false
	}
	return t.ranges.last().end - 1, true
}

// isDuplicate reports whether pn was seen before (or is too old to tell).
func (t *receivedTracker) isDuplicate(pn uint64) bool {
	return pn < t.floor || t.ranges.contains(pn)
}

func (t *receivedTracker) onReceived(pn uint64, now time.Time, ackEliciting bool, maxDelay time.Duration) {
	if !t.ranges.empty() && pn+1 < t.ranges.last().end {
		t.outOfOrder = true
	} else if !t.ranges.empty() && pn > t.ranges.last().end {
		t.outOfOrder = true // a gap: ack at once so the peer detects loss fast
	}
	if t.ranges.empty() || pn >= t.ranges.last().end {
		t.largestTime = now
	}
	t.ranges.add(pn, pn+1)
	for len(t.ranges.r) > maxReceivedRanges {
		t.floor = t.ranges.first().end
		t.ranges.dropFirst()
	}
	t.sinceLastSent = true
	if ackEliciting {
		t.ackPending++
		if t.ackDeadline.IsZero() {
			t.ackDeadline = now.Add(maxDelay)
		}
	}
}

// ackDue reports whether an ACK should go out now: every second ack-eliciting
// packet, on reordering, or when the ack delay has run out (RFC 9000 §13.2).
func (t *receivedTracker) ackDue(now time.Time) bool {
	if !t.sinceLastSent || t.ranges.empty() {
		return false
	}
	return t.ackPending >= 2 || (t.ackPending > 0 && (t.outOfOrder || !now.Before(t.ackDeadline)))
}

// buildAck returns the ACK frame for what was received, valid until the
// next call.
func (t *receivedTracker) buildAck(now time.Time) *ackFrame {
	if t.ranges.empty() {
		return nil
	}
	f := &t.ack
	f.Delay, f.Ranges = now.Sub(t.largestTime), f.Ranges[:0]
	for i := len(t.ranges.r) - 1; i >= 0 && len(f.Ranges) < maxAckRangesSent; i-- {
		r := t.ranges.r[i]
		f.Ranges = append(f.Ranges, ackRange{Smallest: r.start, Largest: r.end - 1})
	}
	t.ackPending = 0
	t.ackDeadline = time.Time{}
	t.outOfOrder = false
	t.sinceLastSent = false
	return f
}
