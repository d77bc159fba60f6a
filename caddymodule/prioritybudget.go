package caddymodule

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// BypassBudget bounds how many requests a priority rule may make urgent.
// Priorities up to BypassPriority skip the waiting room and the load gate
// and get copies of their data on the link: whatever signal a rule trusts,
// a client that sends it on every request must not buy the capacity that
// those exist to protect (the pattern of Cloudflare's Waiting Room, where a
// bypass is the owner's decision and not the visitor's). Past either limit
// a request is classed as the default priority.
type BypassBudget struct {
	// PerClient is the rate, in requests a second, at which one client
	// address may be urgent, with bursts of Burst. Defaults 2 and 10.
	PerClient float64 `json:"per_client,omitempty"`
	Burst     int     `json:"burst,omitempty"`
	// Capacity is the origin's capacity in requests a second; with it,
	// urgent requests from all clients together are at most Share of it
	// (default 0.2). Without it, only the per-client limit applies.
	Capacity float64 `json:"capacity,omitempty"`
	Share    float64 `json:"share,omitempty"`
	// BypassPriority is the least urgent priority the budget covers
	// (default 1: the waiting room's and the load gate's defaults).
	BypassPriority *int `json:"bypass_priority,omitempty"`
}

// maxBudgetClients bounds the per-client limiters kept; the least recently
// seen client's limiter goes first (it then starts again with a full
// burst, which is no more than a new client gets).
const maxBudgetClients = 1 << 16

// bypassLimiter enforces a BypassBudget.
type bypassLimiter struct {
	cfg     BypassBudget
	total   *rate.Limiter // nil: no capacity given
	mu      sync.Mutex
	clients *lru.Cache[string, *rate.Limiter]
}

func newBypassLimiter(b *BypassBudget) (*bypassLimiter, error) {
	cfg := BypassBudget{PerClient: 2, Burst: 10, Share: 0.2}
	if b != nil {
		cfg.Capacity = b.Capacity
		cfg.BypassPriority = b.BypassPriority
		if b.PerClient > 0 {
			cfg.PerClient = b.PerClient
		}
		if b.Burst > 0 {
			cfg.Burst = b.Burst
		}
		if b.Share > 0 {
			cfg.Share = b.Share
		}
	}
	if cfg.BypassPriority == nil {
		one := 1
		cfg.BypassPriority = &one
	}
	clients, err := lru.New[string, *rate.Limiter](maxBudgetClients)
	if err != nil {
		return nil, err
	}
	l := &bypassLimiter{cfg: cfg, clients: clients}
	if cfg.Capacity > 0 {
		r := cfg.Capacity * cfg.Share
		l.total = rate.NewLimiter(rate.Limit(r), max(int(r), 1))
	}
	return l, nil
}

// allow reports whether a request of priority prio from client stays
// urgent. Priorities the budget does not cover always do.
func (l *bypassLimiter) allow(prio int, client string) bool {
	if prio > *l.cfg.BypassPriority {
		return true
	}
	l.mu.Lock()
	c, ok := l.clients.Get(client)
	if !ok {
		c = rate.NewLimiter(rate.Limit(l.cfg.PerClient), l.cfg.Burst)
		l.clients.Add(client, c)
	}
	l.mu.Unlock()
	if !c.Allow() {
		return false
	}
	return l.total == nil || l.total.Allow()
}
