// Package window counts events over the last second, in ten 100 ms
// buckets: the load index's requests per second, the load gate's admitted
// and urgent rates, the test origin's cap. It is not safe for concurrent
// use; its owners hold their own locks.
package window

import "time"

const buckets = 10

// Second is a sliding one-second count.
type Second struct {
	b    [buckets]int64
	slot int64 // the 100 ms slot the newest bucket is for
}

// roll moves the window to now's slot, clearing the buckets it passes.
func (w *Second) roll(now time.Time) int64 {
	slot := now.UnixNano() / int64(time.Second/buckets)
	if slot-w.slot >= buckets {
		w.b = [buckets]int64{}
	} else {
		for s := w.slot + 1; s <= slot; s++ {
			w.b[s%buckets] = 0
		}
	}
	if slot > w.slot {
		w.slot = slot
	}
	return slot
}

// Add counts n events at now.
func (w *Second) Add(now time.Time, n int64) {
	w.b[w.roll(now)%buckets] += n
}

// Sum is the count over the second up to now.
func (w *Second) Sum(now time.Time) int64 {
	w.roll(now)
	var n int64
	for _, v := range w.b {
		n += v
	}
	return n
}
