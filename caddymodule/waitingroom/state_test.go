package waitingroom

import (
	"testing"
	"time"
)

func TestStateKeepsItsCountsThroughAdmissionAndAbandonment(t *testing.T) {
	s := newMemState(Config{TotalActiveUsers: 2, NewUsersPerMinute: 6000, SessionDuration: time.Second, AbandonAfter: 3 * time.Second})
	now := time.Unix(1000, 0)
	var ds []Decision
	for i := 0; i < 5; i++ {
		ds = append(ds, s.Arrive(now, userID{byte(i)}))
	}
	if !ds[0].Admitted || !ds[1].Admitted || ds[2].Admitted || ds[4].Position != 3 {
		t.Fatalf("arrivals: %+v", ds)
	}
	if w, a := s.Counts(); w != 3 || a != 2 {
		t.Fatalf("counts %d waiting, %d active; want 3, 2", w, a)
	}
	// The first two sessions end; the next two in line are admitted and,
	// checking in, become active. The last one never checks in again.
	now = now.Add(1500 * time.Millisecond)
	for _, d := range ds[2:4] {
		if p := s.Poll(now, d.Ticket, d.Nonce); !p.Admitted {
			t.Fatalf("ticket %d not admitted: %+v", d.Ticket, p)
		}
	}
	if w, a := s.Counts(); w != 1 || a != 2 || s.free() != 0 {
		t.Fatalf("counts %d waiting, %d active, %d free; want 1, 2, 0", w, a, s.free())
	}
	now = now.Add(5 * time.Second) // everyone gone: sessions ended, the last left the line
	s.Arrive(now, userID{9})
	if w, a := s.Counts(); w != 0 || a != 1 || s.reserved != 0 {
		t.Fatalf("counts %d waiting, %d active, %d reserved; want 0, 1, 0", w, a, s.reserved)
	}
}
