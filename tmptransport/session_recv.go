package tmptransport

import (
	"crypto/hmac"
	"crypto/tls"
	"sort"
	"time"
)

// handleDatagram processes one received UDP payload. Any error in it is
// the peer's: it is counted, and closes the session only when the packet was
// authentic (an attacker cannot kill a session with forged packets).
func (s *Session) handleDatagram(d datagram) {
	now := d.at
	if now.IsZero() {
		now = time.Now()
	}
	b := d.b
	defer putBuf(b)
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
		s.handleLong(h, b, now)
		return
	}
	s.curFrom = d.addr
	ok := s.handleShort(h, b, now)
	s.curFrom = nil
	if ok && d.addr != nil && !s.connectd && d.addr.String() != s.RemoteAddr().String() {
		// The peer may have moved (NAT rebinding), or someone rewrote the
		// source address: validate the new path before following it
		// (path.go).
		largest, _ := s.recv.largest()
		s.onPacketFromNewAddress(d.addr, len(b), h.pn == largest, now)
	}
}

func (s *Session) handleLong(h *header, raw []byte, now time.Time) {
	if h.version != Version {
		s.counters.malformed++
		return
	}
	if h.typ == packetRetry {
		s.handleRetry(h)
		return
	}
	if s.established && (!s.isClient || s.confirmed) {
		return // late handshake packet
	}
	if !s.isClient {
		s.hsRecvBytes += len(raw)
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
			if len(s.pendingHS) < 8 {
				s.pendingHS = append(s.pendingHS, append([]byte(nil), raw...))
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
		s.addrValidated = true
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
		s.hsResendNow = true
	}
	if s.hs.done && !s.established {
		s.onHandshakeDoneLocked(now)
	}
	// Handshake keys may have just arrived for buffered packets.
	if s.hs != nil && s.hs.hsRead != nil && len(s.pendingHS) > 0 {
		pend := s.pendingHS
		s.pendingHS = nil
		for _, p := range pend {
			if hh, err := parseHeader(p); err == nil {
				s.handleLong(hh, p, now)
			}
		}
	}
	s.hsResendNow = s.hsResendNow || s.hsHasUnsent()
}

// handleRetry follows a listener's Retry (SPEC.md §5.1): every later Initial
// carries its token. A client follows one Retry, and only before the server
// has sent anything else; the session ID, which an off-path attacker does not
// know, must match (parseHeader's caller checked it).
func (s *Session) handleRetry(h *header) {
	if !s.isClient || s.retried || s.established || s.hs == nil || !s.hs.recv[0].have.empty() {
		return
	}
	if len(h.token) == 0 || len(h.token) > maxTokenLen {
		return
	}
	s.retried = true
	s.retryToken = append([]byte(nil), h.token...)
	s.hsSent[0] = 0
	s.hsResendNow = true
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
	s.peerParams = p
	s.tlsState = hs.connectionState()
	s.established = true
	s.peerMaxData = p.InitialMaxData
	s.peerMaxStreams = p.MaxStreams
	s.maxPacket = min(s.cfg.MaxPacketSize, int(p.MaxPacketSize))
	if p.IdleTimeout > 0 {
		s.idleTimeout = min(s.idleTimeout, p.IdleTimeout)
	}
	s.rtt.maxAckDelay = p.MaxAckDelay
	s.nextQuality = now.Add(s.cfg.LinkQualityInterval)
	s.quality.start = now
	if s.isClient {
		s.resetToken = p.StatelessResetToken
		s.hsResendNow = true // send our Finished
	} else {
		s.confirmed = true
		s.hsDoneQueue = true
		s.hs.close()
		s.hs = nil
		pend := s.pendingApp
		s.pendingApp = nil
		for _, b := range pend {
			if h, err := parseHeader(b); err == nil {
				s.handleShort(h, b, now)
			}
		}
		if s.listener != nil {
			s.listener.enqueue(s)
		}
	}
	if !s.isClient {
		close(s.hsDone)
	}
	s.wakeLocked()
}

// handleShort processes a 1-RTT packet and reports whether it authenticated.
func (s *Session) handleShort(h *header, raw []byte, now time.Time) bool {
	if s.keys == nil {
		if !s.isClient && len(s.pendingApp) < 16 {
			s.pendingApp = append(s.pendingApp, append([]byte(nil), raw...))
		}
		return false
	}
	// Decrypt in place (no allocation per packet). A failed Open may
	// scribble over the buffer, so keep the tail for the reset check.
	var tail [statelessResetTokenLen]byte
	if len(raw) >= statelessResetTokenLen {
		copy(tail[:], raw[len(raw)-statelessResetTokenLen:])
	}
	largest, ok := s.recv.largest()
	h.pn = decodePacketNumber(largest, ok, h.pn)
	payload, err := s.keys.open(h.payload[:0], h)
	if err != nil {
		if s.isStatelessReset(len(raw), tail[:]) {
			s.closeLocked(ErrStatelessReset, false)
			return false
		}
		s.counters.decryptFailures++
		if s.keys.onForged() {
			s.closeLocked(&SessionError{Code: AEADLimitReached, Reason: "forged packets reached the AEAD integrity limit"}, true)
		}
		return false
	}
	if s.recv.isDuplicate(h.pn) {
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
	s.quality.onPacket(now, h.pn, len(raw), h.sendTime, h.hasTime)
	ackEliciting := false
	fp := frameParser{b: payload}
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
		if err := s.handleFrame(f, now); err != nil {
			s.closeLocked(err, true)
			return true
		}
		if s.closeErr != nil {
			return true
		}
	}
	s.recv.onReceived(h.pn, now, ackEliciting, s.cfg.MaxAckDelay)
	return true
}

// isStatelessReset checks a packet that failed to decrypt against the
// server's reset token (SPEC.md §6), in constant time.
func (s *Session) isStatelessReset(size int, tail []byte) bool {
	if len(s.resetToken) != statelessResetTokenLen || size < shortHdrLen+statelessResetTokenLen {
		return false
	}
	return hmac.Equal(tail, s.resetToken)
}

func (s *Session) handleFrame(f frame, now time.Time) error {
	switch f := f.(type) {
	case paddingFrame, pingFrame:
	case handshakeDoneFrame:
		if !s.isClient {
			return errorf(ProtocolViolation, "HANDSHAKE_DONE from client")
		}
	case *ackFrame:
		return s.handleAck(f, now)
	case *streamFrame:
		return s.handleStreamFrame(f)
	case *streamOpenFrame:
		return s.handleStreamOpen(f)
	case *resetStreamFrame:
		return s.handleReset(f)
	case *stopSendingFrame:
		st, err := s.streamFor(f.StreamID, false)
		if err != nil || st == nil {
			return err
		}
		st.resetLocked(f.Code, true)
	case *maxDataFrame:
		if f.Max > s.peerMaxData {
			s.peerMaxData = f.Max
			blocked := s.blocked
			s.blocked = nil
			for _, st := range blocked {
				st.blockedByWin = false
				s.updateReady(st)
			}
		}
	case *maxStreamDataFrame:
		st, err := s.streamFor(f.StreamID, false)
		if err != nil || st == nil {
			return err
		}
		if f.Max > st.peerMax {
			st.peerMax = f.Max
			s.updateReady(st)
		}
	case *maxStreamsFrame:
		if f.Max > 1<<60 {
			return errorf(FrameEncodingError, "MAX_STREAMS %d out of range", f.Max)
		}
		if f.Max > s.peerMaxStreams {
			s.peerMaxStreams = f.Max
			signal(s.openSig)
		}
	case *linkQualityFrame:
		s.peerQuality = *f
		s.peerQAt = now
		s.peerQRecv += f.PacketsReceived
		s.peerQLost += f.PacketsLost
	case *closeFrame:
		s.closeLocked(&SessionError{Code: f.Code, Reason: f.Reason, Remote: true}, false)
	case *pathChallengeFrame:
		s.onPathChallenge(f, s.curFrom)
	case *pathResponseFrame:
		s.onPathResponse(f, s.curFrom)
	case *cryptoFrame:
		return errorf(ProtocolViolation, "CRYPTO frame after the handshake")
	default:
		return errorf(ProtocolViolation, "unexpected frame %T", f)
	}
	return nil
}

// streamFor finds the stream a frame refers to, creating a peer-initiated
// one within the advertised limit. It returns (nil, nil) for a stream that
// is already finished: late frames for it are ignored.
func (s *Session) streamFor(id uint64, create bool) (*Stream, error) {
	if st, ok := s.streams[id]; ok {
		return st, nil
	}
	local := (id%2 == 0) == s.isClient
	if local {
		if id >= s.nextLocalID {
			return nil, errorf(ProtocolViolation, "frame for stream %d, which we never opened", id)
		}
		return nil, nil
	}
	idx := id / 2
	if s.closedPeer.contains(idx) {
		return nil, nil
	}
	if idx >= s.maxStreamsAdv {
		return nil, errorf(StreamLimitError, "stream %d beyond the limit of %d streams", id, s.maxStreamsAdv)
	}
	if !create {
		return nil, nil
	}
	st := newStream(s, id, 2, false)
	s.streams[id] = st
	s.blend.add(&st.entry)
	s.updateFlowsLocked()
	return st, nil
}

func (s *Session) handleStreamOpen(f *streamOpenFrame) error {
	if f.Priority >= NumPriorities {
		return errorf(ProtocolViolation, "stream %d: priority %d out of range", f.StreamID, f.Priority)
	}
	if (f.StreamID%2 == 0) == s.isClient {
		return errorf(ProtocolViolation, "STREAM_OPEN for our own stream %d", f.StreamID)
	}
	st, err := s.streamFor(f.StreamID, true)
	if err != nil || st == nil || st.peerOpened {
		return err
	}
	st.peerOpened = true
	if st.prio != Priority(f.Priority) {
		// Answers travel at the opener's priority (seed: priority rings).
		wasReady := st.entry.ready
		s.blend.remove(&st.entry)
		st.prio = Priority(f.Priority)
		st.entry.prio = int(f.Priority)
		s.blend.add(&st.entry)
		if wasReady {
			s.updateReady(st)
		}
	}
	st.compress = f.Flags&openFlagZstd != 0
	if s.draining {
		st.resetLocked(StreamRefused, false)
		st.closeReadLocked(StreamRefused)
		return nil
	}
	st.accepted = true
	s.acceptQ = append(s.acceptQ, st)
	signal(s.acceptSig)
	return nil
}

func (s *Session) handleStreamFrame(f *streamFrame) error {
	st, err := s.streamFor(f.StreamID, true)
	if err != nil || st == nil {
		return err
	}
	end := f.Offset + uint64(len(f.Data))
	if end > st.recvMax {
		return errorf(FlowControlError, "stream %d: data to offset %d beyond window %d", st.id, end, st.recvMax)
	}
	st.rmu.Lock()
	grew, err := st.rb.insert(f.Offset, f.Data, f.Fin)
	if err != nil {
		st.rmu.Unlock()
		return err
	}
	var unread uint64
	gone := st.readClosed || st.recvReset != nil
	if gone {
		// Nobody will read this: credit it back at once.
		unread = uint64(st.rb.buffered)
		st.rb.discard()
	}
	st.rmu.Unlock()
	s.recvTotal += grew
	s.counters.receivedByPriority[st.prio] += grew
	if s.recvTotal > s.recvMax {
		return errorf(FlowControlError, "session: %d bytes received beyond window %d", s.recvTotal, s.recvMax)
	}
	if gone {
		s.creditSession(unread)
		s.maybeFinish(st)
		return nil
	}
	signal(st.readCh)
	return nil
}

func (s *Session) handleReset(f *resetStreamFrame) error {
	st, err := s.streamFor(f.StreamID, true)
	if err != nil || st == nil {
		return err
	}
	st.rmu.Lock()
	if st.rb.hasFinal && st.rb.finalSize != f.FinalSize {
		st.rmu.Unlock()
		return errorf(ProtocolViolation, "stream %d: reset final size %d differs from %d", st.id, f.FinalSize, st.rb.finalSize)
	}
	if f.FinalSize < st.rb.highest {
		st.rmu.Unlock()
		return errorf(ProtocolViolation, "stream %d: reset final size below received data", st.id)
	}
	if f.FinalSize > st.recvMax {
		st.rmu.Unlock()
		return errorf(FlowControlError, "stream %d: reset final size beyond window", st.id)
	}
	s.recvTotal += f.FinalSize - st.rb.highest
	st.rb.highest = f.FinalSize
	st.rb.hasFinal, st.rb.finalSize = true, f.FinalSize
	first := st.recvReset == nil
	var unread uint64
	if first {
		st.recvReset = &StreamError{StreamID: st.id, Code: f.Code, Remote: true}
		// Bytes never read count as consumed for the session window.
		unread = f.FinalSize - st.rb.readOff
		st.rb.discard()
	}
	st.rmu.Unlock()
	if s.recvTotal > s.recvMax {
		return errorf(FlowControlError, "session window exceeded by reset")
	}
	if first {
		s.creditSession(unread)
		if !st.local && !st.accepted {
			// Reset before the application saw it: abandon both directions.
			st.peerOpened = true
			st.resetLocked(f.Code, true)
		}
	}
	signal(st.readCh)
	s.maybeFinish(st)
	return nil
}

func (s *Session) handleAck(f *ackFrame, now time.Time) error {
	if f.largest() > s.sent.largestSent || s.pn == 0 {
		return errorf(ProtocolViolation, "ACK for packet %d, never sent", f.largest())
	}
	newlyAcked := false
	var largestNew *sentPacket
	snap := s.rttSnapshot()
	// Ranges are descending; walk the history once per range.
	for _, r := range f.Ranges {
		pk := s.sent.packets
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
				s.sent.leaveFlight(p)
				s.cc.OnPacketAcked(now, p.pn, p.size, &snap)
			}
			s.onFramesAcked(p)
		}
	}
	if !newlyAcked {
		return nil
	}
	if !s.sent.hasAcked || f.largest() > s.sent.largestAcked {
		s.sent.largestAcked = f.largest()
		s.sent.hasAcked = true
	}
	if largestNew != nil && largestNew.ackEliciting {
		s.rtt.update(now.Sub(largestNew.sent), f.Delay)
	}
	s.ptoCount = 0
	s.detectLossLocked(now)
	s.sent.trim()
	s.updateFlowsLocked()
	return nil
}

func (s *Session) detectLossLocked(now time.Time) {
	lost := s.sent.detectLost(now, &s.rtt)
	if len(lost) == 0 {
		return
	}
	snap := s.rttSnapshot()
	for _, p := range lost {
		s.counters.packetsLost++
		if p.ackEliciting {
			s.cc.OnPacketLost(now, p.pn, p.size, &snap)
		}
		s.onFramesLost(p)
	}
	s.sent.trim()
}

func (s *Session) onFramesAcked(p *sentPacket) {
	for _, f := range p.frames {
		st := f.stream
		switch f.kind {
		case sfStreamData:
			if st.sendReset != nil {
				continue
			}
			st.sb.onAcked(f.offset, f.length, f.fin)
			signal(st.writeCh)
			s.maybeFinish(st)
		case sfReset:
			st.resetAcked = true
			s.maybeFinish(st)
		}
	}
}

// onFramesLost re-queues what a lost packet carried.
func (s *Session) onFramesLost(p *sentPacket) {
	for _, f := range p.frames {
		st := f.stream
		switch f.kind {
		case sfStreamData:
			if st.sendReset != nil || st.finished {
				continue
			}
			st.sb.onLost(f.offset, f.length, f.fin)
			s.counters.retransmittedBytes += f.length
			s.updateReady(st)
		case sfStreamOpen:
			if !st.finished {
				st.openQueued = true
				s.queueStreamControl(st)
			}
		case sfReset:
			if !st.resetAcked && !st.finished {
				st.resetQueued = true
				s.queueStreamControl(st)
			}
		case sfStopSending:
			if !st.recvDone() {
				st.stopQueued = true
				s.queueStreamControl(st)
			}
		case sfMaxStreamData:
			st.rmu.Lock()
			final := st.rb.hasFinal
			st.rmu.Unlock()
			if !st.finished && !final {
				st.maxDataQueued = true
				s.queueStreamControl(st)
			}
		case sfMaxData:
			s.maxDataQ = true
		case sfMaxStreams:
			s.maxStreamsQ = true
		case sfHandshakeDone:
			s.hsDoneQueue = true
		}
	}
}

// queueCredit hands bytes a reader consumed (or its reaching EOF) to the
// session goroutine, which updates flow control in applyCreditsLocked.
func (s *Session) queueCredit(st *Stream, n uint64) {
	s.creditMu.Lock()
	st.creditBytes += n
	if !st.creditQueued {
		st.creditQueued = true
		s.creditQ = append(s.creditQ, st)
	}
	s.creditMu.Unlock()
	signal(s.wake)
}

func (s *Session) applyCreditsLocked() {
	s.creditMu.Lock()
	q := s.creditQ
	s.creditQ = nil
	n := make([]uint64, len(q))
	for i, st := range q {
		n[i] = st.creditBytes
		st.creditBytes, st.creditQueued = 0, false
	}
	s.creditMu.Unlock()
	for i, st := range q {
		s.onConsumed(st, n[i])
		s.maybeFinish(st)
	}
}

// onConsumed is called when the application read n bytes of a stream. It
// grows the windows (auto-tuning: a window that is used up within two RTTs
// doubles, up to the configured maximum, as quic-go does).
func (s *Session) onConsumed(st *Stream, n uint64) {
	if n == 0 {
		return
	}
	now := time.Now()
	st.rmu.Lock()
	final, readOff := st.rb.hasFinal, st.rb.readOff
	st.rmu.Unlock()
	if !final && st.recvMax-readOff < st.recvWindow/2 {
		if !st.lastUpdate.IsZero() && now.Sub(st.lastUpdate) < 2*s.rtt.srtt() {
			st.recvWindow = min(2*st.recvWindow, uint64(s.cfg.MaxStreamWindow))
		}
		st.lastUpdate = now
		st.recvMax = readOff + st.recvWindow
		st.maxDataQueued = true
		s.queueStreamControl(st)
	}
	s.creditSession(n)
}

func (s *Session) creditSession(n uint64) {
	s.consumed += n
	if s.recvMax-s.consumed < s.recvWindow/2 {
		now := time.Now()
		if !s.lastMaxData.IsZero() && now.Sub(s.lastMaxData) < 2*s.rtt.srtt() {
			s.recvWindow = min(2*s.recvWindow, uint64(s.cfg.MaxSessionWindow))
		}
		s.lastMaxData = now
		s.recvMax = s.consumed + s.recvWindow
		s.maxDataQ = true
		s.wakeLocked()
	}
}

func (s *Session) queueStreamControl(st *Stream) {
	if !st.ctrlListed {
		st.ctrlListed = true
		s.ctrl = append(s.ctrl, st)
	}
	s.wakeLocked()
}

// maybeFinish removes a stream whose both directions are done.
func (s *Session) maybeFinish(st *Stream) {
	if st.finished || !st.sendDone() || !st.recvDone() {
		return
	}
	if st.local || st.peerOpened {
		// A peer stream is finished only once the application could see it.
		st.rmu.Lock()
		reset := st.recvReset != nil
		st.rmu.Unlock()
		if !st.local && !st.accepted && !reset {
			return
		}
	}
	st.finished = true
	delete(s.streams, st.id)
	s.blend.remove(&st.entry)
	if !st.local {
		s.closedPeer.add(st.id/2, st.id/2+1)
		s.closedPeerN++
		s.maxStreamsAdv = s.closedPeerN + uint64(s.cfg.MaxIncomingStreams)
		s.maxStreamsQ = true
		s.wakeLocked()
	}
	s.updateFlowsLocked()
}

// sendWindowLeft is the new data the session-level window still allows.
func (s *Session) sendWindowLeft() uint64 {
	if s.sentData >= s.peerMaxData {
		return 0
	}
	return s.peerMaxData - s.sentData
}
