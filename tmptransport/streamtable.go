package tmptransport

// streamTable owns the session's streams by ID and the stream-count limits
// in both directions (SPEC §7.2): which IDs this end may open, which the
// peer may, and the peer streams that are gone for good. Guarded by the
// session lock (Session.mu).
type streamTable struct {
	isClient bool
	streams  map[uint64]*Stream
	acceptQ  []*Stream // peer streams the application has not accepted

	// Local streams: the next ID, how many were opened, and the peer's
	// MAX_STREAMS.
	nextLocalID uint64
	openedLocal uint64
	peerMax     uint64

	// Peer streams: those finished (by index, ID/2), and the MAX_STREAMS we
	// advertise, which moves up by one for each finished stream.
	closedPeer  rangeSet
	closedPeerN uint64
	incoming    uint64 // the configured number of concurrent peer streams
	advertised  uint64
	queued      bool // a new MAX_STREAMS waits to be sent
}

func newStreamTable(isClient bool, incoming int) streamTable {
	t := streamTable{isClient: isClient, streams: make(map[uint64]*Stream), incoming: uint64(incoming), advertised: uint64(incoming)}
	if !isClient {
		t.nextLocalID = 1
	}
	return t
}

// isLocal reports whether id is a stream this end opens.
func (t *streamTable) isLocal(id uint64) bool { return (id%2 == 0) == t.isClient }

// canOpen reports whether the peer's limit allows another local stream.
func (t *streamTable) canOpen() bool { return t.openedLocal < t.peerMax }

// openLocal takes the next local stream ID.
func (t *streamTable) openLocal() uint64 {
	id := t.nextLocalID
	t.nextLocalID += 2
	t.openedLocal++
	return id
}

// raisePeerMax takes the peer's MAX_STREAMS; limits never shrink.
func (t *streamTable) raisePeerMax(max uint64) bool {
	if max <= t.peerMax {
		return false
	}
	t.peerMax = max
	return true
}

// admit decides what a frame for a stream the table does not hold refers
// to: a peer stream that may be created (true), one that is gone or a
// local one already finished (false, nil), or one that breaks the rules.
func (t *streamTable) admit(id uint64) (bool, error) {
	if t.isLocal(id) {
		if id >= t.nextLocalID {
			return false, errorf(ProtocolViolation, "frame for stream %d, which we never opened", id)
		}
		return false, nil
	}
	idx := id / 2
	if t.closedPeer.contains(idx) {
		return false, nil
	}
	if idx >= t.advertised {
		return false, errorf(StreamLimitError, "stream %d beyond the limit of %d streams", id, t.advertised)
	}
	return true, nil
}

// remove forgets a finished stream; a peer stream's slot goes back to the
// peer.
func (t *streamTable) remove(st *Stream) {
	delete(t.streams, st.id)
	if !st.local {
		t.closedPeer.add(st.id/2, st.id/2+1)
		t.closedPeerN++
		t.advertised = t.closedPeerN + t.incoming
		t.queued = true
	}
}
