package tmptransport

import (
	"context"
	"testing"
	"time"
)

// On loopback (a 64 kB MTU) with a don't-fragment socket, a session's
// packets grow from the base size to the largest both ends take; with
// discovery off they stay at the base.
func TestPathMTUDiscoveryGrowsPackets(t *testing.T) {
	p := getPKI(t)
	for _, off := range []bool{false, true} {
		sc, cc := p.serverConfig(), p.clientConfig()
		sc.NoPathMTUDiscovery, cc.NoPathMTUDiscovery = off, off
		_, c, s := pair(t, sc, cc)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		go echoServer(ctx, s)
		runEcho(t, c, s, 2, 1<<20)
		want := 16384
		if off {
			want = 1452
		}
		deadline := time.Now().Add(5 * time.Second)
		for c.Stats().PacketSize != want && time.Now().Before(deadline) {
			runEcho(t, c, s, 1, 64<<10)
		}
		if got := c.Stats().PacketSize; got != want {
			t.Errorf("discovery off=%v: packets of %d bytes, want %d", off, got, want)
		}
		cancel()
	}
}

// The search: candidates up to the ceiling; an acknowledged probe raises
// the size and moves on; a size lost three times ends the search; a
// probe unanswered for three round trips counts as lost.
func TestPathMTUSearch(t *testing.T) {
	now := time.Unix(1000, 0)
	var p pmtuSearch
	p.df = true
	p.start(1452, 16384, now)
	if got := p.cands; len(got) != 3 || got[0] != 4096 || got[1] != 8952 || got[2] != 16384 {
		t.Fatalf("candidates %v", got)
	}
	size, ok := p.want(now, 10*time.Millisecond)
	if !ok || size != 4096 {
		t.Fatalf("first probe %d %v", size, ok)
	}
	p.probeAt = now
	if _, ok := p.want(now.Add(50*time.Millisecond), 10*time.Millisecond); ok {
		t.Fatal("a second probe while one is in flight")
	}
	// Three timeouts at 4096: nothing larger is tried for raiseInterval.
	for i := range pmtuMaxProbes {
		at := now.Add(time.Duration(i+1) * time.Second)
		if size, ok := p.want(at, 10*time.Millisecond); i < pmtuMaxProbes-1 && (!ok || size != 4096) {
			t.Fatalf("retry %d: %d %v", i, size, ok)
		}
		p.probeAt = at
	}
	if _, ok := p.want(now.Add(10*time.Second), 10*time.Millisecond); ok || len(p.cands) != 0 {
		t.Fatalf("the search went on after %d losses: %v", pmtuMaxProbes, p.cands)
	}
	// Without don't-fragment there is no search at all.
	var q pmtuSearch
	q.start(1452, 16384, now)
	if _, ok := q.want(now, time.Millisecond); ok {
		t.Fatal("probing without don't-fragment")
	}
}

// Two probe timeouts in a row send packets back to the base size (a black
// hole, RFC 8899 §4.3), and the search starts again after blackHoleRetry,
// not after raiseInterval: a stall under load that is no black hole cost
// large packets for ten minutes (bench/RESULTS.md, session 14).
func TestPathMTUBlackHoleSearchesAgainSoon(t *testing.T) {
	now := time.Unix(1000, 0)
	s := &Session{maxPacket: 1452}
	s.pmtu.df = true
	s.pmtu.start(1452, 16384, now)
	s.pmtuAckedLocked(0, 16384)
	if s.maxPacket != 16384 {
		t.Fatalf("packet size %d after a 16384-byte probe was acknowledged", s.maxPacket)
	}
	s.pmtuBlackHoleLocked(now)
	if s.maxPacket != 1452 {
		t.Fatalf("packet size %d after a black hole, want the base 1452", s.maxPacket)
	}
	if _, ok := s.pmtu.want(now.Add(blackHoleRetry/2), 10*time.Millisecond); ok {
		t.Fatal("probing again at once, before the base is confirmed")
	}
	size, ok := s.pmtu.want(now.Add(blackHoleRetry), 10*time.Millisecond)
	if !ok || size != 4096 {
		t.Fatalf("after blackHoleRetry: probe %d %v, want the search to start again at 4096", size, ok)
	}
	if blackHoleRetry >= raiseInterval/10 {
		t.Fatalf("blackHoleRetry %v is not short beside raiseInterval %v", blackHoleRetry, raiseInterval)
	}
}
