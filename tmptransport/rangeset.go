package tmptransport

// rangeSet is a sorted set of disjoint half-open intervals [start, end) of
// uint64. TMP uses it for received packet numbers (ACK ranges and replay
// detection), acknowledged and lost byte ranges of a stream's send buffer, and
// the IDs of streams that are already closed.
//
// It is written by hand because it sits on the hot path of every packet and
// must not allocate per operation; the interval trees in maintained libraries
// are general-purpose and allocate per node.
type rangeSet struct {
	r []byteRange
}

type byteRange struct{ start, end uint64 }

func (r byteRange) len() uint64 { return r.end - r.start }

// add inserts [start, end), merging with neighbours.
func (s *rangeSet) add(start, end uint64) {
	if start >= end {
		return
	}
	n := len(s.r)
	// Fast path: append at or after the last range (in-order arrival).
	if n == 0 || start > s.r[n-1].end {
		s.r = append(s.r, byteRange{start, end})
		return
	}
	if start >= s.r[n-1].start {
		if end > s.r[n-1].end {
			s.r[n-1].end = end
		}
		return
	}
	// First range whose end >= start.
	i := s.search(start)
	j := i
	for j < n && s.r[j].start <= end {
		if s.r[j].start < start {
			start = s.r[j].start
		}
		if s.r[j].end > end {
			end = s.r[j].end
		}
		j++
	}
	if i == j {
		s.r = append(s.r, byteRange{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = byteRange{start, end}
		return
	}
	s.r[i] = byteRange{start, end}
	s.r = append(s.r[:i+1], s.r[j:]...)
}

// remove deletes [start, end) from the set.
func (s *rangeSet) remove(start, end uint64) {
	if start >= end || len(s.r) == 0 {
		return
	}
	// Without a split every range yields at most one, so the result is
	// written over the input as it is read; a split (a hole punched inside
	// one range) yields one more, and gets a fresh slice. A zero-capacity
	// start for every call cost an allocation each time a reader consumed
	// data.
	out := s.r[:0]
	for _, r := range s.r {
		if r.start < start && r.end > end {
			out = make([]byteRange, 0, len(s.r)+1)
			break
		}
	}
	changed := false
	for _, r := range s.r {
		if r.end <= start || r.start >= end {
			out = append(out, r)
			continue
		}
		changed = true
		if r.start < start {
			out = append(out, byteRange{r.start, start})
		}
		if r.end > end {
			out = append(out, byteRange{end, r.end})
		}
	}
	if changed {
		s.r = out
	}
}

// search returns the index of the first range with end >= v.
func (s *rangeSet) search(v uint64) int {
	lo, hi := 0, len(s.r)
	for lo < hi {
		m := (lo + hi) / 2
		if s.r[m].end < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// contains reports whether v is in the set.
func (s *rangeSet) contains(v uint64) bool {
	i := s.search(v + 1)
	return i < len(s.r) && s.r[i].start <= v && v < s.r[i].end
}

// covers reports whether all of [start, end) is in the set.
func (s *rangeSet) covers(start, end uint64) bool {
	i := s.search(start + 1)
	return i < len(s.r) && s.r[i].start <= start && end <= s.r[i].end
}

func (s *rangeSet) empty() bool { return len(s.r) == 0 }

// total returns the number of values in the set.
func (s *rangeSet) total() uint64 {
	var t uint64
	for _, r := range s.r {
		t += r.len()
	}
	return t
}

// first returns the lowest range; the set must not be empty.
func (s *rangeSet) first() byteRange { return s.r[0] }

// last returns the highest range; the set must not be empty.
func (s *rangeSet) last() byteRange { return s.r[len(s.r)-1] }

// dropFirst removes the lowest range.
// dropFirst removes the lowest range. It keeps the slice's capacity (the
// set is usually one range, dropped and added again with every
// acknowledgement: reslicing from the front left no room, and each add
// allocated).
func (s *rangeSet) dropFirst() {
	n := copy(s.r, s.r[1:])
	s.r = s.r[:n]
}

func (s *rangeSet) clear() { s.r = s.r[:0] }
