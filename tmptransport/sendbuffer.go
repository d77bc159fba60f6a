package tmptransport

// A stream's send buffer holds what was written and not yet acknowledged.
// A fixed bound (SendBufferSize, 1 MiB) was the ceiling of a single bulk
// stream on a long lossy path: each loss holds the buffer's base until the
// repair is acknowledged, two round trips or more, so the writer could
// keep at most 1 MiB per two RTTs moving, 50 Mbit/s at 80 ms where the
// path carried 100 (issue 18's TCP benchmark). The receiver already tells
// how much it wants in flight: its window, auto-tuned to the path. So a
// stream may buffer up to what its peer's window allows past the
// acknowledged base, within MaxSendBufferSize, as long as the session's
// streams together stay under MaxSessionSendBuffer; every stream can
// always buffer SendBufferSize, so one bulk stream cannot starve the
// others of a start. Both bounds hold against a peer that advertises huge
// windows: they are ours.

// sendBufferLimitLocked is how many unacknowledged bytes st may buffer.
func (s *Session) sendBufferLimitLocked(st *Stream) int {
	limit := s.cfg.SendBufferSize
	if s.sendBuffered >= s.cfg.MaxSessionSendBuffer {
		return limit
	}
	if st.peerMax > st.sb.base {
		if w := st.peerMax - st.sb.base; w > uint64(limit) {
			limit = int(min(w, uint64(s.cfg.MaxSendBufferSize)))
		}
	}
	return limit
}

// bufferLocked appends p to st's send buffer and counts it.
func (s *Session) bufferLocked(st *Stream, p []byte) {
	st.sb.write(p)
	s.sendBuffered += len(p)
	s.noteSendingLocked(st)
}

// unbufferedLocked runs fn, which may shrink st's send buffer
// (acknowledgement, reset), and uncounts what it freed.
func (s *Session) unbufferedLocked(st *Stream, fn func()) {
	before := st.sb.buffered()
	fn()
	s.sendBuffered -= before - st.sb.buffered()
	s.noteSendingLocked(st)
}

// noteSendingLocked keeps count of the streams that hold bytes written and
// not yet acknowledged: the flows MulTCP emulates (updateFlowsLocked).
func (s *Session) noteSendingLocked(st *Stream) {
	on := st.sb.buffered() > 0
	if on == st.sending {
		return
	}
	st.sending = on
	if on {
		s.sendingStreams++
	} else {
		s.sendingStreams--
	}
	s.updateFlowsLocked()
}

// writeWakeRoom is the room a blocked writer waits for, at most a quarter
// of its send buffer and at most what it has left to write. Woken for
// every acknowledged packet, a writer copied one packet's worth at a time,
// a wake-up of its goroutine each: on the lan profile (1452-byte packets)
// that was 12 % of the back-end's CPU per byte (bench/RESULTS.md,
// session 12). TCP waits likewise, for a third of the buffer
// (sk_stream_write_space).
const writeWakeRoom = 64 << 10

// writeNeed is the room a writer with n bytes left waits for, under a send
// buffer limit of limit bytes. It is at least 1 and at most limit, so the
// room always comes once the buffer is acknowledged.
func writeNeed(limit, n int) int { return max(1, min(n, writeWakeRoom, limit/4)) }

// wakeWriterLocked wakes st's blocked writer once the room it waits for is
// free. The need is taken against the limit now: the limit shrinks when the
// session's streams together buffer more (sendBufferLimitLocked).
func (s *Session) wakeWriterLocked(st *Stream) {
	if st.writeLeft == 0 {
		return
	}
	limit := s.sendBufferLimitLocked(st)
	if limit-st.sb.buffered() >= writeNeed(limit, st.writeLeft) {
		st.writeLeft = 0
		signal(st.writeCh)
	}
}
