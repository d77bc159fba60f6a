package tmptransport

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// The Redialer is the one place that retries reaching a peer: a dial it
// makes is one handshake (one client socket), whatever DialAttempts says,
// and a caller during the back-off that follows fails at once, sending
// nothing. Plain Dial still makes its DialAttempts.
func TestRedialerMakesOneHandshakePerDial(t *testing.T) {
	p := getPKI(t)
	hole, err := net.ListenPacket("udp", "127.0.0.1:0") // a peer that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	var mu sync.Mutex
	sources := map[string]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			_, from, err := hole.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			sources[from.String()]++
			mu.Unlock()
		}
	}()
	seen := func() (socks, pkts int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range sources {
			socks++
			pkts += n
		}
		clear(sources)
		return
	}
	cfg := p.clientConfig()
	cfg.DialAttempts = 3
	cfg.HandshakeTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, err := Dial(ctx, hole.LocalAddr().String(), cfg); err == nil {
		t.Fatal("a dial to a silent peer succeeded")
	}
	if socks, _ := seen(); socks != 3 {
		t.Fatalf("Dial with DialAttempts 3 used %d client sockets, want 3", socks)
	}

	r := NewRedialer(hole.LocalAddr().String(), cfg)
	defer r.Close()
	if _, err := r.Session(ctx); err == nil {
		t.Fatal("the Redialer reached a silent peer")
	}
	if socks, _ := seen(); socks != 1 {
		t.Fatalf("one Redialer dial used %d client sockets (handshakes), want 1", socks)
	}
	if _, err := r.Session(ctx); err == nil {
		t.Fatal("a caller during the back-off got a session")
	}
	time.Sleep(50 * time.Millisecond)
	if _, pkts := seen(); pkts != 0 {
		t.Fatalf("a caller during the back-off sent %d packets, want none", pkts)
	}
	hole.Close()
	<-done
}
