package tmptransport

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestRecvBufferReassemblesAnyOrder feeds a stream's bytes as overlapping,
// duplicated frames in random order, reading as it goes, and expects the
// exact bytes back.
func TestRecvBufferReassemblesAnyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 300; round++ {
		want := payloadFor(round, 1+rng.IntN(5000))
		type fr struct{ off, n int }
		var frames []fr
		for off := 0; off < len(want); {
			n := min(1+rng.IntN(700), len(want)-off)
			frames = append(frames, fr{off, n})
			if rng.IntN(4) == 0 { // a duplicate, possibly shifted
				s := max(0, off-rng.IntN(300))
				frames = append(frames, fr{s, min(len(want)-s, n+rng.IntN(300))})
			}
			off += n
		}
		rng.Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
		var b recvBuffer
		var got []byte
		buf := make([]byte, 1+rng.IntN(900))
		for i, f := range frames {
			fin := f.off+f.n == len(want)
			if _, err := b.insert(uint64(f.off), want[f.off:f.off+f.n], fin); err != nil {
				t.Fatalf("round %d frame %d: %v", round, i, err)
			}
			for b.readable() {
				n := b.read(buf)
				got = append(got, buf[:n]...)
			}
		}
		if !b.atEOF() || !bytes.Equal(got, want) {
			t.Fatalf("round %d: got %d bytes (eof=%v), want %d", round, len(got), b.atEOF(), len(want))
		}
	}
}

func TestSendBufferRetransmitsOnlyLostBytes(t *testing.T) {
	var b sendBuffer
	b.write(payloadFor(1, 3000))
	off1, d1 := b.popNew(1000, 1<<20)
	off2, d2 := b.popNew(1000, 1<<20)
	b.onAcked(off2, uint64(len(d2)), false)
	b.onLost(off1, uint64(len(d1)), false)
	if got := b.pendingRetransmit(); got != 1000 {
		t.Fatalf("retransmit %d bytes, want 1000", got)
	}
	off, d, ok := b.popRetransmit(600)
	if !ok || off != 0 || len(d) != 600 {
		t.Fatalf("popRetransmit = %d, %d bytes, %v", off, len(d), ok)
	}
	b.onAcked(0, 1000, false)
	if b.base != 2000 || b.pendingRetransmit() != 0 {
		t.Fatalf("base %d retransmit %d after acks; want 2000 and 0", b.base, b.pendingRetransmit())
	}
}
