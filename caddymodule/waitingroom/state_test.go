package waitingroom

import (
	"math/rand/v2"
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

// The ticket index agrees with a plain walk of the line through thousands
// of arrivals, admissions, check-ins and abandonments, across rebuilds of
// its window: every visitor's position is the number of waiters ahead of it
// plus one, and FIFO admission takes the head of the line.
func TestPositionsMatchTheLine(t *testing.T) {
	for _, random := range []bool{false, true} {
		s := newMemState(Config{TotalActiveUsers: 50, NewUsersPerMinute: 600, SessionDuration: 2 * time.Second, AbandonAfter: 3 * time.Second, Random: random})
		rng := rand.New(rand.NewPCG(1, 2))
		now := time.Unix(1000, 0)
		var tickets []Decision
		for step := 0; step < 20000; step++ {
			now = now.Add(time.Duration(rng.IntN(20)) * time.Millisecond)
			if rng.IntN(3) > 0 || len(tickets) == 0 {
				if d := s.Arrive(now, userID{byte(step), byte(step >> 8)}); !d.Admitted {
					tickets = append(tickets, d)
				}
				continue
			}
			// A waiter checks in; some never will again (they abandon).
			i := rng.IntN(len(tickets))
			d := s.Poll(now, tickets[i].Ticket, tickets[i].Nonce)
			if d.Rejected || d.Admitted {
				tickets = append(tickets[:i], tickets[i+1:]...)
				continue
			}
			tickets[i] = d
			walk := 1
			for _, o := range s.line {
				if o.ticket < d.Ticket && !o.admitted {
					walk++
				}
			}
			if d.Position != walk {
				t.Fatalf("random=%v step %d: ticket %d at position %d, the line says %d", random, step, d.Ticket, d.Position, walk)
			}
		}
		if s.index.count != s.waiting {
			t.Fatalf("random=%v: index holds %d waiters, the line %d", random, s.index.count, s.waiting)
		}
		if !random && s.waiting > 0 {
			head := s.nextToAdmit()
			for _, o := range s.line {
				if !o.admitted {
					if o != head {
						t.Fatalf("FIFO: next to admit is ticket %d, the head of the line is %d", head.ticket, o.ticket)
					}
					break
				}
			}
		}
	}
}

// kth and before are inverse: the k-th ticket has k−1 tickets before it.
func TestTicketIndex(t *testing.T) {
	var x ticketIndex
	x.reset(100, 64)
	present := []uint64{100, 101, 105, 130, 162, 163}
	for _, tk := range present {
		x.add(tk, 1)
	}
	x.add(130, -1)
	present = []uint64{100, 101, 105, 162, 163}
	for k, tk := range present {
		if got := x.kth(k + 1); got != tk {
			t.Errorf("kth(%d) = %d, want %d", k+1, got, tk)
		}
		if got := x.before(tk); got != k {
			t.Errorf("before(%d) = %d, want %d", tk, got, k)
		}
	}
	if x.fits(164) || x.fits(99) || !x.fits(163) {
		t.Error("window is [100, 164)")
	}
}
