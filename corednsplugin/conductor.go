package corednsplugin

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// Handler answers A and AAAA queries for its sites with chosen front-ends.
type Handler struct {
	Next plugin.Handler

	cfg     *config
	regions regionTable
	health  *healthChecker
	pool    sync.Pool // []*frontend scratch
	mc      atomic.Pointer[serverMetrics]
	nq      atomic.Uint64
	view    *managerView // nil without a manager
}

// zoneOf returns the site zone qname falls in, trying an exact match first
// (the common case: the site name itself) before the label-wise match.
func (h *Handler) zoneOf(qname string) string {
	for _, z := range h.cfg.zones {
		if z == qname {
			return z
		}
	}
	return plugin.Zones(h.cfg.zones).Matches(qname)
}

func newHandler(cfg *config) *Handler {
	h := &Handler{cfg: cfg, regions: regionTable(cfg.regions)}
	for _, f := range cfg.frontends {
		f.healthy.Store(cfg.startHealthy)
	}
	h.health = &healthChecker{cfg: cfg, onFlip: h.onFlip}
	h.pool.New = func() any { s := make([]*frontend, 0, len(cfg.frontends)); return &s }
	if len(cfg.managers) > 0 {
		h.view = newManagerView(cfg)
	}
	return h
}

func (h *Handler) start() error {
	for _, z := range h.cfg.zones {
		for _, f := range h.cfg.frontends {
			frontendHealthy.WithLabelValues(z, f.name).Set(b2f(f.healthy.Load()))
		}
	}
	if h.view != nil {
		if err := h.view.start(); err != nil {
			return err
		}
	}
	h.health.start()
	return nil
}

func (h *Handler) stop() {
	h.health.stop()
	if h.view != nil {
		h.view.stop()
	}
}

// frontendsFor is the zone's front-ends: the manager's, when there is one
// and its view is fresh; else the static ones (then the fallback answers if
// there are none).
func (h *Handler) frontendsFor(zone string) []*frontend {
	if h.view != nil && h.view.fresh(time.Now()) {
		return h.view.frontends(zone)
	}
	return h.cfg.frontends
}

func (h *Handler) onFlip(f *frontend, healthy bool) {
	for _, z := range h.cfg.zones {
		frontendHealthy.WithLabelValues(z, f.name).Set(b2f(healthy))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Name implements plugin.Handler.
func (h *Handler) Name() string { return pluginName }

// Ready implements ready.Readiness: with a manager, ready once its first
// view has arrived (before, every answer would be the static front-ends or
// the origin, whatever the placement says).
func (h *Handler) Ready() bool { return h.view == nil || h.view.ready() }

// ServeDNS implements plugin.Handler.
func (h *Handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: r}
	qname := state.Name()
	zone := h.zoneOf(qname)
	if zone == "" {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	// The decision latency is sampled (1 query in 8): reading the clock
	// twice per query cost more than a tenth of the decision.
	var start time.Time
	sample := h.nq.Add(1)%8 == 0
	if sample {
		start = time.Now()
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	server := metrics.WithServer(ctx)

	// Sites are zone apexes; nothing exists below them (RFC 8020: NXDOMAIN
	// means nothing below either).
	if qname != zone {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{h.soa(zone)}
		state.SizeAndDo(m)
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	}

	ecs, client, bits := clientSubnet(state)
	var mc *serverMetrics
	switch state.QType() {
	case dns.TypeA, dns.TypeAAAA:
		v6 := state.QType() == dns.TypeAAAA
		sp := h.pool.Get().(*[]*frontend)
		ch := selectFrontends(h.cfg, h.frontendsFor(zone), h.regions, client, bits, v6, *sp)
		m.Answer = make([]dns.RR, 0, len(ch.ips))
		for _, ip := range ch.ips {
			m.Answer = append(m.Answer, h.addressRR(zone, ip))
		}
		mc = h.metricsFor(server)
		if len(ch.frontends) == 0 && len(ch.ips) > 0 {
			mc.answer(zone, "origin").Inc()
		}
		for _, f := range ch.frontends {
			mc.answer(zone, f.name).Inc()
		}
		*sp = (*sp)[:0]
		h.pool.Put(sp)
		if ecs != nil {
			ecs.SourceScope = uint8(ch.scope)
		}
	case dns.TypeSOA:
		m.Answer = []dns.RR{h.soa(zone)}
	}
	if len(m.Answer) == 0 {
		// NODATA (RFC 2308 §2.2): the name exists, not this type.
		m.Ns = []dns.RR{h.soa(zone)}
	}
	state.SizeAndDo(m)
	if ecs != nil {
		setECS(m, ecs)
	}
	w.WriteMsg(m)
	if sample {
		if mc == nil {
			mc = h.metricsFor(server)
		}
		mc.decision.Observe(time.Since(start).Seconds())
	}
	return dns.RcodeSuccess, nil
}

func (h *Handler) addressRR(zone string, ip net.IP) dns.RR {
	hdr := dns.RR_Header{Name: zone, Class: dns.ClassINET, Ttl: h.cfg.ttl}
	if ip4 := ip.To4(); ip4 != nil {
		hdr.Rrtype = dns.TypeA
		return &dns.A{Hdr: hdr, A: ip4}
	}
	hdr.Rrtype = dns.TypeAAAA
	return &dns.AAAA{Hdr: hdr, AAAA: ip}
}

// soa is the zone's synthesized SOA; its minimum (the negative-caching TTL,
// RFC 2308 §4) is the answer TTL.
func (h *Handler) soa(zone string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: h.cfg.ttl},
		Ns:      "ns." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  uint32(time.Now().Unix()),
		Refresh: 7200, Retry: 1800, Expire: 86400,
		Minttl: h.cfg.ttl,
	}
}

// clientSubnet returns the request's ECS option and
// the client subnet to decide on: ECS if present (RFC 7871 §7.1.1), else the
// resolver's address as a /32 or /128.
func clientSubnet(state request.Request) (*dns.EDNS0_SUBNET, netip.Addr, int) {
	if opt := state.Req.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			e, ok := o.(*dns.EDNS0_SUBNET)
			if !ok {
				continue
			}
			a, ok := netip.AddrFromSlice(e.Address)
			if !ok {
				break
			}
			a = a.Unmap()
			bits := int(e.SourceNetmask)
			if bits > a.BitLen() {
				break
			}
			p, _ := a.Prefix(bits)
			// The reply reuses the request's OPT record (SizeAndDo), so
			// this very option goes back, with the scope we set.
			return e, p.Addr(), bits
		}
	}
	a, _ := netip.ParseAddr(state.IP())
	a = a.Unmap()
	return nil, a, a.BitLen()
}

// setECS puts the ECS option, with its scope, in the reply's OPT record.
func setECS(m *dns.Msg, ecs *dns.EDNS0_SUBNET) {
	opt := m.IsEdns0()
	if opt == nil {
		return
	}
	for i, o := range opt.Option {
		if _, ok := o.(*dns.EDNS0_SUBNET); ok {
			opt.Option[i] = ecs
			return
		}
	}
	opt.Option = append(opt.Option, ecs)
}
