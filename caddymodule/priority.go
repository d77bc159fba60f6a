package caddymodule

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/securecookie"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/internal/clientip"
	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
	"github.com/conductor-edge/conductor/caddymodule/priority"
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
	// SigningKeys verify the values of `cookie <name> signed` rules: keys
	// of at least 32 bytes (hex or base64) that the origin shares with the
	// front-ends. A value must be a gorilla/securecookie encoding (HMAC-
	// SHA256) under any of them; list the new key first and the old after
	// while the origin moves over, to rotate without a rejected cart.
	SigningKeys []string `json:"signing_keys,omitempty"`
	// BypassBudget bounds the urgent requests (by default priorities 0
	// and 1) per client address and in all; past it a request gets the
	// default priority. Always on, with its defaults.
	BypassBudget *BypassBudget `json:"bypass_budget,omitempty"`

	counter *prometheus.CounterVec
	demoted prometheus.Counter
	budget  *bypassLimiter
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

var priorityRequests = promreg.CounterVec("priority", "requests_total",
	"Requests classified, by priority (after the bypass budget).",
	"priority")

var priorityDemoted = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "conductor",
	Subsystem: "priority",
	Name:      "demoted_total",
	Help:      "Requests a rule made urgent that the bypass budget classed as the default priority.",
})

// Provision loads the rules' matchers.
func (p *Priority) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	codecs, err := signingCodecs(p.SigningKeys)
	if err != nil {
		return err
	}
	if p.budget, err = newBypassLimiter(p.BypassBudget); err != nil {
		return err
	}
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
			if mc, ok := m.(*MatchCookie); ok && mc.Signed {
				if len(codecs) == 0 {
					return fmt.Errorf("priority rule %d: cookie %s signed: set signing_key, the key the origin signs the cookie with", i, mc.Name)
				}
				mc.codecs = codecs
			}
			r.matchers = append(r.matchers, rm)
		}
	}
	reg := ctx.GetMetricsRegistry()
	p.counter, p.demoted = priorityRequests, priorityDemoted
	for _, c := range []prometheus.Collector{priorityRequests, priorityDemoted} {
		if err := reg.Register(c); err != nil {
			if _, ok := err.(prometheus.AlreadyRegisteredError); !ok {
				return err
			}
		}
	}
	return nil
}

// Validate rejects priorities out of range.
func (p *Priority) Validate() error {
	if p.Default != nil && (*p.Default < 0 || *p.Default >= tmptransport.NumPriorities) {
		return fmt.Errorf("priority: default %d out of range 0..%d", *p.Default, tmptransport.NumPriorities-1)
	}
	for i, r := range p.Rules {
		if !priority.Valid(r.Priority) {
			return fmt.Errorf("priority rule %d: priority %d out of range 0..%d", i, r.Priority, priority.Levels-1)
		}
	}
	return nil
}

// ServeHTTP classifies the request and passes it on.
func (p *Priority) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	def := priority.Default
	if p.Default != nil {
		def = *p.Default
	}
	prio := def
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
	if !p.budget.allow(prio, clientip.Of(r)) {
		p.demoted.Inc()
		prio = def
	}
	priority.Set(r.Context(), prio)
	p.counter.WithLabelValues(strconv.Itoa(prio)).Inc()
	return next.ServeHTTP(w, r)
}

// MatchCookie matches requests that carry a cookie, optionally with a
// value (exact). It is how a site says "a shopper with a cart is about to
// buy": `cookie cart`. A cookie is the client's to set, so a rule that
// grants urgency should say `signed`: then only a value the origin signed
// (gorilla/securecookie, with the priority handler's signing_key) matches,
// and Value is compared with the signed value.
type MatchCookie struct {
	Name   string `json:"name"`
	Value  string `json:"value,omitempty"`
	Signed bool   `json:"signed,omitempty"`

	codecs []securecookie.Codec // set by the priority handler
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
	v := c.Value
	if m.Signed {
		if len(m.codecs) == 0 {
			return false, nil // outside a priority handler: nothing to verify with
		}
		if err := securecookie.DecodeMulti(m.Name, c.Value, &v, m.codecs...); err != nil {
			return false, nil // forged, expired or under an unknown key
		}
	}
	return m.Value == "" || v == m.Value, nil
}

// signingCodecs turns the configured keys into securecookie codecs
// (authentication only: the value is not secret, its origin is).
func signingCodecs(keys []string) ([]securecookie.Codec, error) {
	var pairs [][]byte
	for i, k := range keys {
		b, err := hex.DecodeString(k)
		if err != nil {
			b, err = base64.StdEncoding.DecodeString(k)
		}
		if err != nil || len(b) < 32 {
			return nil, fmt.Errorf("priority: signing_key %d: want at least 32 bytes, hex or base64", i+1)
		}
		pairs = append(pairs, b, nil)
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	return securecookie.CodecsFromPairs(pairs...), nil
}

// Interface guards.
var (
	_ caddy.Provisioner                 = (*Priority)(nil)
	_ caddy.Validator                   = (*Priority)(nil)
	_ caddyhttp.MiddlewareHandler       = (*Priority)(nil)
	_ caddyhttp.RequestMatcherWithError = (*MatchCookie)(nil)
	_ caddy.Validator                   = (*MatchCookie)(nil)
)
