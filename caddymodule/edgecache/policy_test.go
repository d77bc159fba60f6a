package edgecache

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// testEntry is an entry whose size() is exactly size bytes.
func testEntry(key string, size int) *entry {
	e := &entry{key: key, primary: key}
	e.body = make([]byte, size-int(e.size()))
	return e
}

// runTrace stores and reads keys on a policy that holds `slots` entries
// of 1000 bytes. A trace step "k" reads k and stores it if absent. It
// returns the keys evicted, in order.
func runTrace(t *testing.T, name string, slots int, trace []string, rng *rand.Rand) ([]string, func(string) bool) {
	t.Helper()
	var mu sync.Mutex
	var evicted []string
	p, err := newPolicy(name, int64(slots*1000), func(e *entry) {
		mu.Lock()
		evicted = append(evicted, e.key)
		mu.Unlock()
	}, rng)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	for _, k := range trace {
		if _, ok := p.get(k); !ok {
			p.set(testEntry(k, 1000))
		}
		if tl, ok := p.(*tinyLFU); ok {
			// Otter records reads in lossy buffers drained by its
			// maintenance; real traffic leaves it time to run, a tight
			// loop does not. Run it after every step, as time would.
			tl.c.CleanUp()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(evicted), func(k string) bool { _, ok := p.peek(k); return ok }
}

func TestEvictionLRUEvictsTheLeastRecentlyUsed(t *testing.T) {
	// a b c fill; reading a makes b the least recent; d evicts b, e evicts c.
	ev, in := runTrace(t, PolicyLRU, 3, []string{"a", "b", "c", "a", "d", "e"}, nil)
	if !slices.Equal(ev, []string{"b", "c"}) || !in("a") {
		t.Fatalf("evicted %v, a resident %v; want [b c], true", ev, in("a"))
	}
}

func TestEvictionFIFOEvictsInStoreOrderWhateverTheReads(t *testing.T) {
	ev, in := runTrace(t, PolicyFIFO, 3, []string{"a", "b", "c", "a", "a", "a", "d", "e"}, nil)
	if !slices.Equal(ev, []string{"a", "b"}) || in("a") {
		t.Fatalf("evicted %v; want [a b]", ev)
	}
}

func TestEvictionLFUEvictsTheLeastFrequentlyUsed(t *testing.T) {
	// a read 3×, b 2×, c once: d evicts c; then d (once, newer) goes before b.
	ev, in := runTrace(t, PolicyLFU, 3, []string{"a", "a", "a", "b", "b", "c", "d", "e"}, nil)
	if !slices.Equal(ev, []string{"c", "d"}) || !in("a") || !in("b") {
		t.Fatalf("evicted %v; want [c d] with a and b resident", ev)
	}
}

func TestEvictionRandomPicksVictimsUniformly(t *testing.T) {
	// 4 slots, then 4000 inserts of new keys: every slot position is a
	// victim about equally often, and the newest key is never evicted on
	// its own insert.
	rng := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	for trial := 0; trial < 1000; trial++ {
		ev, in := runTrace(t, PolicyRandom, 4, []string{"w", "x", "y", "z", "new"}, rng)
		if len(ev) != 1 || !in("new") {
			t.Fatalf("trial %d: evicted %v", trial, ev)
		}
		counts[ev[0]]++
	}
	for _, k := range []string{"w", "x", "y", "z"} {
		if c := counts[k]; c < 180 || c > 320 { // 250 expected; ±4.5σ
			t.Errorf("%s evicted %d times of 1000; want about 250 (counts %v)", k, c, counts)
		}
	}
}

func TestEvictionTinyLFUKeepsAHotEntryThroughAScan(t *testing.T) {
	// W-TinyLFU's point: a frequently read entry survives a scan of
	// one-hit wonders that would flush an LRU.
	// The cache is filled first: otter, like Caffeine, starts counting
	// frequencies once the cache is half full.
	trace := []string{}
	for i := 0; i < 10; i++ {
		trace = append(trace, fmt.Sprintf("fill-%d", i))
	}
	for i := 0; i < 50; i++ {
		trace = append(trace, "hot", fmt.Sprintf("fill-%d", i%10))
	}
	for i := 0; i < 500; i++ {
		trace = append(trace, fmt.Sprintf("scan-%d", i))
	}
	for _, name := range []string{PolicyTinyLFU, PolicyLRU} {
		_, in := runTrace(t, name, 10, trace, nil)
		if name == PolicyTinyLFU {
			if !in("hot") {
				t.Errorf("tinylfu evicted the hot entry during a scan")
			}
		} else if in("hot") {
			t.Errorf("lru kept the hot entry through a scan of 500: the trace does not test what it claims")
		}
	}
}

func TestEvictionKeepsEveryPolicyWithinItsByteBound(t *testing.T) {
	for _, name := range []string{PolicyTinyLFU, PolicyLRU, PolicyLFU, PolicyFIFO, PolicyRandom} {
		p, err := newPolicy(name, 50_000, func(*entry) {}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2000; i++ {
			p.set(testEntry(fmt.Sprint(i), 500+i%1500))
		}
		if name == PolicyTinyLFU {
			p.(*tinyLFU).c.CleanUp()
		}
		if used := p.usedBytes(); used > 50_000 {
			t.Errorf("%s: %d bytes held, bound 50000", name, used)
		}
		// An entry larger than the whole cache is not kept.
		p.set(testEntry("huge", 60_000))
		if _, ok := p.peek("huge"); ok && name != PolicyTinyLFU {
			t.Errorf("%s stored an entry larger than the cache", name)
		}
		p.close()
	}
}
