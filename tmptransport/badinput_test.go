package tmptransport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// nopConn is a PacketConn that discards writes; harness sessions never run
// their goroutine, so nothing reads it.
type nopConn struct{}

func (nopConn) ReadFrom([]byte) (int, net.Addr, error)    { return 0, nil, net.ErrClosed }
func (nopConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }
func (nopConn) Close() error                              { return nil }
func (nopConn) LocalAddr() net.Addr                       { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (nopConn) SetDeadline(time.Time) error               { return nil }
func (nopConn) SetReadDeadline(time.Time) error           { return nil }
func (nopConn) SetWriteDeadline(time.Time) error          { return nil }

// harness is an established server session driven directly, without
// sockets or goroutines: tests seal packets as the client would and feed them
// to handleDatagramLocked.
type harness struct {
	s     *Session
	write *packetKey // the client's write key
	pn    uint64
}

func newHarness2(t testing.TB) *harness {
	t.Helper()
	cfg, err := getPKI(t).serverConfig().withDefaults(true)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxIncomingStreams = 16
	s := newSession(cfg, false, nopConn{}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 2}, sessionID{1, 1, 1, 1, 2, 2, 2, 2}, nil)
	suite, _ := suiteByID(tls.TLS_AES_128_GCM_SHA256)
	c2s, _ := newPacketKey(suite, make([]byte, 32))
	s2c, _ := newPacketKey(suite, append(make([]byte, 31), 1))
	s.keys, _ = newAppKeys(c2s, s2c)
	s.established, s.confirmed = true, true
	s.peerParams = &transportParams{InitialMaxStreamData: 1 << 18, InitialMaxData: 1 << 20, MaxStreams: 16, MaxPacketSize: 1452}
	s.sendFC.limit, s.tab.peerMax = 1<<20, 16
	s.hs = nil
	s.lastRecv = time.Now()
	w, _ := newPacketKey(suite, make([]byte, 32))
	return &harness{s: s, write: w}
}

func (h *harness) seal(payload []byte) []byte {
	// Room for the tag after any payload: sealInPlace seals within the
	// slice's capacity, as the session's pooled buffers are sized for.
	pkt := appendShortHeader(make([]byte, 0, shortHdrLen+len(payload)+aeadOverhead), false, h.s.id, h.pn, true, 0)
	hl := len(pkt)
	pkt = append(pkt, payload...)
	pkt = h.write.sealInPlace(pkt, hl, h.pn)
	h.pn++
	return pkt
}

func (h *harness) feed(pkt []byte) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.handleDatagramLocked(datagram{b: pkt, at: time.Now()})
}

func (h *harness) err() error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.closeErr
}

func TestBadInputIsRejectedWithClearErrors(t *testing.T) {
	frames := func(fs ...frame) []byte {
		var b []byte
		for _, f := range fs {
			b = f.appendTo(b)
		}
		return b
	}
	cases := []struct {
		name    string
		payload []byte
		code    ErrorCode
		want    string
	}{
		{"unknown frame type", []byte{0x3e}, FrameEncodingError, "unknown frame type 0x3e"},
		{"oversized frame", []byte{frameStream, 1, 0, 0x80, 0x10, 0, 0}, FrameEncodingError, "oversized stream data"},
		{"truncated frame", frames(&streamFrame{StreamID: 1, Data: []byte("abcdef")})[:5], FrameEncodingError, "truncated"},
		{"stream beyond the limit", frames(&streamOpenFrame{StreamID: 2 * 16}), StreamLimitError, "beyond the limit of 16 streams"},
		{"data beyond the stream window", frames(&streamFrame{StreamID: 0, Offset: 1 << 19, Data: []byte("x")}), FlowControlError, "beyond window"},
		{"frame for our own unopened stream", frames(&maxStreamDataFrame{StreamID: 41, Max: 1}), ProtocolViolation, "never opened"},
		{"bad priority", frames(&streamOpenFrame{StreamID: 2, Priority: 9}), ProtocolViolation, "priority 9 out of range"},
		{"ack for unsent packet", frames(&ackFrame{Ranges: []ackRange{{0, 5}}}), ProtocolViolation, "never sent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness2(t)
			h.feed(h.seal(c.payload))
			err := h.err()
			var pe *protoError
			if !errors.As(err, &pe) || pe.code != c.code || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("session error = %v, want %v containing %q", err, c.code, c.want)
			}
			if h.s.closeFrame == nil || h.s.closeFrame.Code != c.code {
				t.Fatalf("the peer is not told: close frame %+v", h.s.closeFrame)
			}
		})
	}
}

// Packets that do not authenticate are dropped and counted; they cannot
// close the session.
func TestForgedAndReplayedPacketsAreDropped(t *testing.T) {
	h := newHarness2(t)
	good := h.seal((&streamOpenFrame{StreamID: 0}).appendTo(nil))
	h.feed(append([]byte(nil), good...))
	h.feed(append([]byte(nil), good...)) // replay
	altered := h.seal(pingFrame{}.appendTo(nil))
	altered[len(altered)-20] ^= 1
	h.feed(altered)
	h.feed(good[:shortHdrLen-3]) // truncated
	other := &harness{s: h.s}
	suite, _ := suiteByID(tls.TLS_AES_128_GCM_SHA256)
	other.write, _ = newPacketKey(suite, []byte("a wrong key, 32 bytes long......"))
	h.feed(other.seal(pingFrame{}.appendTo(nil)))
	st := h.s.Stats()
	if err := h.err(); err != nil {
		t.Fatalf("session closed by unauthenticated input: %v", err)
	}
	if st.ReplaysDropped != 1 || st.DecryptFailures != 2 || h.s.counters.malformed != 1 || st.PacketsReceived != 1 {
		t.Fatalf("replays %d, decrypt failures %d, malformed %d, accepted %d; want 1, 2, 1, 1",
			st.ReplaysDropped, st.DecryptFailures, h.s.counters.malformed, st.PacketsReceived)
	}
}

func FuzzSessionFrames(f *testing.F) {
	for _, fr := range allFrames() {
		f.Add(fr.appendTo(nil))
	}
	f.Add(append((&streamOpenFrame{StreamID: 1, Priority: 1}).appendTo(nil), (&streamFrame{StreamID: 1, Data: []byte("GET / HTTP/1.1\r\n"), Fin: true}).appendTo(nil)...))
	f.Fuzz(func(t *testing.T, payload []byte) {
		h := newHarness2(t)
		h.feed(h.seal(payload))
		h.feed(h.seal(payload))
		h.s.mu.Lock()
		var out [][]byte
		out = h.s.sendLocked(time.Now(), out)
		h.s.mu.Unlock()
		for _, p := range out {
			putBuf(p)
		}
	})
}

// clientInitial returns a real first packet of a client handshake.
func clientInitial(t testing.TB) []byte {
	cfg, err := getPKI(t).clientConfig().withDefaults(false)
	if err != nil {
		t.Fatal(err)
	}
	hs := newHandshake(true, cfg.TLSConfig, cfg.transportParams())
	defer hs.close()
	if err := hs.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pkt := appendLongHeader(nil, packetInitial, sessionID{5}, 0)
	pkt = append(pkt, appendCryptoFrames(hs.sendBuf[0], 1400)[0]...)
	return paddingFrame{n: minPacketSize - len(pkt)}.appendTo(pkt)
}

// FuzzHandshakeInput feeds arbitrary datagrams to a server session in its
// handshake.
func FuzzHandshakeInput(f *testing.F) {
	f.Add(clientInitial(f))
	f.Add(appendLongHeader(nil, packetHandshake, sessionID{5}, 1))
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg, _ := getPKI(t).serverConfig().withDefaults(true)
		s := newSession(cfg, false, nopConn{}, &net.UDPAddr{}, sessionID{5}, nil)
		if err := s.hs.start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer s.hs.close()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.handleDatagramLocked(datagram{b: append([]byte(nil), in...), at: time.Now()})
		if s.hs != nil {
			s.handleDatagramLocked(datagram{b: append([]byte(nil), in...), at: time.Now()})
		}
	})
}

// TestHandshakeRejectsWrongCredentials: a client whose certificate another CA
// signed, or with no certificate, opens nothing.
func TestHandshakeRejectsWrongCredentials(t *testing.T) {
	p := getPKI(t)
	l, err := Listen("127.0.0.1:0", p.serverConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	other := newTestPKI(t, "someone else's CA")
	stranger := p.clientConfig()
	stranger.TLSConfig.Certificates = []tls.Certificate{other.client}
	anonymous := p.clientConfig()
	anonymous.TLSConfig.Certificates = nil
	wrongServer := p.clientConfig()
	wrongServer.TLSConfig.RootCAs = other.pool
	for name, cfg := range map[string]*Config{"foreign client certificate": stranger, "no client certificate": anonymous, "untrusted server": wrongServer} {
		cfg.HandshakeTimeout = 2 * time.Second
		cfg.DialAttempts = 1
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := Dial(ctx, l.Addr().String(), cfg)
		cancel()
		if err == nil {
			s.CloseWithError(NoError, "")
			t.Errorf("%s: handshake succeeded", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if s, err := l.Accept(ctx); err == nil {
		t.Fatalf("listener accepted a session from %v", s.RemoteAddr())
	}
}

func TestConfigErrorsAreClear(t *testing.T) {
	p := getPKI(t)
	cases := map[string]func(c *Config){
		"Config.TLSConfig is required":     func(c *Config) { c.TLSConfig = nil },
		"MaxPacketSize 900 out of range":   func(c *Config) { c.MaxPacketSize = 900 },
		"weight of priority 3 is -1":       func(c *Config) { c.Weights = [NumPriorities]int{1, 1, 1, -1, 1} },
		"SubPacketSize 10 out of range":    func(c *Config) { c.SubPacketSize = 10 },
		"needs RequireAndVerifyClientCert": func(c *Config) { c.TLSConfig.ClientAuth = tls.NoClientCert },
	}
	for want, mutate := range cases {
		c := p.serverConfig()
		mutate(c)
		_, err := Listen("127.0.0.1:0", c)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
}
