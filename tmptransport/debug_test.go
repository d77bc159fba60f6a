package tmptransport

import "fmt"

// debugState summarises a session for test failure messages.
func (s *Session) debugState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ready := s.blend.ringStats()
	unsent, retrans, unacked, finq := 0, 0, 0, 0
	var sample string
	for _, st := range s.tab.streams {
		if st.sb.unsent() > 0 {
			unsent++
		}
		if st.sb.unsent() > 0 || (!st.rb.atEOF() && sample == "") {
			if sample == "" {
				sample = fmt.Sprintf("stream %d: next=%d end=%d peerMax=%d ready=%v blocked=%v buffered=%d readOff=%d highest=%d recvMax=%d chunks=%d hasFinal=%v final=%d readClosed=%v reset=%v fin=%v/%v/%v", st.id, st.sb.next, st.sb.end(), st.peerMax, st.entry.ready, st.blockedByWin, st.rb.buffered, st.rb.readOff, st.rb.highest, st.fc.limit, len(st.rb.chunks), st.rb.hasFinal, st.rb.finalSize, st.readClosed, st.recvReset, st.sb.finQueued, st.sb.finSent, st.sb.finAcked)
			}
		}
		if !st.sb.retransmit.empty() {
			retrans++
		}
		if st.sb.buffered() > 0 {
			unacked++
		}
		if st.sb.finQueued && !st.sb.finAcked {
			finq++
		}
	}
	return fmt.Sprintf("client=%v streams=%d ready=%v blocked=%d unsent=%d retrans=%d unacked=%d finq=%d | peerMaxData=%d sentData=%d recvMax=%d recvTotal=%d consumed=%d | inflight=%d cwnd=%d pkts=%d ctrl=%d acceptQ=%d err=%v\n  %s",
		s.isClient, len(s.tab.streams), ready, len(s.blocked), unsent, retrans, unacked, finq,
		s.sendFC.limit, s.sendFC.sent, s.fc.limit, s.fc.received, s.fc.consumed,
		s.lr.sent.bytesInFlight, s.cc.Window(), len(s.lr.sent.packets), len(s.ctrl), len(s.tab.acceptQ), s.closeErr, sample)
}
