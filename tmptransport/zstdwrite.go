package tmptransport

// The write side of a compressed stream, and its deadline.
// klauspost/compress's encoder keeps the first error its sink returns, for
// good. So a write deadline that fired inside the encoder broke the stream
// for every later Write, where net.Conn lets a caller set a new deadline and
// go on (x/net/nettest's FutureTimeout; TestCompressedStreamIsANetConn).
// Worse, a Write that timed out in the middle of a raw frame (zstdskip.go)
// left the frame short, and the next Write's bytes would have been read as
// its rest. So the encoder never sees the deadline: what it (or a raw frame)
// has to send goes to the stream while the deadline allows, and the rest
// waits in the stream's pending bytes, which go out first on the next Write
// or CloseWrite. Write feeds the encoder in chunks and stops after the chunk
// during which the deadline passed, so pending holds about a chunk at most.

// zstdWriteChunk is how much of a Write the encoder takes at a time.
const zstdWriteChunk = 256 << 10

// zstdSink is the encoder's output (zstdOutZWLocked), counted.
type zstdSink struct{ s *Stream }

func (w zstdSink) Write(p []byte) (int, error) {
	w.s.zs.out += int64(len(p))
	if err := w.s.zstdOutZWLocked(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// zstdOutZWLocked sends compressed bytes, or keeps them in pending once the
// write deadline has passed during this Write. Errors other than the
// deadline (a reset, a closed stream) end the stream's writing anyway.
func (s *Stream) zstdOutZWLocked(b []byte) error {
	if len(s.zs.pending) == 0 && !s.zs.stalled {
		n, err := s.rawWrite(b)
		if err != errDeadline {
			return err
		}
		b = b[n:]
		s.zs.stalled = true
	}
	s.zs.pending = append(s.zs.pending, b...)
	return nil
}

// flushPendingZWLocked sends the bytes a timed-out Write left, under the
// deadline; until they are out, nothing else may go.
func (s *Stream) flushPendingZWLocked() error {
	sent := 0
	for sent < len(s.zs.pending) {
		n, err := s.rawWrite(s.zs.pending[sent:])
		sent += n
		if err != nil {
			s.zs.pending = append(s.zs.pending[:0], s.zs.pending[sent:]...)
			return err
		}
	}
	s.zs.pending = s.zs.pending[:0]
	if cap(s.zs.pending) > 2*zstdWriteChunk {
		s.zs.pending = nil // a big Write's leftovers: not kept for the stream's life
	}
	s.zs.stalled = false
	return nil
}
