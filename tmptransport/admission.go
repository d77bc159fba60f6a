package tmptransport

import (
	"net"
	"net/netip"
)

// admission decides, for a datagram that opens a session, whether the
// listener commits state to it, answers with a stateless Retry, or drops it
// (SPEC.md §5.1, RFC 9000 §8.1). It owns the half-open counts, globally and
// per source prefix; the listener's mu guards it.
//
// Unvalidated and validated half-open sessions are counted apart. A flood of
// spoofed Initials fills only the unvalidated budget (RetryThreshold, and
// MaxPendingPerPrefix per prefix); past it every Initial without a token
// gets a Retry, which costs one AEAD seal and keeps no state. A real
// front-end, even one behind the flooded prefix, answers the Retry and is
// admitted under the validated budget, which spoofed packets cannot reach.
type admission struct {
	cfg         *Config
	unvalid     int
	valid       int
	perPrefix   map[netip.Prefix]*[2]int // [unvalidated, validated]; entries at zero are deleted
	alwaysRetry bool                     // RetryThreshold < 0
}

type admitVerdict int

const (
	admitAccept admitVerdict = iota
	admitRetry
	admitDrop
)

func newAdmission(cfg *Config) *admission {
	return &admission{cfg: cfg, perPrefix: make(map[netip.Prefix]*[2]int), alwaysRetry: cfg.RetryThreshold < 0}
}

// sourcePrefix is the prefix a source's half-open budget is counted in:
// /24 for IPv4, /56 for IPv6 (a typical end-site allocation).
func sourcePrefix(a net.Addr) netip.Prefix {
	ip := addrPort(a).Addr()
	bits := 56
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// decide returns what to do with an Initial for a new session from prefix,
// validated or not, and the refusal reason when it is dropped.
func (a *admission) decide(prefix netip.Prefix, validated bool) (admitVerdict, Refusal) {
	c := a.perPrefix[prefix]
	if !validated {
		if a.alwaysRetry || a.unvalid >= a.cfg.RetryThreshold || (c != nil && c[0] >= a.cfg.MaxPendingPerPrefix) {
			return admitRetry, 0
		}
	}
	switch {
	case a.unvalid+a.valid >= a.cfg.MaxPendingHandshakes:
		return admitDrop, RefusedHalfOpenLimit
	case validated && c != nil && c[1] >= a.cfg.MaxPendingPerPrefix:
		return admitDrop, RefusedPrefixLimit
	}
	return admitAccept, 0
}

// add counts a new half-open session; done un-counts it when its handshake
// ends either way.
func (a *admission) add(prefix netip.Prefix, validated bool) {
	c := a.perPrefix[prefix]
	if c == nil {
		c = new([2]int)
		a.perPrefix[prefix] = c
	}
	if validated {
		a.valid++
		c[1]++
	} else {
		a.unvalid++
		c[0]++
	}
}

func (a *admission) done(prefix netip.Prefix, validated bool) {
	c := a.perPrefix[prefix]
	if validated {
		a.valid--
		if c != nil {
			c[1]--
		}
	} else {
		a.unvalid--
		if c != nil {
			c[0]--
		}
	}
	if c != nil && c[0] <= 0 && c[1] <= 0 {
		delete(a.perPrefix, prefix)
	}
}

// pending is the number of half-open sessions.
func (a *admission) pending() int { return a.unvalid + a.valid }
