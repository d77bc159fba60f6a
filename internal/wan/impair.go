package wan

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"time"
)

// impairer applies one direction's profile. It is fed packets as they
// leave one TUN and hands them, at their delivery time, to deliver.
type impairer struct {
	p       Profile
	rng     *rand.Rand
	deliver func([]byte)

	mu        sync.Mutex
	queue     pktHeap
	seq       uint64
	lineFree  time.Time     // when the bottleneck finishes the packets before
	slack     time.Duration // deliver this much early (forwarding overhead)
	lastDeliv time.Time
	geBad     bool
	wake      chan struct{}
	stats     Stats
}

// Stats counts what one direction did.
type Stats struct {
	Packets, Bytes        uint64 // offered
	Delivered             uint64
	DeliveredBytes        uint64
	LostRandom, LostBurst uint64
	DroppedQueue          uint64
	Reordered             uint64
	// Late is how late packets left against their delivery time
	// (late.go).
	Late LateHistogram
}

type pkt struct {
	b    []byte
	at   time.Time
	seq  uint64
	size int
}

const deliverySlack = 600 * time.Microsecond

type pktHeap []*pkt

func (h pktHeap) Len() int { return len(h) }
func (h pktHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h pktHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pktHeap) Push(x any)   { *h = append(*h, x.(*pkt)) }
func (h *pktHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newImpairer(p Profile, seed uint64, deliver func([]byte)) *impairer {
	p = p.withDefaults()
	return &impairer{
		p:       p,
		rng:     rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1)),
		deliver: deliver,
		wake:    make(chan struct{}, 1),
		// Never more than a quarter of the delay: a sub-millisecond
		// delay must not vanish into the slack.
		slack: min(deliverySlack, (p.Delay-p.Jitter)/4),
	}
}

// offer takes one packet from the sending side.
func (im *impairer) offer(b []byte, now time.Time) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.stats.Packets++
	im.stats.Bytes += uint64(len(b))
	// Link loss: random, then Gilbert–Elliott.
	if im.p.Loss > 0 && im.rng.Float64() < im.p.Loss {
		im.stats.LostRandom++
		return
	}
	if g := im.p.Burst; g != nil {
		if im.geBad {
			if im.rng.Float64() < g.R {
				im.geBad = false
			}
		} else if im.rng.Float64() < g.P {
			im.geBad = true
		}
		l := g.LossGood
		if im.geBad {
			l = g.LossBad
		}
		if im.rng.Float64() < l {
			im.stats.LostBurst++
			return
		}
	}
	// Bottleneck: a drop-tail queue served at RateBps.
	dep := now
	if im.p.RateBps > 0 {
		if im.lineFree.Before(now) {
			im.lineFree = now
		}
		// The queue holds what the line has not sent yet: for a FIFO
		// served at a constant rate, that is the time until the line is
		// free, times the rate.
		backlog := int(im.lineFree.Sub(now).Seconds() * im.p.RateBps / 8)
		if backlog+len(b) > im.p.QueueBytes {
			im.stats.DroppedQueue++
			return
		}
		im.lineFree = im.lineFree.Add(time.Duration(float64(len(b)*8) / im.p.RateBps * float64(time.Second)))
		dep = im.lineFree
	}
	// Propagation: delay ± jitter, in order unless reordered.
	at := dep.Add(im.p.Delay)
	if im.p.Jitter > 0 {
		at = at.Add(time.Duration((im.rng.Float64()*2 - 1) * float64(im.p.Jitter)))
	}
	reorder := im.p.Reorder > 0 && im.rng.Float64() < im.p.Reorder
	if reorder {
		im.stats.Reordered++
		at = at.Add(im.p.ReorderGap)
	} else if at.Before(im.lastDeliv) {
		at = im.lastDeliv
	}
	if !reorder {
		im.lastDeliv = at
	}
	im.seq++
	heap.Push(&im.queue, &pkt{b: append([]byte(nil), b...), at: at, seq: im.seq, size: len(b)})
	select {
	case im.wake <- struct{}{}:
	default:
	}
}

// run delivers packets at their time until stop is closed.
func (im *impairer) run(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		im.mu.Lock()
		// Packets due within the slack go now: waking a goroutine and
		// crossing two TUN devices costs about that much, and delivering
		// late would add it to every delay.
		now := time.Now()
		soon := now.Add(im.slack)
		var due []*pkt
		for im.queue.Len() > 0 && !im.queue[0].at.After(soon) {
			due = append(due, heap.Pop(&im.queue).(*pkt))
		}
		wait := time.Hour
		if im.queue.Len() > 0 {
			wait = im.queue[0].at.Sub(soon)
		}
		for _, p := range due {
			im.stats.Delivered++
			im.stats.DeliveredBytes += uint64(p.size)
			im.stats.Late.add(now.Sub(p.at))
		}
		im.mu.Unlock()
		for _, p := range due {
			im.deliver(p.b)
		}
		timer.Reset(wait)
		select {
		case <-stop:
			return
		case <-im.wake:
		case <-timer.C:
		}
	}
}

func (im *impairer) snapshot() Stats {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.stats
}
