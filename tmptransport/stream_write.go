package tmptransport

// The write side of a stream: Write and its zstd encoder, the send buffer
// it fills (sendbuffer.go bounds it), and CloseWrite. Locks as in stream.go.

// Write writes stream data; it blocks while the stream's send buffer is full.
func (s *Stream) Write(p []byte) (int, error) {
	if s.writeDeadline.expired() {
		// At once, before the encoder takes p in (net.Conn; deadline.go).
		return 0, errDeadline
	}
	if s.compress {
		s.zwmu.Lock()
		defer s.zwmu.Unlock()
		return s.writeCompressedZWLocked(p)
	}
	return s.rawWrite(p)
}

// writeCompressedZWLocked writes p through the stream's zstd encoder, or as
// raw frames while the data is incompressible (zstdskip.go), a chunk at a
// time, after what an earlier Write left pending (zstdwrite.go).
func (s *Stream) writeCompressedZWLocked(p []byte) (int, error) {
	if err := s.flushPendingZWLocked(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 && !s.zs.stalled {
		n, err := s.writeCompressedChunkZWLocked(p[:min(len(p), zstdWriteChunk)])
		written += n
		p = p[n:]
		if err != nil {
			return written, err
		}
	}
	if s.zs.stalled {
		// What was taken is on its way (pending): written counts it.
		return written, errDeadline
	}
	return written, nil
}

func (s *Stream) writeCompressedChunkZWLocked(p []byte) (int, error) {
	if s.zs.left > 0 {
		s.zs.left -= len(p)
		return s.writeRawFramesZWLocked(p)
	}
	if s.zw == nil {
		e, err := s.sess.zstd.encoder(zstdSink{s})
		if err != nil {
			return 0, err
		}
		s.zw = e
	}
	s.zs.frameOpen, s.zs.wrote = true, true
	before := s.zs.out
	n, err := s.zw.Write(p)
	if err != nil {
		return n, err
	}
	// Flush per Write: a request or response must not sit in the encoder.
	if err := s.zw.Flush(); err != nil {
		return n, err
	}
	return n, s.weighWriteZWLocked(n, s.zs.out-before)
}

func (s *Stream) rawWrite(p []byte) (int, error) {
	sess := s.sess
	written := 0
	for len(p) > 0 {
		if s.writeDeadline.expired() {
			return written, errDeadline
		}
		sess.mu.Lock()
		if err := s.writeErrLocked(); err != nil {
			sess.mu.Unlock()
			return written, err
		}
		limit := sess.sendBufferLimitLocked(s)
		room := limit - s.sb.buffered()
		need := writeNeed(limit, len(p))
		if room >= need {
			n := min(room, len(p))
			sess.bufferLocked(s, p[:n])
			p = p[n:]
			written += n
			sess.updateReadyLocked(s)
			sess.wakeLocked()
		}
		s.writeLeft = len(p)
		sess.mu.Unlock()
		if len(p) == 0 {
			break
		}
		if err := s.waitUnder(s.writeCh, &s.writeDeadline); err != nil {
			return written, err
		}
	}
	return written, nil
}

func (s *Stream) writeErrLocked() error {
	if s.sendReset != nil {
		return s.sendReset
	}
	if s.writeClosed {
		return ErrWriteClosed
	}
	return s.sess.closeErr
}

// CloseWrite half-closes the stream: the peer reads EOF after the data
// written so far. Reading continues.
func (s *Stream) CloseWrite() error {
	if s.compress {
		s.zwmu.Lock()
		err := s.closeEncoderZWLocked()
		s.zwmu.Unlock()
		if err != nil {
			return err
		}
	}
	sess := s.sess
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if s.writeClosed || s.sendReset != nil {
		return nil
	}
	s.writeClosed = true
	s.sb.finQueued = true
	sess.updateReadyLocked(s)
	sess.wakeLocked()
	// A Write blocked for room ends now, with ErrWriteClosed: Close must
	// unblock it (net.Conn), and the room may never come.
	signal(s.writeCh)
	return nil
}

func (s *Stream) closeEncoderZWLocked() error {
	s.sess.mu.Lock()
	done := s.writeClosed || s.sendReset != nil
	s.sess.mu.Unlock()
	var err error
	switch {
	case done:
	case s.zs.frameOpen:
		err = s.zw.Close()
	case !s.zs.wrote:
		err = s.writeEmptyZstdFrame()
	}
	s.zs.frameOpen = false
	if s.zw != nil {
		// Back to the session's pool, also when the stream was reset.
		s.sess.zstd.putEncoder(s.zw)
		s.zw = nil
	}
	if done {
		s.zs.pending = nil
	} else if err == nil {
		// What a timed-out Write, or this close, left goes before the FIN.
		// If the deadline stops it again, CloseWrite can be called again.
		err = s.flushPendingZWLocked()
	}
	return err
}

// writeEmptyZstdFrame makes a compressed stream that never wrote still carry
// a valid (empty) zstd stream, so the peer's decoder sees a clean EOF.
func (s *Stream) writeEmptyZstdFrame() error {
	e, err := s.sess.zstd.encoder(zstdSink{s})
	if err != nil {
		return err
	}
	err = e.Close()
	s.sess.zstd.putEncoder(e)
	return err
}
