package edgecache

import (
	"math"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// lruPolicy is hashicorp/golang-lru's simplelru, bounded by bytes: the
// library bounds entries by count, so the count limit is set out of reach
// and the oldest entries are removed while the byte total is over.
type lruPolicy struct {
	mu      sync.Mutex
	l       *simplelru.LRU[string, *entry]
	used    int64
	max     int64
	onEvict func(*entry)
	evicted []*entry // collected under mu, reported after
	quiet   bool     // removal or replacement, not an eviction
}

func newLRU(maxBytes int64, onEvict func(*entry)) *lruPolicy {
	p := &lruPolicy{max: maxBytes, onEvict: onEvict}
	l, err := simplelru.NewLRU[string, *entry](math.MaxInt32, func(_ string, e *entry) {
		p.used -= e.size()
		if !p.quiet {
			p.evicted = append(p.evicted, e)
		}
	})
	if err != nil {
		panic(err) // only for a non-positive size
	}
	p.l = l
	return p
}

func (p *lruPolicy) get(key string) (*entry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.l.Get(key)
}

func (p *lruPolicy) peek(key string) (*entry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.l.Peek(key)
}

func (p *lruPolicy) set(e *entry) {
	size := e.size()
	p.mu.Lock()
	p.quiet = true
	p.l.Remove(e.key)
	p.quiet = false
	if size > p.max {
		p.mu.Unlock()
		p.onEvict(e)
		return
	}
	for p.used+size > p.max && p.l.Len() > 0 {
		p.l.RemoveOldest()
	}
	p.l.Add(e.key, e)
	p.used += size
	evicted := p.evicted
	p.evicted = nil
	p.mu.Unlock()
	for _, v := range evicted {
		p.onEvict(v)
	}
}

func (p *lruPolicy) remove(key string) (*entry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.l.Peek(key)
	if ok {
		p.quiet = true
		p.l.Remove(key)
		p.quiet = false
	}
	return e, ok
}

func (p *lruPolicy) each(f func(*entry) bool) {
	p.mu.Lock()
	es := p.l.Values()
	p.mu.Unlock()
	for _, e := range es {
		if !f(e) {
			return
		}
	}
}

func (p *lruPolicy) usedBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}

func (p *lruPolicy) close() {}
