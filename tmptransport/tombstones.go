package tmptransport

// tombstones remembers the IDs of the last sessions a listener refused
// before their handshake completed, so that the rest of a refused peer's
// packets are dropped at the door, O(1) each, instead of opening a new
// half-open session per packet. The set is bounded: the oldest ID leaves
// when a new one comes. The listener's mu guards it.
type tombstones struct {
	ring []sessionID
	next int
	set  map[sessionID]struct{}
}

func newTombstones(n int) *tombstones {
	return &tombstones{ring: make([]sessionID, 0, n), set: make(map[sessionID]struct{}, n)}
}

func (t *tombstones) add(id sessionID) {
	if _, ok := t.set[id]; ok {
		return
	}
	if len(t.ring) < cap(t.ring) {
		t.ring = append(t.ring, id)
	} else {
		delete(t.set, t.ring[t.next])
		t.ring[t.next] = id
		t.next = (t.next + 1) % len(t.ring)
	}
	t.set[id] = struct{}{}
}

func (t *tombstones) has(id sessionID) bool {
	_, ok := t.set[id]
	return ok
}
