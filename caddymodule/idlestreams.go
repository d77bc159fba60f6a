package caddymodule

import (
	"net"
	"sync"
	"time"

	"github.com/conductor-edge/conductor/tmptransport"
)

// idleStreams keeps the streams whose last exchange ended cleanly, for
// the next request to the same back-end at the same priority: HTTP/1.1
// keep-alive, with a stream in the place of a connection (RFC 9112 §9.3).
// A fresh stream per request cost the back-end a goroutine of its own,
// grown to the depth of Caddy's handler chain (copystack was 8 % of the
// back-end's CPU for 1 kB answers in `conductor bench proxy`), its
// buffers, and both ends the stream's opening and closing; a kept stream
// is served by the goroutine that served its last request.
//
// A stream keeps the priority it was opened with, so streams are kept per
// priority and a request only ever takes one of its own. The pool is
// bounded in total (max), and a stream idle for longer than
// idleStreamTimeout is closed when it is next found, well before the
// back-end's own idle timeout (Caddy's default is 5 minutes).
type idleStreams struct {
	mu    sync.Mutex
	max   int
	n     int
	idle  map[idleKey][]idleStream
	clock func() time.Time
}

type idleKey struct {
	addr string
	prio tmptransport.Priority
}

type idleStream struct {
	st    net.Conn
	since time.Time
}

// idleStreamTimeout is how long a kept stream may wait for a request.
const idleStreamTimeout = 30 * time.Second

// defaultMaxIdleStreams bounds the kept streams of one transport: enough
// for the 64 connections of `conductor bench proxy` and of a busy
// front-end's steady load.
const defaultMaxIdleStreams = 64

func newIdleStreams(max int) *idleStreams {
	return &idleStreams{max: max, idle: make(map[idleKey][]idleStream), clock: time.Now}
}

// get returns the most recently kept stream for key that is still usable,
// or nil. Expired streams, and streams whose session has ended, are closed
// on the way.
func (p *idleStreams) get(key idleKey) net.Conn {
	now := p.clock()
	var stale []net.Conn
	defer func() {
		for _, st := range stale {
			st.Close()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	for list := p.idle[key]; len(list) > 0; list = p.idle[key] {
		e := list[len(list)-1]
		list[len(list)-1] = idleStream{}
		if len(list) == 1 {
			delete(p.idle, key)
		} else {
			p.idle[key] = list[:len(list)-1]
		}
		p.n--
		if now.Sub(e.since) > idleStreamTimeout || sessionEnded(e.st) {
			stale = append(stale, e.st)
			continue
		}
		return e.st
	}
	return nil
}

// put keeps st for key, and reports false if the pool is full or closed
// (the caller then closes st).
func (p *idleStreams) put(key idleKey, st net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil || p.n >= p.max {
		return false
	}
	p.idle[key] = append(p.idle[key], idleStream{st: st, since: p.clock()})
	p.n++
	return true
}

// close closes every kept stream and keeps none from then on.
func (p *idleStreams) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.n = nil, 0
	p.mu.Unlock()
	for _, list := range idle {
		for _, e := range list {
			e.st.Close()
		}
	}
}

func sessionEnded(c net.Conn) bool {
	st, ok := c.(*tmptransport.Stream)
	return ok && st.Session().Err() != nil
}
