package tmptransport

import (
	"context"
	"testing"
	"time"
)

// A stream buffers SendBufferSize always; more, up to its peer's window and
// MaxSendBufferSize, while the session's streams hold less than
// MaxSessionSendBuffer; what an acknowledgement or a reset frees counts
// again at once.
func TestSendBufferFollowsThePeersWindowWithinBounds(t *testing.T) {
	s := &Session{cfg: &Config{SendBufferSize: 64 << 10, MaxSendBufferSize: 1 << 20, MaxSessionSendBuffer: 1536 << 10}, cc: NewMulTCP(32, 64, 1<<16)}
	stream := func(peerMax uint64) *Stream { return &Stream{sess: s, peerMax: peerMax} }
	fill := func(st *Stream) int {
		n := s.sendBufferLimitLocked(st) - st.sb.buffered()
		s.bufferLocked(st, make([]byte, n))
		return st.sb.buffered()
	}

	small := stream(32 << 10)
	if got := fill(small); got != 64<<10 {
		t.Fatalf("a stream whose peer allows 32 KiB buffered %d, want SendBufferSize, 64 KiB", got)
	}
	a, b, c := stream(4<<20), stream(768<<10), stream(4<<20)
	if got := fill(a); got != 1<<20 {
		t.Fatalf("a peer window of 4 MiB: buffered %d, want MaxSendBufferSize, 1 MiB", got)
	}
	if got := fill(b); got != 768<<10 {
		t.Fatalf("a peer window of 768 KiB: buffered %d, want 768 KiB", got)
	}
	// The session now holds 64 KiB + 1 MiB + 768 KiB, over 1.5 MiB.
	if got := fill(c); got != 64<<10 {
		t.Fatalf("with the session over MaxSessionSendBuffer, a stream buffered %d, want SendBufferSize", got)
	}
	if s.sendBuffered != 64<<10+1<<20+768<<10+64<<10 {
		t.Fatalf("the session counts %d bytes buffered", s.sendBuffered)
	}
	// The peer acknowledges all of a, and b is reset: c may grow.
	s.unbufferedLocked(a, func() { a.sb.onAcked(0, 1<<20, false) })
	s.unbufferedLocked(b, b.sb.discard)
	if s.sendBuffered != 128<<10 {
		t.Fatalf("after an acknowledgement and a reset the session counts %d bytes, want 128 KiB", s.sendBuffered)
	}
	if got := fill(c); got != 1<<20 {
		t.Fatalf("with room in the session again, the stream buffered %d, want 1 MiB", got)
	}
	// Beyond the peer's window nothing more is buffered than it allows
	// past the acknowledged base.
	a.peerMax = 1<<20 + 100<<10
	if got := s.sendBufferLimitLocked(a); got != 100<<10 {
		t.Fatalf("a window 100 KiB past the acknowledged base allows %d", got)
	}
}

// MulTCP emulates one flow per stream with bytes in flight or queued, not
// per open stream: idle streams (kept for the next request) do not make
// the session claim the link like that many TCP connections.
func TestIdleStreamsAreNotFlows(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Accept and never read: what the client writes past the windows
	// stays in its send buffers.
	serveStreams(ctx, s, func(*Stream) {})
	for i := 0; i < 10; i++ {
		st, err := c.OpenStream(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte("one request, acknowledged, then idle"))
	}
	waitFlows := func(want int) {
		t.Helper()
		for c.Stats().Flows != want {
			if ctx.Err() != nil {
				t.Fatalf("flows %d, want %d (open streams %d)", c.Stats().Flows, want, c.Stats().OpenStreams)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFlows(1)
	for i := 0; i < 3; i++ {
		st, err := c.OpenStream(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		go st.Write(make([]byte, 4<<20)) // blocks on the peer's windows
	}
	waitFlows(3)
}

// A writer blocked on a full send buffer is woken once a quarter of the
// buffer (at most 64 KiB, at most what it has left) is free, not for each
// acknowledged packet: woken per packet, it copied 1452 bytes a time, a
// goroutine wake-up each. The need follows the limit when the session's
// other streams shrink it, so the writer is never left waiting for room a
// smaller buffer cannot give.
func TestBlockedWriterWokenForAQuarterOfItsBuffer(t *testing.T) {
	s := &Session{cfg: &Config{SendBufferSize: 32 << 10, MaxSendBufferSize: 256 << 10, MaxSessionSendBuffer: 512 << 10}, cc: NewMulTCP(32, 64, 1<<16)}
	st := &Stream{sess: s, peerMax: 1 << 30, writeCh: make(chan struct{}, 1)}
	s.bufferLocked(st, make([]byte, s.sendBufferLimitLocked(st))) // 256 KiB
	st.writeLeft = 1 << 20
	woken := func() bool {
		select {
		case <-st.writeCh:
			return true
		default:
			return false
		}
	}
	acked := uint64(0)
	ackPacket := func() {
		s.unbufferedLocked(st, func() { st.sb.onAcked(acked, 1452, false) })
		acked += 1452
		s.wakeWriterLocked(st)
	}
	for acked+1452 < 64<<10 {
		ackPacket()
		if woken() {
			t.Fatalf("writer woken with %d bytes free of a 256 KiB buffer; want 64 KiB", acked)
		}
	}
	ackPacket()
	if !woken() {
		t.Fatalf("writer not woken with %d bytes free", acked)
	}
	// Another stream fills the session: this one's limit falls to
	// SendBufferSize, 32 KiB, and its writer waits for a quarter of that.
	other := &Stream{sess: s, peerMax: 1 << 30}
	s.bufferLocked(other, make([]byte, 512<<10))
	s.unbufferedLocked(st, func() { st.sb.onAcked(acked, 256<<10-acked, false) })
	st.writeLeft = 1 << 20
	s.bufferLocked(st, make([]byte, 32<<10))
	for i := range 6 { // 8 712 bytes: over 8 KiB
		s.unbufferedLocked(st, func() { st.sb.onAcked(256<<10+uint64(i)*1452, 1452, false) })
		s.wakeWriterLocked(st)
	}
	if !woken() {
		t.Fatalf("limit %d, %d bytes buffered: writer not woken; want it woken at a quarter of the smaller limit", s.sendBufferLimitLocked(st), st.sb.buffered())
	}
}
