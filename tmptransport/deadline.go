package tmptransport

import (
	"math"
	"sync/atomic"
	"time"
)

// deadline is a stream's read or write deadline (net.Conn's). It is atomic
// rather than a field under a lock, so that setting it never waits for the
// session goroutine's round of packing. Caddy sets the write deadline before
// every Write (caddyhttp.IdleTimeoutWriter); under the session's mutex those
// calls were 45 % of the back-end's lock contentions on loopback, and each
// woke its writer for one more pass through the lock before it blocked.
// Without them the writers contend among themselves instead, and throughput
// did not change (bench/RESULTS.md, session 14).
type deadline struct {
	at      atomic.Int64 // Unix nanoseconds; 0: none
	waiting atomic.Int32 // calls blocked under this deadline
}

// set changes the deadline and wakes a call blocked under it, on ch, to
// take the new one. A call adds itself to waiting before it reads the
// deadline, and set reads waiting after it stored the deadline: of the
// two, at least one sees the other's store, so no call waits on a
// deadline that was changed.
func (d *deadline) set(t time.Time, ch chan struct{}) {
	d.at.Store(deadlineNanos(t))
	if d.waiting.Load() > 0 {
		signal(ch)
	}
}

// deadlineNanos encodes t for deadline.at. Times outside int64 nanoseconds
// are clamped: UnixNano is undefined for them.
func deadlineNanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case !t.After(time.Unix(0, 1)):
		return 1
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func (d *deadline) time() time.Time {
	if ns := d.at.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// expired reports whether the deadline has passed. A Read or Write then
// fails at once, even with data or room at hand, as net.Conn's contract
// says (x/net/nettest's PastTimeout checks it).
func (d *deadline) expired() bool {
	ns := d.at.Load()
	return ns != 0 && time.Now().UnixNano() >= ns
}

// waitUnder blocks on ch until it is signalled, d (if not nil) passes or
// the session ends.
func (s *Stream) waitUnder(ch chan struct{}, d *deadline) error {
	if d == nil {
		return s.wait(ch, time.Time{})
	}
	d.waiting.Add(1)
	defer d.waiting.Add(-1)
	return s.wait(ch, d.time())
}
