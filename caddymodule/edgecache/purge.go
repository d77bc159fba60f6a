package edgecache

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// liveStores returns the stores that live configs use, optionally only
// the named one. The stores pool holds exactly those (each handler takes
// its store from it in Provision and gives it back in Cleanup), so the
// admin API needs no registry of its own.
func liveStores(name string) []*Store {
	var out []*Store
	stores.Range(func(_, v any) bool {
		if s, ok := v.(*Store); ok && (name == "" || s.name == name) {
			out = append(out, s)
		}
		return true
	})
	return out
}

const maxPurgeItems = 1024

// validate rejects purge requests that name nothing or too much.
func (p PurgeRequest) validate() error {
	n := len(p.URLs) + len(p.Prefixes) + len(p.Tags)
	if n == 0 {
		return fmt.Errorf("nothing to purge: give urls, prefixes or tags")
	}
	if n > maxPurgeItems {
		return fmt.Errorf("%d items to purge; at most %d per request", n, maxPurgeItems)
	}
	for _, lists := range [][]string{p.URLs, p.Prefixes, p.Tags} {
		for _, s := range lists {
			if strings.TrimSpace(s) == "" || len(s) > 8192 {
				return fmt.Errorf("empty or oversized purge item")
			}
		}
	}
	for _, pre := range p.Prefixes {
		if !strings.Contains(stripScheme(pre), "/") {
			return fmt.Errorf("prefix %q: give a host and a path, such as shop.example/catalog/", pre)
		}
	}
	return nil
}

// servePurge obeys the PURGE method from allowed clients:
//
//	PURGE /path               the URL (every variant)
//	PURGE /path/*             every URL of this host under /path/
//	PURGE / + Surrogate-Key   every entry with one of the (space-separated) tags
//	  (or Cache-Tag, comma-separated)
//	Soft-Purge: 1             mark stale instead of removing
//
// It answers 200 with {"purged": n}, 403 to clients outside purge_allow,
// 400 to malformed requests.
func (h *Handler) servePurge(w http.ResponseWriter, r *http.Request) error {
	if !h.purgeAllowed(r) {
		return caddyhttp.Error(http.StatusForbidden, fmt.Errorf("PURGE from a client outside purge_allow"))
	}
	p := PurgeRequest{Soft: r.Header.Get("Soft-Purge") == "1"}
	if vals := r.Header.Values("Surrogate-Key"); len(vals) > 0 || len(r.Header.Values("Cache-Tag")) > 0 {
		p.Tags = tagsOf(r.Header)
		if len(p.Tags) == 0 {
			return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("PURGE with an empty Surrogate-Key or Cache-Tag"))
		}
	} else {
		key := primaryKey(r)
		if strings.HasSuffix(key, "*") {
			p.Prefixes = []string{strings.TrimSuffix(key, "*")}
		} else {
			p.URLs = []string{key}
		}
	}
	if err := p.validate(); err != nil {
		return caddyhttp.Error(http.StatusBadRequest, err)
	}
	n := h.store.purge(p)
	h.logger.Info("purged", zap.Strings("urls", p.URLs), zap.Strings("prefixes", p.Prefixes),
		zap.Strings("tags", p.Tags), zap.Bool("soft", p.Soft), zap.Int("entries", n))
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]int{"purged": n})
}

func (h *Handler) purgeAllowed(r *http.Request) bool {
	addr, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if addr == "" {
		addr = r.RemoteAddr
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	ip := net.ParseIP(addr)
	if ip == nil {
		return false
	}
	for _, n := range h.purgeNets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
