package tmptransport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"runtime"
	"testing"
	"time"
)

func TestRestartedPeerIsDetectedAndSessionReestablished(t *testing.T) {
	p := getPKI(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	// The node's secret outlives the process (Caddy keeps it in storage),
	// so the restarted listener makes the same reset tokens.
	secret := []byte("node secret kept across restarts")
	scfg := p.serverConfig()
	scfg.NodeSecret = secret
	l, err := NewListener(pc, scfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	serve := func(l *Listener) {
		for {
			s, err := l.Accept(ctx)
			if err != nil {
				return
			}
			go echoServer(ctx, s)
		}
	}
	go serve(l)
	r := NewRedialer(addr, p.clientConfig())
	defer r.Close()
	echoOnce := func(s *Session) error {
		st, err := s.OpenStream(ctx, 0)
		if err != nil {
			return err
		}
		defer st.Close()
		st.Write([]byte("ping"))
		st.CloseWrite()
		got, err := io.ReadAll(st)
		if err == nil && string(got) != "ping" {
			err = errors.New("bad echo " + string(got))
		}
		return err
	}
	s1, err := r.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := echoOnce(s1); err != nil {
		t.Fatal(err)
	}

	// Crash: the socket goes away without a CLOSE frame, and a new process
	// (same node secret and address, so same reset key) listens on the
	// same port.
	pc.Close()
	l.Close()
	pc2, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := NewListener(pc2, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l2.Close(); pc2.Close() }()
	go serve(l2)

	start := time.Now()
	_ = echoOnce(s1) // the old session's packet draws a stateless reset
	select {
	case <-s1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("restart not detected")
	}
	if err := s1.Err(); !errors.Is(err, ErrStatelessReset) {
		t.Fatalf("old session ended with %v, want a stateless reset", err)
	}
	t.Logf("restart detected after %v", time.Since(start))
	s2, err := r.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s2 == s1 || r.Redials() != 1 {
		t.Fatalf("session not re-established (redials %d)", r.Redials())
	}
	if err := echoOnce(s2); err != nil {
		t.Fatal(err)
	}
}

func TestKeyUpdatesOnLongSessions(t *testing.T) {
	p := getPKI(t)
	sc, cc := p.serverConfig(), p.clientConfig()
	sc.KeyUpdateInterval, cc.KeyUpdateInterval = 200, 300
	// Base-sized packets: the intervals count packets.
	sc.NoPathMTUDiscovery, cc.NoPathMTUDiscovery = true, true
	_, c, s := pair(t, sc, cc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoServer(ctx, s)
	runEcho(t, c, s, 8, 256<<10)
	cs, ss := c.Stats(), s.Stats()
	if cs.KeyUpdates < 3 || ss.KeyUpdates < 3 {
		t.Fatalf("key updates: client %d, server %d; want several each", cs.KeyUpdates, ss.KeyUpdates)
	}
	if cs.DecryptFailures+ss.DecryptFailures > 0 {
		t.Fatalf("decrypt failures across key updates: %d", cs.DecryptFailures+ss.DecryptFailures)
	}
	t.Logf("key updates: client %d, server %d", cs.KeyUpdates, ss.KeyUpdates)
}

func TestCompressedStream(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoServer(ctx, s)
	st, err := c.OpenStreamOptions(ctx, OpenStreamOptions{Priority: 2, Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte(`{"sku":"A-1","name":"conductor tee","price":19.99}`), 20000) // 1 MB of JSON
	go func() {
		st.Write(msg[:len(msg)/2])
		st.Write(msg[len(msg)/2:])
		st.CloseWrite()
	}()
	got, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("compressed echo: %d bytes, %v", len(got), err)
	}
	if sent := c.Stats().BytesSent; sent > uint64(len(msg))/10 {
		t.Fatalf("client sent %d bytes on the wire for %d bytes of JSON: not compressed", sent, len(msg))
	}
	st.Close()
}

func TestLinkQualityIsKnownInBothDirections(t *testing.T) {
	p := getPKI(t)
	sc, cc := p.serverConfig(), p.clientConfig()
	sc.LinkQualityInterval, cc.LinkQualityInterval = 100*time.Millisecond, 100*time.Millisecond
	// Only the client → server direction loses packets.
	c, s := impairedPair(t, sc, cc, nil, func(pc net.PacketConn) net.PacketConn { return newLossyConn(pc, 0.05, 0, 0, 7) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoServer(ctx, s)
	runEcho(t, c, s, 4, 2<<20)
	time.Sleep(300 * time.Millisecond)
	cs := c.Stats()
	ss := s.Stats()
	t.Logf("client outbound (server's report): loss %.3f, rate %.0f B/s, jitter %v; client inbound: loss %.3f, peer cwnd %d",
		cs.Outbound.LossRate, cs.Outbound.ReceiveRate, cs.Outbound.DelayVariation, cs.Inbound.LossRate, cs.Inbound.SenderWindow)
	if cs.Outbound.UpdatedAt.IsZero() || ss.Outbound.UpdatedAt.IsZero() {
		t.Fatal("no link-quality report arrived")
	}
	if cs.Inbound.SenderWindow <= 0 || cs.Inbound.SenderRTT <= 0 {
		t.Fatalf("client does not know the server's sender state: %+v", cs.Inbound)
	}
	// The server measured the loss on its inbound side, and the client
	// learned it in-band: its outbound view is the server's report.
	seen := float64(ss.Inbound.PacketsLost) / float64(ss.Inbound.PacketsLost+ss.Inbound.PacketsReceived)
	told := float64(cs.Outbound.PacketsLost) / float64(cs.Outbound.PacketsLost+cs.Outbound.PacketsReceived)
	t.Logf("uplink loss measured by the server %.3f, known to the client %.3f (injected 0.05)", seen, told)
	if seen < 0.03 || seen > 0.08 || told < 0.03 || told > 0.08 {
		t.Fatalf("uplink loss: server measured %.3f, client was told %.3f; injected 0.05", seen, told)
	}
	// The downlink has no injected loss; what the client measures there is
	// its own receive buffer overflowing on a loaded machine, a figure that
	// depends on the machine, not on the protocol. What must hold is that
	// the server knows it: its outbound view is the client's report.
	down := float64(cs.Inbound.PacketsLost) / float64(cs.Inbound.PacketsLost+cs.Inbound.PacketsReceived+1)
	heard := float64(ss.Outbound.PacketsLost) / float64(ss.Outbound.PacketsLost+ss.Outbound.PacketsReceived+1)
	t.Logf("downlink loss measured by the client %.4f, known to the server %.4f", down, heard)
	if math.Abs(down-heard) > 0.01 {
		t.Fatalf("downlink loss: client measured %.4f, server was told %.4f", down, heard)
	}
}

func TestGracefulCloseDrainsStreams(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoServer(ctx, s)
	st, err := c.OpenStream(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := payloadFor(1, 4<<20)
	go func() {
		st.Write(want)
		st.CloseWrite()
	}()
	closed := make(chan error, 1)
	time.Sleep(10 * time.Millisecond)
	go func() { closed <- c.Close() }()
	time.Sleep(10 * time.Millisecond)
	if _, err := c.OpenStream(ctx, 0); !errors.Is(err, ErrSessionClosing) {
		t.Fatalf("OpenStream while draining: %v, want ErrSessionClosing", err)
	}
	got, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("stream cut by close: %d of %d bytes, %v", len(got), len(want), err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("peer did not learn of the close")
	}
	var se *SessionError
	if !errors.As(s.Err(), &se) || !se.Remote || se.Code != NoError {
		t.Fatalf("peer's view of the close: %v", s.Err())
	}
}

func TestDeadlinesAndReset(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := c.OpenStream(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	_, err = st.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline: %v, want a timeout net.Error", err)
	}
	st.Write([]byte("hello"))
	peer, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if peer.Priority() != 2 {
		t.Fatalf("peer sees priority %d, want the opener's 2", peer.Priority())
	}
	st.Reset(0x42)
	buf := make([]byte, 100)
	var serr *StreamError
	for {
		_, err = peer.Read(buf)
		if err != nil {
			break
		}
	}
	if !errors.As(err, &serr) || serr.Code != 0x42 || !serr.Remote {
		t.Fatalf("peer read after reset: %v, want StreamError 0x42", err)
	}
	if _, err := st.Write([]byte("x")); !errors.As(err, &serr) {
		t.Fatalf("write after reset: %v", err)
	}
}

// A stream whose reader stalls must not hold up another stream (smux#18).
func TestSlowReaderDoesNotBlockOtherStreams(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stuck, _ := c.OpenStream(ctx, 4)
	fast, _ := c.OpenStream(ctx, 4)
	go stuck.Write(make([]byte, 8<<20)) // fills the peer's window; nobody reads it
	fast.Write([]byte("through"))
	fast.CloseWrite()
	for {
		st, err := s.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.ID() == fast.ID() {
			got, err := io.ReadAll(st)
			if err != nil || string(got) != "through" {
				t.Fatalf("fast stream: %q, %v", got, err)
			}
			return
		}
	}
}

// TestNoHeadOfLineBlockingAcrossStreams: a gap in one stream leaves other
// streams' bytes readable.
func TestNoHeadOfLineBlockingAcrossStreams(t *testing.T) {
	h := newHarness2(t)
	var b []byte
	b = (&streamOpenFrame{StreamID: 0}).appendTo(b)
	b = (&streamOpenFrame{StreamID: 2}).appendTo(b)
	b = (&streamFrame{StreamID: 0, Offset: 1000, Data: []byte("after a lost packet")}).appendTo(b)
	b = (&streamFrame{StreamID: 2, Offset: 0, Data: []byte("independent")}).appendTo(b)
	h.feed(h.seal(b))
	if err := h.err(); err != nil {
		t.Fatal(err)
	}
	h.s.mu.Lock()
	a, other := h.s.tab.streams[0], h.s.tab.streams[2]
	h.s.mu.Unlock()
	if a.rb.readable() {
		t.Fatal("stream 0 readable across a gap")
	}
	if !other.rb.readable() {
		t.Fatal("stream 2 held back by stream 0's gap")
	}
}

// TestMemory10000IdleStreams measures the heap of a session pair holding
// 10,000 open, idle streams.
func TestMemory10000IdleStreams(t *testing.T) {
	p := getPKI(t)
	sc := p.serverConfig()
	sc.MaxIncomingStreams = 12000
	_, c, s := pair(t, sc, p.clientConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	streams := make([]*Stream, 0, 10000)
	for i := 0; i < 10000; i++ {
		st, err := c.OpenStream(ctx, Priority(i%NumPriorities))
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	accepted := make([]*Stream, 0, 10000)
	for len(accepted) < 10000 {
		st, err := s.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		accepted = append(accepted, st)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("10,000 idle streams: %.1f MB for both ends (%.0f bytes per stream per end)", float64(used)/(1<<20), float64(used)/20000)
	if used > 64<<20 {
		t.Fatalf("10,000 idle streams use %d MB, want < 64 MB", used>>20)
	}
	if n := c.Stats().OpenStreams; n != 10000 {
		t.Fatalf("client has %d open streams", n)
	}
	runtime.KeepAlive(streams)
	runtime.KeepAlive(accepted)
}

// A stopped peer (ICMP port unreachable, silence) fails fast: at Dial, and
// for a live session.
func TestStoppedPeerFailsFast(t *testing.T) {
	p := getPKI(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nothing listens there
	cfg := p.clientConfig()
	cfg.DialAttempts = 2
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = Dial(ctx, addr, cfg)
	if !errors.Is(err, ErrPeerUnreachable) {
		t.Fatalf("dial to a closed port: %v, want ErrPeerUnreachable", err)
	}
	t.Logf("dial to a closed port failed after %v", time.Since(start))

	spc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(spc, p.serverConfig())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(ctx, spc.LocalAddr().String(), p.clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(NoError, "")
	spc.Close() // the peer's process dies: no CLOSE frame
	l.Close()
	start = time.Now()
	st, err := c.OpenStream(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("anyone there?"))
	select {
	case <-c.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("session to a stopped peer still alive")
	}
	if !errors.Is(c.Err(), ErrPeerUnreachable) {
		t.Fatalf("live session ended with %v, want ErrPeerUnreachable", c.Err())
	}
	t.Logf("live session to a stopped peer ended after %v", time.Since(start))
}
