package tmptransport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// Keys are updated before the AEAD limits of RFC 9001 §6.6, whatever the
// configuration says, and a session that receives as many forged packets as
// its suite's integrity limit closes. Before, KeyUpdateInterval was taken
// as configured (a value above AES-GCM's 2^23 packets sealed that many
// under one key), an update waiting for the peer let the key go on sealing,
// and forged packets were only counted.
func TestKeyUpdateBeforeAEADLimit(t *testing.T) {
	// Each suite: an interval configured far above the limit is capped.
	for _, id := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256} {
		keys, suite := testAppKeys(t, id)
		keys.setLimits(1 << 62)
		if keys.updateAt > suite.confidentialityLimit/2 {
			t.Errorf("suite %#x: update after %d packets, limit %d", id, keys.updateAt, suite.confidentialityLimit)
		}
	}

	// A live session with the limits scaled down (the real ones are 2^23
	// packets): no write key seals more than its limit, keys are updated
	// many times, and the data arrives whole.
	p := getPKI(t)
	ccfg := p.clientConfig()
	ccfg.KeyUpdateInterval = 1 << 40 // an operator's mistake: capped
	// Base-sized packets: the limits below count packets.
	scfg := p.serverConfig()
	ccfg.NoPathMTUDiscovery, scfg.NoPathMTUDiscovery = true, true
	_, c, s := pair(t, scfg, ccfg)
	// An update every 128 packets, a hard limit of 1024 (the real margin
	// is 2^22 packets: an update waits for the peer's answer).
	const limit = 1024
	for _, sess := range []*Session{c, s} {
		sess.mu.Lock()
		sess.keys.limit = limit
		sess.keys.updateAt = 128
		sess.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go echoServer(ctx, s)
	st, err := c.OpenStream(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 2<<20) // about 1 500 packets each way
	go func() {
		st.Write(payload)
		st.CloseWrite()
	}()
	got, err := io.ReadAll(st)
	if err != nil || len(got) != len(payload) {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	for name, sess := range map[string]*Session{"client": c, "server": s} {
		sess.mu.Lock()
		most, updates := sess.keys.maxInPhase, sess.keys.updates
		sess.mu.Unlock()
		t.Logf("%s: %d key updates, at most %d packets under one key", name, updates, most)
		if most > limit {
			t.Errorf("%s: a key sealed %d packets, limit %d", name, most, limit)
		}
		if updates < 5 {
			t.Errorf("%s: only %d key updates", name, updates)
		}
	}

	// Forged packets: at the integrity limit the session closes.
	s.mu.Lock()
	s.keys.forgedLimit = 50
	s.mu.Unlock()
	forger, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	for i := range 50 {
		pkt := appendShortHeader(nil, false, s.id, uint64(1<<20+i), false, 0)
		pkt = append(pkt, make([]byte, 100)...)
		forger.WriteTo(pkt, s.LocalAddr())
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session lives on after 50 forged packets at a limit of 50")
	}
	var se *SessionError
	if err := s.Err(); !errors.As(err, &se) || se.Code != AEADLimitReached {
		t.Fatalf("session ended with %v, want AEAD_LIMIT_REACHED", err)
	}
}

// testAppKeys returns 1-RTT keys of the suite id, both directions from an
// all-zero secret.
func testAppKeys(t *testing.T, id uint16) (*appKeys, *cipherSuite) {
	t.Helper()
	suite, err := suiteByID(id)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, suite.hash().Size())
	rk, _ := newPacketKey(suite, secret)
	wk, _ := newPacketKey(suite, secret)
	keys, err := newAppKeys(rk, wk)
	if err != nil {
		t.Fatal(err)
	}
	return keys, suite
}
