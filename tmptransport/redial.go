package tmptransport

import (
	"context"
	"sync"
	"time"
)

// Redialer keeps one live session to a peer and re-establishes it when it
// dies: after a stateless reset (the peer restarted), an idle timeout or a
// close. Callers ask it for the current session before each use.
//
// It owns the retry policy for reaching the peer, and nothing under it
// retries again: each Session call that must dial makes one handshake
// (which retransmits its own packets within HandshakeTimeout), not
// Config.DialAttempts of them. A failed dial backs off exponentially, and
// callers arriving during a back-off fail fast with the last error instead
// of piling onto a dead peer. Retrying a request is not the Redialer's
// business: that belongs to whoever owns the request (in Caddy,
// reverse_proxy's lb_retries and lb_try_duration).
type Redialer struct {
	addr string
	cfg  *Config

	mu      sync.Mutex
	sess    *Session
	dialing chan struct{}
	lastErr error
	retryAt time.Time
	backoff time.Duration
	closed  bool
	redials int
}

// NewRedialer returns a Redialer for the TMP listener at addr.
func NewRedialer(addr string, cfg *Config) *Redialer {
	one := *cfg
	one.DialAttempts = 1 // the back-off below is the only retry
	return &Redialer{addr: addr, cfg: &one}
}

// Session returns a live session, dialing if there is none.
func (r *Redialer) Session(ctx context.Context) (*Session, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, ErrListenerClosed
		}
		if r.sess != nil && r.sess.Err() == nil {
			s := r.sess
			r.mu.Unlock()
			return s, nil
		}
		if wait := r.dialing; wait != nil {
			r.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if r.lastErr != nil && time.Now().Before(r.retryAt) {
			err := r.lastErr
			r.mu.Unlock()
			return nil, err
		}
		wait := make(chan struct{})
		r.dialing = wait
		r.mu.Unlock()

		s, err := Dial(ctx, r.addr, r.cfg)

		r.mu.Lock()
		r.dialing = nil
		close(wait)
		if err != nil {
			r.backoff = min(max(2*r.backoff, 100*time.Millisecond), 10*time.Second)
			r.retryAt = time.Now().Add(r.backoff)
			r.lastErr = err
			r.mu.Unlock()
			return nil, err
		}
		if r.closed {
			r.mu.Unlock()
			s.CloseWithError(NoError, "")
			return nil, ErrListenerClosed
		}
		if r.sess != nil {
			r.redials++
		}
		r.sess, r.lastErr, r.backoff = s, nil, 0
		r.mu.Unlock()
		return s, nil
	}
}

// Redials reports how many times the session was re-established.
func (r *Redialer) Redials() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.redials
}

// Close closes the current session gracefully and stops redialing.
func (r *Redialer) Close() error {
	r.mu.Lock()
	r.closed = true
	s := r.sess
	r.sess = nil
	r.mu.Unlock()
	if s != nil {
		return s.Close()
	}
	return nil
}

// Current returns the live session without dialing, or nil.
func (r *Redialer) Current() *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sess != nil && r.sess.Err() == nil {
		return r.sess
	}
	return nil
}
