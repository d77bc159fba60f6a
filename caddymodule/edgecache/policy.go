package edgecache

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// policy is the in-memory tier: a map bounded by bytes, with an eviction
// rule. onEvict is called for entries it evicts to make room (not for
// removals or replacements, which the Store sees itself); it may run on
// another goroutine and must not call back into the policy.
type policy interface {
	get(key string) (*entry, bool)  // a lookup that counts as an access
	peek(key string) (*entry, bool) // a lookup that does not
	set(e *entry)
	remove(key string) (*entry, bool)
	each(func(*entry) bool)
	usedBytes() int64
	close()
}

// Policies, and who implements them:
//   - tinylfu (default): otter v2's adaptive W-TinyLFU;
//   - lru: hashicorp/golang-lru v2's simplelru;
//   - lfu, fifo and random: here, on boundedMap. No maintained Go cache
//     library offers byte-bounded FIFO or random eviction, and otter and
//     ristretto approximate LFU with admission filters rather than evicting
//     the least frequently used entry, which is what an operator choosing
//     "lfu" asks for.
const (
	PolicyTinyLFU = "tinylfu"
	PolicyLRU     = "lru"
	PolicyLFU     = "lfu"
	PolicyFIFO    = "fifo"
	PolicyRandom  = "random"
)

func newPolicy(name string, maxBytes int64, onEvict func(*entry), rng *rand.Rand) (policy, error) {
	switch name {
	case "", PolicyTinyLFU:
		return newTinyLFU(maxBytes, onEvict), nil
	case PolicyLRU:
		return newLRU(maxBytes, onEvict), nil
	case PolicyLFU:
		return newBoundedMap(maxBytes, onEvict, &lfuOrder{}), nil
	case PolicyFIFO:
		return newBoundedMap(maxBytes, onEvict, newFIFOOrder()), nil
	case PolicyRandom:
		if rng == nil {
			rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		}
		return newBoundedMap(maxBytes, onEvict, &randomOrder{rng: rng}), nil
	}
	return nil, fmt.Errorf("unknown eviction policy %q (want tinylfu, lru, lfu, fifo or random)", name)
}

// node is a boundedMap slot; the fields after e belong to the order.
type node struct {
	e    *entry
	size int64
	freq uint64
	seq  uint64
	idx  int
	elem any
}

// order is an eviction rule over boundedMap's nodes.
type order interface {
	added(n *node)
	touched(n *node)
	removed(n *node)
	victim() *node
}

// boundedMap is a byte-bounded map under one mutex, evicting by its order.
type boundedMap struct {
	mu      sync.Mutex
	m       map[string]*node
	ord     order
	used    int64
	max     int64
	seq     uint64
	onEvict func(*entry)
}

func newBoundedMap(maxBytes int64, onEvict func(*entry), ord order) *boundedMap {
	return &boundedMap{m: map[string]*node{}, ord: ord, max: maxBytes, onEvict: onEvict}
}

func (b *boundedMap) get(key string) (*entry, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.m[key]
	if !ok {
		return nil, false
	}
	b.ord.touched(n)
	return n.e, true
}

func (b *boundedMap) peek(key string) (*entry, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.m[key]
	if !ok {
		return nil, false
	}
	return n.e, true
}

func (b *boundedMap) set(e *entry) {
	var evicted []*entry
	b.mu.Lock()
	if old, ok := b.m[e.key]; ok {
		b.ord.removed(old)
		b.used -= old.size
		delete(b.m, e.key)
	}
	b.seq++
	n := &node{e: e, size: e.size(), seq: b.seq}
	if n.size > b.max { // larger than the whole cache: not stored
		b.mu.Unlock()
		b.onEvict(e)
		return
	}
	// Make room first, so the victim is chosen among what was there: an
	// LFU that could pick the newcomer would never admit anything new.
	for b.used+n.size > b.max && len(b.m) > 0 {
		v := b.ord.victim()
		b.ord.removed(v)
		b.used -= v.size
		delete(b.m, v.e.key)
		evicted = append(evicted, v.e)
	}
	b.m[e.key] = n
	b.used += n.size
	b.ord.added(n)
	b.mu.Unlock()
	for _, v := range evicted {
		b.onEvict(v)
	}
}

func (b *boundedMap) remove(key string) (*entry, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.m[key]
	if !ok {
		return nil, false
	}
	b.ord.removed(n)
	b.used -= n.size
	delete(b.m, key)
	return n.e, true
}

func (b *boundedMap) each(f func(*entry) bool) {
	b.mu.Lock()
	es := make([]*entry, 0, len(b.m))
	for _, n := range b.m {
		es = append(es, n.e)
	}
	b.mu.Unlock()
	for _, e := range es {
		if !f(e) {
			return
		}
	}
}

func (b *boundedMap) usedBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func (b *boundedMap) close() {}
