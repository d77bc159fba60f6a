package loadindex

import (
	"math"
	"testing"
	"time"
)

func TestPacerStartsFullAndHoldsItsRate(t *testing.T) {
	p := newPacer()
	t0 := time.Unix(1000, 0)
	p.adjust(t0, true, 0.1, 0.9, 100) // capacity 100: at most 90/s
	if p.rate != 90 {
		t.Fatalf("rate %v, want 90 (threshold × capacity)", p.rate)
	}
	if !p.take(t0) {
		t.Fatal("the first request after a quiet spell was refused")
	}
	// Over 10 s of requests every millisecond, about 90/s get through.
	admitted := 0
	for i := 1; i <= 10000; i++ {
		if p.take(t0.Add(time.Duration(i) * time.Millisecond)) {
			admitted++
		}
	}
	if admitted < 880 || admitted > 920 {
		t.Fatalf("admitted %d in 10 s at 90/s", admitted)
	}
}

func TestPacerBacksOffWhileOverloadedAndRecovers(t *testing.T) {
	p := newPacer()
	now := time.Unix(2000, 0)
	for i := 0; i < 50; i++ { // 50 admitted in the last second
		now = now.Add(20 * time.Millisecond)
		p.take(now)
	}
	p.adjust(now, true, 1.5, 0.9, 0)
	if p.rate > 40 || p.rate < 32 { // 80 % of the 40-50 counted in the last second
		t.Fatalf("overloaded: rate %v, want 80%% of the 50 admitted", p.rate)
	}
	r := p.rate
	p.adjust(now, true, 0.5, 0.9, 0)
	if p.rate != r+1 {
		t.Fatalf("recovering: rate %v, want %v", p.rate, r+1)
	}
	p.adjust(now, false, 5, 0.9, 0) // stale reading: no change
	if p.rate != r+1 || math.IsInf(p.rate, 1) {
		t.Fatalf("without news: rate %v", p.rate)
	}
}

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		in       string
		idx, cap float64
		ok       bool
	}{
		{"0.734; capacity=50", 0.734, 50, true},
		{"1.2", 1.2, 0, true},
		{"-1", 0, 0, false},
		{"NaN", 0, 0, false},
		{"high", 0, 0, false},
		{"0.5; capacity=-3; x=y", 0.5, 0, true},
	} {
		idx, c, ok := ParseHeader(tc.in)
		if ok != tc.ok || idx != tc.idx || c != tc.cap {
			t.Errorf("%q: %v %v %v", tc.in, idx, c, ok)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add("0.734; capacity=50")
	f.Add(";;;=")
	f.Fuzz(func(t *testing.T, s string) {
		idx, c, ok := ParseHeader(s)
		if ok && (idx < 0 || math.IsNaN(idx) || math.IsInf(idx, 0) || c < 0 || math.IsInf(c, 0)) {
			t.Fatalf("%q → %v %v", s, idx, c)
		}
	})
}
