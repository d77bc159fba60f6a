package tmptransport

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// dialWithin dials l and reports how long the handshake took.
func dialWithin(t *testing.T, l *Listener, cfg *Config, limit time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	c, err := Dial(ctx, l.Addr().String(), cfg)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("dial failed after %v: %v", took, err)
	}
	c.CloseWithError(NoError, "")
	if took > limit {
		t.Errorf("handshake took %v, want ≤ %v", took, limit)
	}
	return took
}

// serveAndHold accepts sessions and keeps them until the listener closes.
func serveAndHold(ctx context.Context, l *Listener) {
	for {
		if _, err := l.Accept(ctx); err != nil {
			return
		}
	}
}

// holdingListener listens on loopback, accepts and holds every session
// until the test ends.
func holdingListener(t *testing.T, cfg *Config) *Listener {
	t.Helper()
	l, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); l.Close() })
	go serveAndHold(ctx, l)
	return l
}

// A listener that always asks for address validation still completes
// handshakes: the dialer follows the Retry transparently, and the listener
// admits the token's session.
func TestRetryIsFollowed(t *testing.T) {
	p := getPKI(t)
	scfg := p.serverConfig()
	scfg.RetryThreshold = -1
	l := holdingListener(t, scfg)
	dialWithin(t, l, p.clientConfig(), 2*time.Second)
	st := l.Stats()
	// Each packet of the dialer's first flight draws a Retry; it follows one.
	if st.RetriesSent == 0 || st.Handshakes != 1 {
		t.Fatalf("retries %d, handshakes %d; want ≥ 1 and 1", st.RetriesSent, st.Handshakes)
	}
}

// Spoofed Initials cannot keep a real front-end out. A listener on loopback
// gets 10 000 Initials a second, each a real ClientHello under a fresh
// session ID from one of 256 source ports that never answer, for 5 s; then
// the burst pattern that blocked every fresh front-end before (300 Initials
// within 300 ms, every 10 s) for 30 s. A real dialer, from the same /24 as
// the flood, still completes its handshake within 1 s each time.
func TestSpoofedInitialsDoNotBlockDial(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: 35 s of flooding")
	}
	p := getPKI(t)
	l := holdingListener(t, p.serverConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	flight := captureClientInitial(t)
	sp := newSpoofer(t, "127.0.0.1", 256)

	floodDone := make(chan int)
	go func() { floodDone <- sp.flood(ctx, flight, l.Addr(), 10000, 5*time.Second) }()
	time.Sleep(500 * time.Millisecond) // the flood is under way
	var worst time.Duration
	for i := 0; i < 4; i++ {
		worst = max(worst, dialWithin(t, l, p.clientConfig(), time.Second))
		time.Sleep(time.Second)
	}
	sent := <-floodDone
	st := l.Stats()
	t.Logf("flood: %d Initials in 5 s; %d Retries sent; %d half-open; slowest dial %v", sent, st.RetriesSent, st.HalfOpen, worst)
	if st.RetriesSent == 0 {
		t.Error("the flood drew no Retry")
	}

	// Bursts: 300 Initials within 300 ms, every 10 s, for 30 s; a dial
	// right after each burst and one in between.
	for burst := 0; burst < 3; burst++ {
		sp.flood(ctx, flight, l.Addr(), 1000, 300*time.Millisecond)
		worst = max(worst, dialWithin(t, l, p.clientConfig(), time.Second))
		time.Sleep(4 * time.Second)
		worst = max(worst, dialWithin(t, l, p.clientConfig(), time.Second))
		time.Sleep(5 * time.Second)
	}
	t.Logf("after the bursts: slowest dial %v; listener stats %+v", worst, l.Stats())
}

// Until an address is validated, the listener sends it at most 3× the bytes
// it received (RFC 9000 §8.1), whatever it sends: its flight, its resends,
// and the CLOSE that ends the half-open session. And the Retry that answers
// an Initial under load is smaller than the Initial.
func TestAmplificationLimit(t *testing.T) {
	p := getPKI(t)
	scfg := p.serverConfig()
	scfg.HandshakeTimeout = 2 * time.Second
	// A certificate chain of several kilobytes, so that the flight alone
	// is above 3× the Initial.
	big := p.serverConfig().TLSConfig.Certificates[0]
	for range 24 {
		big.Certificate = append(big.Certificate, big.Certificate[0])
	}
	scfg.TLSConfig.Certificates = []tls.Certificate{big}
	l, err := Listen("127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	flight := captureClientInitial(t)
	attacker, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()

	// One Initial, then a malformed Initial of the smallest size that
	// draws a CLOSE, then silence until the handshake times out.
	id := newSessionID()
	received := sendFlight(attacker, flight, id, l.Addr())
	time.Sleep(100 * time.Millisecond)
	bad := appendInitialHeader(nil, packetInitial, id, uint64(len(flight)), nil)
	bad = append(bad, 0x3f) // an unknown frame type
	received += len(bad)
	attacker.WriteTo(bad, l.Addr())
	sent := 0
	buf := make([]byte, 4096)
	for {
		attacker.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := attacker.ReadFrom(buf)
		if err != nil {
			break
		}
		sent += n
	}
	t.Logf("received %d bytes from an unvalidated address, sent %d (%.2f×)", received, sent, float64(sent)/float64(received))
	if sent == 0 {
		t.Fatal("the listener sent nothing: the test measured nothing")
	}
	if sent > 3*received {
		t.Fatalf("sent %d bytes to an unvalidated address that sent %d: more than 3×", sent, received)
	}

	// Under load (here: always), the answer is a Retry, smaller than the
	// Initial that drew it.
	scfg = p.serverConfig()
	scfg.RetryThreshold = -1
	l2, err := Listen("127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	attacker.WriteTo(withSessionID(flight[0], newSessionID()), l2.Addr())
	attacker.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := attacker.ReadFrom(buf)
	if err != nil {
		t.Fatal("no Retry:", err)
	}
	if h, err := parseHeader(buf[:n]); err != nil || h.typ != packetRetry {
		t.Fatalf("answer is not a Retry: %v", err)
	}
	if n >= len(flight[0]) {
		t.Fatalf("Retry of %d bytes for an Initial of %d", n, len(flight[0]))
	}
}
