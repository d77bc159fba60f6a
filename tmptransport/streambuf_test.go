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
		want := payloadFor(round, 1+rng.IntN([]int{5000, 100_000}[round%2]))
		type fr struct{ off, n int }
		var frames []fr
		for off := 0; off < len(want); {
			n := min(1+rng.IntN(1400), len(want)-off)
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
			if _, err := b.insert(uint64(f.off), want[f.off:f.off+f.n], fin, false, nil); err != nil {
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

// In-order frames are copied (the caller may reuse its packet buffer) into
// pooled blocks that grow with the run, not into an allocation per frame.
func TestRecvBufferCopiesInOrderDataIntoBlocks(t *testing.T) {
	frame := make([]byte, 1400)
	var b recvBuffer
	off := uint64(0)
	out := make([]byte, 64<<10)
	allocs := testing.AllocsPerRun(20, func() {
		for i := 0; i < 40; i++ { // 56 kB, then read it all
			for j := range frame {
				frame[j] = byte(off + uint64(j))
			}
			if _, err := b.insert(off, frame, false, false, nil); err != nil {
				t.Fatal(err)
			}
			for j := range frame { // the caller reuses its buffer
				frame[j] = 0xEE
			}
			off += uint64(len(frame))
		}
		start := b.readOff
		for b.readable() {
			n := b.read(out)
			for j := 0; j < n; j++ {
				if out[j] != byte(start+uint64(j)) {
					t.Fatalf("byte %d reads %#x, want %#x", start+uint64(j), out[j], byte(start+uint64(j)))
				}
			}
			start += uint64(n)
		}
	})
	if allocs > 6 {
		t.Fatalf("%.1f allocations per 40 in-order frames, want a few (one per block, not per frame)", allocs)
	}
}

// A peer that sends scattered slivers (two adjacent bytes, then a gap, over
// and over) makes the buffer hold little more memory than it sent.
func TestRecvBufferHoldsLittleMoreThanScatteredSlivers(t *testing.T) {
	var b recvBuffer
	for i := uint64(0); i < 1000; i++ {
		for _, off := range []uint64{1 + i*100, 2 + i*100} { // offset 0 never comes: nothing is readable
			if _, err := b.insert(off, []byte{byte(off)}, false, false, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	held := 0
	for _, c := range b.chunks {
		held += cap(c.data)
	}
	if b.buffered != 2000 || held > 4*b.buffered {
		t.Fatalf("buffered %d bytes in %d bytes of chunks, want 2000 in at most 4× that", b.buffered, held)
	}
}

// Data that fills at least half of its datagram's buffer is kept in that
// buffer, not copied, in order or filling a gap alike. A kept datagram is
// handed back (freed) only once read, for the session to return to the
// pool.
func TestStoreKeepsDatagrams(t *testing.T) {
	var b recvBuffer
	dg := append(getBuf(1400), make([]byte, 1400)...)
	data := dg[20 : 1420-20]
	own := dg
	if _, err := b.insert(0, data, false, false, &own); err != nil {
		t.Fatal(err)
	}
	if own != nil || len(b.chunks) != 1 || &b.chunks[0].data[0] != &data[0] {
		t.Fatalf("in-order data was copied (own %v, %d chunks)", own != nil, len(b.chunks))
	}
	// A datagram with a sliver of data in it is copied from, not kept.
	small := append(getBuf(1400), make([]byte, 1400)...)
	own = small
	b.insert(uint64(len(data)), small[:100], false, false, &own)
	if own == nil {
		t.Fatal("a datagram was kept for 100 bytes of data")
	}
	// Data filling a gap (behind later data) is kept too: on a lossy
	// path every repair does, and copying each cost an allocation.
	far := append(getBuf(1400), make([]byte, 1400)...)
	own = far
	b.insert(10000, far[:1300], false, false, &own)
	gap := append(getBuf(1400), make([]byte, 1400)...)
	own = gap
	b.insert(5000, gap[:1300], false, false, &own)
	if own != nil {
		t.Fatal("data filling a gap was copied")
	}
	if len(b.freed) != 0 {
		t.Fatal("freed before read")
	}
	b.read(make([]byte, len(data)))
	if len(b.freed) != 1 || &b.freed[0][0] != &dg[0] {
		t.Fatalf("read out, the datagram was not handed back: %d freed", len(b.freed))
	}
	b.putFreed()
	if len(b.freed) != 0 {
		t.Fatal("putFreed kept buffers")
	}
}

// Repairs cost the receive buffer no allocation: data that fills a gap
// keeps its datagram, and the chunk list is reused as readers empty it
// (makeRoom). Before, each repair was copied into a fresh allocation and
// the list was re-made after every read that emptied it: on the lan
// profile, 22 MB a second of garbage at the front-end.
func TestRecvBufferRepairsAllocateNothing(t *testing.T) {
	const frame = 1400
	var b recvBuffer
	var spare [][]byte // the test's datagram pool, so sync.Pool plays no part
	get := func() []byte {
		if n := len(spare); n > 0 {
			p := spare[n-1]
			spare = spare[:n-1]
			return p
		}
		return make([]byte, frame, 2048)
	}
	out := make([]byte, 16*frame)
	next := uint64(0)
	// One round: 16 frames, the even ones first (each odd one is then a
	// repair, landing in a gap), then all read out.
	round := func() {
		for _, odd := range []int{0, 1} {
			for i := odd; i < 16; i += 2 {
				p := get()
				own := p
				if _, err := b.insert(next+uint64(i*frame), p[:frame], false, false, &own); err != nil {
					t.Fatal(err)
				}
				if own != nil {
					spare = append(spare, own)
				}
			}
		}
		if n := b.read(out); n != len(out) {
			t.Fatalf("read %d of %d bytes", n, len(out))
		}
		next += uint64(len(out))
		spare = append(spare, b.freed...)
		clear(b.freed)
		b.freed = b.freed[:0]
	}
	round() // warm up: the chunk list, the freed list and the range set grow once
	if allocs := testing.AllocsPerRun(100, round); allocs != 0 {
		t.Fatalf("%.1f allocations a round of 16 frames, 8 of them repairs; want none", allocs)
	}
}

// An emptied receive buffer keeps a chunk list of at most maxIdleChunks
// for its next data: a long run held behind a gap does not pin its list.
func TestRecvBufferLetsABigChunkListGo(t *testing.T) {
	var b recvBuffer
	const frame, n = 1400, 4 * maxIdleChunks
	// Kept datagrams: a chunk each, as nothing can be appended to them.
	insert := func(i int) {
		p := make([]byte, frame, 2048)
		own := p
		if _, err := b.insert(uint64(i*frame), p, false, false, &own); err != nil || own != nil {
			t.Fatalf("insert %d: %v (copied: %v)", i, err, own != nil)
		}
	}
	for i := 1; i <= n; i++ { // offset 0 comes last: everything waits behind it
		insert(i)
	}
	insert(0)
	if len(b.chunks) != n+1 {
		t.Fatalf("%d chunks, want %d", len(b.chunks), n+1)
	}
	if got := b.read(make([]byte, (n+1)*frame)); got != (n+1)*frame {
		t.Fatalf("read %d of %d bytes", got, (n+1)*frame)
	}
	if len(b.chunks) != 0 || cap(b.arr) > maxIdleChunks {
		t.Fatalf("emptied, the buffer keeps %d chunks in an array of %d, want at most %d", len(b.chunks), cap(b.arr), maxIdleChunks)
	}
}

// A buffer nobody reads gives each byte back once: the first abandon gives
// everything from the reader's offset to the highest byte received, gaps
// included; afterwards a repair or a duplicate gives nothing, and only new
// bytes beyond the highest (or a final size) give the difference.
func TestAbandonedBufferGivesEachByteOnce(t *testing.T) {
	var b recvBuffer
	data := make([]byte, 100)
	b.insert(0, data[:40], false, false, nil)
	b.read(make([]byte, 10))                   // the application read 10
	b.insert(60, data[:40], false, false, nil) // [40, 60) is a gap
	if got := b.abandon(); got != 90 {
		t.Fatalf("first abandon gave %d, want 90 (10 read of 100 received, the gap included)", got)
	}
	b.insert(40, data[:20], false, false, nil) // the gap's repair
	b.insert(60, data[:40], false, false, nil) // a duplicate
	if got := b.abandon(); got != 0 {
		t.Fatalf("a repair and a duplicate gave %d back, want 0", got)
	}
	if b.buffered != 0 {
		t.Fatalf("an abandoned buffer holds %d bytes", b.buffered)
	}
	b.insert(100, data[:30], true, false, nil) // more, with the FIN
	if got := b.abandon(); got != 30 {
		t.Fatalf("new bytes gave %d, want 30", got)
	}
}
