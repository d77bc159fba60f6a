package tmptransport

// Read coalescing (SPEC.md §3, STREAM_MORE). A sender marks stream data that
// has more of the stream queued right behind it; the receiver lets such data
// gather before it wakes the stream's reader, and wakes it at once for data
// that ends a write (recvBuffer.deliverable). On a 1500-byte path the reader
// otherwise woke for every packet: in issue 20's lan profile the front-end
// paid a goroutine wake-up, a Read and a write(2) to its client per 1.4 kB.

// maxReadHold is the most STREAM_MORE data a reader waits for: HTTP/2's
// default frame size (RFC 9113 §4.2), what an HTTP/2 reader gets at once.
const maxReadHold = 16 << 10

// readHoldLocked is how many contiguous bytes of STREAM_MORE data wake a
// stream's reader. Held bytes are not yet consumed, so they hold flow-control
// credit back; the limit keeps them below a quarter of the stream's window
// and, over all open streams, of the session's, so that the windows always
// move (a window moves when half of it is consumed; see receiveWindow).
func (s *Session) readHoldLocked(st *Stream) uint64 {
	n := min(maxReadHold, st.fc.size/4)
	if open := uint64(len(s.tab.streams)); open > 0 {
		n = min(n, s.fc.size/(4*open))
	}
	return n
}
