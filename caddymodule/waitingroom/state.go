package waitingroom

import (
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// State is a room's line and its active visitors. This in-process one
// serves the front-ends in this process; one kept by the manager or in
// etcd, behind the same interface, lets all front-ends of a site share a
// line.
type State interface {
	// Arrive lets a new visitor in at once if the room has space and
	// nobody waits; otherwise it gives them a ticket at the end of the line.
	Arrive(now time.Time, user userID) Decision
	// Poll is a waiting visitor checking in with their ticket and nonce.
	Poll(now time.Time, ticket, nonce uint64) Decision
	// Touch keeps an active visitor's session alive; false once it ended.
	Touch(now time.Time, user userID) bool
	// Counts reports the line's length and the active visitors.
	Counts() (waiting, active int)
}

// Decision is what the room decided for one request.
type Decision struct {
	Admitted  bool
	User      userID
	Ticket    uint64 // 0 for a visitor let in on arrival
	Nonce     uint64 // the waiting visitor's next nonce
	AdmitSeq  uint64 // order in which the room admitted visitors
	Position  int
	Wait      time.Duration
	WaitKnown bool
	Rejected  bool // unknown ticket or stale nonce: the cookie was replayed or outlived its place
	Full      bool // the line is at MaxWaiting: no ticket was given
}

type userID [16]byte

// Config sizes a room.
type Config struct {
	TotalActiveUsers  int
	NewUsersPerMinute int
	SessionDuration   time.Duration
	// AbandonAfter drops a waiting visitor who has not checked in for this
	// long (their page refreshes well before).
	AbandonAfter time.Duration
	Random       bool        // admit waiting visitors in random order instead of FIFO
	Overloaded   func() bool // the origin's load index says: admit nobody now
	// MaxWaiting bounds the line; an arrival past it gets no ticket.
	MaxWaiting int
	// Fleet makes TotalActiveUsers and NewUsersPerMinute the site's,
	// across its front-ends: this room admits what its lease from the
	// manager says (fleet.go). Without a valid lease it takes 1/N of the
	// site's figures, N being the front-ends of its last lease, at least
	// FleetFrontends.
	Fleet          bool
	FleetFrontends int
}

type waiter struct {
	ticket   uint64
	nonce    uint64
	user     userID
	lastSeen time.Time
	admitted bool
	admitSeq uint64
}

type memState struct {
	cfg Config
	rng *rand.Rand

	mu         sync.Mutex
	nextTicket uint64
	admitSeq   uint64
	line       []*waiter // by ticket
	byTicket   map[uint64]*waiter
	index      ticketIndex // the tickets of the waiters not yet admitted
	waiting    int         // waiters in line not yet admitted
	reserved   int         // waiters admitted but not back yet: they hold a place in the room
	lastSweep  time.Time
	active     map[userID]time.Time // session end
	newUsers   *rate.Limiter        // new_users_per_minute; nil until the first tick
	admitRate  float64              // EWMA of admissions per second, for wait estimates
	rateAt     time.Time
	admitted   float64 // admissions since rateAt

	// Fleet mode: the lease, and what this room may admit now.
	lease     lease
	lastN     int // front-ends sharing the room, from the last lease
	capacity  int // active visitors allowed here now
	perMinute int // new visitors a minute here now
}

func newMemState(cfg Config) *memState {
	s := &memState{
		cfg:      cfg,
		rng:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		byTicket: map[uint64]*waiter{},
		active:   map[userID]time.Time{},
	}
	s.limits(time.Now())
	return s
}

func (s *memState) setConfig(cfg Config) {
	s.mu.Lock()
	s.cfg = cfg
	s.limits(time.Now())
	s.mu.Unlock()
}

// limits sets what the room admits now: its configured figures, or in
// fleet mode its lease's, or without a valid lease 1/N of the site's.
func (s *memState) limits(now time.Time) {
	s.capacity, s.perMinute = s.cfg.TotalActiveUsers, s.cfg.NewUsersPerMinute
	if !s.cfg.Fleet {
		return
	}
	if now.Before(s.lease.until) {
		s.capacity, s.perMinute = min(s.lease.capacity, s.capacity), min(s.lease.perMinute, s.perMinute)
		return
	}
	n := max(1, s.lastN, s.cfg.FleetFrontends)
	s.capacity, s.perMinute = max(1, s.capacity/n), max(1, s.perMinute/n)
}

func (s *memState) Arrive(now time.Time, user userID) Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	if s.waitingCount() == 0 && s.free() > 0 && !s.overloaded() && s.newUsers.AllowN(now, 1) {
		s.admitSeq++
		s.noteAdmission(now)
		s.active[user] = now.Add(s.cfg.SessionDuration)
		return Decision{Admitted: true, User: user, AdmitSeq: s.admitSeq}
	}
	if s.cfg.MaxWaiting > 0 && s.waitingCount() >= s.cfg.MaxWaiting {
		return Decision{Full: true, User: user}
	}
	s.nextTicket++
	w := &waiter{ticket: s.nextTicket, nonce: s.rng.Uint64(), user: user, lastSeen: now}
	if !s.index.fits(w.ticket) {
		s.rebuildIndex(w.ticket)
	}
	s.line = append(s.line, w)
	s.byTicket[w.ticket] = w
	s.waiting++
	s.index.add(w.ticket, 1)
	return s.queued(now, w)
}

func (s *memState) Poll(now time.Time, ticket, nonce uint64) Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	w := s.byTicket[ticket]
	if w == nil || w.nonce != nonce {
		return Decision{Rejected: true}
	}
	w.lastSeen = now
	if w.admitted {
		s.remove(w)
		s.active[w.user] = now.Add(s.cfg.SessionDuration)
		return Decision{Admitted: true, User: w.user, Ticket: w.ticket, AdmitSeq: w.admitSeq}
	}
	w.nonce = s.rng.Uint64() // a copy of the old cookie is now worthless
	return s.queued(now, w)
}

func (s *memState) Touch(now time.Time, user userID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	end, ok := s.active[user]
	if !ok && s.cfg.Fleet {
		// Admitted by another front-end of the site: its cookie (checked,
		// and in session) is honoured here too. The visitor now also
		// counts here, until the session ends: counted twice, never
		// missed.
		end, ok = now.Add(s.cfg.SessionDuration), true
	}
	if !ok || now.After(end) {
		delete(s.active, user)
		return false
	}
	s.active[user] = now.Add(s.cfg.SessionDuration)
	return true
}

func (s *memState) Counts() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitingCount(), len(s.active)
}

func (s *memState) overloaded() bool { return s.cfg.Overloaded != nil && s.cfg.Overloaded() }

// free is the room's space: the active visitors and those admitted but not
// yet back count against it.
func (s *memState) free() int { return s.capacity - len(s.active) - s.reserved }

func (s *memState) waitingCount() int { return s.waiting }

// remove takes an admitted waiter out of the line as it comes back.
func (s *memState) remove(w *waiter) {
	delete(s.byTicket, w.ticket)
	s.reserved--
	i := sort.Search(len(s.line), func(i int) bool { return s.line[i].ticket >= w.ticket })
	if i < len(s.line) && s.line[i] == w {
		s.line = append(s.line[:i], s.line[i+1:]...)
	}
}

// tick ends sessions, drops visitors who left the line, refills the
// new-user budget and admits from the line.
func (s *memState) tick(now time.Time) {
	// Ending sessions and dropping visitors who left the line walk every
	// entry; at most ten times a second, not on every request.
	if now.Sub(s.lastSweep) >= 100*time.Millisecond {
		s.lastSweep = now
		s.sweep(now)
	}
	// The new-user budget: a token bucket of a second's worth (at least
	// one), which a new room starts with full.
	s.limits(now)
	perSec := float64(s.perMinute) / 60
	burst := max(1, int(perSec))
	if s.newUsers == nil {
		s.newUsers = rate.NewLimiter(rate.Limit(perSec), burst)
	} else if s.newUsers.Limit() != rate.Limit(perSec) || s.newUsers.Burst() != burst {
		s.newUsers.SetLimitAt(now, rate.Limit(perSec))
		s.newUsers.SetBurstAt(now, burst)
	}

	if s.overloaded() {
		return
	}
	free := s.free()
	for free > 0 && s.newUsers.TokensAt(now) >= 1 {
		w := s.nextToAdmit()
		if w == nil {
			break
		}
		w.admitted = true
		s.waiting--
		s.index.add(w.ticket, -1)
		s.reserved++
		s.admitSeq++
		w.admitSeq = s.admitSeq
		s.noteAdmission(now)
		free--
		s.newUsers.AllowN(now, 1)
	}
}

// sweep ends sessions and drops visitors who stopped checking in.
func (s *memState) sweep(now time.Time) {
	for u, end := range s.active {
		if now.After(end) {
			delete(s.active, u)
		}
	}
	kept := s.line[:0]
	for _, w := range s.line {
		if now.Sub(w.lastSeen) > s.cfg.AbandonAfter {
			delete(s.byTicket, w.ticket)
			if w.admitted {
				s.reserved--
			} else {
				s.waiting--
				s.index.add(w.ticket, -1)
			}
			continue
		}
		kept = append(kept, w)
	}
	for i := len(kept); i < len(s.line); i++ {
		s.line[i] = nil
	}
	s.line = kept
}

// nextToAdmit is the head of the line, or a waiter drawn at random.
func (s *memState) nextToAdmit() *waiter {
	if s.waiting == 0 {
		return nil
	}
	k := 1
	if s.cfg.Random {
		k = 1 + s.rng.IntN(s.waiting)
	}
	return s.byTicket[s.index.kth(k)]
}

// rebuildIndex moves the index's window so that it starts at the first
// ticket still waiting and has room for ticket and as many again.
func (s *memState) rebuildIndex(ticket uint64) {
	base := ticket
	for _, w := range s.line {
		if !w.admitted {
			base = w.ticket
			break
		}
	}
	s.index.reset(base, max(1024, 2*int(ticket-base+1)))
	for _, w := range s.line {
		if !w.admitted {
			s.index.add(w.ticket, 1)
		}
	}
}

func (s *memState) noteAdmission(now time.Time) {
	if s.rateAt.IsZero() {
		s.rateAt = now
	}
	s.admitted++
	if d := now.Sub(s.rateAt); d >= 5*time.Second {
		r := s.admitted / d.Seconds()
		if s.admitRate == 0 {
			s.admitRate = r
		} else {
			s.admitRate = 0.7*s.admitRate + 0.3*r
		}
		s.admitted, s.rateAt = 0, now
	}
}

func (s *memState) queued(now time.Time, w *waiter) Decision {
	pos := s.index.before(w.ticket) + 1
	d := Decision{User: w.user, Ticket: w.ticket, Nonce: w.nonce, Position: pos}
	rate := s.admitRate
	if rate == 0 {
		rate = float64(s.perMinute) / 60
	}
	if s.cfg.Random {
		pos = (s.waitingCount() + 1) / 2 // in random order, the expected wait is half the line's
	}
	if rate > 0 && !s.overloaded() {
		d.Wait = time.Duration(float64(pos) / rate * float64(time.Second))
		d.WaitKnown = true
	}
	return d
}
