package tmptransport

import "sync"

// sendBuffer holds a stream's outgoing bytes from the lowest unacknowledged
// offset to the last byte written, and tracks what was sent, acknowledged and
// lost. Lost ranges are resent before new data: repair is per byte range, not
// per packet.
//
// Bytes live in fixed-size pooled blocks, so writing never copies what is
// already buffered (a single growing slice did, and dominated CPU profiles)
// and acknowledged blocks go straight back to the pool.
type sendBuffer struct {
	blocks     []*[]byte // pooled; blocks[0] starts at blockBase
	blockBase  uint64
	base       uint64   // everything below is acknowledged
	endOff     uint64   // offset after the last byte written
	next       uint64   // next never-sent offset
	retransmit rangeSet // lost, not yet acknowledged, to be resent
	acked      rangeSet // acknowledged ranges above base
	finQueued  bool     // CloseWrite was called: FIN goes after the last byte
	finSent    bool
	finLost    bool
	finAcked   bool
}

const sendBlockSize = 16 << 10

var sendBlockPool = sync.Pool{New: func() any { b := make([]byte, 0, sendBlockSize); return &b }}

func (b *sendBuffer) end() uint64    { return b.endOff }
func (b *sendBuffer) buffered() int  { return int(b.endOff - b.base) }
func (b *sendBuffer) unsent() uint64 { return b.endOff - b.next }

func (b *sendBuffer) write(p []byte) {
	for len(p) > 0 {
		n := len(b.blocks)
		if n == 0 || len(*b.blocks[n-1]) == sendBlockSize {
			if n == 0 {
				b.blockBase = b.endOff
			}
			blk := sendBlockPool.Get().(*[]byte)
			*blk = (*blk)[:0]
			b.blocks = append(b.blocks, blk)
			n++
		}
		last := b.blocks[n-1]
		k := min(sendBlockSize-len(*last), len(p))
		*last = append(*last, p[:k]...)
		p = p[k:]
		b.endOff += uint64(k)
	}
}

// slice returns up to n bytes at off, stopping at a block boundary.
func (b *sendBuffer) slice(off, n uint64) []byte {
	rel := off - b.blockBase
	blk := *b.blocks[rel/sendBlockSize]
	i := rel % sendBlockSize
	return blk[i:min(i+n, uint64(len(blk)))]
}

// appendRange appends the n buffered bytes at off to dst, across blocks.
func (b *sendBuffer) appendRange(dst []byte, off, n uint64) []byte {
	for n > 0 {
		d := b.slice(off, n)
		dst = append(dst, d...)
		off += uint64(len(d))
		n -= uint64(len(d))
	}
	return dst
}

// finPending reports whether a FIN must still go out (first time or again).
func (b *sendBuffer) finPending() bool {
	return b.finQueued && !b.finAcked && (!b.finSent || b.finLost) && b.next == b.end()
}

// pendingRetransmit is the number of lost bytes waiting to be resent.
func (b *sendBuffer) pendingRetransmit() uint64 { return b.retransmit.total() }

// popRetransmit takes up to max lost bytes.
func (b *sendBuffer) popRetransmit(max uint64) (off uint64, data []byte, ok bool) {
	if b.retransmit.empty() {
		return 0, nil, false
	}
	r := b.retransmit.first()
	d := b.slice(r.start, min(r.len(), max))
	b.retransmit.remove(r.start, r.start+uint64(len(d)))
	return r.start, d, true
}

// popNew takes up to max never-sent bytes below limit (flow control).
func (b *sendBuffer) popNew(max, limit uint64) (off uint64, data []byte) {
	avail := b.unsent()
	if b.next+avail > limit {
		if limit <= b.next {
			return b.next, nil
		}
		avail = limit - b.next
	}
	n := min(avail, max)
	off = b.next
	if n == 0 {
		return off, nil
	}
	data = b.slice(off, n)
	b.next += uint64(len(data))
	return off, data
}

func (b *sendBuffer) onAcked(off, n uint64, fin bool) {
	if fin {
		b.finAcked = true
		b.finLost = false
	}
	if n == 0 {
		return
	}
	end := off + n
	if end <= b.base {
		return
	}
	off = max(off, b.base)
	b.acked.add(off, end)
	b.retransmit.remove(off, end)
	if !b.acked.empty() && b.acked.first().start == b.base {
		b.base = b.acked.first().end
		b.acked.dropFirst()
		b.release()
	}
}

// release returns fully acknowledged blocks to the pool.
func (b *sendBuffer) release() {
	for len(b.blocks) > 0 {
		blk := b.blocks[0]
		blkEnd := b.blockBase + uint64(len(*blk))
		if blkEnd > b.base {
			return
		}
		*blk = (*blk)[:0]
		sendBlockPool.Put(blk) // the pointer it came as: no allocation
		b.blocks[0] = nil
		b.blocks = b.blocks[1:]
		b.blockBase = blkEnd
	}
	if len(b.blocks) == 0 {
		b.blocks = nil
		b.blockBase = b.endOff
	}
}

func (b *sendBuffer) onLost(off, n uint64, fin bool) {
	if fin && !b.finAcked {
		b.finLost = true
	}
	end := off + n
	if end <= b.base || n == 0 {
		return
	}
	off = max(off, b.base)
	b.retransmit.add(off, end)
	for _, a := range b.acked.r {
		if a.start >= end {
			break
		}
		b.retransmit.remove(a.start, a.end)
	}
}

// discard drops all data (stream reset).
func (b *sendBuffer) discard() {
	b.base = b.endOff
	b.next = max(b.next, b.base)
	b.release()
	b.retransmit.clear()
	b.acked.clear()
}

// recvBuffer reassembles a stream's incoming bytes. Out-of-order data is kept
// in chunks; the number of gaps is bounded so that a hostile peer cannot make
// us keep one allocation per byte.
type recvBuffer struct {
	readOff   uint64
	chunks    []recvChunk // sorted, disjoint, all at or above readOff; arr[head:head+len]
	arr       []recvChunk // the array chunks lies in (makeRoom)
	head      int
	have      rangeSet // received ranges at or above readOff
	highest   uint64   // highest offset received (flow control accounting)
	finalSize uint64
	hasFinal  bool
	buffered  int

	// abandoned: nobody will read on (CloseRead, or the peer's reset).
	// given is then the offset up to which this stream's bytes count as
	// consumed for the session window (abandon).
	abandoned bool
	given     uint64

	// Read coalescing (readhold.go). pushOff is the end of the furthest
	// frame received without STREAM_MORE: bytes below it are woken for at
	// once. Bytes above it came in frames whose sender had more queued
	// right behind, and wait until holdLimit of them are contiguous.
	pushOff   uint64
	holdLimit uint64

	// freed holds the datagram buffers of chunks read out (store keeps
	// datagrams). The reader must not return them to the pool itself: the
	// session goroutine may still be parsing the datagram's later frames.
	// The session returns them between datagrams (onConsumedLocked).
	freed [][]byte
}

type recvChunk struct {
	off  uint64
	data []byte
	// block is the pooled block data lives in, returned to sendBlockPool
	// once the chunk is read; nil when data was allocated to size.
	block *[]byte
	// pkt is the pooled datagram buffer data lies in, when the chunk kept
	// the datagram instead of copying from it (store); once read, it goes
	// to the buffer's freed list.
	pkt []byte
}

const maxRecvGaps = 1024

// insert stores data at off. It returns by how much the highest received
// offset grew, which the session charges against flow control. more says
// the frame was a STREAM_MORE: its bytes may wait for the ones behind them.
// pkt, if not nil, points at the pooled datagram buffer data lies in: the
// buffer may keep the datagram rather than copy from it, and then takes
// *pkt (sets it to nil) and frees it once the data is read.
func (b *recvBuffer) insert(off uint64, data []byte, fin, more bool, pkt *[]byte) (grew uint64, err error) {
	end := off + uint64(len(data))
	if !more || fin {
		b.pushOff = max(b.pushOff, end)
	}
	if b.hasFinal && end > b.finalSize {
		return 0, errorf(ProtocolViolation, "stream data beyond final size %d", b.finalSize)
	}
	if fin {
		if b.hasFinal && b.finalSize != end {
			return 0, errorf(ProtocolViolation, "final size changed from %d to %d", b.finalSize, end)
		}
		if end < b.highest {
			return 0, errorf(ProtocolViolation, "final size %d below received data %d", end, b.highest)
		}
		b.hasFinal, b.finalSize = true, end
	}
	if end > b.highest {
		grew = end - b.highest
		b.highest = end
	}
	if end <= b.readOff || len(data) == 0 || b.abandoned {
		return grew, nil
	}
	if off < b.readOff {
		data = data[b.readOff-off:]
		off = b.readOff
	}
	// Store only the parts we do not have yet.
	for off < end {
		i := b.have.search(off + 1)
		var segEnd uint64 = end
		if i < len(b.have.r) && b.have.r[i].start <= off {
			// off is covered: skip to the end of that range.
			skip := b.have.r[i].end - off
			if skip >= uint64(len(data)) {
				break
			}
			data, off = data[skip:], off+skip
			continue
		}
		if i < len(b.have.r) && b.have.r[i].start < end {
			segEnd = b.have.r[i].start
		}
		n := segEnd - off
		b.store(off, data[:n], pkt)
		b.have.add(off, segEnd)
		data, off = data[n:], segEnd
	}
	if len(b.have.r) > maxRecvGaps {
		return grew, errorf(ProtocolViolation, "too many gaps in stream data")
	}
	return grew, nil
}

// store copies d, which the buffer does not hold yet, in at off.
//
// Data that continues the chunk before it goes into that chunk's spare
// room; a new chunk that continues a run, or starts at the reader's
// offset, gets room to grow, up to a pooled block. Before, every frame was copied into an allocation of its own: on
// a fast link that allocation, its clearing and the garbage it left were
// a sixth of the receiver's CPU (issue 20's profile). A new chunk gets at
// most twice what the run before it holds, so a peer that sends scattered
// slivers makes us hold little more than it sent.
//
// Data that fills at least half of its datagram's buffer is not copied at
// all: the chunk keeps the datagram (pkt). That copy was 11 % of the
// receiver's CPU with 16 kB packets (issue 20, 1 MB bodies on loopback).
// The half bounds the memory a chunk holds to twice its data, which flow
// control bounds. Data filling a gap is kept likewise. Copied, it grew
// chunks that later repairs could join, but on the lan profile (15 % of
// packets lost) the copies were the front-end's largest allocation. A
// chunk per repair makes an insertion move the chunks after it, as a
// repair that joined no chunk did before: 6 000 datagrams in reverse
// order, the worst case, take 30 ms now against 37 before.
func (b *recvBuffer) store(off uint64, d []byte, pkt *[]byte) {
	lo := b.chunkIndex(off)
	if pkt != nil && *pkt != nil && 2*len(d) >= cap(*pkt) {
		// The full slice expression keeps later appends out of the
		// datagram's other bytes.
		b.addChunk(lo, recvChunk{off: off, data: d[:len(d):len(d)], pkt: *pkt})
		*pkt = nil
		return
	}
	var prev *recvChunk
	if lo > 0 && b.chunks[lo-1].off+uint64(len(b.chunks[lo-1].data)) == off {
		prev = &b.chunks[lo-1]
		if k := min(cap(prev.data)-len(prev.data), len(d)); k > 0 {
			prev.data = append(prev.data, d[:k]...)
			b.buffered += k
			d, off = d[k:], off+uint64(k)
			if len(d) == 0 {
				return
			}
		}
	}
	size := len(d)
	switch {
	case off == b.readOff:
		// The next bytes the reader wants: the run's start, read soon.
		size = max(size, sendBlockSize)
	case prev != nil:
		size = min(max(size, 2*len(prev.data)), sendBlockSize)
	}
	c := recvChunk{off: off}
	if size == sendBlockSize && len(d) <= sendBlockSize {
		c.block = sendBlockPool.Get().(*[]byte)
		c.data = append((*c.block)[:0], d...)
	} else {
		c.data = append(make([]byte, 0, max(size, len(d))), d...)
	}
	b.addChunk(lo, c)
}

// chunkIndex is the index of the first chunk at or after off.
func (b *recvBuffer) chunkIndex(off uint64) int {
	n := len(b.chunks)
	if n == 0 || b.chunks[n-1].off < off {
		return n
	}
	lo, hi := 0, n
	for lo < hi {
		m := (lo + hi) / 2
		if b.chunks[m].off < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// addChunk inserts c at index lo (chunkIndex of its offset).
func (b *recvBuffer) addChunk(lo int, c recvChunk) {
	b.buffered += len(c.data)
	if len(b.chunks) == cap(b.chunks) {
		b.makeRoom()
	}
	b.chunks = append(b.chunks, recvChunk{})
	copy(b.chunks[lo+1:], b.chunks[lo:])
	b.chunks[lo] = c
}

// The chunk list is a window, from head, into arr: read takes chunks off
// its front and store adds them, so arr is reused, not re-made. Re-made
// whenever a reader emptied it, and grown by append from there, the list
// cost an allocation every few packets on a lossy path.

// maxIdleChunks is the most chunk slots an emptied buffer keeps for its
// next data; a bigger list (a long run of data behind a gap) is let go.
const maxIdleChunks = 64

// makeRoom makes room at the window's end: it moves the chunks to the
// array's start when at least half the array is free, or else to an array
// twice their number.
func (b *recvBuffer) makeRoom() {
	n := len(b.chunks)
	if b.head > 0 && n <= cap(b.arr)/2 {
		copy(b.arr[:n], b.chunks)
		clear(b.arr[n : b.head+n]) // no stale references to released buffers
		b.head, b.chunks = 0, b.arr[:n]
		return
	}
	arr := make([]recvChunk, max(2*n, 4))
	copy(arr, b.chunks)
	b.arr, b.head, b.chunks = arr, 0, arr[:n]
}

// popChunk drops the first chunk, read out and released.
func (b *recvBuffer) popChunk() {
	b.chunks[0] = recvChunk{}
	b.chunks, b.head = b.chunks[1:], b.head+1
	if len(b.chunks) == 0 {
		b.resetChunks()
	}
}

// resetChunks empties the list, keeping a small array for the next data.
func (b *recvBuffer) resetChunks() {
	if cap(b.arr) > maxIdleChunks {
		b.arr = nil
	}
	b.head, b.chunks = 0, b.arr[:0]
}

// read copies contiguous bytes into p.
func (b *recvBuffer) read(p []byte) int {
	n := 0
	for n < len(p) && len(b.chunks) > 0 && b.chunks[0].off == b.readOff {
		c := &b.chunks[0]
		k := copy(p[n:], c.data)
		n += k
		b.readOff += uint64(k)
		b.buffered -= k
		if k == len(c.data) {
			b.release(c)
			b.popChunk()
		} else {
			c.data = c.data[k:]
			c.off += uint64(k)
		}
	}
	if n > 0 {
		b.have.remove(0, b.readOff)
	}
	return n
}

// release returns the chunk's pooled block, and hands its datagram, if it
// kept one, to freed.
func (b *recvBuffer) release(c *recvChunk) {
	if c.block != nil {
		*c.block = (*c.block)[:0]
		sendBlockPool.Put(c.block)
		c.block = nil
	}
	if c.pkt != nil {
		b.freed = append(b.freed, c.pkt)
		c.pkt = nil
	}
}

// putFreed returns the freed datagram buffers to the pool. Only the
// session goroutine calls it, between datagrams.
func (b *recvBuffer) putFreed() {
	for i, p := range b.freed {
		putBuf(p)
		b.freed[i] = nil
	}
	b.freed = b.freed[:0]
}

func (b *recvBuffer) readable() bool {
	return len(b.chunks) > 0 && b.chunks[0].off == b.readOff
}

// deliverable reports whether a reader should get the readable bytes now:
// some were pushed (sent without more behind them), or enough have
// gathered. Bytes that arrived in STREAM_MORE frames wait otherwise; their
// sender had the next ones queued, so they come.
func (b *recvBuffer) deliverable() bool {
	if !b.readable() {
		return false
	}
	if b.readOff < b.pushOff || b.holdLimit == 0 {
		return true
	}
	return b.have.r[0].end-b.readOff >= b.holdLimit
}

func (b *recvBuffer) atEOF() bool { return b.hasFinal && b.readOff == b.finalSize }

// abandon drops what the buffer holds, keeps nothing that comes later, and
// returns the bytes to count as consumed for the session window: on the
// first call every byte from the reader's offset to the highest received,
// gaps included, and on later calls how far the highest offset (a final
// size, data beyond) moved since. So each byte of the stream is given back
// once, whatever arrives after: a gap's repair, a duplicate, a reset. The
// session window is the peer's credit for all streams together, and a byte
// counted as received and never as consumed shrinks it for good (or, given
// twice, lets the peer past the window's bound).
func (b *recvBuffer) abandon() uint64 {
	if !b.abandoned {
		b.abandoned, b.given = true, b.readOff
		b.discard()
	}
	n := b.highest - b.given
	b.given = b.highest
	return n
}

// discard drops buffered data (the reader went away or the stream was reset).
func (b *recvBuffer) discard() {
	for i := range b.chunks {
		b.release(&b.chunks[i])
	}
	clear(b.chunks)
	b.resetChunks()
	b.have.clear()
	b.buffered = 0
}
