package tmptransport

import (
	"crypto/hmac"
	"crypto/tls"
	"time"
)

// handleDatagramLocked processes one received UDP payload. Any error in it is
// the peer's: it is counted, and closes the session only when the packet was
// authentic (an attacker cannot kill a session with forged packets).
func (s *Session) handleDatagramLocked(d datagram) {
	now := d.at
	if now.IsZero() {
		now = time.Now()
	}
	b := d.b
	s.rxBuf = b
	defer func() {
		if s.rxBuf != nil {
			putBuf(s.rxBuf)
			s.rxBuf = nil
		}
	}()
	if s.dead || s.closeErr != nil {
		return
	}
	h, err := parseHeader(b)
	if err != nil {
		s.counters.malformed++
		return
	}
	if h.id != s.id {
		s.counters.malformed++
		return
	}
	if h.long {
		s.handleLongLocked(&h, b, now)
		return
	}
	s.curFrom = d.addr
	if d.opened != nil {
		h.opened, h.pn = d.opened, d.pn
	}
	ok := s.handleShortLocked(&h, b, now)
	s.curFrom = nil
	if ok && d.addr != nil && !s.connectd && !sameAddr(d.addr, s.RemoteAddr()) {
		// The peer may have moved (NAT rebinding), or someone rewrote the
		// source address: validate the new path before following it
		// (path.go).
		largest, _ := s.lr.recv.largest()
		s.onPacketFromNewAddress(d.addr, len(b), h.pn == largest, now)
	}
}

func (s *Session) handleLongLocked(h *header, raw []byte, now time.Time) {
	if h.version != Version {
		s.counters.malformed++
		return
	}
	if h.typ == packetRetry {
		s.handleRetryLocked(h)
		return
	}
	if s.established && (!s.isClient || s.confirmed) {
		return // late handshake packet
	}
	if !s.isClient {
		s.hsp.recvBytes += len(raw)
	}
	var level tls.QUICEncryptionLevel
	payload := h.payload
	switch h.typ {
	case packetInitial:
		level = tls.QUICEncryptionLevelInitial
	case packetHandshake:
		level = tls.QUICEncryptionLevelHandshake
		if s.hs == nil {
			return
		}
		if s.hs.hsRead == nil {
			if len(s.hsp.pendingHS) < 8 {
				s.hsp.pendingHS = append(s.hsp.pendingHS, append([]byte(nil), raw...))
			}
			return
		}
		p, err := s.hs.hsRead.open(nil, h.raw, h.payload, h.pn)
		if err != nil {
			s.counters.decryptFailures++
			return
		}
		payload = p
		// Only a client that got our Initial can seal a Handshake packet:
		// its address is proven (RFC 9000 §8.1).
		s.hsp.addrValidated = true
	}
	s.lastRecv = now
	if s.isClient && h.typ == packetHandshake {
		// The server has our ClientHello: stop resending Initial data.
		s.hs.sendBuf[0] = nil
	}
	progressed := false
	fp := frameParser{b: payload}
	for {
		f, err := fp.next()
		if err != nil {
			s.closeLocked(err, true)
			return
		}
		if f == nil {
			break
		}
		switch f := f.(type) {
		case *cryptoFrame:
			added, err := s.hs.handleCrypto(level, f.Offset, f.Data)
			if err != nil {
				s.closeLocked(err, true)
				return
			}
			progressed = progressed || added
		case *closeFrame:
			s.closeLocked(&SessionError{Code: f.Code, Reason: f.Reason, Remote: true}, false)
			return
		case paddingFrame, pingFrame:
		default:
			s.closeLocked(errorf(ProtocolViolation, "frame %T in handshake packet", f), true)
			return
		}
	}
	if !progressed {
		// The peer resent its flight: ours was probably lost.
		s.hsp.resendNow = true
	}
	if s.hs.done && !s.established {
		s.onHandshakeDoneLocked(now)
	}
	// Handshake keys may have just arrived for buffered packets.
	if s.hs != nil && s.hs.hsRead != nil && len(s.hsp.pendingHS) > 0 {
		pend := s.hsp.pendingHS
		s.hsp.pendingHS = nil
		for _, p := range pend {
			if hh, err := parseHeader(p); err == nil {
				s.handleLongLocked(&hh, p, now)
			}
		}
	}
	s.hsp.resendNow = s.hsp.resendNow || s.hsHasUnsent()
}

// handleRetryLocked follows a listener's Retry (SPEC.md §5.1): every later Initial
// carries its token. A client follows one Retry, and only before the server
// has sent anything else; the session ID, which an off-path attacker does not
// know, must match (parseHeader's caller checked it).
func (s *Session) handleRetryLocked(h *header) {
	if !s.isClient || s.hsp.retried || s.established || s.hs == nil || !s.hs.recv[0].have.empty() {
		return
	}
	if len(h.token) == 0 || len(h.token) > maxTokenLen {
		return
	}
	s.hsp.retried = true
	s.hsp.retryToken = append([]byte(nil), h.token...)
	s.hsp.sent[0] = 0
	s.hsp.resendNow = true
	s.wakeLocked()
}

func (s *Session) onHandshakeDoneLocked(now time.Time) {
	hs := s.hs
	keys, err := newAppKeys(hs.appRead, hs.appWrite)
	if err != nil {
		s.closeLocked(err, true)
		return
	}
	p := hs.peerParams
	keys.setLimits(s.cfg.KeyUpdateInterval)
	s.keys = keys
	s.publishReadKeyLocked()
	s.peerParams = p
	s.tlsState = hs.connectionState()
	s.established = true
	s.sendFC.limit = p.InitialMaxData
	s.tab.peerMax = p.MaxStreams
	s.maxPacket = min(s.cfg.BasePacketSize, int(p.MaxPacketSize))
	s.pmtu.start(s.maxPacket, min(s.cfg.MaxPacketSize, int(p.MaxPacketSize)), now)
	if p.IdleTimeout > 0 {
		s.idleTimeout = min(s.idleTimeout, p.IdleTimeout)
	}
	s.lr.rtt.maxAckDelay = p.MaxAckDelay
	s.lq.next = now.Add(s.cfg.LinkQualityInterval)
	s.lq.mine.start = now
	if s.isClient {
		s.resetToken = p.StatelessResetToken
		s.hsp.resendNow = true // send our Finished
	} else {
		s.confirmed = true
		s.hsDoneQueue = true
		s.hs.close()
		s.hs = nil
		pend := s.hsp.pendingApp
		s.hsp.pendingApp = nil
		// Their stream data lies in copies, not in the datagram being
		// handled: nothing for a stream to keep.
		cur := s.rxBuf
		s.rxBuf = nil
		for _, b := range pend {
			if h, err := parseHeader(b); err == nil {
				s.handleShortLocked(&h, b, now)
			}
		}
		s.rxBuf = cur
		if s.listener != nil {
			s.listener.enqueue(s)
		}
	}
	if !s.isClient {
		close(s.hsDone)
	}
	s.wakeLocked()
}

// handleShortLocked processes a 1-RTT packet and reports whether it authenticated.
func (s *Session) handleShortLocked(h *header, raw []byte, now time.Time) bool {
	if s.keys == nil {
		if !s.isClient && len(s.hsp.pendingApp) < 16 {
			s.hsp.pendingApp = append(s.hsp.pendingApp, append([]byte(nil), raw...))
		}
		return false
	}
	payload, ok := s.openShortLocked(h, raw)
	if !ok {
		return false
	}
	if s.lr.recv.isDuplicate(h.pn) {
		s.counters.replays++
		return false
	}
	if s.isClient && !s.confirmed {
		// The server answered under 1-RTT keys, so it verified our
		// certificate: only now does Dial return (TLS 1.3 tells a client
		// nothing when the server rejects its certificate).
		s.confirmed = true
		if s.hs != nil {
			s.hs.close()
			s.hs = nil
		}
		close(s.hsDone)
	}
	s.lastRecv = now
	s.counters.packetsReceived++
	s.counters.bytesReceived += uint64(len(raw))
	s.lq.mine.onPacket(now, h.pn, len(raw), h.sendTime, h.hasTime)
	ackEliciting := false
	fp := frameParser{b: payload, stream: &s.rxStream, ackInto: &s.rxAck}
	for {
		f, err := fp.next()
		if err != nil {
			s.closeLocked(err, true)
			return true
		}
		if f == nil {
			break
		}
		if f.ackEliciting() {
			ackEliciting = true
		}
		if err := s.handleFrameLocked(f, now); err != nil {
			s.closeLocked(err, true)
			return true
		}
		if s.closeErr != nil {
			return true
		}
	}
	s.lr.recv.onReceived(h.pn, now, ackEliciting, s.cfg.MaxAckDelay)
	return true
}

// openShortLocked returns the plaintext of a 1-RTT packet, and sets h.pn to
// the whole packet number. A packet the socket's reader opened already
// (openearly.go) is taken if the key it used is the one the session would
// have used (appKeys.acceptOpened); one opened under a key the session has
// since left behind is dropped (the peer resends its frames).
func (s *Session) openShortLocked(h *header, raw []byte) ([]byte, bool) {
	if h.opened != nil {
		ok, err := s.keys.acceptOpened(h.opened, h)
		if err != nil {
			s.closeLocked(err, true)
			return nil, false
		}
		if !ok {
			return nil, false
		}
		s.counters.openedByReader++
		s.publishReadKeyLocked()
		return h.payload, true
	}
	// Decrypt in place (no allocation per packet). A failed Open may
	// scribble over the buffer, so keep the tail for the reset check.
	var tail [statelessResetTokenLen]byte
	if len(raw) >= statelessResetTokenLen {
		copy(tail[:], raw[len(raw)-statelessResetTokenLen:])
	}
	largest, ok := s.lr.recv.largest()
	h.pn = decodePacketNumber(largest, ok, h.pn)
	payload, err := s.keys.open(h.payload[:0], h)
	if err != nil {
		if s.isStatelessReset(len(raw), tail[:]) {
			s.closeLocked(ErrStatelessReset, false)
			return nil, false
		}
		s.counters.decryptFailures++
		if s.keys.onForged() {
			s.closeLocked(&SessionError{Code: AEADLimitReached, Reason: "forged packets reached the AEAD integrity limit"}, true)
		}
		return nil, false
	}
	s.publishReadKeyLocked()
	return payload, true
}

// isStatelessReset checks a packet that failed to decrypt against the
// server's reset token (SPEC.md §6), in constant time.
func (s *Session) isStatelessReset(size int, tail []byte) bool {
	if len(s.resetToken) != statelessResetTokenLen || size < shortHdrLen+statelessResetTokenLen {
		return false
	}
	return hmac.Equal(tail, s.resetToken)
}
