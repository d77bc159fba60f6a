package tmptransport

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Stream is one bidirectional byte stream of a session. It implements
// net.Conn, plus CloseWrite (half-close) and Reset. Streams are cheap: no
// goroutine and no buffer exist until data flows, so a session can hold tens
// of thousands of idle streams.
//
// Locks, taken in this order: the session's mu guards the send side, flow
// control (fc) and the lifecycle flags; the stream's rmu guards the receive
// buffer and what a reader checks (readClosed, recvReset), so
// that Read never takes mu; the session's creditMu guards creditBytes and
// creditQueued, by which a reader hands what it consumed to the session.
// zrmu serializes a compressed stream's Reads (its pump goroutine owns the
// decoder, zstdread.go) and zwmu its encoder. The blocking calls
// wait on the stream's own channels, so a slow reader never blocks another
// stream. A method ending in Locked runs with the session's mu held; in
// RMULocked, with rmu; in ZRLocked, with zrmu; in ZWLocked, with zwmu.
//
// This file is longer than the package's others (about 450 lines): it is
// the whole of what an application holds, net.Conn and its half-close,
// reset and deadlines, which read best together.
type Stream struct {
	id       uint64
	sess     *Session
	prio     Priority
	compress bool
	service  string // what the stream carries, if not HTTP (STREAM_OPEN)
	// source and destination: the carried connection's (ConnAddrs).
	source, destination netip.AddrPort
	entry               blendEntry
	local               bool // opened by this end

	// Send side.
	sb          sendBuffer
	peerMax     uint64 // peer's MAX_STREAM_DATA
	writeClosed bool
	sendReset   *StreamError // set when we reset or the peer sent STOP_SENDING
	resetQueued bool
	resetAcked  bool
	resetFinal  uint64
	openQueued  bool
	stopQueued  bool
	ctrlListed  bool // on the session's control list
	sending     bool // counted in the session's sendingStreams
	writeLeft   int  // bytes a blocked writer has left to write; 0: none blocked (sendbuffer.go)

	// Receive side. rmu guards rb, readClosed and recvReset,
	// so that readers never take the session lock: with a thousand busy
	// streams, readers queueing on one session mutex starved the session's
	// own goroutine (lock convoy). Lock order: session mu, then rmu.
	rmu          sync.Mutex
	rb           recvBuffer
	fc           receiveWindow // guarded by the session's mu, not rmu
	readClosed   bool
	recvReset    *StreamError
	peerOpened   bool // STREAM_OPEN received (peer-initiated streams)
	accepted     bool
	finished     bool
	blockedByWin bool // on the session's blocked list

	// Guarded by the session's creditMu: bytes read but not yet credited to
	// flow control, handed to the session goroutine.
	creditBytes  uint64
	creditQueued bool

	readCh, writeCh chan struct{}
	// The deadlines are atomic (deadline.go): set without a lock.
	readDeadline, writeDeadline deadline

	// zstd (opted into by the opener; both directions).
	// Separate locks: a Read blocked in the decoder must not hold up Write.
	zrmu sync.Mutex
	zwmu sync.Mutex
	zw   *zstd.Encoder
	zs   zstdSkip // zstdskip.go; with zwmu
	// zp decodes a compressed stream's data (zstdread.go); made on the
	// first Read, with zrmu, and read without it by SetReadDeadline.
	zp atomic.Pointer[zstdPump]
}

func newStream(sess *Session, id uint64, prio Priority, local bool) *Stream {
	s := &Stream{
		id:      id,
		sess:    sess,
		prio:    prio,
		local:   local,
		peerMax: sess.peerParams.InitialMaxStreamData,
		fc:      newReceiveWindow(sess.cfg.InitialStreamWindow, sess.cfg.MaxStreamWindow),
		readCh:  make(chan struct{}, 1),
		writeCh: make(chan struct{}, 1),
	}
	s.entry = blendEntry{src: s, prio: int(prio)}
	return s
}

// ID returns the stream ID: even for streams the client opened, odd for the
// server's.
func (s *Stream) ID() uint64 { return s.id }

// Priority returns the stream's blender priority.
func (s *Stream) Priority() Priority { return s.prio }

// Service is the service the stream's opener named (OpenStreamOptions),
// or "" for HTTP.
func (s *Stream) Service() string { return s.service }

// ConnAddrs are the addresses of the connection the stream carries, as its
// opener gave them (OpenStreamOptions): its client's and where it arrived.
// Both are invalid when the opener gave none.
func (s *Stream) ConnAddrs() (source, destination netip.AddrPort) {
	return s.source, s.destination
}

// Compressed reports whether the stream's bytes are zstd-compressed on the wire.
func (s *Stream) Compressed() bool { return s.compress }

// Session returns the session that carries the stream.
func (s *Stream) Session() *Session { return s.sess }

func (s *Stream) LocalAddr() net.Addr  { return s.sess.LocalAddr() }
func (s *Stream) RemoteAddr() net.Addr { return s.sess.RemoteAddr() }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// blendPending implements blendSource: bytes sendable now, counting lost bytes
// and new bytes the flow-control windows allow. A lone FIN counts as one byte
// so that the blender schedules it.
func (s *Stream) blendPending() int {
	if s.sendReset != nil {
		return 0
	}
	n := s.sb.pendingRetransmit()
	if u := s.sb.unsent(); u > 0 {
		lim := min(s.peerMax, s.sb.next+s.sess.sendWindowLeft())
		if lim > s.sb.next {
			n += min(u, lim-s.sb.next)
		}
	}
	if n == 0 && s.sb.finPending() {
		return 1
	}
	return int(min(n, 1<<30))
}

func (s *Stream) blendIdle() { s.sess.noteBlockedLocked(s) }

// Read reads stream data. It returns io.EOF after the peer's FIN.
func (s *Stream) Read(p []byte) (int, error) {
	if s.readDeadline.expired() {
		// At once, even with data at hand (net.Conn; deadline.go).
		return 0, errDeadline
	}
	if s.compress {
		s.zrmu.Lock()
		defer s.zrmu.Unlock()
		return s.readCompressedZRLocked(p)
	}
	return s.readRaw(p, &s.readDeadline)
}

// readRaw reads stream data as it came, under dl if not nil.
func (s *Stream) readRaw(p []byte, dl *deadline) (int, error) {
	for {
		if dl != nil && dl.expired() {
			return 0, errDeadline
		}
		s.rmu.Lock()
		n, credit, err := s.readRMULocked(p)
		s.rmu.Unlock()
		if credit {
			s.sess.queueCredit(s, uint64(n))
		}
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
		if err := s.waitUnder(s.readCh, dl); err != nil {
			return 0, err
		}
	}
}

// readRMULocked reads buffered data; rmu is held. credit reports that the
// session must account for what was read (window updates, or the end of
// the stream).
func (s *Stream) readRMULocked(p []byte) (int, bool, error) {
	if s.recvReset != nil {
		return 0, false, s.recvReset
	}
	if s.readClosed {
		return 0, false, net.ErrClosed
	}
	if s.rb.deliverable() {
		return s.rb.read(p), true, nil
	}
	if s.rb.atEOF() {
		return 0, true, io.EOF
	}
	select {
	case <-s.sess.closed:
		if s.rb.readable() {
			// What arrived before the end is the reader's, held or not.
			return s.rb.read(p), true, nil
		}
		// closeErr is written before closed is closed (teardown).
		return 0, false, s.sess.closeErr
	default:
	}
	return 0, false, nil
}

func (s *Stream) wait(ch chan struct{}, deadline time.Time) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return errDeadline
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
	case <-s.sess.closed:
	case <-timeout:
		return errDeadline
	}
	return nil
}

// CloseRead tells the peer to stop sending (STOP_SENDING) and discards what
// arrives.
func (s *Stream) CloseRead() error {
	sess := s.sess
	sess.mu.Lock()
	defer sess.mu.Unlock()
	s.closeReadLocked(StreamCancelled)
	return nil
}

func (s *Stream) closeReadLocked(code ErrorCode) {
	s.rmu.Lock()
	if s.readClosed {
		s.rmu.Unlock()
		return
	}
	s.readClosed = true
	unread := s.rb.abandon()
	stop := !s.rb.atEOF() && s.recvReset == nil && !s.rb.hasFinal
	s.rmu.Unlock()
	s.sess.creditSessionLocked(unread)
	if stop {
		s.stopQueued = true
		s.sess.queueStreamControlLocked(s)
	}
	signal(s.readCh)
	s.sess.maybeFinishLocked(s)
}

// Close closes the stream for writing (FIN after buffered data) and for
// reading. Buffered data is still delivered to the peer.
func (s *Stream) Close() error {
	err := s.CloseWrite()
	s.CloseRead() // ends the pump's read of a compressed stream (zstdread.go)
	if s.compress {
		s.closeZstdPump()
	}
	return err
}

// Reset aborts both directions with an error code: buffered data is dropped
// and the peer's reads and writes fail with a StreamError.
func (s *Stream) Reset(code ErrorCode) {
	sess := s.sess
	sess.mu.Lock()
	defer sess.mu.Unlock()
	s.resetLocked(code, false)
	s.closeReadLocked(code)
}

func (s *Stream) resetLocked(code ErrorCode, remote bool) {
	if s.sendReset != nil || s.sb.finAcked {
		return
	}
	s.sendReset = &StreamError{StreamID: s.id, Code: code, Remote: remote}
	s.resetFinal = s.sb.next
	s.sess.unbufferedLocked(s, s.sb.discard)
	s.resetQueued = true
	s.sess.blend.unready(&s.entry)
	s.sess.queueStreamControlLocked(s)
	signal(s.writeCh)
}

func (s *Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *Stream) SetReadDeadline(t time.Time) error {
	s.readDeadline.set(t, s.readCh)
	if zp := s.zp.Load(); zp != nil {
		signal(zp.wake) // a compressed Read waits for the pump, not readCh
	}
	return nil
}

func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.writeDeadline.set(t, s.writeCh)
	return nil
}

// sendDone reports whether the send side needs nothing more.
func (s *Stream) sendDone() bool {
	if s.sendReset != nil {
		return s.resetAcked
	}
	// The FIN may be acknowledged before earlier bytes that were lost: the
	// send side is done only when every byte is acknowledged too.
	return s.sb.finAcked && s.sb.base == s.sb.end()
}

// recvDone reports whether the receive side needs nothing more.
func (s *Stream) recvDone() bool {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.recvReset != nil {
		return true
	}
	if s.readClosed {
		return s.rb.hasFinal
	}
	return s.rb.atEOF()
}

var _ net.Conn = (*Stream)(nil)
