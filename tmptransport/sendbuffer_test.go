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
