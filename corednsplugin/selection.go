package corednsplugin

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
)

// choice is the outcome of a selection.
type choice struct {
	frontends []*frontend // nil when falling back to the origin
	ips       []net.IP
	scope     int // ECS scope prefix length the answer is valid for
}

// selectFrontends picks up to cfg.answers front-ends for a client in three
// steps (see README.md):
//  1. filter: healthy, not overloaded, with an address of the family;
//  2. rank: the client's region first, then the least loaded (within 0.1);
//  3. pick: weighted random among the best, or, with `sticky`, weighted
//     rendezvous hashing of the client subnet, so a subnet keeps its
//     front-end while the set is stable.
//
// client is the ECS address (or the resolver's), clientBits its prefix.
func selectFrontends(cfg *config, frontends []*frontend, regions regionTable, client netip.Addr, clientBits int, v6 bool, scratch []*frontend) choice {
	addrs := func(f *frontend) []net.IP {
		if v6 {
			return f.v6
		}
		return f.v4
	}
	cands := scratch[:0]
	for _, f := range frontends {
		if f.healthy.Load() && f.load() < cfg.maxLoad && len(addrs(f)) > 0 {
			cands = append(cands, f)
		}
	}
	if len(cands) == 0 {
		var ips []net.IP
		for _, ip := range cfg.fallback {
			if (ip.To4() == nil) == v6 {
				ips = append(ips, ip)
			}
		}
		return choice{ips: ips}
	}
	scope := 0
	if len(regions) > 0 {
		// The answer depends on which region the client's subnet is in.
		scope = clientBits
		if region, bits, whole, ok := regions.lookup(client); ok {
			if whole {
				scope = min(bits, clientBits)
			}
			n := 0
			for _, f := range cands {
				if f.region == region {
					cands[n] = f
					n++
				}
			}
			if n > 0 {
				cands = cands[:n]
			}
		}
	}
	minLoad := math.Inf(1)
	for _, f := range cands {
		minLoad = min(minLoad, f.load())
	}
	n := 0
	for _, f := range cands {
		if f.load() <= minLoad+0.1 {
			cands[n] = f
			n++
		}
	}
	cands = cands[:n]
	k := min(cfg.answers, len(cands))
	var picked []*frontend
	switch {
	case cfg.sticky:
		scope = max(scope, clientBits)
		picked = rendezvous(cands, client, clientBits, k)
	case k == 1:
		// The common case, without allocating: one weighted draw, and
		// the answer is a sub-slice of the scratch slice.
		i := weightedIndex(cands)
		picked = cands[i : i+1]
	default:
		picked = weightedSample(cands, k)
	}
	if len(picked) == 1 {
		return choice{frontends: picked, ips: addrs(picked[0]), scope: scope}
	}
	var ips []net.IP
	for _, f := range picked {
		ips = append(ips, addrs(f)...)
	}
	return choice{frontends: picked, ips: ips, scope: scope}
}

func weightedIndex(cands []*frontend) int {
	total := 0
	for _, f := range cands {
		total += f.weight
	}
	r := rand.IntN(total)
	for i, f := range cands {
		if r < f.weight {
			return i
		}
		r -= f.weight
	}
	return len(cands) - 1
}

// weightedSample draws k front-ends without replacement, each draw in
// proportion to weight.
func weightedSample(cands []*frontend, k int) []*frontend {
	out := make([]*frontend, 0, k)
	pool := append([]*frontend(nil), cands...)
	for len(out) < k {
		i := weightedIndex(pool)
		out = append(out, pool[i])
		pool = append(pool[:i], pool[i+1:]...)
	}
	return out
}

// rendezvous ranks front-ends by weighted highest-random-weight hashing of
// the client subnet (Thaler & Ravishankar, 1998; score = -w / ln(h)): a
// subnet sticks to its front-end, and when one goes away only its clients
// move.
func rendezvous(cands []*frontend, client netip.Addr, bits int, k int) []*frontend {
	p, _ := client.Prefix(bits)
	key := p.Addr().AsSlice()
	type scored struct {
		f     *frontend
		score float64
	}
	s := make([]scored, len(cands))
	for i, f := range cands {
		h := fnv.New64a()
		h.Write(key)
		h.Write([]byte{byte(bits)})
		h.Write([]byte(f.name))
		u := (float64(binary.BigEndian.Uint64(h.Sum(nil))>>11) + 0.5) / (1 << 53)
		s[i] = scored{f, -float64(f.weight) / math.Log(u)}
	}
	sort.Slice(s, func(i, j int) bool { return s[i].score > s[j].score })
	out := make([]*frontend, k)
	for i := range out {
		out[i] = s[i].f
	}
	return out
}
