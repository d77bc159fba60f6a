package tmptransport

import (
	"time"
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
	pkt := appendInitialHeader(getBuf(s.maxPacket+aeadOverhead), packetInitial, s.id, s.hsp.pn, s.hsp.retryToken)
	s.hsp.pn++
	return s.closeFrame.appendTo(pkt)
}

func (s *Session) hsHasUnsent() bool {
	if s.hs == nil {
		return false
	}
	for i := range s.hs.sendBuf {
		if len(s.hs.sendBuf[i]) > s.hsp.sent[i] {
			return true
		}
	}
	return false
}

// sendHandshakeLocked sends the whole unconfirmed flight (SPEC.md §5).
func (s *Session) sendHandshakeLocked(now time.Time, out [][]byte) [][]byte {
	due := s.hsp.resendNow || s.hsHasUnsent() || (!s.hsp.next.IsZero() && !now.Before(s.hsp.next))
	if !due {
		return out
	}
	hs := s.hs
	room := s.maxPacket - longHeaderLen - 1 - len(s.hsp.retryToken) - aeadOverhead
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
			pkt := appendInitialHeader(getBuf(s.maxPacket+aeadOverhead), typ, s.id, s.hsp.pn, s.hsp.retryToken)
			pkt = append(pkt, payload...)
			if lvl == 0 && s.isClient {
				// RFC 9000 §14.1: a padded first flight limits what a
				// spoofed source address can make the server send.
				if pad := minPacketSize - len(pkt); pad > 0 {
					pkt = paddingFrame{n: pad}.appendTo(pkt)
				}
			} else if lvl == 1 {
				pkt = hs.hsWrite.sealInPlace(pkt, longHeaderLen, s.hsp.pn)
			}
			s.hsp.pn++
			if !s.amplificationAllows(len(pkt)) {
				putBuf(pkt)
				break
			}
			out = append(out, pkt)
		}
		s.hsp.sent[lvl] = len(data)
	}
	s.hsp.resendNow = false
	s.hsp.next = now.Add(s.hsp.rto)
	return out
}

// amplificationAllows reports whether a server may send n more bytes to a
// client whose address is not validated, and counts them if so: at most 3×
// what the client sent (RFC 9000 §8.1), whatever the packet, CLOSE included.
func (s *Session) amplificationAllows(n int) bool {
	if s.isClient || s.hsp.addrValidated {
		return true
	}
	if s.hsp.sentBytes+n > 3*s.hsp.recvBytes {
		return false
	}
	s.hsp.sentBytes += n
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
	pkt = appendShortHeader(pkt, s.keys.writePhase, s.id, s.lr.pn, stamp, uint32(now.UnixMicro()))
	return pkt, len(pkt)
}

func (s *Session) finishShort(pkt []byte, hdrLen int) []byte {
	pn := s.lr.pn
	s.lr.pn++
	s.keys.sealed()
	return s.keys.write.sealInPlace(pkt, hdrLen, pn)
}

func (s *Session) hasControlLocked() bool {
	return s.hsDoneQueue || s.fc.queued || s.tab.queued || s.lr.pingQueued || len(s.ctrl) > 0
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
	if s.confirmed && s.lr.sent.bytesInFlight+s.maxPacket <= s.cc.Window()*s.maxPacket {
		if size, ok := s.pmtu.want(now, s.lr.rtt.srtt()); ok {
			out = append(out, s.pmtuProbeLocked(now, size))
		}
	}
	for len(out) < maxPacketsPerRound {
		if len(s.lr.dupPending) > 0 {
			// Copies of urgent data that waited for the window go first.
			pending := s.lr.dupPending
			s.lr.dupPending = nil
			if dup := s.urgentCopyLocked(now, pending); dup != nil {
				out = append(out, dup)
				continue
			}
		}
		ackNow := s.lr.recv.ackDue(now)
		probe := s.lr.probes > 0
		cwndOK := s.lr.sent.bytesInFlight+s.maxPacket <= s.cc.Window()*s.maxPacket
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
		if !sendAE && !ackNow && !probe && !s.lq.queued {
			break
		}
		pkt, hdrLen := s.startShort(now)
		limit := s.payloadEnd()
		if s.lr.recv.ackPending > 0 || ackNow {
			if f := s.lr.recv.buildAck(now); f != nil {
				pkt = f.appendTo(pkt)
			}
		}
		sp := s.lr.sent.newPacket()
		frames := sp.frames
		ae := false
		if s.lq.queued && len(pkt)+64 < limit {
			s.lq.queued = false
			f := s.lq.mine.report(now, s.cc.Window(), s.lr.rtt.srtt())
			pkt = f.appendTo(pkt)
		}
		if sendAE {
			pkt = s.appendControlLocked(pkt, limit, &frames)
			var full bool
			pkt, full = s.appendStreamDataLocked(pkt, limit, &frames)
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
		pn := s.lr.pn
		pkt = s.finishShort(pkt, hdrLen)
		sp.pn, sp.sent, sp.size, sp.ackEliciting, sp.frames = pn, now, len(pkt), ae, frames
		s.lr.sent.onSent(sp)
		s.counters.packetsSent++
		s.counters.bytesSent += uint64(len(pkt))
		s.lq.mine.sentBytesInIntvl += uint64(len(pkt))
		s.lastSent = now
		if ae {
			s.lr.lastAESent = now
			s.cc.OnPacketSent(now, pn, len(pkt))
			if probe {
				s.lr.probes--
			} else {
				s.pace.onSent(len(pkt))
			}
			s.lr.dupCredit += len(pkt) / urgentDupShare
		}
		out = append(out, pkt)
		if ae && !s.cfg.NoUrgentDuplication && len(out) < maxPacketsPerRound {
			if dup := s.urgentCopyLocked(now, frames); dup != nil {
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

// urgentDupShare: urgent copies in flight are at most 1/urgentDupShare of
// the congestion window (5 %).
const urgentDupShare = 20

// maxDupPending bounds the urgent frames waiting for a copy.
const maxDupPending = 64
