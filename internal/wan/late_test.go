package wan

import (
	"testing"
	"time"
)

func TestLateHistogramQuantiles(t *testing.T) {
	var h LateHistogram
	for range 90 {
		h.add(-time.Millisecond) // early: bucket 0
	}
	for range 9 {
		h.add(450 * time.Microsecond)
	}
	h.add(3 * time.Millisecond)
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 100 * time.Microsecond}, {0.9, 100 * time.Microsecond}, {0.95, 500 * time.Microsecond}, {1, 3100 * time.Microsecond}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("quantile %.2f = %v, want %v", c.q, got, c.want)
		}
	}
	if got := (LateHistogram{}).Quantile(0.99); got != 0 {
		t.Errorf("empty histogram: quantile %v, want 0", got)
	}
}

func TestLateHistogramIsBounded(t *testing.T) {
	var h LateHistogram
	h.add(time.Hour)
	if h[lateBuckets-1] != 1 {
		t.Fatalf("an hour late counted in bucket %v, want the last", h)
	}
	if got, max := h.Quantile(1), lateBuckets*lateBucket; got != max {
		t.Fatalf("quantile of the last bucket %v, want its edge %v", got, max)
	}
}

func TestLateHistogramSince(t *testing.T) {
	var before LateHistogram
	before.add(0)
	after := before
	after.add(250 * time.Microsecond)
	d := after.Since(before)
	if d[0] != 0 || d[2] != 1 {
		t.Fatalf("since: %v", d[:4])
	}
}
