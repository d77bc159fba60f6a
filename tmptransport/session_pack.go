package tmptransport

// Packing a packet's payload: control frames first, then stream data in
// the blender's order (SPEC §9), within the session's and each stream's
// send windows. Runs with s.mu held, from sendAppLocked.

import "github.com/quic-go/quic-go/quicvarint"

// appendControlLocked adds queued control frames that fit.
func (s *Session) appendControlLocked(pkt []byte, limit int, frames *[]sentFrame) []byte {
	const maxCtrl = 40 // the largest control frame, encoded
	fits := func() bool { return len(pkt)+maxCtrl <= limit }
	if s.hsDoneQueue && fits() {
		s.hsDoneQueue = false
		pkt = handshakeDoneFrame{}.appendTo(pkt)
		*frames = append(*frames, sentFrame{kind: sfHandshakeDone})
	}
	if s.fc.queued && fits() {
		s.fc.queued = false
		pkt = (&maxDataFrame{Max: s.fc.limit}).appendTo(pkt)
		*frames = append(*frames, sentFrame{kind: sfMaxData})
	}
	if s.tab.queued && fits() {
		s.tab.queued = false
		pkt = (&maxStreamsFrame{Max: s.tab.advertised}).appendTo(pkt)
		*frames = append(*frames, sentFrame{kind: sfMaxStreams})
	}
	if s.lr.pingQueued && fits() {
		s.lr.pingQueued = false
		pkt = pingFrame{}.appendTo(pkt)
		*frames = append(*frames, sentFrame{kind: sfPing})
	}
	i := 0
	for ; i < len(s.ctrl) && len(pkt)+4*maxCtrl+MaxServiceName+maxOpenAddrs <= limit; i++ {
		st := s.ctrl[i]
		st.ctrlListed = false
		if st.openQueued {
			st.openQueued = false
			var flags uint64
			if st.compress {
				flags |= openFlagZstd
			}
			pkt = (&streamOpenFrame{StreamID: st.id, Priority: uint8(st.prio), Flags: flags, Service: st.service,
				Source: st.source, Destination: st.destination}).appendTo(pkt)
			*frames = append(*frames, sentFrame{kind: sfStreamOpen, stream: st})
		}
		if st.resetQueued {
			st.resetQueued = false
			pkt = (&resetStreamFrame{StreamID: st.id, Code: st.sendReset.Code, FinalSize: st.resetFinal}).appendTo(pkt)
			*frames = append(*frames, sentFrame{kind: sfReset, stream: st})
		}
		if st.stopQueued {
			st.stopQueued = false
			pkt = (&stopSendingFrame{StreamID: st.id, Code: StreamCancelled}).appendTo(pkt)
			*frames = append(*frames, sentFrame{kind: sfStopSending, stream: st})
		}
		if st.fc.queued {
			st.fc.queued = false
			pkt = (&maxStreamDataFrame{StreamID: st.id, Max: st.fc.limit}).appendTo(pkt)
			*frames = append(*frames, sentFrame{kind: sfMaxStreamData, stream: st})
		}
	}
	n := copy(s.ctrl, s.ctrl[i:])
	for j := n; j < len(s.ctrl); j++ {
		s.ctrl[j] = nil
	}
	s.ctrl = s.ctrl[:n]
	return pkt
}

func streamFrameHeaderLen(id, off, n uint64) int {
	return 1 + quicvarint.Len(id) + quicvarint.Len(off) + quicvarint.Len(n)
}

// appendStreamDataLocked fills the rest of the packet with sub-packets chosen by
// the blender (seed step 6: the packet is sent when full or when no more data
// is ready). It reports whether the packet is full.
func (s *Session) appendStreamDataLocked(pkt []byte, limit int, frames *[]sentFrame) ([]byte, bool) {
	runs := s.runs[:0]
	used := len(pkt)
	full := false
	for {
		room := limit - used - 4 // the smallest frame header
		if room <= 0 {
			full = true
			break
		}
		e, n := s.blend.next(room)
		if e == nil {
			break
		}
		st := e.src.(*Stream)
		// The bytes this pick would cost: a fresh header, or none when it
		// continues the stream's run in this packet.
		off := st.sb.next
		if !st.sb.retransmit.empty() {
			off = st.sb.retransmit.first().start
		}
		var run *packetRun
		if k := len(runs) - 1; k >= 0 && runs[k].st == st && runs[k].off+runs[k].n == off && !runs[k].fin {
			run = &runs[k]
		}
		var avail int
		if run != nil {
			avail = limit - used - (streamFrameHeaderLen(st.id, run.off, run.n+uint64(n)) - run.frameLen)
		} else {
			avail = limit - used - streamFrameHeaderLen(st.id, off, uint64(n))
			if avail < min(n, minStreamFrameData) {
				full = true
				break
			}
		}
		if avail <= 0 {
			full = true
			break
		}
		f, ok, retrans := s.popStreamFrameLocked(st, uint64(min(n, avail)))
		if !ok {
			s.blend.unready(e)
			s.noteBlockedLocked(st)
			continue
		}
		// popStreamFrameLocked takes lost bytes first, then new ones, exactly as
		// off predicted, so a predicted run always continues here.
		if run == nil {
			runs = append(runs, packetRun{st: st, off: f.Offset})
			run = &runs[len(runs)-1]
			used += streamFrameHeaderLen(st.id, f.Offset, 0)
			run.frameLen = streamFrameHeaderLen(st.id, f.Offset, 0)
		}
		run.n += uint64(len(f.Data))
		run.fin = f.Fin
		hl := streamFrameHeaderLen(st.id, run.off, run.n)
		used += hl - run.frameLen + len(f.Data)
		run.frameLen = hl
		if !retrans {
			s.counters.streamBytesSent += uint64(len(f.Data))
			s.counters.sentByPriority[st.prio] += uint64(len(f.Data))
		}
		s.blend.charge(e, max(len(f.Data), 1))
		s.noteBlockedLocked(st)
	}
	s.blend.endPacket()
	for _, r := range runs {
		// STREAM_MORE when the stream's next bytes are already queued behind
		// this run: the receiver can let them gather before it wakes its
		// reader (recvBuffer.deliverable), as TCP's PSH marks where a write
		// ended. The last run of a write goes as a plain STREAM frame.
		more := s.peerParams.StreamMore && r.off+r.n == r.st.sb.next && r.st.sb.unsent() > 0
		pkt = appendStreamFrameHeader(pkt, r.st.id, r.off, r.n, r.fin, more)
		pkt = r.st.sb.appendRange(pkt, r.off, r.n)
		*frames = append(*frames, sentFrame{kind: sfStreamData, stream: r.st, offset: r.off, length: r.n, fin: r.fin})
	}
	clear(runs)
	s.runs = runs[:0]
	return pkt, full
}

// updateReadyLocked puts a stream into or out of its blender ring after its
// sendable bytes changed.
func (s *Session) updateReadyLocked(st *Stream) {
	s.blend.update(&st.entry)
	s.noteBlockedLocked(st)
}

// noteBlockedLocked remembers a stream that has data but is held back by the
// session's flow-control window, so that MAX_DATA can wake it.
func (s *Session) noteBlockedLocked(st *Stream) {
	if !st.entry.ready && !st.blockedByWin && st.sendReset == nil && st.sb.unsent() > 0 && s.sendWindowLeft() == 0 {
		st.blockedByWin = true
		s.blocked = append(s.blocked, st)
	}
}

// popStreamFrameLocked takes the next sub-packet of a stream: lost bytes first,
// then new bytes within both flow-control windows.
// The frame is a value: a packet carries several, and allocating each cost
// an allocation per sub-packet.
func (s *Session) popStreamFrameLocked(st *Stream, n uint64) (f streamFrame, ok, retrans bool) {
	if off, data, ok := st.sb.popRetransmit(n); ok {
		end := off + uint64(len(data))
		fin := st.sb.finQueued && !st.sb.finAcked && end == st.sb.end() && st.sb.next == end
		if fin {
			st.sb.finSent, st.sb.finLost = true, false
		}
		return streamFrame{StreamID: st.id, Offset: off, Data: data, Fin: fin}, true, true
	}
	limit := min(st.peerMax, st.sb.next+s.sendWindowLeft())
	off, data := st.sb.popNew(n, limit)
	s.sendFC.sent += uint64(len(data))
	fin := st.sb.finPending()
	if len(data) == 0 && !fin {
		return streamFrame{}, false, false
	}
	if fin {
		st.sb.finSent, st.sb.finLost = true, false
	}
	return streamFrame{StreamID: st.id, Offset: off, Data: data, Fin: fin}, true, false
}
