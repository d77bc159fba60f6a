package tmptransport

// Closing a session (SPEC §11): the application's Close, Shutdown and
// CloseWithError, the CONNECTION_CLOSE it sends, draining, and teardown of
// what the session holds. closeLocked runs with s.mu held.

import (
	"context"
	"time"
)

// Close closes the session gracefully: no new streams are opened or
// accepted, open streams drain (up to Config.DrainTimeout), then a CLOSE
// frame tells the peer.
func (s *Session) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown is Close with a caller-chosen drain deadline.
func (s *Session) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := len(s.tab.streams)
		dead := s.dead
		s.mu.Unlock()
		if n == 0 || dead {
			break
		}
		select {
		case <-ctx.Done():
			return s.CloseWithError(NoError, "drain timeout")
		case <-s.closed:
		case <-t.C:
		}
	}
	return s.CloseWithError(NoError, "")
}

// CloseWithError closes the session at once, telling the peer the code and
// reason. Streams fail with a SessionError.
func (s *Session) CloseWithError(code ErrorCode, reason string) error {
	s.mu.Lock()
	if s.closeErr == nil {
		if len(reason) > maxReasonLength {
			reason = reason[:maxReasonLength]
		}
		s.closeErr = &SessionError{Code: code, Reason: reason}
		s.closeFrame = &closeFrame{Code: code, Reason: reason}
	}
	s.wakeLocked()
	s.mu.Unlock()
	<-s.done
	if s.isClient {
		<-s.readerGone
	}
	return nil
}

// closeLocked ends the session because of err; frame, if set, is sent.
func (s *Session) closeLocked(err error, sendClose bool) {
	if s.closeErr != nil {
		return
	}
	s.closeErr = err
	if sendClose {
		cf := &closeFrame{Code: InternalError, Reason: err.Error()}
		if pe, ok := err.(*protoError); ok {
			cf.Code = pe.code
		} else if se, ok := err.(*SessionError); ok {
			cf.Code, cf.Reason = se.Code, se.Reason
		}
		if len(cf.Reason) > maxReasonLength {
			cf.Reason = cf.Reason[:maxReasonLength]
		}
		if !s.established {
			// Before the handshake completes the CLOSE travels in clear to
			// a peer not yet authenticated: the code says enough, and
			// the reason (which certificate was refused, and why) is for
			// our own log.
			cf.Reason = ""
		}
		s.closeFrame = cf
	} else {
		s.dead = true
	}
	s.wakeLocked()
}

// teardown releases everything once the session is dead.
func (s *Session) teardown() {
	s.mu.Lock()
	if s.closeErr == nil {
		s.closeErr = &SessionError{Code: InternalError, Reason: "session ended"}
	}
	hs := s.hs
	s.hs = nil
	for _, st := range s.tab.streams {
		signal(st.readCh)
		signal(st.writeCh)
	}
	s.mu.Unlock()
	if hs != nil {
		hs.close()
	}
	close(s.closed)
	select {
	case <-s.hsDone:
	default:
		close(s.hsDone)
	}
	s.cancel()
	if s.listener != nil {
		s.mu.Lock()
		established, err := s.established, s.closeErr
		df, rp := s.counters.decryptFailures, s.counters.replays
		s.mu.Unlock()
		s.listener.remove(s, established, err, df, rp)
	}
	if s.ownsConn {
		s.conn.Close()
	}
}
