// Package viewfollow follows the shifting manager's view of which
// front-ends serve each site (GET /v1/view, long-polled), as a node of the
// fleet: with its enrolled certificate, renewed as it goes, and moving to
// the next manager when one fails or does not lead. The DNS plugin and the
// origin's redirect (conductor_redirect) both answer from it.
package viewfollow

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/conductor-edge/conductor/internal/enrol"
)

// Entry is one front-end serving a site, as the manager's view lists it
// (shifting.ViewEntry, repeated so that followers do not depend on the
// manager's package).
type Entry struct {
	Node    string  `json:"node"`
	Addr    string  `json:"addr"`
	Region  string  `json:"region"`
	Load    float64 `json:"load"`
	Healthy bool    `json:"healthy"`
	Ready   bool    `json:"ready"` // it reports the site's current bundle installed
}

// View is the manager's view: the front-ends per site.
type View struct {
	Version uint64             `json:"version"`
	Sites   map[string][]Entry `json:"sites"`
}

// maxViewBytes bounds what one view may take to read.
const maxViewBytes = 8 << 20

// Follower long-polls the managers.
type Follower struct {
	Managers []string
	Identity *enrol.Identity
	// OnView gets every view as it arrives.
	OnView func(View)
	// Logf reports failures (the host's logger).
	Logf func(format string, args ...any)

	client *http.Client
	cur    int // the manager followed (Run's goroutine only)
}

// Run follows until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = f.Identity.TLSConfig()
	f.client = &http.Client{Timeout: 40 * time.Second, Transport: tr}
	defer f.client.CloseIdleConnections()
	var version uint64
	for ctx.Err() == nil {
		if err := f.Identity.MaybeRenew(ctx); err != nil {
			f.Logf("%v", err)
		}
		next, err := f.poll(ctx, version)
		if err != nil {
			if ctx.Err() == nil {
				f.Logf("manager %s: %v", f.Managers[f.cur], err)
				// Another manager may lead now (they share etcd).
				f.cur = (f.cur + 1) % len(f.Managers)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		version = next
	}
}

func (f *Follower) poll(ctx context.Context, version uint64) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/view?wait=%d", f.Managers[f.cur], version), nil)
	if err != nil {
		return 0, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("view: %s", resp.Status)
	}
	var v View
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxViewBytes)).Decode(&v); err != nil {
		return 0, err
	}
	f.OnView(v)
	return v.Version, nil
}
