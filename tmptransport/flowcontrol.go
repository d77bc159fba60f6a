package tmptransport

import "time"

// Flow control (SPEC §7), at two levels with one rule each: a stream's
// window and the session's. receiveWindow is what this end advertises and
// how it grows; sendWindow is what the peer allows. Both are guarded by
// the session lock (Session.mu); the stream's readers report what they
// consumed through the session's credit queue, never by taking mu.

// receiveWindow is one receive window: the limit advertised to the peer,
// the bytes received and consumed against it, and its auto-tuning.
type receiveWindow struct {
	limit    uint64 // advertised (MAX_DATA or MAX_STREAM_DATA)
	received uint64 // session only: bytes received, counted once
	consumed uint64 // session only: bytes the application read or gave up
	size     uint64 // the window: grows from the initial size to maxSize
	maxSize  uint64
	updated  time.Time // when limit last moved
	queued   bool      // a new limit waits to be sent
}

func newReceiveWindow(initial, max int) receiveWindow {
	return receiveWindow{limit: uint64(initial), size: uint64(initial), maxSize: uint64(max)}
}

// left is what the window still lets the peer send.
func (w *receiveWindow) left() uint64 {
	if w.received >= w.limit {
		return 0
	}
	return w.limit - w.received
}

// consume moves the window when the reader, now at offset consumed, has
// used more than half of it, and reports whether the limit moved. A window
// used up within two round trips doubles, up to maxSize (auto-tuning, as
// quic-go does): the sender was limited by the window, not by the path.
func (w *receiveWindow) consume(consumed uint64, now time.Time, srtt time.Duration) bool {
	if w.limit-consumed >= w.size/2 {
		return false
	}
	if !w.updated.IsZero() && now.Sub(w.updated) < 2*srtt {
		w.size = min(2*w.size, w.maxSize)
	}
	w.updated = now
	w.limit = consumed + w.size
	w.queued = true
	return true
}

// sendWindow is the limit the peer advertised and what was sent against it.
type sendWindow struct {
	limit uint64
	sent  uint64
}

// raise takes a new limit from the peer; limits never shrink.
func (w *sendWindow) raise(limit uint64) bool {
	if limit <= w.limit {
		return false
	}
	w.limit = limit
	return true
}

// left is what the window still allows.
func (w *sendWindow) left() uint64 {
	if w.sent >= w.limit {
		return 0
	}
	return w.limit - w.sent
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
		s.onConsumedLocked(st, n[i])
		s.maybeFinishLocked(st)
	}
}

// onConsumedLocked is called when the application read n bytes of a stream. It
// grows the windows (auto-tuning: a window that is used up within two RTTs
// doubles, up to the configured maximum, as quic-go does), and returns the
// datagrams the reads freed to the pool: here, between datagrams, none is
// still being parsed (recvBuffer.freed).
func (s *Session) onConsumedLocked(st *Stream, n uint64) {
	if n == 0 {
		return
	}
	now := time.Now()
	st.rmu.Lock()
	final, readOff := st.rb.hasFinal, st.rb.readOff
	st.rb.putFreed()
	st.rmu.Unlock()
	if !final && st.fc.consume(readOff, now, s.lr.rtt.srtt()) {
		s.queueStreamControlLocked(st)
	}
	s.creditSessionLocked(n)
}

func (s *Session) creditSessionLocked(n uint64) {
	s.fc.consumed += n
	if s.fc.consume(s.fc.consumed, time.Now(), s.lr.rtt.srtt()) {
		s.wakeLocked()
	}
}

// sendWindowLeft is the new data the session-level window still allows.
func (s *Session) sendWindowLeft() uint64 { return s.sendFC.left() }
