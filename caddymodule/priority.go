package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/tmptransport"
)

func init() {
	caddy.RegisterModule(Priority{})
}

// Priority classifies each request into a priority, 0 (most urgent) to 4,
// by the site owner's rules, and sets it in the `conductor_priority`
// request variable. The tmp transport opens the request's stream at that
// priority, so a shopper about to buy overtakes one just browsing on the
// link to the origin (seed: "a prioritization program requires only …
// a data structure associating particular clients … with a prioritization
// value").
//
// Rules are tried in order; the first whose matchers all match wins. Any
// Caddy request matcher can be used (path, method, header, query,
// remote_ip, client_ip, expression …), plus `cookie`. Rules change live
// with a config reload or through the admin API (/config/…).
type Priority struct {
	// Rules, in order.
	Rules []PriorityRule `json:"rules,omitempty"`
	// Default is the priority of requests no rule matches. Default 2.
	Default *int `json:"default,omitempty"`

	counter *prometheus.CounterVec
	logger  *zap.Logger
}

// PriorityRule gives Priority to requests that match Match.
type PriorityRule struct {
	Priority int `json:"priority"`
	// MatchRaw is a matcher set: all matchers must match.
	MatchRaw caddy.ModuleMap `json:"match,omitempty" caddy:"namespace=http.matchers"`

	matchers caddyhttp.MatcherSet
}

// CaddyModule returns the Caddy module information.
func (Priority) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.priority",
		New: func() caddy.Module { return new(Priority) },
	}
}

var priorityRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "conductor",
	Subsystem: "priority",
	Name:      "requests_total",
	Help:      "Requests classified, by priority.",
}, []string{"priority"})

// Provision loads the rules' matchers.
func (p *Priority) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	for i := range p.Rules {
		r := &p.Rules[i]
		if len(r.MatchRaw) == 0 {
			return fmt.Errorf("priority rule %d: no matchers (a rule that matches everything belongs in default)", i)
		}
		mods, err := ctx.LoadModule(r, "MatchRaw")
		if err != nil {
			return fmt.Errorf("priority rule %d: loading matchers: %v", i, err)
		}
		for _, m := range mods.(map[string]any) {
			rm, ok := m.(caddyhttp.RequestMatcherWithError)
			if !ok {
				return fmt.Errorf("priority rule %d: %T is not a request matcher", i, m)
			}
			r.matchers = append(r.matchers, rm)
		}
	}
	reg := ctx.GetMetricsRegistry()
	if err := reg.Register(priorityRequests); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			priorityRequests = are.ExistingCollector.(*prometheus.CounterVec)
		} else {
			return err
		}
	}
	p.counter = priorityRequests
	return nil
}

// Validate rejects priorities out of range.
func (p *Priority) Validate() error {
	if p.Default != nil && (*p.Default < 0 || *p.Default >= tmptransport.NumPriorities) {
		return fmt.Errorf("priority: default %d out of range 0..%d", *p.Default, tmptransport.NumPriorities-1)
	}
	for i, r := range p.Rules {
		if r.Priority < 0 || r.Priority >= tmptransport.NumPriorities {
			return fmt.Errorf("priority rule %d: priority %d out of range 0..%d", i, r.Priority, tmptransport.NumPriorities-1)
		}
	}
	return nil
}

// ServeHTTP classifies the request and passes it on.
func (p *Priority) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	prio := DefaultPriority
	if p.Default != nil {
		prio = *p.Default
	}
	for _, rule := range p.Rules {
		ok, err := rule.matchers.MatchWithError(r)
		if err != nil {
			return caddyhttp.Error(http.StatusBadRequest, err)
		}
		if ok {
			prio = rule.Priority
			break
		}
	}
	caddyhttp.SetVar(r.Context(), PriorityVar, prio)
	p.counter.WithLabelValues(strconv.Itoa(prio)).Inc()
	return next.ServeHTTP(w, r)
}

// MatchCookie matches requests that carry a cookie, optionally with a
// value (exact). It is how a site says "a shopper with a cart is about to
// buy": `cookie cart`.
type MatchCookie struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

func init() {
	caddy.RegisterModule(MatchCookie{})
}

// CaddyModule returns the Caddy module information.
func (MatchCookie) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.matchers.cookie",
		New: func() caddy.Module { return new(MatchCookie) },
	}
}

// UnmarshalJSON accepts "name" or {"name":…, "value":…}.
func (m *MatchCookie) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		m.Name = s
		return nil
	}
	type plain MatchCookie
	return json.Unmarshal(b, (*plain)(m))
}

// Validate requires a cookie name.
func (m *MatchCookie) Validate() error {
	if m.Name == "" {
		return fmt.Errorf("cookie matcher: a cookie name is required")
	}
	return nil
}

// Match implements caddyhttp.RequestMatcher.
func (m MatchCookie) Match(r *http.Request) bool {
	ok, _ := m.MatchWithError(r)
	return ok
}

// MatchWithError implements caddyhttp.RequestMatcherWithError.
func (m MatchCookie) MatchWithError(r *http.Request) (bool, error) {
	c, err := r.Cookie(m.Name)
	if err != nil {
		return false, nil
	}
	return m.Value == "" || c.Value == m.Value, nil
}

// Interface guards.
var (
	_ caddy.Provisioner                 = (*Priority)(nil)
	_ caddy.Validator                   = (*Priority)(nil)
	_ caddyhttp.MiddlewareHandler       = (*Priority)(nil)
	_ caddyhttp.RequestMatcherWithError = (*MatchCookie)(nil)
	_ caddy.Validator                   = (*MatchCookie)(nil)
)
