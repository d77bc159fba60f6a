package tmptransport

// Loss recovery (SPEC §4): ACKs retire sent packets and feed the RTT
// estimate and congestion control; packets deemed lost or timed out (PTO)
// have their frames queued again, and urgent frames get a second copy
// (urgentCopyLocked). Runs with s.mu held.

import (
	"sort"
	"time"
)

// lossRecovery is what the sender knows of its packets in flight and the
// receiver of what it must acknowledge: packet numbers, the sent history,
// the received ranges, the RTT estimate, probe timeouts, and the urgent
// copies' credit. Guarded by the session lock.
type lossRecovery struct {
	pn         uint64 // the next packet number
	sent       sentHistory
	recv       receivedTracker
	rtt        rttStats
	ptoCount   int
	probes     int
	lastAESent time.Time // last ack-eliciting packet sent
	pingQueued bool
	dupCredit  int         // bytes of urgent copies that may be sent (urgentCopyLocked)
	dupPending []sentFrame // urgent frames whose copy waits for the window
}

func (s *Session) handleAckLocked(f *ackFrame, now time.Time) error {
	if f.largest() > s.lr.sent.largestSent || s.lr.pn == 0 {
		return errorf(ProtocolViolation, "ACK for packet %d, never sent", f.largest())
	}
	newlyAcked := false
	var largestNew *sentPacket
	snap := s.rttSnapshot()
	// Ranges are descending; walk the history once per range.
	for _, r := range f.Ranges {
		pk := s.lr.sent.packets
		i := sort.Search(len(pk), func(i int) bool { return pk[i].pn >= r.Smallest })
		for ; i < len(pk); i++ {
			p := pk[i]
			if p.pn > r.Largest {
				break
			}
			if p.acked {
				continue
			}
			wasLost := p.lost
			p.acked = true
			newlyAcked = true
			if p.pn == f.largest() {
				largestNew = p
			}
			if p.ackEliciting && !wasLost {
				s.lr.sent.leaveFlight(p)
				s.cc.OnPacketAcked(now, p.pn, p.size, &snap)
			}
			s.onFramesAckedLocked(p)
		}
	}
	if !newlyAcked {
		return nil
	}
	if !s.lr.sent.hasAcked || f.largest() > s.lr.sent.largestAcked {
		s.lr.sent.largestAcked = f.largest()
		s.lr.sent.hasAcked = true
	}
	if largestNew != nil && largestNew.ackEliciting {
		s.lr.rtt.update(now.Sub(largestNew.sent), f.Delay)
	}
	s.lr.ptoCount = 0
	s.detectLossLocked(now)
	s.lr.sent.trim()
	return nil
}

func (s *Session) detectLossLocked(now time.Time) {
	lost := s.lr.sent.detectLost(now, &s.lr.rtt)
	if len(lost) == 0 {
		return
	}
	snap := s.rttSnapshot()
	for _, p := range lost {
		s.counters.packetsLost++
		if p.ackEliciting {
			s.cc.OnPacketLost(now, p.pn, p.size, &snap)
		}
		s.onFramesLostLocked(p)
	}
	s.lr.sent.trim()
}

func (s *Session) onFramesAckedLocked(p *sentPacket) {
	for _, f := range p.frames {
		st := f.stream
		switch f.kind {
		case sfStreamData:
			if st.sendReset != nil {
				continue
			}
			s.unbufferedLocked(st, func() { st.sb.onAcked(f.offset, f.length, f.fin) })
			s.wakeWriterLocked(st)
			s.maybeFinishLocked(st)
		case sfReset:
			st.resetAcked = true
			s.maybeFinishLocked(st)
		case sfPMTUProbe:
			s.pmtuAckedLocked(p.pn, int(f.length))
		}
	}
}

// onFramesLostLocked re-queues what a lost packet carried.
func (s *Session) onFramesLostLocked(p *sentPacket) {
	for _, f := range p.frames {
		st := f.stream
		switch f.kind {
		case sfStreamData:
			if st.sendReset != nil || st.finished {
				continue
			}
			st.sb.onLost(f.offset, f.length, f.fin)
			s.counters.retransmittedBytes += f.length
			s.updateReadyLocked(st)
		case sfStreamOpen:
			if !st.finished {
				st.openQueued = true
				s.queueStreamControlLocked(st)
			}
		case sfReset:
			if !st.resetAcked && !st.finished {
				st.resetQueued = true
				s.queueStreamControlLocked(st)
			}
		case sfStopSending:
			if !st.recvDone() {
				st.stopQueued = true
				s.queueStreamControlLocked(st)
			}
		case sfMaxStreamData:
			st.rmu.Lock()
			final := st.rb.hasFinal
			st.rmu.Unlock()
			if !st.finished && !final {
				st.fc.queued = true
				s.queueStreamControlLocked(st)
			}
		case sfMaxData:
			s.fc.queued = true
		case sfMaxStreams:
			s.tab.queued = true
		case sfHandshakeDone:
			s.hsDoneQueue = true
		case sfPMTUProbe:
			s.pmtuLostLocked(p.pn, time.Now())
		}
	}
}

// onPTOLocked handles a probe timeout (RFC 9002 §6.2.4): send up to two
// ack-eliciting probes, carrying the oldest unacknowledged stream data again
// so that a lost tail is repaired within one probe.
func (s *Session) onPTOLocked(now time.Time) {
	s.lr.ptoCount++
	s.lr.probes = 2
	if s.lr.ptoCount >= 3 {
		s.cc.OnRetransmissionTimeout(now)
	}
	if s.lr.ptoCount >= 2 {
		s.pmtuBlackHoleLocked(now)
	}
	for _, p := range s.lr.sent.packets {
		if p.acked || p.lost || !p.ackEliciting {
			continue
		}
		s.onFramesLostLocked(p)
		break
	}
	s.lr.lastAESent = now // restart the PTO clock from this probe
}

// urgentCopyLocked builds a packet that repeats the priority-0 stream data of a
// packet just sent (see Config.NoUrgentDuplication). Either copy's ACK
// settles the bytes; the other's loss then re-queues nothing.
//
// The copy is sent only as the congestion window and the pacer allow, like
// any packet: when they do not, the urgent frames wait in dupPending for the
// next packet they allow, ahead of other data. Copies are paid from a
// credit that every other ack-eliciting packet adds 1/urgentDupShare of its
// size to, capped at that share of the window (at least one packet): copies
// are at most about 5 % of what a session sends, in bursts of at most 5 % of
// its window. Urgent traffic cannot double its share of a congested link,
// and a sender that makes everything urgent gets no more redundancy than
// that (TestUrgentDuplicationBounded).
func (s *Session) urgentCopyLocked(now time.Time, frames []sentFrame) []byte {
	live := frames[:0:0]
	for _, f := range frames {
		if f.kind != sfStreamData || f.stream.prio != 0 || f.stream.sendReset != nil {
			continue
		}
		st := f.stream
		if f.length > 0 && (f.offset < st.sb.base || f.offset+f.length > st.sb.end()) {
			continue // acknowledged meanwhile
		}
		live = append(live, f)
	}
	if len(live) == 0 {
		return nil
	}
	window := s.cc.Window() * s.maxPacket
	s.lr.dupCredit = min(s.lr.dupCredit, max(window/urgentDupShare, s.maxPacket))
	if s.lr.dupCredit < s.maxPacket {
		return nil // over the share: no copy
	}
	snap := s.rttSnapshot()
	if s.lr.sent.bytesInFlight+s.maxPacket > window || s.pace.delay(now, s.cc.PacingRate(&snap, s.maxPacket), s.maxPacket) > 0 {
		// Not now: first in line for the next packet the window and
		// the pacer allow (bounded; the oldest go first).
		s.lr.dupPending = append(s.lr.dupPending, live...)
		if n := len(s.lr.dupPending) - maxDupPending; n > 0 {
			s.lr.dupPending = append(s.lr.dupPending[:0], s.lr.dupPending[n:]...)
		}
		return nil
	}
	var pkt []byte
	var hdrLen int
	var copied []sentFrame
	for _, f := range live {
		st := f.stream
		if pkt == nil {
			pkt, hdrLen = s.startShort(now)
		}
		if len(pkt)+streamFrameHeaderLen(st.id, f.offset, f.length)+int(f.length) > s.payloadEnd() {
			break
		}
		pkt = appendStreamFrameHeader(pkt, st.id, f.offset, f.length, f.fin, false)
		pkt = st.sb.appendRange(pkt, f.offset, f.length)
		copied = append(copied, f)
	}
	if len(copied) == 0 {
		if pkt != nil {
			putBuf(pkt)
		}
		return nil
	}
	pn := s.lr.pn
	pkt = s.finishShort(pkt, hdrLen)
	s.lr.sent.onSent(&sentPacket{pn: pn, sent: now, size: len(pkt), ackEliciting: true, frames: copied})
	s.pace.onSent(len(pkt))
	s.lr.dupCredit -= len(pkt)
	s.counters.urgentCopyBytes += uint64(len(pkt))
	s.counters.packetsSent++
	s.counters.bytesSent += uint64(len(pkt))
	s.lq.mine.sentBytesInIntvl += uint64(len(pkt))
	s.cc.OnPacketSent(now, pn, len(pkt))
	return pkt
}
