package tmptransport

import (
	"time"

	"github.com/quic-go/quic-go/quicvarint"
)

// sendLocked builds the packets that may leave now and returns them; run
// writes them after releasing the lock.
func (s *Session) sendLocked(now time.Time, out [][]byte) [][]byte {
	if s.dead {
		return out
	}
	if s.closeFrame != nil {
		for i := 0; i < 2; i++ { // twice: a lost CLOSE would leave the peer waiting for its idle timeout
			p := s.buildClosePacket(now)
			if p != nil && !s.amplificationAllows(len(p)) {
				putBuf(p)
				p = nil
			}
			if p != nil {
				out = append(out, p)
			}
		}
		s.dead = true
		return out
	}
	if s.hs != nil && (!s.established || (s.isClient && !s.confirmed)) {
		out = s.sendHandshakeLocked(now, out)
	}
	if s.established {
		s.sendPathLocked(now)
		out = s.sendAppLocked(now, out)
	}
	return out
}

func (s *Session) buildClosePacket(now time.Time) []byte {
	if s.keys != nil {
		pkt, hdr := s.startShort(now)
		pkt = s.closeFrame.appendTo(pkt)
		return s.finishShort(pkt, hdr)
	}
	pkt := appendInitialHeader(getBuf(s.maxPacket+aeadOverhead), packetInitial, s.id, s.hsPN, s.retryToken)
	s.hsPN++
	return s.closeFrame.appendTo(pkt)
}

func (s *Session) hsHasUnsent() bool {
	if s.hs == nil {
		return false
	}
	for i := range s.hs.sendBuf {
		if len(s.hs.sendBuf[i]) > s.hsSent[i] {
			return true
		}
	}
	return false
}

// sendHandshakeLocked sends the whole unconfirmed flight (SPEC.md §5).
func (s *Session) sendHandshakeLocked(now time.Time, out [][]byte) [][]byte {
	due := s.hsResendNow || s.hsHasUnsent() || (!s.hsNext.IsZero() && !now.Before(s.hsNext))
	if !due {
		return out
	}
	hs := s.hs
	room := s.cfg.MaxPacketSize - longHeaderLen - 1 - len(s.retryToken) - aeadOverhead
	for lvl := 0; lvl < 2; lvl++ {
		data := hs.sendBuf[lvl]
		if len(data) == 0 || (lvl == 1 && hs.hsWrite == nil) {
			continue
		}
		for _, payload := range appendCryptoFrames(data, room) {
			typ := uint8(packetInitial)
			if lvl == 1 {
				typ = packetHandshake
			}
			pkt := appendInitialHeader(getBuf(s.cfg.MaxPacketSize+aeadOverhead), typ, s.id, s.hsPN, s.retryToken)
			pkt = append(pkt, payload...)
			if lvl == 0 && s.isClient {
				// RFC 9000 §14.1: a padded first flight limits what a
				// spoofed source address can make the server send.
				if pad := minPacketSize - len(pkt); pad > 0 {
					pkt = paddingFrame{n: pad}.appendTo(pkt)
				}
			} else if lvl == 1 {
				pkt = hs.hsWrite.sealInPlace(pkt, longHeaderLen, s.hsPN)
			}
			s.hsPN++
			if !s.amplificationAllows(len(pkt)) {
				putBuf(pkt)
				break
			}
			out = append(out, pkt)
		}
		s.hsSent[lvl] = len(data)
	}
	s.hsResendNow = false
	s.hsNext = now.Add(s.hsRTO)
	return out
}

// amplificationAllows reports whether a server may send n more bytes to a
// client whose address is not validated, and counts them if so: at most 3×
// what the client sent (RFC 9000 §8.1), whatever the packet, CLOSE included.
func (s *Session) amplificationAllows(n int) bool {
	if s.isClient || s.addrValidated {
		return true
	}
	if s.hsSentBytes+n > 3*s.hsRecvBytes {
		return false
	}
	s.hsSentBytes += n
	return true
}

// payloadEnd is where a short packet's frames must end: the tag follows.
func (s *Session) payloadEnd() int { return s.maxPacket - aeadOverhead }

// startShort begins a 1-RTT packet. It carries the send time if none went
// out in the last millisecond: enough samples for the peer's delay-variation
// estimate (§8), at 4 bytes on one packet in many.
func (s *Session) startShort(now time.Time) ([]byte, int) {
	pkt := getBuf(s.maxPacket + aeadOverhead)
	stamp := now.Sub(s.lastStamp) >= time.Millisecond
	if stamp {
		s.lastStamp = now
	}
	pkt = appendShortHeader(pkt, s.keys.writePhase, s.id, s.pn, stamp, uint32(now.UnixMicro()))
	return pkt, len(pkt)
}

func (s *Session) finishShort(pkt []byte, hdrLen int) []byte {
	pn := s.pn
	s.pn++
	s.keys.sealed()
	return s.keys.write.sealInPlace(pkt, hdrLen, pn)
}

func (s *Session) hasControlLocked() bool {
	return s.hsDoneQueue || s.maxDataQ || s.maxStreamsQ || s.pingQueued || len(s.ctrl) > 0
}

func (s *Session) blendHasData() bool {
	for p := range s.blend.rings {
		if s.blend.rings[p].nReady > 0 {
			return true
		}
	}
	return false
}

// sendAppLocked builds 1-RTT packets: ACK first, then control frames, then
// stream sub-packets from the blender, within the congestion window and the
// pacing rate.
func (s *Session) sendAppLocked(now time.Time, out [][]byte) [][]byte {
	snap := s.rttSnapshot()
	for len(out) < maxPacketsPerRound {
		if len(s.dupPending) > 0 {
			// Copies of urgent data that waited for the window go first.
			pending := s.dupPending
			s.dupPending = nil
			if dup := s.urgentCopy(now, pending); dup != nil {
				out = append(out, dup)
				continue
			}
		}
		ackNow := s.recv.ackDue(now)
		probe := s.probes > 0
		cwndOK := s.sent.bytesInFlight+s.maxPacket <= s.cc.Window()*s.maxPacket
		wantAE := s.hasControlLocked() || s.blendHasData()
		sendAE := wantAE && (cwndOK || probe)
		if sendAE && !probe {
			if d := s.pace.delay(now, s.cc.PacingRate(&snap, s.maxPacket), s.maxPacket); d > 0 {
				s.pacedUntil = now.Add(d)
				sendAE = false
			} else {
				s.pacedUntil = time.Time{}
			}
		}
		if !sendAE && !ackNow && !probe && !s.qualityQ {
			break
		}
		pkt, hdrLen := s.startShort(now)
		limit := s.payloadEnd()
		if s.recv.ackPending > 0 || ackNow {
			if f := s.recv.buildAck(now); f != nil {
				pkt = f.appendTo(pkt)
			}
		}
		var frames []sentFrame
		ae := false
		if s.qualityQ && len(pkt)+64 < limit {
			s.qualityQ = false
			f := s.quality.report(now, s.cc.Window(), s.rtt.srtt())
			pkt = f.appendTo(pkt)
		}
		if sendAE {
			pkt = s.appendControl(pkt, limit, &frames)
			var full bool
			pkt, full = s.appendStreamData(pkt, limit, &frames)
			ae = len(frames) > 0
			if full && s.gso && len(pkt) < limit {
				// Equal-sized packets batch into one GSO send (gso_linux.go).
				pkt = paddingFrame{n: limit - len(pkt)}.appendTo(pkt)
			}
		}
		if probe && !ae {
			pkt = pingFrame{}.appendTo(pkt)
			frames = append(frames, sentFrame{kind: sfPing})
			ae = true
		}
		if len(pkt) == hdrLen {
			putBuf(pkt)
			break
		}
		pn := s.pn
		pkt = s.finishShort(pkt, hdrLen)
		sp := &sentPacket{pn: pn, sent: now, size: len(pkt), ackEliciting: ae, frames: frames}
		s.sent.onSent(sp)
		s.counters.packetsSent++
		s.counters.bytesSent += uint64(len(pkt))
		s.quality.sentBytesInIntvl += uint64(len(pkt))
		s.lastSent = now
		if ae {
			s.lastAESent = now
			s.cc.OnPacketSent(now, pn, len(pkt))
			if probe {
				s.probes--
			} else {
				s.pace.onSent(len(pkt))
			}
			s.dupCredit += len(pkt) / urgentDupShare
		}
		out = append(out, pkt)
		if ae && !s.cfg.NoUrgentDuplication && len(out) < maxPacketsPerRound {
			if dup := s.urgentCopy(now, frames); dup != nil {
				out = append(out, dup)
			}
		}
	}
	if s.confirmed && s.keys.sentInPhase >= s.keys.updateAt {
		if err := s.keys.initiateUpdate(); err != nil {
			s.closeLocked(err, true)
		}
	}
	if s.keys.sentInPhase+maxPacketsPerRound+2 >= s.keys.limit {
		// The update is still waiting for the peer, and the key is near
		// its confidentiality limit: stop here rather than pass it
		// (RFC 9001 §6.6). The CLOSE is sealed under the same key, within
		// the margin kept above.
		s.closeLocked(&SessionError{Code: AEADLimitReached, Reason: "key update not completed before the AEAD confidentiality limit"}, true)
	}
	return out
}

// appendControl adds queued control frames that fit.
func (s *Session) appendControl(pkt []byte, limit int, frames *[]sentFrame) []byte {
	const maxCtrl = 40 // the largest control frame, encoded
	fits := func() bool { return len(pkt)+maxCtrl <= limit }
	if s.hsDoneQueue && fits() {
		s.hsDoneQueue = false
		pkt = handshakeDoneFrame{}.appendTo(pkt)
		*frames = append(*frames, sentFrame{kind: sfHandshakeDone})
	}
	if s.maxDataQ && fits() {
		s.maxDataQ = false
		pkt = (&maxDataFrame{Max: s.recvMax}).appendTo(pkt)
		*frames = append(*frames, sentFrame{kind: sfMaxData})
	}
	if s.maxStreamsQ && fits() {
		s.maxStreamsQ = false
		pkt = (&maxStreamsFrame{Max: s.maxStreamsAdv}).appendTo(pkt)
		*frames = append(*frames, sentFrame{kind: sfMaxStreams})
	}
	if s.pingQueued && fits() {
		s.pingQueued = false
		pkt = pingFrame{}.appendTo(pkt)
		*frames = append(*frames, sentFrame{kind: sfPing})
	}
	i := 0
	for ; i < len(s.ctrl) && len(pkt)+4*maxCtrl <= limit; i++ {
		st := s.ctrl[i]
		st.ctrlListed = false
		if st.openQueued {
			st.openQueued = false
			var flags uint64
			if st.compress {
				flags |= openFlagZstd
			}
			pkt = (&streamOpenFrame{StreamID: st.id, Priority: uint8(st.prio), Flags: flags}).appendTo(pkt)
			*frames = append(*frames, sentFrame{kind: sfStreamOpen, stream: st})
		}
		if st.resetQueued {
			st.resetQueued = false
			pkt = (&resetStreamFrame{StreamID: st.id, Code: st.sendReset.Code, FinalSize: st.resetFinal}).appendTo(pkt)
			*frames = append(*frames, sentFrame{kind: sfReset, stream: st})
		}
		if st.stopQueued {
			st.stopQueued = false
			pkt = (&stopSendingFrame{StreamID: st.id, Code: StreamCancelled}).appendTo(pkt)
			*frames = append(*frames, sentFrame{kind: sfStopSending, stream: st})
		}
		if st.maxDataQueued {
			st.maxDataQueued = false
			pkt = (&maxStreamDataFrame{StreamID: st.id, Max: st.recvMax}).appendTo(pkt)
			*frames = append(*frames, sentFrame{kind: sfMaxStreamData, stream: st})
		}
	}
	n := copy(s.ctrl, s.ctrl[i:])
	for j := n; j < len(s.ctrl); j++ {
		s.ctrl[j] = nil
	}
	s.ctrl = s.ctrl[:n]
	return pkt
}

// minStreamFrameData is the least stream data worth a fresh frame header; a
// smaller remainder of the packet is left to padding.
const minStreamFrameData = 32

// packetRun is the stream data one packet carries for one stream: the
// sub-packets the blender gave that stream, back to back, under one STREAM
// frame header. With 512-byte sub-packets a packet holds nearly three; one
// header instead of three saves 18 bytes a packet, over 1 % of goodput.
type packetRun struct {
	st       *Stream
	off, n   uint64
	fin      bool
	frameLen int // encoded header length so far
}

func streamFrameHeaderLen(id, off, n uint64) int {
	return 1 + quicvarint.Len(id) + quicvarint.Len(off) + quicvarint.Len(n)
}

// appendStreamData fills the rest of the packet with sub-packets chosen by
// the blender (seed step 6: the packet is sent when full or when no more data
// is ready). It reports whether the packet is full.
func (s *Session) appendStreamData(pkt []byte, limit int, frames *[]sentFrame) ([]byte, bool) {
	runs := s.runs[:0]
	used := len(pkt)
	full := false
	for {
		room := limit - used - 4 // the smallest frame header
		if room <= 0 {
			full = true
			break
		}
		e, n := s.blend.next(room)
		if e == nil {
			break
		}
		st := e.src.(*Stream)
		// The bytes this pick would cost: a fresh header, or none when it
		// continues the stream's run in this packet.
		off := st.sb.next
		if !st.sb.retransmit.empty() {
			off = st.sb.retransmit.first().start
		}
		var run *packetRun
		if k := len(runs) - 1; k >= 0 && runs[k].st == st && runs[k].off+runs[k].n == off && !runs[k].fin {
			run = &runs[k]
		}
		var avail int
		if run != nil {
			avail = limit - used - (streamFrameHeaderLen(st.id, run.off, run.n+uint64(n)) - run.frameLen)
		} else {
			avail = limit - used - streamFrameHeaderLen(st.id, off, uint64(n))
			if avail < min(n, minStreamFrameData) {
				full = true
				break
			}
		}
		if avail <= 0 {
			full = true
			break
		}
		f, retrans := s.popStreamFrame(st, uint64(min(n, avail)))
		if f == nil {
			s.blend.unready(e)
			s.noteBlocked(st)
			continue
		}
		// popStreamFrame takes lost bytes first, then new ones, exactly as
		// off predicted, so a predicted run always continues here.
		if run == nil {
			runs = append(runs, packetRun{st: st, off: f.Offset})
			run = &runs[len(runs)-1]
			used += streamFrameHeaderLen(st.id, f.Offset, 0)
			run.frameLen = streamFrameHeaderLen(st.id, f.Offset, 0)
		}
		run.n += uint64(len(f.Data))
		run.fin = f.Fin
		hl := streamFrameHeaderLen(st.id, run.off, run.n)
		used += hl - run.frameLen + len(f.Data)
		run.frameLen = hl
		if !retrans {
			s.counters.streamBytesSent += uint64(len(f.Data))
			s.counters.sentByPriority[st.prio] += uint64(len(f.Data))
		}
		s.blend.charge(e, max(len(f.Data), 1))
		s.noteBlocked(st)
	}
	s.blend.endPacket()
	for _, r := range runs {
		pkt = appendStreamFrameHeader(pkt, r.st.id, r.off, r.n, r.fin)
		pkt = r.st.sb.appendRange(pkt, r.off, r.n)
		*frames = append(*frames, sentFrame{kind: sfStreamData, stream: r.st, offset: r.off, length: r.n, fin: r.fin})
	}
	clear(runs)
	s.runs = runs[:0]
	return pkt, full
}

// updateReady puts a stream into or out of its blender ring after its
// sendable bytes changed.
func (s *Session) updateReady(st *Stream) {
	s.blend.update(&st.entry)
	s.noteBlocked(st)
}

// noteBlocked remembers a stream that has data but is held back by the
// session's flow-control window, so that MAX_DATA can wake it.
func (s *Session) noteBlocked(st *Stream) {
	if !st.entry.ready && !st.blockedByWin && st.sendReset == nil && st.sb.unsent() > 0 && s.sendWindowLeft() == 0 {
		st.blockedByWin = true
		s.blocked = append(s.blocked, st)
	}
}

// popStreamFrame takes the next sub-packet of a stream: lost bytes first,
// then new bytes within both flow-control windows.
func (s *Session) popStreamFrame(st *Stream, n uint64) (*streamFrame, bool) {
	if off, data, ok := st.sb.popRetransmit(n); ok {
		end := off + uint64(len(data))
		fin := st.sb.finQueued && !st.sb.finAcked && end == st.sb.end() && st.sb.next == end
		if fin {
			st.sb.finSent, st.sb.finLost = true, false
		}
		return &streamFrame{StreamID: st.id, Offset: off, Data: data, Fin: fin}, true
	}
	limit := min(st.peerMax, st.sb.next+s.sendWindowLeft())
	off, data := st.sb.popNew(n, limit)
	s.sentData += uint64(len(data))
	fin := st.sb.finPending()
	if len(data) == 0 && !fin {
		return nil, false
	}
	if fin {
		st.sb.finSent, st.sb.finLost = true, false
	}
	return &streamFrame{StreamID: st.id, Offset: off, Data: data, Fin: fin}, false
}

// onPTOLocked handles a probe timeout (RFC 9002 §6.2.4): send up to two
// ack-eliciting probes, carrying the oldest unacknowledged stream data again
// so that a lost tail is repaired within one probe.
func (s *Session) onPTOLocked(now time.Time) {
	s.ptoCount++
	s.probes = 2
	if s.ptoCount >= 3 {
		s.cc.OnRetransmissionTimeout(now)
	}
	for _, p := range s.sent.packets {
		if p.acked || p.lost || !p.ackEliciting {
			continue
		}
		s.onFramesLost(p)
		break
	}
	s.lastAESent = now // restart the PTO clock from this probe
}

// urgentDupShare: urgent copies in flight are at most 1/urgentDupShare of
// the congestion window (5 %).
const urgentDupShare = 20

// maxDupPending bounds the urgent frames waiting for a copy.
const maxDupPending = 64

// urgentCopy builds a packet that repeats the priority-0 stream data of a
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
func (s *Session) urgentCopy(now time.Time, frames []sentFrame) []byte {
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
	s.dupCredit = min(s.dupCredit, max(window/urgentDupShare, s.maxPacket))
	if s.dupCredit < s.maxPacket {
		return nil // over the share: no copy
	}
	snap := s.rttSnapshot()
	if s.sent.bytesInFlight+s.maxPacket > window || s.pace.delay(now, s.cc.PacingRate(&snap, s.maxPacket), s.maxPacket) > 0 {
		// Not now: first in line for the next packet the window and
		// the pacer allow (bounded; the oldest go first).
		s.dupPending = append(s.dupPending, live...)
		if n := len(s.dupPending) - maxDupPending; n > 0 {
			s.dupPending = append(s.dupPending[:0], s.dupPending[n:]...)
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
		pkt = appendStreamFrameHeader(pkt, st.id, f.offset, f.length, f.fin)
		pkt = st.sb.appendRange(pkt, f.offset, f.length)
		copied = append(copied, f)
	}
	if len(copied) == 0 {
		if pkt != nil {
			putBuf(pkt)
		}
		return nil
	}
	pn := s.pn
	pkt = s.finishShort(pkt, hdrLen)
	s.sent.onSent(&sentPacket{pn: pn, sent: now, size: len(pkt), ackEliciting: true, frames: copied})
	s.pace.onSent(len(pkt))
	s.dupCredit -= len(pkt)
	s.counters.urgentCopyBytes += uint64(len(pkt))
	s.counters.packetsSent++
	s.counters.bytesSent += uint64(len(pkt))
	s.quality.sentBytesInIntvl += uint64(len(pkt))
	s.cc.OnPacketSent(now, pn, len(pkt))
	return pkt
}
