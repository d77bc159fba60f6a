package tmptransport

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

// A session's ID travels in clear. Sending it to a second listener of the
// same node must not yield the token that kills the session on the first:
// each listener derives its reset key from the node's secret and its own
// identity (RFC 9000 §10.3.2). Before, one key served every listener of a
// node, and this test read a live session's reset token off the second.
func TestResetTokenNotObtainableFromSecondListener(t *testing.T) {
	p := getPKI(t)
	secret := []byte("one node, two listeners")
	cfgA, cfgB := p.serverConfig(), p.serverConfig()
	cfgA.NodeSecret, cfgB.NodeSecret = secret, secret
	a, b := holdingListener(t, cfgA), holdingListener(t, cfgB)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, a.Addr().String(), p.clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(NoError, "")
	c.mu.Lock()
	victimToken := append([]byte(nil), c.resetToken...)
	c.mu.Unlock()
	if len(victimToken) != statelessResetTokenLen {
		t.Fatal("the dialer holds no reset token")
	}

	// The attacker sends a short-header packet with the victim's session
	// ID to listener B, and reads the reset B answers with.
	attacker, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	probe := appendShortHeader(nil, false, c.id, 7, false, 0)
	probe = append(probe, make([]byte, 60)...)
	attacker.WriteTo(probe, b.Addr())
	buf := make([]byte, 2048)
	attacker.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := attacker.ReadFrom(buf)
	if err != nil {
		t.Fatal("listener B sent no stateless reset:", err)
	}
	got := buf[n-statelessResetTokenLen : n]
	if bytes.Equal(got, victimToken) {
		t.Fatal("listener B's reset carries the token of listener A's session")
	}
	// And A itself, which knows the session, makes the victim's token for
	// the same ID: the token is per listener, not random per process.
	if !bytes.Equal(a.keys.resetToken(c.id), victimToken) {
		t.Fatal("listener A's token differs from the one it sent the dialer")
	}
	if c.Err() != nil {
		t.Fatalf("the session died: %v", c.Err())
	}
}
