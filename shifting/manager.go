package shifting

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Config configures a Manager.
type Config struct {
	// Fleet names the fleet whose node certificates the API accepts
	// (their URI SAN conductor://<fleet>/<role>/<name>). The TLS layer
	// verifies the chain against the fleet CA; Fleet is checked here.
	Fleet string
	// Operators are the operators' credentials.
	Operators []Operator
	// Issuer is the fleet CA, which signs node certificates at enrolment
	// and renewal; CertLifetime is their lifetime (default 24h).
	Issuer       Issuer
	CertLifetime time.Duration
	// SigningKey verifies bundle signatures; nil accepts unsigned bundles.
	SigningKey ed25519.PublicKey
	Store      Store
	Policy     Policy
	Logger     *zap.Logger
	// Election, when set (several managers on one etcd), lets only the
	// leader run placement and answer the API; the others answer 503
	// naming the leader, and take over when its lease expires.
	Election Election
}

// Election elects one manager among several.
type Election interface {
	// Campaign blocks until this manager leads; the channel closes when
	// it no longer does.
	Campaign(ctx context.Context) (<-chan struct{}, error)
	Leader() bool
	LeaderID(ctx context.Context) string
}

// Manager is the management component.
type Manager struct {
	cfg    Config
	logger *zap.Logger

	mu    sync.Mutex
	state *Snapshot
	// issued are the room leases given, by node and room (leases.go):
	// not state, as they expire within seconds; a new leader starts
	// without them and counts the front-ends' reported visitors instead.
	issued  map[string]map[string]issuedLease
	changed chan struct{} // closed and replaced on every change (long-poll wake-up)
	// leading: this manager won the election and has loaded the state the
	// previous leader left. Until then it must not answer: winning comes
	// before loading, and an answer in between would show an empty state.
	leading atomic.Bool
	mux     *http.ServeMux
	// peerLog limits the logs that anyone on the network can cause.
	peerLog *rate.Limiter
}

// New loads the state and returns a manager; Run drives its placement.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("shifting: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Fleet == "" {
		cfg.Fleet = "conductor"
	}
	cfg.Policy.defaults()
	st, err := cfg.Store.Load()
	if err != nil {
		return nil, fmt.Errorf("shifting: loading state: %v", err)
	}
	m := &Manager{cfg: cfg, logger: cfg.Logger, state: st, changed: make(chan struct{}), peerLog: rate.NewLimiter(1, 3), issued: map[string]map[string]issuedLease{}}
	m.mux = m.routes()
	return m, nil
}

// Run runs placement every Policy.Interval until ctx ends; with an
// Election, only while this manager leads, from the state as the previous
// leader left it in the store.
func (m *Manager) Run(ctx context.Context) {
	if m.cfg.Election == nil {
		m.place(ctx, nil)
		return
	}
	for ctx.Err() == nil {
		lost, err := m.cfg.Election.Campaign(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.logger.Warn("election", zap.Error(err))
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		st, err := m.cfg.Store.Load()
		if err != nil {
			m.logger.Error("leader: loading state", zap.Error(err))
			continue
		}
		m.mu.Lock()
		// Version numbers keep growing across leaders, so long-polls that
		// followed the old leader see the change.
		st.Version = max(st.Version, m.state.Version) + 1
		m.state = st
		close(m.changed)
		m.changed = make(chan struct{})
		m.mu.Unlock()
		m.leading.Store(true)
		m.logger.Info("leading", zap.Int("sites", len(st.Sites)), zap.Int("nodes", len(st.Nodes)))
		m.place(ctx, lost)
		m.leading.Store(false)
		m.logger.Warn("no longer leading")
	}
}

func (m *Manager) place(ctx context.Context, lost <-chan struct{}) {
	t := time.NewTicker(m.cfg.Policy.Interval)
	defer t.Stop()
	healthy := map[string]bool{} // as last published
	for {
		select {
		case <-ctx.Done():
			return
		case <-lost:
			return
		case now := <-t.C:
			m.mu.Lock()
			decisions := m.cfg.Policy.place(m.state, now)
			for _, d := range decisions {
				m.logger.Info("placement", zap.String("site", d.Site), zap.String("node", d.Node), zap.String("action", d.Action), zap.String("reason", d.Reason))
			}
			// A node that stops reporting changes no state by itself; the
			// view it is in must still change, or DNS long-polls would go on
			// answering with it.
			healthChanged := false
			for id, n := range m.state.Nodes {
				if h := n.Healthy(now); h != healthy[id] {
					healthy[id] = h
					healthChanged = true
				}
			}
			if len(decisions) > 0 {
				m.recordLocked(decisions...)
			}
			if len(decisions) > 0 || healthChanged {
				m.bumpLocked()
			}
			m.mu.Unlock()
		}
	}
}

func (m *Manager) recordLocked(ds ...Decision) {
	m.state.Decisions = append(m.state.Decisions, ds...)
	if n := len(m.state.Decisions); n > 200 {
		m.state.Decisions = slices.Clone(m.state.Decisions[n-200:])
	}
}

// bumpLocked publishes a change: long-polls wake, the state is saved.
func (m *Manager) bumpLocked() {
	m.state.Version++
	close(m.changed)
	m.changed = make(chan struct{})
	m.saveLocked()
}

// saveLocked saves the state; a change that nodes and DNS do not see (a
// join token) is saved without waking them.
func (m *Manager) saveLocked() error {
	err := m.cfg.Store.Save(m.state)
	if err != nil {
		m.logger.Error("saving state", zap.Error(err))
	}
	return err
}

// ServeHTTP is the manager's API and status page.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mux.ServeHTTP(w, r)
}

// routes lists the API, with who may call each endpoint (auth.go).
//
//	POST   /v1/nodes/{id}/report          a node's report                    the node itself
//	GET    /v1/nodes/{id}/assignments     ?wait=VERSION long-polls           the node itself
//	DELETE /v1/nodes/{id}                 revoke a node's certificates       admin
//	POST   /v1/enroll                     join token + CSR → certificate     the join token
//	POST   /v1/renew                      CSR → a new certificate            any node, as itself
//	POST   /v1/join-tokens                {node, role, hosts, ttl}           admin
//	POST   /v1/bundles                    bundle bytes; X-Bundle-Digest,     admin
//	                                      X-Bundle-Signature (hex)
//	GET    /v1/bundles/{digest}                                              any node, admin
//	POST   /v1/sites/{site}/assign        {"node": id}, pinned               admin
//	DELETE /v1/sites/{site}/assign/{id}                                      admin
//	POST   /v1/sites/{site}/backends      {"node": id}, pinned               admin
//	DELETE /v1/sites/{site}/backends/{id}                                    admin
//	POST   /v1/sites/{site}/pull          {"node": id}: a front-end asks     the front-end itself
//	                                      for a site on a first request
//	GET    /v1/view                       ?site=S&wait=VERSION, for DNS      any node, read
//	GET    /v1/events                     server-sent events of the view     any node, read
//	GET    /v1/state                      everything, for the status page    read
//	GET    /status                        the status page (it reads          everyone (no data)
//	                                      /v1/state with the operator's key)
func (m *Manager) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveStatus)
	mux.HandleFunc("GET /status", serveStatus)
	h := func(pattern string, may access, f func(http.ResponseWriter, *http.Request, caller)) {
		mux.Handle(pattern, m.guard(may, f))
	}
	h("POST /v1/nodes/{id}/report", nodeSelf, m.handleReport)
	h("GET /v1/nodes/{id}/assignments", nodeSelf, m.handleAssignments)
	h("DELETE /v1/nodes/{id}", operatorWith(RoleAdmin), m.handleRevoke)
	h("POST /v1/enroll", open, m.handleEnroll)
	h("POST /v1/renew", anyNode, m.handleRenew)
	h("POST /v1/join-tokens", operatorWith(RoleAdmin), m.handleJoinToken)
	h("POST /v1/bundles", operatorWith(RoleAdmin), m.handleUpload)
	h("GET /v1/bundles/{digest}", either(anyNode, operatorWith(RoleAdmin)), m.handleDownload)
	h("POST /v1/sites/{site}/assign", operatorWith(RoleAdmin), m.handleAssign)
	h("DELETE /v1/sites/{site}/assign/{id}", operatorWith(RoleAdmin), m.handleRelease)
	h("POST /v1/sites/{site}/backends", operatorWith(RoleAdmin), m.handleAssignBackend)
	h("DELETE /v1/sites/{site}/backends/{id}", operatorWith(RoleAdmin), m.handleReleaseBackend)
	h("POST /v1/sites/{site}/pull", anyNode, m.handlePull)
	h("GET /v1/view", viewer, m.handleView)
	h("GET /v1/events", viewer, m.handleEvents)
	h("GET /v1/state", operatorWith(RoleRead), m.handleState)
	return mux
}

// guard checks the caller, then leadership, then calls f.
func (m *Manager) guard(may access, f func(http.ResponseWriter, *http.Request, caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := m.identify(r)
		if err := may(c, r); err != nil {
			if err == errNoCredential {
				w.Header().Set("WWW-Authenticate", `Bearer realm="conductor"`)
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			http.Error(w, c.String()+" may not "+r.Method+" "+r.URL.Path+": "+err.Error(), http.StatusForbidden)
			return
		}
		if e := m.cfg.Election; e != nil && !(e.Leader() && m.leading.Load()) {
			leader := e.LeaderID(r.Context())
			w.Header().Set("X-Conductor-Leader", leader)
			http.Error(w, "not the leading manager; the leader is "+leader, http.StatusServiceUnavailable)
			return
		}
		f(w, r, c)
	})
}

// handleState shows everything but the join tokens' hashes.
func (m *Manager) handleState(w http.ResponseWriter, r *http.Request, _ caller) {
	m.mu.Lock()
	st := *m.state
	st.JoinTokens = make(map[string]*JoinToken, len(m.state.JoinTokens))
	for id, jt := range m.state.JoinTokens {
		c := *jt
		c.Hash = ""
		st.JoinTokens[id[:8]] = &c
	}
	// The leases are not state: they are computed from the latest
	// reports, and shown beside it.
	b, _ := json.Marshal(struct {
		*Snapshot
		Leases []leaseView `json:"leases"`
	}{&st, m.leasesViewLocked(time.Now())})
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// handleReport takes a node's report. The node is known by its
// certificate (nodeSelf checked the path), and the report may say only
// what the certificate allows: the node's own ID, its role, and addresses
// pinned at enrolment. Otherwise a node could point DNS anywhere.
func (m *Manager) handleReport(w http.ResponseWriter, r *http.Request, c caller) {
	id := c.node.Name
	var rep NodeReport
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&rep); err != nil {
		http.Error(w, "report: "+err.Error(), http.StatusBadRequest)
		return
	}
	if rep.ID != id || (rep.Role != "frontend" && rep.Role != "backend") {
		http.Error(w, "report: id must match the path, role must be frontend or backend", http.StatusBadRequest)
		return
	}
	if rep.Role != c.node.Role && c.node.Role != "both" {
		http.Error(w, fmt.Sprintf("report: role %s, but the node's certificate says %s", rep.Role, c.node.Role), http.StatusForbidden)
		return
	}
	if len(rep.Rooms) > maxFleetLimits || len(rep.Gates) > maxFleetLimits {
		http.Error(w, fmt.Sprintf("report: at most %d rooms and %d gates", maxFleetLimits, maxFleetLimits), http.StatusBadRequest)
		return
	}
	for _, a := range []string{rep.Addr, rep.Probe, rep.Peer, rep.Upstream} {
		if !c.node.Claims(a) {
			http.Error(w, fmt.Sprintf("report: address %s is not pinned in the node's certificate (it may claim %v)", a, c.node.Hosts), http.StatusForbidden)
			return
		}
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	n, known := m.state.Nodes[id]
	if !known {
		n = &Node{}
		m.state.Nodes[id] = n
	}
	inventoryChanged := !known || !mapsEqual(n.Report.Bundles, rep.Bundles) || !n.Healthy(now)
	n.Report, n.LastSeen = rep, now
	if rep.Failed != "" {
		m.logger.Warn("node failed to install a bundle", zap.String("node", id), zap.String("error", rep.Failed))
	}
	if inventoryChanged {
		m.bumpLocked()
	}
	// The answer carries the node's admission leases, computed from every
	// front-end's latest report: each report renews them.
	if ans := m.leasesLocked(id, now, true); len(ans.Rooms)+len(ans.Gates) > 0 {
		writeJSON(w, ans)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// waitChange long-polls: it returns at once if the state's version is not
// wait, or when it changes, or after 25 s.
func (m *Manager) waitChange(r *http.Request) {
	v, err := strconv.ParseUint(r.URL.Query().Get("wait"), 10, 64)
	if err != nil {
		return
	}
	m.mu.Lock()
	if m.state.Version != v {
		m.mu.Unlock()
		return
	}
	ch := m.changed
	m.mu.Unlock()
	t := time.NewTimer(25 * time.Second)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-r.Context().Done():
	}
}

// Assignments is what a node gets: the sites it should serve and their bundles.
type Assignments struct {
	Version uint64            `json:"version"`
	Sites   map[string]string `json:"sites"`
	// Peers lists, per site, the front-ends that hold its current bundle:
	// the node fetches it from them first, sparing the manager.
	Peers map[string][]string `json:"peers,omitempty"`
	// Backends lists, per site, the upstream addresses of the back-ends
	// assigned to it (the healthy ones; all of them if none is).
	Backends map[string][]string `json:"backends,omitempty"`
}

func (m *Manager) handleAssignments(w http.ResponseWriter, r *http.Request, c caller) {
	node := c.node.Name
	m.waitChange(r)
	m.mu.Lock()
	out := Assignments{Version: m.state.Version, Sites: map[string]string{}, Peers: map[string][]string{}, Backends: map[string][]string{}}
	for name, s := range m.state.Sites {
		if ups := m.upstreamsLocked(s); len(ups) > 0 {
			out.Backends[name] = ups
		}
		if _, ok := s.Assigned[node]; ok && s.Bundle != "" {
			out.Sites[name] = s.Bundle
			if peers := m.peersLocked(name, node); len(peers) > 0 {
				out.Peers[name] = peers
			}
		}
	}
	m.mu.Unlock()
	writeJSON(w, out)
}

func (m *Manager) handleUpload(w http.ResponseWriter, r *http.Request, _ caller) {
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxBundleBytes+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sig, err := hex.DecodeString(r.Header.Get("X-Bundle-Signature"))
	if err != nil {
		http.Error(w, "X-Bundle-Signature is not hex", http.StatusBadRequest)
		return
	}
	v, err := Verify(data, r.Header.Get("X-Bundle-Digest"), sig, m.cfg.SigningKey)
	if err != nil {
		m.logger.Warn("bundle rejected", zap.Error(err))
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	if err := m.cfg.Store.PutBundle(v.Digest, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	info := &BundleInfo{Digest: v.Digest, Site: v.Manifest.Site, Version: v.Manifest.Version, Size: len(data), Signature: sig, Stored: time.Now().UTC()}
	m.mu.Lock()
	m.state.Bundles[v.Digest] = info
	site := m.siteLocked(v.Manifest.Site)
	if site.Bundle != v.Digest {
		site.Bundle = v.Digest
		for node := range site.Assigned {
			m.recordLocked(Decision{Time: time.Now(), Site: site.Name, Node: node, Action: "update", Reason: "bundle version " + v.Manifest.Version + " uploaded", By: "operator"})
		}
	}
	m.bumpLocked()
	m.mu.Unlock()
	m.logger.Info("bundle stored", zap.String("site", info.Site), zap.String("version", info.Version), zap.String("digest", info.Digest))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(info)
}

func (m *Manager) siteLocked(name string) *Site {
	s := m.state.Sites[name]
	if s == nil {
		// A new site's settle clock starts now: placement does not act on
		// it before Settle has passed, so an operator who uploads a bundle
		// and then assigns it is not raced by an automatic assignment.
		s = &Site{Name: name, Assigned: map[string]*Assignment{}, Demand: map[string]float64{}, LastChange: time.Now()}
		m.state.Sites[name] = s
	}
	return s
}

func (m *Manager) handleDownload(w http.ResponseWriter, r *http.Request, _ caller) {
	digest := r.PathValue("digest")
	m.mu.Lock()
	info := m.state.Bundles[digest]
	m.mu.Unlock()
	if info == nil {
		http.Error(w, "no such bundle", http.StatusNotFound)
		return
	}
	data, err := m.cfg.Store.GetBundle(digest)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("X-Bundle-Digest", digest)
	w.Header().Set("X-Bundle-Signature", hex.EncodeToString(info.Signature))
	w.Write(data)
}

// siteForNodeLocked reads {"node": id} and checks that site has a bundle
// and id is a known front-end; it answers the error itself.
func (m *Manager) siteForNodeLocked(w http.ResponseWriter, r *http.Request, site string) (*Site, string, bool) {
	var req struct {
		Node string `json:"node"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.Node == "" {
		http.Error(w, `want {"node": "<id>"}`, http.StatusBadRequest)
		return nil, "", false
	}
	s := m.state.Sites[site]
	if s == nil || s.Bundle == "" {
		http.Error(w, "no bundle for site "+site, http.StatusNotFound)
		return nil, "", false
	}
	if n := m.state.Nodes[req.Node]; n == nil || n.Report.Role != "frontend" {
		http.Error(w, "no front-end "+req.Node, http.StatusNotFound)
		return nil, "", false
	}
	return s, req.Node, true
}

func (m *Manager) handleAssign(w http.ResponseWriter, r *http.Request, c caller) {
	site := r.PathValue("site")
	m.mu.Lock()
	defer m.mu.Unlock()
	s, node, ok := m.siteForNodeLocked(w, r, site)
	if !ok {
		return
	}
	now := time.Now()
	s.Assigned[node] = &Assignment{Node: node, Since: now, Pinned: true, Reason: "operator"}
	s.LastChange = now
	d := Decision{Time: now, Site: site, Node: node, Action: "assign", Reason: "operator request", By: c.operator.Name}
	m.recordLocked(d)
	m.bumpLocked()
	writeJSON(w, d)
}

// PullAnswer tells a front-end that asked for a site which bundle to
// install, and which peers already hold it.
type PullAnswer struct {
	Digest string   `json:"digest"`
	Peers  []string `json:"peers"` // front-ends holding the bundle (host:port of their peer listener)
}

// handlePull assigns the site to the asking front-end, on demand: the
// first request for a site the front-end lacks. Placement may release it
// later, like any assignment it did not get from the operator.
func (m *Manager) handlePull(w http.ResponseWriter, r *http.Request, c caller) {
	site := r.PathValue("site")
	m.mu.Lock()
	defer m.mu.Unlock()
	s, node, ok := m.siteForNodeLocked(w, r, site)
	if !ok {
		return
	}
	if node != c.node.Name || !isFrontend(c.node) {
		http.Error(w, "a front-end pulls sites for itself only", http.StatusForbidden)
		return
	}
	ans := PullAnswer{Digest: s.Bundle, Peers: m.peersLocked(site, node)}
	now := time.Now()
	if s.Assigned[node] == nil {
		s.Assigned[node] = &Assignment{Node: node, Since: now, Reason: "pulled on demand: first request for the site"}
		s.LastChange, s.LowSince = now, time.Time{}
		m.recordLocked(Decision{Time: now, Site: site, Node: node, Action: "assign", Reason: "pulled on demand: first request for the site", By: "node"})
		m.bumpLocked()
	}
	writeJSON(w, ans)
}

// peersLocked lists the healthy front-ends other than node that hold
// site's current bundle.
func (m *Manager) peersLocked(site, node string) []string {
	s := m.state.Sites[site]
	now := time.Now()
	peers := []string{}
	for id, n := range m.state.Nodes {
		if id != node && n.Healthy(now) && n.Report.Bundles[site] == s.Bundle && n.Report.Peer != "" {
			peers = append(peers, n.Report.Peer)
		}
	}
	slices.Sort(peers)
	return peers
}

func (m *Manager) handleRelease(w http.ResponseWriter, r *http.Request, c caller) {
	m.release(w, r, c, func(s *Site) map[string]*Assignment { return s.Assigned }, "release", "operator request")
}

// release ends the assignment of node {id} to site {site} in the map that
// of picks (front-ends or back-ends), as the operator asked.
func (m *Manager) release(w http.ResponseWriter, r *http.Request, c caller, of func(*Site) map[string]*Assignment, action, reason string) {
	site, node := r.PathValue("site"), r.PathValue("id")
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.state.Sites[site]
	if s == nil || of(s)[node] == nil {
		http.Error(w, "not assigned", http.StatusNotFound)
		return
	}
	delete(of(s), node)
	m.recordLocked(Decision{Time: time.Now(), Site: site, Node: node, Action: action, Reason: reason, By: c.operator.Name})
	m.bumpLocked()
	w.WriteHeader(http.StatusNoContent)
}

// ViewEntry is one front-end serving a site, as DNS sees it.
type ViewEntry struct {
	Node    string  `json:"node"`
	Addr    string  `json:"addr"`
	Region  string  `json:"region"`
	Load    float64 `json:"load"`
	Healthy bool    `json:"healthy"`
	// Ready: the node reports the site's current bundle installed.
	Ready bool `json:"ready"`
}

// View is the per-site front-end list for DNS.
type View struct {
	Version uint64                 `json:"version"`
	Sites   map[string][]ViewEntry `json:"sites"`
}

func (m *Manager) viewLocked(only string) View {
	now := time.Now()
	v := View{Version: m.state.Version, Sites: map[string][]ViewEntry{}}
	for name, s := range m.state.Sites {
		if only != "" && only != name {
			continue
		}
		entries := []ViewEntry{}
		for id := range s.Assigned {
			n := m.state.Nodes[id]
			if n == nil {
				continue
			}
			entries = append(entries, ViewEntry{Node: id, Addr: n.Report.Addr, Region: n.Report.Region, Load: n.Report.Load,
				Healthy: n.Healthy(now), Ready: n.Report.Bundles[name] == s.Bundle})
		}
		slices.SortFunc(entries, func(a, b ViewEntry) int { return strings.Compare(a.Node, b.Node) })
		v.Sites[name] = entries
	}
	return v
}

func (m *Manager) handleView(w http.ResponseWriter, r *http.Request, _ caller) {
	m.waitChange(r)
	m.mu.Lock()
	v := m.viewLocked(r.URL.Query().Get("site"))
	m.mu.Unlock()
	writeJSON(w, v)
}

func (m *Manager) handleEvents(w http.ResponseWriter, r *http.Request, _ caller) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	for {
		m.mu.Lock()
		v := m.viewLocked(r.URL.Query().Get("site"))
		ch := m.changed
		m.mu.Unlock()
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: view\ndata: %s\n\n", b)
		fl.Flush()
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
