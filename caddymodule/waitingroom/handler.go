// Package waitingroom is the `waiting_room` handler: a virtual waiting
// room, "call-center style" as the seed puts it, with Cloudflare Waiting
// Room's model — total_active_users, new_users_per_minute, a session
// duration, FIFO or random order — plus what it lacks: the most urgent
// visitors (priority 0, such as a shopper with a cart) skip the line, and
// admission stops while the origin's load index is above the threshold.
package waitingroom

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/internal/clientip"
	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
	"github.com/conductor-edge/conductor/caddymodule/loadindex"
	"github.com/conductor-edge/conductor/caddymodule/pages"
	"github.com/conductor-edge/conductor/caddymodule/priority"
	"github.com/conductor-edge/conductor/caddymodule/selfrequest"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is `http.handlers.waiting_room`. Put it on the paths to protect
// with a matcher (`waiting_room /shop/* { … }`); each name is one room.
type Handler struct {
	// Name of the room; its cookie and line. Default "default".
	Name              string `json:"name,omitempty"`
	TotalActiveUsers  int    `json:"total_active_users,omitempty"`
	NewUsersPerMinute int    `json:"new_users_per_minute,omitempty"`
	// MaxWaiting bounds the line. Default: the visitors admitted in one
	// session duration (new_users_per_minute × session_duration), at least
	// total_active_users: a line longer than that waits longer than a
	// session lasts. Past it, a visitor gets a 503 with Retry-After.
	MaxWaiting      int            `json:"max_waiting,omitempty"`
	SessionDuration caddy.Duration `json:"session_duration,omitempty"`
	// Queueing is "fifo" (default) or "random".
	Queueing string `json:"queueing,omitempty"`
	// Refresh is how often the queue page checks in. Default 20s (as
	// Cloudflare's); visitors who miss three check-ins lose their place.
	Refresh caddy.Duration `json:"refresh,omitempty"`
	// BypassPriority and more urgent priorities skip the line. Default 0.
	BypassPriority *int `json:"bypass_priority,omitempty"`
	// LoadIndex names the origin whose load index gates admission (as
	// load_gate's name); LoadThreshold is the index above which nobody new
	// is admitted. Default: "default" and 0.9.
	LoadIndex     string  `json:"load_index,omitempty"`
	LoadThreshold float64 `json:"load_threshold,omitempty"`
	// Secret keys the cookie's MAC. Front-ends of one site must share it.
	// Default: a key kept in Caddy's storage (shared with storage).
	Secret string `json:"secret,omitempty"`
	// Fleet makes total_active_users and new_users_per_minute the site's,
	// shared by its front-ends through leases from the manager (the node
	// needs conductor_agent). FleetFrontends divides them when no lease
	// holds (before the first one, or after the manager has been silent
	// past a lease's 10 s): at least 2, and at least the front-ends of
	// the last lease.
	Fleet          bool `json:"fleet,omitempty"`
	FleetFrontends int  `json:"fleet_frontends,omitempty"`
	// SiteName brands the queue page; QueuePage replaces it.
	SiteName  string `json:"site_name,omitempty"`
	QueuePage string `json:"queue_page,omitempty"`

	key      []byte
	state    *memState
	roomHeld bool   // a reference to the room in rooms (Cleanup gives it back)
	loadName string // the load view this handler holds (Cleanup releases it)
	tmpl     *template.Template
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.waiting_room",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Rooms outlive config reloads: a reload must not send everyone in line
// back to the end. Like Caddy's own state that spans configs (its
// listener pool), they live in a UsagePool: each config's handlers hold a
// reference, and a room goes when the last config that names it is
// cleaned up.
var rooms = caddy.NewUsagePool()

// Destruct implements caddy.Destructor: a room nobody names any more.
func (s *memState) Destruct() error { return nil }

var (
	decisions = promreg.CounterVec("waiting_room", "requests_total",
		"Requests by outcome: active (in session), admitted, queued, full (the line is at max_waiting), bypass, internal (the front-end's own).",
		"room", "outcome")
	rejectedCookies = promreg.CounterVec("waiting_room", "rejected_cookies_total",
		"Cookies refused, by reason: malformed, forged, expired, replayed, address.",
		"room", "reason")
	leaseCapacity = promreg.GaugeVec("waiting_room", "lease_capacity",
		"A fleet-mode room's active visitors allowed on this front-end by its lease from the manager.",
		"room")
)

// Provision sets defaults and joins the room's state.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Name == "" {
		h.Name = "default"
	}
	if h.TotalActiveUsers == 0 {
		h.TotalActiveUsers = 200
	}
	if h.NewUsersPerMinute == 0 {
		h.NewUsersPerMinute = 200
	}
	if h.SessionDuration == 0 {
		h.SessionDuration = caddy.Duration(5 * time.Minute)
	}
	if h.Refresh == 0 {
		h.Refresh = caddy.Duration(20 * time.Second)
	}
	if h.BypassPriority == nil {
		zero := 0
		h.BypassPriority = &zero
	}
	if h.LoadIndex == "" {
		h.LoadIndex = "default"
	}
	if h.LoadThreshold == 0 {
		h.LoadThreshold = 0.9
	}
	if h.MaxWaiting == 0 {
		h.MaxWaiting = max(int(float64(h.NewUsersPerMinute)*time.Duration(h.SessionDuration).Minutes()), h.TotalActiveUsers)
	}
	if h.SiteName == "" {
		h.SiteName = "This site"
	}
	if h.Fleet {
		h.FleetFrontends = max(2, h.FleetFrontends)
	}
	if h.QueuePage != "" {
		t, err := pages.Load(h.QueuePage)
		if err != nil {
			return err
		}
		h.tmpl = t
	}
	key, err := h.loadKey(ctx)
	if err != nil {
		return err
	}
	h.key = key
	if err := promreg.Register(ctx, decisions, rejectedCookies, leaseCapacity); err != nil {
		return err
	}
	loadName, threshold := h.LoadIndex, h.LoadThreshold
	cfg := Config{
		TotalActiveUsers:  h.TotalActiveUsers,
		NewUsersPerMinute: h.NewUsersPerMinute,
		SessionDuration:   time.Duration(h.SessionDuration),
		AbandonAfter:      3*time.Duration(h.Refresh) + 5*time.Second,
		Random:            h.Queueing == "random",
		MaxWaiting:        h.MaxWaiting,
		Fleet:             h.Fleet,
		FleetFrontends:    h.FleetFrontends,
	}
	if loadName != "" {
		obs := loadindex.Observe(loadName)
		h.loadName = loadName
		cfg.Overloaded = func() bool { return loadindex.OverloadedView(obs, threshold, 10*time.Second) }
	}
	v, loaded, err := rooms.LoadOrNew(h.Name, func() (caddy.Destructor, error) { return newMemState(cfg), nil })
	if err != nil {
		return err
	}
	h.state = v.(*memState)
	h.roomHeld = true
	if loaded {
		h.state.setConfig(cfg)
	}
	return nil
}

// Cleanup gives back this config's references to its room and its load
// view.
func (h *Handler) Cleanup() error {
	if h.roomHeld {
		rooms.Delete(h.Name)
		h.roomHeld = false
	}
	if h.loadName != "" {
		loadindex.Release(h.loadName)
		h.loadName = ""
	}
	return nil
}

// loadKey derives the MAC key from the configured secret, or keeps a
// random one in Caddy's storage, which front-ends sharing storage share.
func (h *Handler) loadKey(ctx caddy.Context) ([]byte, error) {
	if h.Secret != "" {
		if len(h.Secret) < 16 {
			return nil, fmt.Errorf("waiting_room %s: secret must be at least 16 characters", h.Name)
		}
		return []byte(h.Secret), nil
	}
	const storageKey = "conductor/waiting_room.key"
	st := ctx.Storage()
	if b, err := st.Load(ctx, storageKey); err == nil && len(b) >= 32 {
		return b, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := st.Store(ctx, storageKey, b); err != nil {
		return nil, fmt.Errorf("waiting_room: storing the cookie key: %v", err)
	}
	return b, nil
}

// Validate checks the room's sizes.
func (h *Handler) Validate() error {
	if h.TotalActiveUsers < 1 || h.NewUsersPerMinute < 1 {
		return fmt.Errorf("waiting_room %s: total_active_users and new_users_per_minute must be at least 1", h.Name)
	}
	if h.Queueing != "" && h.Queueing != "fifo" && h.Queueing != "random" {
		return fmt.Errorf("waiting_room %s: queueing %q: want fifo or random", h.Name, h.Queueing)
	}
	return nil
}

func (h *Handler) cookieName() string { return "__conductor_wr_" + h.Name }

// ServeHTTP lets visitors in session through, and decides for the others.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if selfrequest.Is(r) {
		// The front-end's own work (a refresh, a warm, a poll) is no
		// visitor: it takes no place in the room.
		decisions.WithLabelValues(h.Name, "internal").Inc()
		return next.ServeHTTP(w, r)
	}
	if prio, _ := priority.Of(r.Context(), priority.Default); prio <= *h.BypassPriority {
		decisions.WithLabelValues(h.Name, "bypass").Inc()
		return next.ServeHTTP(w, r)
	}
	now := time.Now()
	ip := clientip.Of(r)
	var d Decision
	tk, have := h.readCookie(r, now, ip)
	switch {
	case have && tk.active:
		if h.state.Touch(now, tk.user) {
			decisions.WithLabelValues(h.Name, "active").Inc()
			if tk.expires.Sub(now) < time.Duration(h.SessionDuration)/2 {
				h.setCookie(w, ticket{active: true, user: tk.user, expires: now.Add(time.Duration(h.SessionDuration)), ipHash: ipHash(h.key, ip)})
			}
			return next.ServeHTTP(w, r)
		}
		d = h.state.Arrive(now, newUser()) // the session ended: back in line
	case have:
		d = h.state.Poll(now, tk.ticket, tk.nonce)
		if d.Rejected {
			rejectedCookies.WithLabelValues(h.Name, "replayed").Inc()
			d = h.state.Arrive(now, newUser())
		}
	default:
		d = h.state.Arrive(now, newUser())
	}
	if d.Full {
		decisions.WithLabelValues(h.Name, "full").Inc()
		return h.writeFull(w, r)
	}
	if d.Admitted {
		decisions.WithLabelValues(h.Name, "admitted").Inc()
		h.setCookie(w, ticket{active: true, user: d.User, expires: now.Add(time.Duration(h.SessionDuration)), ipHash: ipHash(h.key, ip)})
		w.Header().Set("Conductor-Waiting-Room", fmt.Sprintf("admitted; seq=%d; ticket=%d", d.AdmitSeq, d.Ticket))
		return next.ServeHTTP(w, r)
	}
	decisions.WithLabelValues(h.Name, "queued").Inc()
	h.setCookie(w, ticket{user: d.User, ticket: d.Ticket, nonce: d.Nonce, expires: now.Add(time.Duration(h.Refresh)*3 + 5*time.Second)})
	return h.writeQueue(w, r, d)
}

func (h *Handler) readCookie(r *http.Request, now time.Time, ip string) (ticket, bool) {
	c, err := r.Cookie(h.cookieName())
	if err != nil {
		return ticket{}, false
	}
	tk, err := decodeTicket(c.Value, h.key, h.Name, now)
	switch err {
	case nil:
	case errExpired:
		rejectedCookies.WithLabelValues(h.Name, "expired").Inc()
		return ticket{}, false
	case errForged:
		rejectedCookies.WithLabelValues(h.Name, "forged").Inc()
		h.logger.Info("forged waiting room cookie", zap.String("client", ip))
		return ticket{}, false
	default:
		rejectedCookies.WithLabelValues(h.Name, "malformed").Inc()
		return ticket{}, false
	}
	if tk.active && tk.ipHash != ipHash(h.key, ip) {
		rejectedCookies.WithLabelValues(h.Name, "address").Inc()
		return ticket{}, false
	}
	return tk, true
}

func (h *Handler) setCookie(w http.ResponseWriter, t ticket) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cookieName(), Value: t.encode(h.key, h.Name), Path: "/",
		Expires: t.expires, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// writeQueue answers a visitor in line: the queue page, or JSON for
// Accept: application/json (Cloudflare's field names where they exist).
func (h *Handler) writeQueue(w http.ResponseWriter, r *http.Request, d Decision) error {
	refresh := int(time.Duration(h.Refresh).Seconds())
	w.Header().Set("Conductor-Waiting-Room", fmt.Sprintf("queued; position=%d; ticket=%d", d.Position, d.Ticket))
	if acceptsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		return json.NewEncoder(w).Encode(map[string]any{
			"position":               d.Position,
			"waitTime":               int(d.Wait.Seconds()),
			"waitTimeKnown":          d.WaitKnown,
			"refreshIntervalSeconds": refresh,
			"queueIsFull":            false,
			"ticket":                 d.Ticket,
		})
	}
	return pages.Write(w, r, pages.Queue, h.tmpl, http.StatusOK, pages.Data{
		Site: h.SiteName, RefreshSeconds: refresh, Position: d.Position,
		WaitKnown: d.WaitKnown, WaitText: pages.WaitText(d.Wait),
	})
}

// writeFull answers a visitor when the line is full: 503 with Retry-After,
// as a page or as JSON, and no ticket.
func (h *Handler) writeFull(w http.ResponseWriter, r *http.Request) error {
	retry := int(time.Duration(h.Refresh).Seconds())
	w.Header().Set("Conductor-Waiting-Room", "full")
	if acceptsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", fmt.Sprint(retry))
		w.WriteHeader(http.StatusServiceUnavailable)
		return json.NewEncoder(w).Encode(map[string]any{
			"queueIsFull":            true,
			"refreshIntervalSeconds": retry,
		})
	}
	return pages.Write(w, r, pages.Full, nil, http.StatusServiceUnavailable, pages.Data{Site: h.SiteName, RefreshSeconds: retry})
}

func acceptsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return a == "application/json" || (len(a) > 16 && a[:16] == "application/json")
}

func newUser() userID {
	var u userID
	rand.Read(u[:])
	return u
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
)
