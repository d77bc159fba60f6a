package edgecache

import "sync"

// flights coalesces concurrent misses on one URL: the first request
// (the leader) fetches, the others wait for it to finish and then look in
// the cache again. golang.org/x/sync/singleflight does not fit: its
// followers share the leader's return value, while here the leader streams
// its answer to its own client and the followers need the stored entry.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct{ done chan struct{} }

// join returns the flight in progress for key, or starts one with the
// caller as its leader.
func (f *flights) join(key string) (fl *flight, leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[key]; ok {
		return fl, false
	}
	fl = &flight{done: make(chan struct{})}
	f.m[key] = fl
	return fl, true
}

// finish ends the leader's flight and wakes its followers.
func (f *flights) finish(key string, fl *flight) {
	f.mu.Lock()
	if f.m[key] == fl {
		delete(f.m, key)
	}
	f.mu.Unlock()
	close(fl.done)
}
