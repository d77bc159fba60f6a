package loadindex

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is `admin.api.load_index`: the operator (or the origin's own
// tooling) sets the origin's load index on the back-end.
//
//	POST /load_index  {"index": 1.2, "ttl": "10m"}   ttl default 5m; index 0 clears
//	GET  /load_index  the operator's index and until when it holds
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.load_index",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/load_index", Handler: caddy.AdminHandlerFunc(handleAdmin)}}
}

func handleAdmin(w http.ResponseWriter, r *http.Request) error {
	m := liveMeter()
	if m == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no load_index handler in the running config")}
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		var req struct {
			Index float64 `json:"index"`
			TTL   string  `json:"ttl"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding: %v", err)}
		}
		if req.Index < 0 || req.Index > 100 || math.IsNaN(req.Index) {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("index %v out of range 0..100", req.Index)}
		}
		ttl := 5 * time.Minute
		if req.TTL != "" {
			d, err := caddy.ParseDuration(req.TTL)
			if err != nil || d <= 0 {
				return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("ttl %q: want a positive duration", req.TTL)}
			}
			ttl = d
		}
		m.manual.Store(math.Float64bits(req.Index))
		if req.Index == 0 {
			m.manualTo.Store(0)
		} else {
			m.manualTo.Store(time.Now().Add(ttl).UnixNano())
		}
	default:
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	out := map[string]any{"operator_index": 0.0}
	if to := m.manualTo.Load(); to != 0 && time.Now().UnixNano() < to {
		out["operator_index"] = math.Float64frombits(m.manual.Load())
		out["until"] = time.Unix(0, to).UTC().Format(time.RFC3339)
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

var _ caddy.AdminRouter = AdminAPI{}
