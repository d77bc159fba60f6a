package corednsplugin

import "net/netip"

// regionPrefix maps a client subnet to a region name.
type regionPrefix struct {
	prefix netip.Prefix
	region string
}

// regionTable finds a client's region by longest-prefix match. Tables are
// operator-written and short, so a linear scan is the fastest structure
// (no allocation, branch-predictable).
type regionTable []regionPrefix

// lookup returns the region of addr, the bits of the matching prefix, and
// whether the answer holds for that whole prefix (no more specific entry
// lies inside it); ok is false when no prefix matches.
func (t regionTable) lookup(addr netip.Addr) (region string, bits int, whole bool, ok bool) {
	best := -1
	for i, r := range t {
		if r.prefix.Contains(addr) && (best < 0 || r.prefix.Bits() > t[best].prefix.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return "", 0, false, false
	}
	m := t[best].prefix
	whole = true
	for _, r := range t {
		if r.prefix.Bits() > m.Bits() && m.Contains(r.prefix.Addr()) {
			whole = false
			break
		}
	}
	return t[best].region, m.Bits(), whole, true
}
