package tmptransport

// The receive path's frames (SPEC §3): each decrypted frame is applied to
// the session or its stream. Runs with s.mu held, from handleShortLocked.

import "time"

func (s *Session) handleFrameLocked(f frame, now time.Time) error {
	switch f := f.(type) {
	case paddingFrame, pingFrame:
	case handshakeDoneFrame:
		if !s.isClient {
			return errorf(ProtocolViolation, "HANDSHAKE_DONE from client")
		}
	case *ackFrame:
		return s.handleAckLocked(f, now)
	case *streamFrame:
		return s.handleStreamFrameLocked(f)
	case *streamOpenFrame:
		return s.handleStreamOpenLocked(f)
	case *resetStreamFrame:
		return s.handleResetLocked(f)
	case *stopSendingFrame:
		st, err := s.streamForLocked(f.StreamID, false)
		if err != nil || st == nil {
			return err
		}
		st.resetLocked(f.Code, true)
	case *maxDataFrame:
		if s.sendFC.raise(f.Max) {
			blocked := s.blocked
			s.blocked = nil
			for _, st := range blocked {
				st.blockedByWin = false
				s.updateReadyLocked(st)
			}
		}
	case *maxStreamDataFrame:
		st, err := s.streamForLocked(f.StreamID, false)
		if err != nil || st == nil {
			return err
		}
		if f.Max > st.peerMax {
			st.peerMax = f.Max
			s.updateReadyLocked(st)
			signal(st.writeCh) // a larger window lets the writer buffer more
		}
	case *maxStreamsFrame:
		if f.Max > 1<<60 {
			return errorf(FrameEncodingError, "MAX_STREAMS %d out of range", f.Max)
		}
		if s.tab.raisePeerMax(f.Max) {
			signal(s.openSig)
		}
	case *linkQualityFrame:
		s.lq.onPeerReport(f, now)
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

// streamForLocked finds the stream a frame refers to, creating a peer-initiated
// one within the advertised limit. It returns (nil, nil) for a stream that
// is already finished: late frames for it are ignored.
func (s *Session) streamForLocked(id uint64, create bool) (*Stream, error) {
	if st, ok := s.tab.streams[id]; ok {
		return st, nil
	}
	if ok, err := s.tab.admit(id); !ok || !create {
		return nil, err
	}
	st := newStream(s, id, 2, false)
	s.tab.streams[id] = st
	s.counters.streamsOpened++
	s.blend.add(&st.entry)
	return st, nil
}

func (s *Session) handleStreamOpenLocked(f *streamOpenFrame) error {
	if f.Priority >= NumPriorities {
		return errorf(ProtocolViolation, "stream %d: priority %d out of range", f.StreamID, f.Priority)
	}
	if (f.StreamID%2 == 0) == s.isClient {
		return errorf(ProtocolViolation, "STREAM_OPEN for our own stream %d", f.StreamID)
	}
	st, err := s.streamForLocked(f.StreamID, true)
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
			s.updateReadyLocked(st)
		}
	}
	st.compress = f.Flags&openFlagZstd != 0
	st.service = f.Service
	st.source, st.destination = f.Source, f.Destination
	if s.draining {
		st.resetLocked(StreamRefused, false)
		st.closeReadLocked(StreamRefused)
		return nil
	}
	st.accepted = true
	s.tab.acceptQ = append(s.tab.acceptQ, st)
	signal(s.acceptSig)
	return nil
}

func (s *Session) handleStreamFrameLocked(f *streamFrame) error {
	st, err := s.streamForLocked(f.StreamID, true)
	if err != nil || st == nil {
		return err
	}
	end := f.Offset + uint64(len(f.Data))
	if end > st.fc.limit {
		return errorf(FlowControlError, "stream %d: data to offset %d beyond window %d", st.id, end, st.fc.limit)
	}
	st.rmu.Lock()
	st.rb.holdLimit = s.readHoldLocked(st)
	grew, err := st.rb.insert(f.Offset, f.Data, f.Fin, f.More, &s.rxBuf)
	if err != nil {
		st.rmu.Unlock()
		return err
	}
	var unread uint64
	gone := st.readClosed || st.recvReset != nil
	if gone {
		// Nobody will read this: credit it back at once.
		unread = st.rb.abandon()
	}
	wake := st.rb.deliverable() || st.rb.atEOF()
	st.rmu.Unlock()
	s.fc.received += grew
	s.counters.receivedByPriority[st.prio] += grew
	if s.fc.received > s.fc.limit {
		return errorf(FlowControlError, "session: %d bytes received beyond window %d", s.fc.received, s.fc.limit)
	}
	if gone {
		s.creditSessionLocked(unread)
		s.maybeFinishLocked(st)
		return nil
	}
	if wake {
		signal(st.readCh)
	}
	return nil
}

func (s *Session) handleResetLocked(f *resetStreamFrame) error {
	st, err := s.streamForLocked(f.StreamID, true)
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
	if f.FinalSize > st.fc.limit {
		st.rmu.Unlock()
		return errorf(FlowControlError, "stream %d: reset final size beyond window", st.id)
	}
	s.fc.received += f.FinalSize - st.rb.highest
	st.rb.highest = f.FinalSize
	st.rb.hasFinal, st.rb.finalSize = true, f.FinalSize
	first := st.recvReset == nil
	if first {
		st.recvReset = &StreamError{StreamID: st.id, Code: f.Code, Remote: true}
	}
	// Bytes never read count as consumed for the session window, once.
	unread := st.rb.abandon()
	st.rmu.Unlock()
	if s.fc.received > s.fc.limit {
		return errorf(FlowControlError, "session window exceeded by reset")
	}
	s.creditSessionLocked(unread)
	if first {
		if !st.local && !st.accepted {
			// Reset before the application saw it: abandon both directions.
			st.peerOpened = true
			st.resetLocked(f.Code, true)
		}
	}
	signal(st.readCh)
	s.maybeFinishLocked(st)
	return nil
}
