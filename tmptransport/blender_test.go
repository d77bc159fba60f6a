package tmptransport

import (
	"math"
	"testing"
)

// fakeSource is a blender source with a fixed backlog (or an endless one).
type fakeSource struct {
	pending  int
	endless  bool
	sent     int
	idleHits int
}

func (f *fakeSource) blendPending() int {
	if f.endless {
		return 1 << 20
	}
	return f.pending
}
func (f *fakeSource) blendIdle() { f.idleHits++ }

type blendHarness struct {
	b       *blender
	entries []*blendEntry
	srcs    []*fakeSource
}

func newHarness(weights [NumPriorities]int, sub int) *blendHarness {
	return &blendHarness{b: newBlender(weights, sub)}
}

func (h *blendHarness) addSource(prio int, src *fakeSource) *blendEntry {
	e := &blendEntry{src: src, prio: prio}
	h.b.add(e)
	h.b.update(e)
	h.entries = append(h.entries, e)
	h.srcs = append(h.srcs, src)
	return e
}

// pick takes one sub-packet and closes the packet, and returns the entry it
// came from.
func (h *blendHarness) pick(limit int) *blendEntry {
	e := h.pickInPacket(limit)
	h.b.endPacket()
	return e
}

// pickInPacket takes one sub-packet, as the packet builder does, and returns
// the entry it came from.
func (h *blendHarness) pickInPacket(limit int) *blendEntry {
	e, n := h.b.next(limit)
	if e == nil {
		return nil
	}
	src := e.src.(*fakeSource)
	src.sent += n
	if !src.endless {
		src.pending -= n
	}
	h.b.charge(e, n)
	return e
}

func TestBlenderSharesFollowWeights(t *testing.T) {
	for _, weights := range [][NumPriorities]int{DefaultWeights, {1, 1, 1, 1, 1}, {50, 20, 15, 10, 5}} {
		h := newHarness(weights, 512)
		// Every ring backlogged, with different numbers of streams, so that
		// the share is per ring, not per stream.
		for p := 0; p < NumPriorities; p++ {
			for i := 0; i < 1+3*p; i++ {
				h.addSource(p, &fakeSource{endless: true})
			}
		}
		for i := 0; i < 200000; i++ {
			if h.pick(1400) == nil {
				t.Fatal("blender stopped with backlogged rings")
			}
		}
		var perRing [NumPriorities]float64
		total := 0.0
		for i, s := range h.srcs {
			perRing[h.entries[i].prio] += float64(s.sent)
			total += float64(s.sent)
		}
		wsum := 0
		for _, w := range weights {
			wsum += w
		}
		for p := range perRing {
			want := float64(weights[p]) / float64(wsum)
			got := perRing[p] / total
			if math.Abs(got-want)/want > 0.05 {
				t.Errorf("weights %v: ring %d got %.4f of bytes, want %.4f (±5%%)", weights, p, got, want)
			}
		}
	}
}

func TestBlenderRoundRobinWithinRing(t *testing.T) {
	h := newHarness(DefaultWeights, 512)
	for i := 0; i < 7; i++ {
		h.addSource(2, &fakeSource{endless: true})
	}
	for i := 0; i < 70000; i++ {
		h.pick(1400)
	}
	mean := 0.0
	for _, s := range h.srcs {
		mean += float64(s.sent)
	}
	mean /= float64(len(h.srcs))
	for i, s := range h.srcs {
		if d := math.Abs(float64(s.sent)-mean) / mean; d > 0.05 {
			t.Errorf("stream %d got %d bytes, mean %.0f (%.1f%% off, want ≤5%%)", i, s.sent, mean, 100*d)
		}
	}
	// Rotation: a stream's turn is one packet. Its sub-packets in a packet
	// come back to back (they share a frame header), and the next packet
	// starts with another stream.
	last := h.pick(1400)
	for i := 0; i < 50; i++ {
		e := h.pickInPacket(1400)
		if e == last {
			t.Fatal("ring did not rotate after a packet")
		}
		for j := 0; j < 2; j++ {
			if again := h.pickInPacket(1400); again != e {
				t.Fatal("a stream's turn ended inside a packet")
			}
		}
		h.b.endPacket()
		last = e
	}
}

// TestBlenderNeverStarvesLowPriority: one priority-4 stream against hundreds
// of backlogged urgent streams still gets its weighted share, and never
// waits longer than one bounded round.
func TestBlenderNeverStarvesLowPriority(t *testing.T) {
	h := newHarness(DefaultWeights, 512)
	for p := 0; p < 4; p++ {
		for i := 0; i < 100; i++ {
			h.addSource(p, &fakeSource{endless: true})
		}
	}
	low := &fakeSource{endless: true}
	lowE := h.addSource(4, low)
	gap, maxGap := 0, 0
	for i := 0; i < 100000; i++ {
		e := h.pick(1400)
		if e == lowE {
			maxGap = max(maxGap, gap)
			gap = 0
		} else {
			gap += 512
		}
	}
	share := float64(low.sent) / float64(100000*512)
	if share < 0.95/31 {
		t.Errorf("priority 4 got %.4f of the link, want ≥ %.4f", share, 0.95/31)
	}
	if maxGap > maxRoundBytes+512 {
		t.Errorf("priority 4 waited %d bytes between sub-packets, more than a round (%d)", maxGap, maxRoundBytes)
	}
}

// TestBlenderUrgentFirst: data arriving on ring 0 mid-round is taken next,
// ahead of the backlog of lower rings, and finishes within one pass.
func TestBlenderUrgentFirst(t *testing.T) {
	for before := 0; before < 60; before++ {
		h := newHarness(DefaultWeights, 512)
		for p := 1; p < NumPriorities; p++ {
			for i := 0; i < 3; i++ {
				h.addSource(p, &fakeSource{endless: true})
			}
		}
		for i := 0; i < before; i++ {
			h.pick(1400)
		}
		urgent := &fakeSource{pending: 1000}
		ue := h.addSource(0, urgent)
		if e := h.pick(1400); e != ue {
			t.Fatalf("after %d picks: first pick after urgent data came from ring %d, want ring 0", before, e.prio)
		}
		// Seed step 4: within a pass the other rings get their turn, so the
		// rest follows within one pass of all five rings.
		for i := 0; i < NumPriorities && urgent.pending > 0; i++ {
			h.pick(1400)
		}
		if urgent.pending != 0 {
			t.Fatalf("after %d picks: urgent stream still has %d bytes a pass later", before, urgent.pending)
		}
	}
}

func TestBlenderSubPacketSizeAndIdle(t *testing.T) {
	h := newHarness(DefaultWeights, 512)
	s := &fakeSource{pending: 700}
	h.addSource(1, s)
	e, n := h.b.next(1400)
	if e == nil || n != 512 {
		t.Fatalf("first sub-packet %d bytes, want 512 (the seed's size)", n)
	}
	s.pending -= n
	h.b.charge(e, n)
	_, n = h.b.next(1400)
	if n != 188 {
		t.Fatalf("second sub-packet %d bytes, want the 188 left", n)
	}
	s.pending = 0
	h.b.charge(e, n)
	if e, _ := h.b.next(1400); e != nil {
		t.Fatal("blender picked an empty source")
	}
	sockets, ready := h.b.ringStats()
	if sockets[1] != 1 || ready[1] != 0 {
		t.Fatalf("ring 1: nSockets=%d nReady=%d, want 1 and 0", sockets[1], ready[1])
	}
}
