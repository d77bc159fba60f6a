package shifting

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Back-end assignment: the seed's back-end manager assigns back-ends to
// sites, as the front-end manager assigns front-ends. A site's back-ends
// are many to many with other sites'; the front-ends dial the upstream
// addresses the back-ends report, through the `dynamic conductor`
// upstreams (caddymodule/agent), which follow every change at once.
// Releasing a back-end takes it out of the list: new requests go
// elsewhere, and those in flight finish on their streams.

// upstreamsLocked lists the upstreams of site's back-ends: the healthy
// ones, or all of them when none is (a front-end still tries them).
func (m *Manager) upstreamsLocked(s *Site) []string {
	now := time.Now()
	var healthy, all []string
	for id := range s.Backends {
		n := m.state.Nodes[id]
		if n == nil || n.Report.Upstream == "" {
			continue
		}
		all = append(all, n.Report.Upstream)
		if n.Healthy(now) {
			healthy = append(healthy, n.Report.Upstream)
		}
	}
	if len(healthy) == 0 {
		healthy = all
	}
	slices.Sort(healthy)
	return healthy
}

func (m *Manager) handleAssignBackend(w http.ResponseWriter, r *http.Request, c caller) {
	site := r.PathValue("site")
	var req struct {
		Node string `json:"node"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.Node == "" {
		http.Error(w, `want {"node": "<back-end id>"}`, http.StatusBadRequest)
		return
	}
	if !validSiteName(site) {
		http.Error(w, "site is not a host name", http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.state.Nodes[req.Node]
	if n == nil || n.Report.Role != "backend" {
		http.Error(w, "no back-end "+req.Node, http.StatusNotFound)
		return
	}
	if n.Report.Upstream == "" {
		http.Error(w, "back-end "+req.Node+" reports no upstream address (its agent's upstream option)", http.StatusConflict)
		return
	}
	s := m.siteLocked(site)
	if s.Backends == nil {
		s.Backends = map[string]*Assignment{}
	}
	now := time.Now()
	s.Backends[req.Node] = &Assignment{Node: req.Node, Since: now, Pinned: true, Reason: "operator"}
	d := Decision{Time: now, Site: site, Node: req.Node, Action: "assign-backend", Reason: "operator request", By: c.operator.Name}
	m.recordLocked(d)
	m.bumpLocked()
	writeJSON(w, d)
}

func (m *Manager) handleReleaseBackend(w http.ResponseWriter, r *http.Request, c caller) {
	m.release(w, r, c, func(s *Site) map[string]*Assignment { return s.Backends }, "release-backend", "operator request: its streams drain")
}

// placeBackends gives a site a back-end when none of its back-ends is
// healthy, or another when all of them are overloaded: the healthy
// back-end with an upstream that scores best on load and on the link
// quality the site's front-ends report to it.
func (p *Policy) placeBackends(st *Snapshot, s *Site, now time.Time) *Decision {
	healthy, overloaded := 0, 0
	for id := range s.Backends {
		if n := st.Nodes[id]; n != nil && n.Healthy(now) {
			healthy++
			if n.Report.Load > p.MaxLoad {
				overloaded++
			}
		}
	}
	if healthy > 0 && overloaded < healthy {
		return nil
	}
	best, bestScore := "", math.Inf(1)
	for id, n := range st.Nodes {
		if n.Report.Role != "backend" || n.Report.Upstream == "" || !n.Healthy(now) || s.Backends[id] != nil || n.Report.Load > p.MaxLoad {
			continue
		}
		score := n.Report.Load + linkScore(st, s, n.Report.Upstream)
		if score < bestScore || (score == bestScore && strings.Compare(id, best) < 0) {
			best, bestScore = id, score
		}
	}
	if best == "" {
		return nil
	}
	reason := "no healthy back-end serves the site"
	if healthy > 0 {
		reason = fmt.Sprintf("all %d back-end(s) of the site are overloaded (load > %.2f)", healthy, p.MaxLoad)
	}
	if s.Backends == nil {
		s.Backends = map[string]*Assignment{}
	}
	s.Backends[best] = &Assignment{Node: best, Since: now, Reason: reason}
	return &Decision{Time: now, Site: s.Name, Node: best, Action: "assign-backend", Reason: reason, By: "placement"}
}

// linkScore is the mean cost of the links from the site's front-ends to
// upstream: 100 ms of RTT, or 10 % loss, weigh as much as a full load. A
// back-end no front-end has measured scores 0.5.
func linkScore(st *Snapshot, s *Site, upstream string) float64 {
	sum, n := 0.0, 0
	for id := range s.Assigned {
		node := st.Nodes[id]
		if node == nil {
			continue
		}
		if q, ok := node.Report.Links[upstream]; ok {
			sum += q.RTTMS/100 + q.Loss*10
			n++
		}
	}
	if n == 0 {
		return 0.5
	}
	return sum / float64(n)
}

// validSiteName: a host name, as bundles and the API name sites.
func validSiteName(site string) bool {
	return site != "" && len(site) <= 253 && !strings.ContainsAny(site, "/\\ \t\n:*")
}
