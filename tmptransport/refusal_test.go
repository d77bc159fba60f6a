package tmptransport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Every reason a listener refuses a handshake is counted (Listener.Stats,
// exported as conductor_tmp_handshakes_refused_total{reason}) and logged in
// a rate-limited line that names it; Retries, stateless resets, undecryptable
// and replayed packets are counted too. And the CLOSE that ends a refused
// handshake, sent in clear to a peer not yet authenticated, carries a code
// and no reason text. Before, a back-end logged nothing and sent the reason
// ("tls: certificate signed by unknown authority" and the like) in clear.
func TestHandshakeFailuresVisible(t *testing.T) {
	p := getPKI(t)
	core, logs := observer.New(zapcore.WarnLevel)
	scfg := p.serverConfig()
	scfg.Logger = zap.New(core)
	scfg.HandshakeTimeout = 500 * time.Millisecond
	scfg.MaxPendingHandshakes = 3
	scfg.MaxPendingPerPrefix = 2
	scfg.RetryThreshold = 3
	l, err := Listen("127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	flight := captureClientInitial(t)
	attacker := func(host string) net.PacketConn {
		c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := attacker("127.0.0.1")

	// version: an Initial of another wire version.
	other := withSessionID(flight[0], newSessionID())
	other[1] ^= 0xff
	a.WriteTo(other, l.Addr())
	// invalid_token: a forged token of the right length.
	a.WriteTo(withToken(flight, newSessionID(), make([]byte, tokenLen))[0], l.Addr())
	// Each of the next comes from a /24 of its own, so that none meets
	// the per-prefix budget.
	// crypto_limit: 1-byte fragments.
	var pn uint64
	frags, _ := fragmentedInitials(newSessionID(), &pn, 2, 1)
	attacker("127.0.3.1").WriteTo(frags[0], l.Addr())
	// protocol: an unknown frame in an Initial.
	bad := appendInitialHeader(nil, packetInitial, newSessionID(), 0, nil)
	bad = append(bad, 0x3f)
	bad = paddingFrame{n: minPacketSize - len(bad)}.appendTo(bad)
	attacker("127.0.4.1").WriteTo(bad, l.Addr())
	// timeout: a ClientHello that is never followed up.
	sendFlight(attacker("127.0.5.1"), flight, newSessionID(), l.Addr())
	// tls: a front-end whose certificate another CA signed. It learns the
	// code, not the reason.
	stranger := p.clientConfig()
	stranger.TLSConfig.Certificates = []tls.Certificate{newTestPKI(t, "someone else's CA").client}
	stranger.DialAttempts = 1
	_, err = Dial(ctx, l.Addr().String(), stranger)
	var se *SessionError
	if !errors.As(err, &se) || se.Code != HandshakeFailure || !se.Remote || se.Reason != "" {
		t.Errorf("a refused front-end got %v; want a remote HANDSHAKE_FAILURE with no reason text", err)
	}
	time.Sleep(time.Second) // the timeout passes; the slots free up

	// prefix_limit and half_open_limit: validated half-open sessions (they
	// answered a Retry) past the per-prefix and the global budgets.
	validated := func(c net.PacketConn) {
		id := newSessionID()
		// Below the thresholds there is no Retry to answer: the token is
		// minted as a Retry would have carried it, for this address.
		for _, pkt := range withToken(flight, id, l.tokens.mint(id, c.LocalAddr())) {
			c.WriteTo(pkt, l.Addr())
		}
	}
	b := attacker("127.0.1.1") // another /24
	validated(a)
	validated(a)
	time.Sleep(50 * time.Millisecond)
	validated(a) // a third from 127.0.0.0/24: prefix_limit
	validated(b)
	time.Sleep(50 * time.Millisecond)
	validated(b) // a fourth half-open session: half_open_limit

	// Retries: a listener that always validates.
	rcfg := p.serverConfig()
	rcfg.RetryThreshold = -1
	lr, err := Listen("127.0.0.1:0", rcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lr.Close()
	a.WriteTo(withSessionID(flight[0], newSessionID()), lr.Addr())

	// Resets, undecryptable and replayed packets, on a live session whose
	// packets the attacker recorded.
	go serveAndHold(ctx, l)
	time.Sleep(600 * time.Millisecond) // the half-open sessions time out
	rec := &recordingConn{PacketConn: attacker("127.0.0.1")}
	c, err := DialConn(ctx, rec, l.Addr(), p.clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(NoError, "")
	st, _ := c.OpenStream(ctx, 1)
	st.Write([]byte("hello"))
	time.Sleep(100 * time.Millisecond)
	short := rec.lastShort()
	a.WriteTo(short, l.Addr()) // replayed
	garbled := append([]byte(nil), short...)
	garbled[len(garbled)-1] ^= 1
	a.WriteTo(garbled, l.Addr()) // undecryptable
	unknown := appendShortHeader(nil, false, newSessionID(), 1, false, 0)
	a.WriteTo(append(unknown, make([]byte, 60)...), l.Addr()) // draws a reset
	time.Sleep(200 * time.Millisecond)

	stats := l.Stats()
	for _, r := range Refusals() {
		if stats.Refused[r] == 0 {
			t.Errorf("refusal %q not counted: %+v", r, stats.Refused)
		}
		found := false
		for _, e := range logs.FilterMessage("TMP handshake refused").All() {
			if e.ContextMap()["reason"] == r.String() {
				found = true
			}
		}
		if !found {
			t.Errorf("no log line for refusal %q", r)
		}
	}
	if lr.Stats().RetriesSent == 0 {
		t.Error("Retry not counted")
	}
	if stats.ResetsSent == 0 || stats.DecryptFailures == 0 || stats.ReplaysDropped == 0 {
		t.Errorf("resets %d, undecryptable %d, replayed %d: want each counted", stats.ResetsSent, stats.DecryptFailures, stats.ReplaysDropped)
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "refused") && e.ContextMap()["reason"] == nil {
			t.Errorf("log line without a reason: %v", e.ContextMap())
		}
	}
}

// recordingConn keeps the last short-header packet a dialer sends.
type recordingConn struct {
	net.PacketConn
	mu   sync.Mutex
	last []byte
}

func (r *recordingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if len(p) > 0 && p[0]&flagLong == 0 {
		b := append([]byte(nil), p...)
		r.mu.Lock()
		r.last = b
		r.mu.Unlock()
	}
	return r.PacketConn.WriteTo(p, addr)
}

func (r *recordingConn) lastShort() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// A listener takes only mutual authentication: a client certificate that is
// required and verified against the trusted CAs. RequireAnyClientCert (any
// certificate, signed by anyone) passed before; it and every weaker mode are
// refused with an error that names the mode and what to set.
func TestListenerRejectsWeakClientAuth(t *testing.T) {
	p := getPKI(t)
	for _, mode := range []tls.ClientAuthType{tls.NoClientCert, tls.RequestClientCert, tls.RequireAnyClientCert, tls.VerifyClientCertIfGiven} {
		cfg := p.serverConfig()
		cfg.TLSConfig.ClientAuth = mode
		l, err := Listen("127.0.0.1:0", cfg)
		if err == nil {
			l.Close()
			t.Errorf("ClientAuth %v: listener started", mode)
			continue
		}
		if !strings.Contains(err.Error(), mode.String()) || !strings.Contains(err.Error(), "RequireAndVerifyClientCert") {
			t.Errorf("ClientAuth %v: error %q does not name the mode and the fix", mode, err)
		}
	}
}
