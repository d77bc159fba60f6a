package tmptransport

// Streams as the application sees them: opening (within the peer's
// MAX_STREAMS), accepting, queueing a stream's control frames, and
// finishing a stream whose both directions are done. The table itself is
// streamtable.go. All but OpenStream and AcceptStream run with s.mu held.

import (
	"context"
	"fmt"
)

// OpenStream opens a stream with the given priority (0 most urgent). It
// blocks while the peer's stream limit is reached.
func (s *Session) OpenStream(ctx context.Context, prio Priority) (*Stream, error) {
	return s.OpenStreamOptions(ctx, OpenStreamOptions{Priority: prio})
}

// OpenStreamOptions opens a stream with options.
func (s *Session) OpenStreamOptions(ctx context.Context, o OpenStreamOptions) (*Stream, error) {
	if o.Priority >= NumPriorities {
		return nil, ErrInvalidPriority
	}
	if o.Service != "" && !ValidServiceName(o.Service) {
		return nil, fmt.Errorf("tmptransport: service name %q is not 1-%d bytes of [A-Za-z0-9._-]", o.Service, MaxServiceName)
	}
	for {
		s.mu.Lock()
		if s.closeErr != nil {
			err := s.closeErr
			s.mu.Unlock()
			return nil, err
		}
		if s.draining {
			s.mu.Unlock()
			return nil, ErrSessionClosing
		}
		if !s.established {
			s.mu.Unlock()
			return nil, ErrHandshakeTimeout
		}
		if s.tab.canOpen() {
			st := newStream(s, s.tab.openLocal(), o.Priority, true)
			st.compress = o.Compress
			st.service = o.Service
			if o.Source.IsValid() && o.Destination.IsValid() {
				st.source, st.destination = o.Source, o.Destination
			}
			st.openQueued = true
			s.tab.streams[st.id] = st
			s.counters.streamsOpened++
			s.blend.add(&st.entry)
			s.queueStreamControlLocked(st)
			s.wakeLocked()
			s.mu.Unlock()
			return st, nil
		}
		s.mu.Unlock()
		select {
		case <-s.openSig:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closed:
		}
	}
}

// AcceptStream waits for the next stream the peer opens.
func (s *Session) AcceptStream(ctx context.Context) (*Stream, error) {
	for {
		s.mu.Lock()
		if len(s.tab.acceptQ) > 0 {
			st := s.tab.acceptQ[0]
			s.tab.acceptQ[0] = nil
			s.tab.acceptQ = s.tab.acceptQ[1:]
			s.mu.Unlock()
			return st, nil
		}
		if s.closeErr != nil {
			err := s.closeErr
			s.mu.Unlock()
			return nil, err
		}
		s.mu.Unlock()
		select {
		case <-s.acceptSig:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closed:
		}
	}
}

// updateFlowsLocked tells the controller how many streams are active (seed:
// "When a new TCP connection is added to the TMP connection, the TMP
// connection becomes more aggressive"). A stream counts while it has bytes
// written and not yet acknowledged (noteSendingLocked): an idle stream,
// such as one the tmp transport keeps for the next request, no more
// competes for the link than an idle keep-alive connection does. Counting
// every open stream made a front-end with 64 kept streams claim the link
// like 64 TCP connections for one download.
func (s *Session) updateFlowsLocked() {
	n := max(s.sendingStreams, 1)
	if n != s.flows {
		s.flows = n
		s.cc.SetFlows(n)
	}
}

func (s *Session) queueStreamControlLocked(st *Stream) {
	if !st.ctrlListed {
		st.ctrlListed = true
		s.ctrl = append(s.ctrl, st)
	}
	s.wakeLocked()
}

// maybeFinishLocked removes a stream whose both directions are done.
func (s *Session) maybeFinishLocked(st *Stream) {
	if st.finished || !st.sendDone() || !st.recvDone() {
		return
	}
	if st.local || st.peerOpened {
		// A peer stream is finished only once the application could see it.
		st.rmu.Lock()
		reset := st.recvReset != nil
		st.rmu.Unlock()
		if !st.local && !st.accepted && !reset {
			return
		}
	}
	st.finished = true
	s.tab.remove(st)
	s.blend.remove(&st.entry)
	if !st.local {
		s.wakeLocked() // a MAX_STREAMS to send
	}
}
