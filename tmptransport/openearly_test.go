package tmptransport

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"testing"
	"time"
)

// A dialed session's reader opens the 1-RTT packets it reads, so the
// session goroutine gets plaintext (openearly.go), and key updates still
// work: a packet in a key phase the reader does not know yet goes to the
// session sealed, which follows the update and hands the reader the new key.
func TestReaderOpensPackets(t *testing.T) {
	c, s := basePacketPair(t)
	// The server starts a key update every 256 packets: the client's
	// reader meets each new phase before its session does.
	s.mu.Lock()
	s.keys.updateAt = 256
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	payload := bytes.Repeat([]byte("conductor"), 300_000) // 2.7 MB, about 1 900 packets
	serveStreams(ctx, s, func(st *Stream) {
		st.Write(payload)
		st.CloseWrite()
	})
	st, err := c.OpenStream(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	st.CloseWrite()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, payload); i >= 0 {
		t.Fatalf("%d bytes arrived, first difference at %d", len(got), i)
	}
	s.mu.Lock()
	updates := s.keys.updates
	s.mu.Unlock()
	c.mu.Lock()
	received, byReader := c.counters.packetsReceived, c.counters.openedByReader
	c.mu.Unlock()
	t.Logf("%d key updates; client received %d packets, %d opened by its reader", updates, received, byReader)
	if updates < 5 {
		t.Fatalf("only %d key updates", updates)
	}
	// All but the first packets of each phase (and the handshake's).
	if byReader < received*9/10 {
		t.Errorf("the reader opened %d of %d packets", byReader, received)
	}
}

// The session takes a packet its reader opened only under the key it would
// have opened it with itself (appKeys.acceptOpened): the current key; the
// next one, which moves the read key on as a key update does; and after an
// update the previous key only for packets numbered before it (RFC 9001
// §6.5). A key older than that is refused.
func TestPacketOpenedUnderRetiredKeyIsRefused(t *testing.T) {
	keys, suite := testAppKeys(t, tls.TLS_AES_128_GCM_SHA256)
	accepts := func(key *packetKey, phase bool, pn uint64) bool {
		t.Helper()
		ok, err := keys.acceptOpened(key, &header{keyPhase: phase, pn: pn})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	k0, k1 := keys.read, keys.readNext
	if !accepts(k0, false, 5) {
		t.Fatal("the current key is refused")
	}
	stranger, _ := newPacketKey(suite, make([]byte, suite.hash().Size()))
	if accepts(stranger, true, 6) || keys.read != k0 {
		t.Fatal("a key the session does not know is taken, or moved the read key")
	}
	// The peer updates at packet 100: its packet, opened under the next
	// key, moves the read key on.
	if !accepts(k1, true, 100) || keys.read != k1 || keys.readPhase != true {
		t.Fatal("a packet under the next key does not move the read key on")
	}
	for _, c := range []struct {
		key   *packetKey
		phase bool
		pn    uint64
		want  bool
	}{
		{k1, true, 101, true},   // the new key
		{k0, false, 99, true},   // the old key, for a packet sent before the update
		{k0, false, 101, false}, // the old key, for a packet after it
		{k1, false, 99, false},  // a key that does not match the phase bit
	} {
		if got := accepts(c.key, c.phase, c.pn); got != c.want {
			t.Errorf("key generation %d, phase %v, packet %d: accepted %v, want %v",
				map[*packetKey]int{k0: 0, k1: 1}[c.key], c.phase, c.pn, got, c.want)
		}
	}
	// The peer updates again: k0 is no longer kept at all.
	if !accepts(keys.readNext, false, 200) {
		t.Fatal("the second update is refused")
	}
	if accepts(k0, false, 150) {
		t.Error("a packet opened under a key two updates old is accepted")
	}
}
