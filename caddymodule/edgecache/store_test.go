package edgecache

import (
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
)

// Replacing an entry (a refresh storing the new version) never leaves its
// key empty: readers find the old version or the new one, never neither.
// Before, put removed the old entry and then set the new one, and a reader
// in between went to the origin.
func TestReplacingAnEntryNeverEmptiesTheKey(t *testing.T) {
	for _, policy := range []string{PolicyTinyLFU, PolicyLRU, PolicyLFU, PolicyFIFO, PolicyRandom} {
		t.Run(policy, func(t *testing.T) {
			s, err := newStore(StoreConfig{Name: "t-" + policy, Policy: policy, MaxBytes: 1 << 20}, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			s.put(testEntry("shop.example/", 1000))
			r := httptest.NewRequest("GET", "http://shop.example/", nil)
			var stop atomic.Bool
			var misses atomic.Int64
			var wg sync.WaitGroup
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						if s.lookup("shop.example/", r) == nil {
							misses.Add(1)
						}
					}
				}()
			}
			for range 20000 {
				s.put(testEntry("shop.example/", 1000))
			}
			stop.Store(true)
			wg.Wait()
			if n := misses.Load(); n > 0 {
				t.Fatalf("%d lookups found the key empty while it was replaced", n)
			}
		})
	}
}
