package window

import (
	"testing"
	"time"
)

func TestSecondSlides(t *testing.T) {
	var w Second
	t0 := time.Unix(1000, 0)
	for i := 0; i < 20; i++ { // 20 events over 1 s, one every 50 ms
		w.Add(t0.Add(time.Duration(i)*50*time.Millisecond), 1)
	}
	if n := w.Sum(t0.Add(950 * time.Millisecond)); n != 20 {
		t.Fatalf("sum %d, want 20", n)
	}
	if n := w.Sum(t0.Add(1450 * time.Millisecond)); n != 10 {
		t.Fatalf("half a second later: %d, want 10", n)
	}
	if n := w.Sum(t0.Add(10 * time.Second)); n != 0 {
		t.Fatalf("long after: %d", n)
	}
}
