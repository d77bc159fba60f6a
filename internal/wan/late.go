package wan

import "time"

// The emulator delivers each packet at a time its profile computes, but
// it runs in user space, on the machine whose endpoints it connects: when
// that machine is busy, its goroutines wake late and packets leave late.
// On the 2-core benchmark machine, under `bench proxy`'s lan load, a tenth
// of the packets left 0.4–0.7 ms late and a hundredth 1.3–2.8 ms late, for
// TCP and TMP alike, against a one-way delay of 0.5 ms (bench/RESULTS.md,
// session 13). A sleep on the kernel's high-resolution timers (ppoll, on a
// thread of its own) did not change that; only real-time priority did, and
// it took the CPU from the endpoints. So the lateness is measured and
// reported with the results instead, as a histogram of fixed size.

// lateBucket is the histogram's resolution, and lateBuckets its size: the
// last bucket holds everything lateBuckets-1 buckets late or more.
const (
	lateBucket  = 100 * time.Microsecond
	lateBuckets = 101
)

// LateHistogram counts delivered packets by how late they left, in
// buckets of lateBucket; a packet on time or early counts in bucket 0.
type LateHistogram [lateBuckets]uint64

func (h *LateHistogram) add(late time.Duration) {
	i := 0
	if late > 0 {
		i = min(int(late/lateBucket), lateBuckets-1)
	}
	h[i]++
}

// Since is what h counted after old, a snapshot taken earlier.
func (h LateHistogram) Since(old LateHistogram) LateHistogram {
	for i := range h {
		h[i] -= old[i]
	}
	return h
}

// Quantile is the upper edge of the bucket holding the q-th quantile of
// lateness (0 when nothing was counted), at most lateBuckets × lateBucket.
func (h LateHistogram) Quantile(q float64) time.Duration {
	var n uint64
	for _, c := range h {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n-1))
	var seen uint64
	for i, c := range h {
		seen += c
		if seen > rank {
			return time.Duration(i+1) * lateBucket
		}
	}
	return lateBuckets * lateBucket
}
