// Package redirect is `conductor_redirect`, a handler for the origin's own
// Caddy server. A client that reaches the origin directly is sent to the
// best front-end for it (seed: "the public DNS performs a conventional DNS
// resolution directing the browser to an originating server 210 and server
// 210 performs a redirection of the browser"), chosen from the shifting
// manager's view the way the DNS plugin chooses: healthy front-ends that
// hold the site, the client's region first, then the least loaded.
package redirect

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/internal/nodeid"
	"github.com/conductor-edge/conductor/internal/viewfollow"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// Handler is `http.handlers.conductor_redirect`.
type Handler struct {
	// Managers are the managers' URLs (https://).
	Managers []string `json:"managers"`
	// CAFile (PEM) is trusted for the managers' certificates, besides the
	// system roots.
	CAFile string `json:"ca_file,omitempty"`
	// Node is this server's name in the fleet, with the role "origin". It
	// enrols once with JoinToken and keeps its certificate in IdentityDir
	// (default: Caddy's data directory, conductor/identity/<node>).
	Node        string `json:"node"`
	JoinToken   string `json:"join_token,omitempty"`
	IdentityDir string `json:"identity_dir,omitempty"`
	Fleet       string `json:"fleet,omitempty"`
	// Site is the site whose front-ends clients go to (default: the
	// request's host).
	Site string `json:"site,omitempty"`
	// Regions map client addresses to regions (longest prefix wins).
	Regions []Region `json:"regions,omitempty"`
	// MaxLoad: a front-end at or above it is skipped (default 0.9).
	MaxLoad float64 `json:"max_load,omitempty"`
	// Status is 307 (default) or 308: either keeps the method and body.
	Status int `json:"status,omitempty"`
	// Port is the front-ends' HTTP port in the Location (default: none,
	// the scheme's).
	Port int `json:"port,omitempty"`
	// Scheme of the Location (default: the request's).
	Scheme string `json:"scheme,omitempty"`
	// Cookie guards against loops: a client that comes back within
	// CookieMaxAge of a redirect is served here (default
	// "conductor_redirected", 60s).
	Cookie       string         `json:"cookie,omitempty"`
	CookieMaxAge caddy.Duration `json:"cookie_max_age,omitempty"`
	// MaxAge: a view older than this is not used (default 75s, three of
	// the manager's long-polls); the origin then serves.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	view     atomic.Pointer[viewfollow.View]
	viewAt   atomic.Int64 // unix ns of the last view
	prefixes []regionPrefix
	roots    *x509.CertPool
	logger   *zap.Logger
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// Region maps a client prefix to a region.
type Region struct {
	CIDR   string `json:"cidr"`
	Region string `json:"region"`
}

type regionPrefix struct {
	p      netip.Prefix
	region string
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.conductor_redirect", New: func() caddy.Module { return new(Handler) }}
}

// Provision checks the configuration and starts following the manager.
// Enrolment happens in the background, so that `caddy validate` does not
// use up the join token; until a view arrives, the origin serves.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if len(h.Managers) == 0 || h.Node == "" {
		return fmt.Errorf("conductor_redirect: managers and node are required")
	}
	if !nodeid.Valid(h.Node) {
		return fmt.Errorf("conductor_redirect: node %q: 1-64 characters of [A-Za-z0-9._-]", h.Node)
	}
	for _, m := range h.Managers {
		if err := enrol.CheckURL(m); err != nil {
			return fmt.Errorf("conductor_redirect: manager %v", err)
		}
	}
	for _, r := range h.Regions {
		p, err := netip.ParsePrefix(r.CIDR)
		if err != nil {
			return fmt.Errorf("conductor_redirect: region %s: %v", r.CIDR, err)
		}
		h.prefixes = append(h.prefixes, regionPrefix{p.Masked(), r.Region})
	}
	if h.MaxLoad == 0 {
		h.MaxLoad = 0.9
	}
	if h.Status == 0 {
		h.Status = http.StatusTemporaryRedirect
	}
	if h.Status != http.StatusTemporaryRedirect && h.Status != http.StatusPermanentRedirect {
		return fmt.Errorf("conductor_redirect: status %d: want 307 or 308 (they keep the method and the body)", h.Status)
	}
	if h.Cookie == "" {
		h.Cookie = "conductor_redirected"
	}
	if h.CookieMaxAge == 0 {
		h.CookieMaxAge = caddy.Duration(time.Minute)
	}
	if h.MaxAge == 0 {
		h.MaxAge = caddy.Duration(75 * time.Second)
	}
	if h.IdentityDir == "" {
		h.IdentityDir = filepath.Join(caddy.AppDataDir(), "conductor", "identity", h.Node)
	}
	if h.CAFile != "" {
		pool, err := enrol.LoadRoots(h.CAFile)
		if err != nil {
			return fmt.Errorf("conductor_redirect: ca_file: %v", err)
		}
		h.roots = pool
	}
	var fctx context.Context
	fctx, h.cancel = context.WithCancel(context.Background())
	h.wg.Add(1)
	go h.follow(fctx)
	return nil
}

// follow enrols (or loads the stored certificate), then follows the view.
func (h *Handler) follow(ctx context.Context) {
	defer h.wg.Done()
	var id *enrol.Identity
	for id == nil {
		var err error
		id, err = enrol.Load(ctx, enrol.Config{Dir: h.IdentityDir, Managers: h.Managers, Roots: h.roots,
			JoinToken: h.JoinToken, Fleet: h.Fleet, Name: h.Node, Role: "origin", Logger: h.logger})
		if err != nil {
			h.logger.Error("conductor_redirect: no identity; the origin serves every request itself", zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(30 * time.Second):
			}
		}
	}
	f := &viewfollow.Follower{Managers: h.Managers, Identity: id, OnView: h.setView,
		Logf: func(format string, args ...any) { h.logger.Warn(fmt.Sprintf(format, args...)) }}
	f.Run(ctx)
}

func (h *Handler) setView(v viewfollow.View) {
	h.view.Store(&v)
	h.viewAt.Store(time.Now().UnixNano())
}

// Cleanup stops following the manager.
func (h *Handler) Cleanup() error {
	if h.cancel != nil {
		h.cancel()
		h.wg.Wait()
	}
	return nil
}

// ServeHTTP redirects a client to its best front-end, or serves the
// request here: when it came from a front-end (over TMP), when the client
// was redirected a moment ago (a loop), or when no front-end can take it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if overTMP(r) {
		return next.ServeHTTP(w, r)
	}
	if c, err := r.Cookie(h.Cookie); err == nil && c.Value != "" {
		return next.ServeHTTP(w, r)
	}
	fe := h.choose(r)
	if fe == "" {
		return next.ServeHTTP(w, r)
	}
	scheme := h.Scheme
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	host := fe
	if h.Port != 0 {
		host = net.JoinHostPort(fe, strconv.Itoa(h.Port))
	} else if strings.Contains(fe, ":") {
		host = "[" + fe + "]"
	}
	http.SetCookie(w, &http.Cookie{Name: h.Cookie, Value: "1", Path: "/", MaxAge: int(time.Duration(h.CookieMaxAge).Seconds()), HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Location", scheme+"://"+host+r.URL.RequestURI())
	w.Header().Set("Cache-Control", "no-store") // the best front-end changes
	w.WriteHeader(h.Status)
	return nil
}

// overTMP reports whether r came over a TMP stream from a front-end: its
// connection's local address is the TMP session's UDP socket.
func overTMP(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && a.Network() == "udp"
}

// choose picks the front-end for r's client: among the site's front-ends
// that are healthy, hold the site's bundle and are below MaxLoad, those in
// the client's region first, then the least loaded, then by name. It
// returns the front-end's address, or "" to serve here.
func (h *Handler) choose(r *http.Request) string {
	v := h.view.Load()
	if v == nil || time.Since(time.Unix(0, h.viewAt.Load())) > time.Duration(h.MaxAge) {
		return ""
	}
	site := h.Site
	if site == "" {
		site = r.Host
		if hst, _, err := net.SplitHostPort(site); err == nil {
			site = hst
		}
	}
	region := h.regionOf(clientAddr(r))
	var best *viewfollow.Entry
	better := func(a, b *viewfollow.Entry) bool {
		if (a.Region == region) != (b.Region == region) {
			return a.Region == region
		}
		if a.Load != b.Load {
			return a.Load < b.Load
		}
		return a.Node < b.Node
	}
	entries := v.Sites[strings.ToLower(site)]
	for i := range entries {
		e := &entries[i]
		if !e.Healthy || !e.Ready || e.Load >= h.MaxLoad || net.ParseIP(hostOf(e.Addr)) == nil {
			continue
		}
		if best == nil || better(e, best) {
			best = e
		}
	}
	if best == nil {
		return ""
	}
	return hostOf(best.Addr)
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// clientAddr is the client's address as Caddy determined it (trusted
// proxies honoured).
func clientAddr(r *http.Request) netip.Addr {
	s, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if s == "" {
		s = hostOf(r.RemoteAddr)
	}
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

// regionOf is the region of the longest prefix holding a, or "".
func (h *Handler) regionOf(a netip.Addr) string {
	region, bits := "", -1
	for _, p := range h.prefixes {
		if p.p.Contains(a) && p.p.Bits() > bits {
			region, bits = p.region, p.p.Bits()
		}
	}
	return region
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
