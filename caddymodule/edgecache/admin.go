package edgecache

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is `admin.api.edge_cache`: purge and statistics on Caddy's
// admin endpoint.
//
//	POST /edge_cache/purge   {"urls": [...], "prefixes": [...], "tags": [...], "soft": bool, "cache": "name"}
//	GET  /edge_cache/stats   one object per store
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.edge_cache",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/edge_cache/purge", Handler: caddy.AdminHandlerFunc(handlePurge)},
		{Pattern: "/edge_cache/stats", Handler: caddy.AdminHandlerFunc(handleStats)},
	}
}

type adminPurge struct {
	PurgeRequest
	Cache string `json:"cache,omitempty"`
}

func handlePurge(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	var req adminPurge
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding purge request: %v", err)}
	}
	if err := req.validate(); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	stores := liveStores(req.Cache)
	if req.Cache != "" && len(stores) == 0 {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no cache named %q", req.Cache)}
	}
	n := 0
	for _, s := range stores {
		n += s.purge(req.PurgeRequest)
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]int{"purged": n})
}

func handleStats(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	out := []Stats{}
	for _, s := range liveStores("") {
		out = append(out, s.stats())
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

var _ caddy.AdminRouter = AdminAPI{}
