package tmptransport

// The data blender composes packets from many streams by priority. It follows
// the seed ("Data blender 404", steps 1-6):
//
//  1. each ring (one per priority) knows nSockets, nReady and nBytes;
//  2. each ring gets nSend bytes per round in proportion to its weight;
//  3. nSend is normalised by S = nBytes / (Weight × nReady), computed on the
//     ring with the greatest nReady, so a round is sized to the data waiting;
//  4. sub-packets are taken from the top ring, then the top two, then the top
//     three, and so on, so urgent rings go first in every round;
//  5. within a ring, streams take turns;
//  6. a sub-packet is at most SubPacketSize bytes (512 in the seed).
//
// A stream's turn lasts one packet: the ring rotates when the packet is
// closed (endPacket), not after each sub-packet. Budgets and passes still
// count sub-packets, so urgent rings interleave with bulk inside a packet
// exactly as before; but the sub-packets one stream gets in a packet are
// contiguous and share one STREAM frame header, and a lost packet stalls
// one bulk stream instead of three.
//
// Two refinements keep the shares exact and bounded. Budgets are deficit
// counters (Shreedhar & Varghese, "Efficient Fair Queueing using Deficit
// Round Robin", 1995): a ring that overspends by part of a sub-packet pays it
// back next round, so byte shares follow the weights however sub-packets fall.
// And S is clamped so that every ready ring gets at least one sub-packet per
// round, which is why no priority can starve, and a round never exceeds
// maxRoundBytes, which bounds how long any ring waits.

// NumPriorities is the number of priority rings; 0 is the most urgent.
const NumPriorities = 5

// Priority of a stream: 0 (most urgent) to NumPriorities-1.
type Priority uint8

// DefaultWeights are the blender's default bytes-per-round weights for
// priorities 0..4. Each level gets twice the share of the level below it, so
// under full contention priority 0 gets 16/31 ≈ 52 % of the link and
// priority 4 still gets 1/31 ≈ 3 %: urgent requests (a shopper at checkout)
// clearly overtake bulk, yet bulk keeps moving.
var DefaultWeights = [NumPriorities]int{16, 8, 4, 2, 1}

// blendSource is what the blender needs of a stream.
type blendSource interface {
	// blendPending returns the bytes this source could send right now.
	blendPending() int
	// blendIdle is called when the blender finds the source has nothing
	// sendable and drops it from its ring; a source held back by flow control
	// uses it to ask to be woken later.
	blendIdle()
}

// blendEntry is the blender's bookkeeping for one source; it is an intrusive
// node of its ring's ready list, so insert and remove are O(1).
type blendEntry struct {
	src        blendSource
	prio       int
	ready      bool
	next, prev *blendEntry
}

type ring struct {
	nSockets int
	nReady   int
	cur      *blendEntry // next entry to pick; nil when nothing is ready
}

func (r *ring) insert(e *blendEntry) {
	r.nReady++
	if r.cur == nil {
		e.next, e.prev = e, e
		r.cur = e
		return
	}
	// Insert just before cur: the newcomer waits for a full turn of the ring.
	e.next, e.prev = r.cur, r.cur.prev
	r.cur.prev.next = e
	r.cur.prev = e
}

func (r *ring) unlink(e *blendEntry) {
	r.nReady--
	if e.next == e {
		r.cur = nil
	} else {
		e.prev.next = e.next
		e.next.prev = e.prev
		if r.cur == e {
			r.cur = e.next
		}
	}
	e.next, e.prev = nil, nil
}

// maxRoundBytes bounds a round, and so the wait of a ring whose budget is
// spent. 64 kB is about 45 full packets.
const maxRoundBytes = 64 << 10

type blender struct {
	weights   [NumPriorities]int
	subPacket int
	rings     [NumPriorities]ring
	budget    [NumPriorities]int
	inRound   [NumPriorities]bool
	scale     int                        // S of the current round, in bytes per weight unit
	pass      int                        // current pass visits rings 0..pass-1 (seed step 4)
	pos       int                        // next ring within the pass
	picked    [NumPriorities]*blendEntry // each ring's stream in the packet being built
}

func newBlender(weights [NumPriorities]int, subPacket int) *blender {
	return &blender{weights: weights, subPacket: subPacket, pass: 1}
}

func (b *blender) add(e *blendEntry) { b.rings[e.prio].nSockets++ }

func (b *blender) remove(e *blendEntry) {
	b.rings[e.prio].nSockets--
	b.unready(e)
}

// setReady puts a source with data into its ring. A ring that joins while a
// round is under way gets its budget at once, so newly arrived urgent data
// does not wait for the round to end.
func (b *blender) setReady(e *blendEntry) {
	if e.ready {
		return
	}
	e.ready = true
	r := &b.rings[e.prio]
	r.insert(e)
	if !b.inRound[e.prio] && b.scale > 0 {
		b.inRound[e.prio] = true
		b.budget[e.prio] += b.weights[e.prio] * b.scale
		if e.prio < b.pos {
			// Go back to the top of the pass, so a more urgent ring that
			// just woke up is served next.
			b.pos = 0
		}
	}
}

func (b *blender) unready(e *blendEntry) {
	if !e.ready {
		return
	}
	e.ready = false
	r := &b.rings[e.prio]
	r.unlink(e)
	if r.nReady == 0 {
		// An idle ring keeps no credit and no debt (DRR).
		b.budget[e.prio] = 0
		b.inRound[e.prio] = false
	}
}

// update re-evaluates a source after its pending bytes changed.
func (b *blender) update(e *blendEntry) {
	if e.src.blendPending() > 0 {
		b.setReady(e)
	} else {
		b.unready(e)
	}
}

// startRound computes this round's budgets (seed steps 1-3).
func (b *blender) startRound() bool {
	busiest, nReadyMax := -1, 0
	minW := 0
	for p := range b.rings {
		n := b.rings[p].nReady
		if n == 0 {
			continue
		}
		if n > nReadyMax {
			busiest, nReadyMax = p, n
		}
		if minW == 0 || b.weights[p] < minW {
			minW = b.weights[p]
		}
	}
	if busiest < 0 {
		b.scale = 0
		return false
	}
	nBytes := 0
	r := &b.rings[busiest]
	e := r.cur
	for i := 0; i < r.nReady; i++ {
		nBytes += e.src.blendPending()
		e = e.next
	}
	s := nBytes / (b.weights[busiest] * nReadyMax)
	// Every ready ring gets at least one sub-packet per round...
	if lo := (b.subPacket + minW - 1) / minW; s < lo {
		s = lo
	}
	// ...and a round stays bounded.
	wsum := 0
	for p := range b.rings {
		if b.rings[p].nReady > 0 {
			wsum += b.weights[p]
		}
	}
	if hi := maxRoundBytes / wsum; s > hi && hi*minW >= b.subPacket {
		s = hi
	}
	b.scale = s
	for p := range b.rings {
		if b.rings[p].nReady > 0 {
			b.budget[p] += b.weights[p] * s
			b.inRound[p] = true
		}
	}
	b.pass, b.pos = 1, 0
	return true
}

// next picks the source of the next sub-packet (seed steps 4-5) and returns it
// with the number of bytes it may send, at most limit. The caller sends up to
// that many bytes and then calls charge with what it actually sent.
func (b *blender) next(limit int) (*blendEntry, int) {
	if limit <= 0 {
		return nil, 0
	}
	for attempt := 0; attempt < 2; attempt++ {
		if b.scale == 0 || !b.roundHasBudget() {
			if !b.startRound() {
				return nil, 0
			}
		}
		// Walk passes 1..N; each pass visits the top `pass` rings.
		for steps := 0; steps < NumPriorities*(NumPriorities+1); steps++ {
			p := b.pos
			b.pos++
			if b.pos >= b.pass {
				b.pos = 0
				b.pass++
				if b.pass > NumPriorities {
					b.pass = 1
				}
			}
			r := &b.rings[p]
			if r.nReady == 0 || b.budget[p] <= 0 {
				continue
			}
			e := r.cur
			n := min(e.src.blendPending(), b.subPacket, limit)
			if n <= 0 {
				b.unready(e)
				e.src.blendIdle()
				continue
			}
			return e, n
		}
		b.scale = 0 // round exhausted: start a fresh one
	}
	return nil, 0
}

// charge accounts n bytes sent from e. The ring rotates at endPacket.
func (b *blender) charge(e *blendEntry, n int) {
	b.budget[e.prio] -= n
	b.picked[e.prio] = e
	b.update(e)
}

// endPacket closes the packet being built: each ring that gave it a
// sub-packet moves on to its next stream (seed step 5).
func (b *blender) endPacket() {
	for p, e := range b.picked {
		if e == nil {
			continue
		}
		b.picked[p] = nil
		if r := &b.rings[p]; e.ready && r.cur == e {
			r.cur = e.next
		}
	}
}

func (b *blender) roundHasBudget() bool {
	for p := range b.rings {
		if b.rings[p].nReady > 0 && b.budget[p] > 0 {
			return true
		}
	}
	return false
}

// ringStats reports nSockets, nReady and the budget left per ring.
func (b *blender) ringStats() (sockets, ready [NumPriorities]int) {
	for p := range b.rings {
		sockets[p] = b.rings[p].nSockets
		ready[p] = b.rings[p].nReady
	}
	return
}
