package edgecache

import (
	"math"

	"github.com/maypok86/otter/v2"
)

// tinyLFU is otter v2's adaptive W-TinyLFU, weighted by entry bytes: the
// default, for its hit rate on skewed web traces and its lock-free reads.
// Otter applies its bound asynchronously (its maintenance runs after
// writes), so the byte total may overshoot briefly under a burst of writes.
type tinyLFU struct {
	c *otter.Cache[string, *entry]
}

func newTinyLFU(maxBytes int64, onEvict func(*entry)) *tinyLFU {
	c := otter.Must(&otter.Options[string, *entry]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(_ string, e *entry) uint32 {
			return uint32(min(e.size(), math.MaxUint32))
		},
		OnDeletion: func(ev otter.DeletionEvent[string, *entry]) {
			if ev.Cause.IsEviction() {
				onEvict(ev.Value)
			}
		},
	})
	return &tinyLFU{c: c}
}

func (t *tinyLFU) get(key string) (*entry, bool) { return t.c.GetIfPresent(key) }

func (t *tinyLFU) peek(key string) (*entry, bool) {
	ent, ok := t.c.GetEntryQuietly(key)
	if !ok {
		return nil, false
	}
	return ent.Value, true
}

func (t *tinyLFU) set(e *entry) { t.c.Set(e.key, e) }

func (t *tinyLFU) remove(key string) (*entry, bool) { return t.c.Invalidate(key) }

func (t *tinyLFU) each(f func(*entry) bool) {
	for _, e := range t.c.All() {
		if !f(e) {
			return
		}
	}
}

func (t *tinyLFU) usedBytes() int64 { return int64(t.c.WeightedSize()) }

func (t *tinyLFU) close() { t.c.StopAllGoroutines() }
