package waitingroom

// ticketIndex counts the visitors still waiting in line, by ticket, in a
// Fenwick tree (Fenwick, "A New Data Structure for Cumulative Frequency
// Tables", 1994). A visitor's position, the head of the line and the k-th
// waiter (random admission) are then O(log n) where walking the line was
// O(n) on every check-in and every admission: with a line of 100,000 that
// checks in every 20 s, the walk alone was 10⁸ steps a second. It is written
// here because no maintained Go library offers a Fenwick tree or an
// order-statistics set over integer keys that is any smaller than this.
//
// Tickets only grow, so the tree covers a window of them from base; when a
// ticket falls beyond the window, the owner rebuilds it from the line.
type ticketIndex struct {
	base  uint64
	tree  []int // 1-based: tree[i] sums the slots (i − lowbit(i), i]
	count int
}

// fits reports whether ticket is inside the window.
func (x *ticketIndex) fits(ticket uint64) bool {
	return len(x.tree) > 0 && ticket >= x.base && ticket-x.base < uint64(len(x.tree)-1)
}

// reset empties the index and sets its window to size tickets from base.
func (x *ticketIndex) reset(base uint64, size int) {
	x.base, x.count = base, 0
	x.tree = make([]int, size+1)
}

// add adds d (+1 or −1) at ticket, which must fit.
func (x *ticketIndex) add(ticket uint64, d int) {
	x.count += d
	for i := int(ticket-x.base) + 1; i < len(x.tree); i += i & -i {
		x.tree[i] += d
	}
}

// before counts the waiters whose ticket is below ticket.
func (x *ticketIndex) before(ticket uint64) int {
	if ticket <= x.base {
		return 0
	}
	n := 0
	for i := min(int(ticket-x.base), len(x.tree)-1); i > 0; i -= i & -i {
		n += x.tree[i]
	}
	return n
}

// kth returns the ticket of the k-th waiter in ticket order (1-based); k
// must be in [1, count].
func (x *ticketIndex) kth(k int) uint64 {
	pos := 0
	step := 1
	for step*2 < len(x.tree) {
		step *= 2
	}
	for ; step > 0; step /= 2 {
		if next := pos + step; next < len(x.tree) && x.tree[next] < k {
			pos = next
			k -= x.tree[next]
		}
	}
	return x.base + uint64(pos)
}
