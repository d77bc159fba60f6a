package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/cachebench"
)

// The cache benchmark runs end to end: every peer answers every request
// of a short wrk run, and the edge_cache peers are measured on hits. It
// asserts no speed; `conductor bench cache` reports that.
func TestCacheBenchSmoke(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk is not installed (.ci/run installs Debian's wrk)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := cachebench.Run(ctx, cachebench.Options{Binary: binary, Duration: time.Second, Connections: 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Peers {
		if p.RequestsSec <= 0 || p.Non2xx != 0 || p.SocketErrs != 0 {
			t.Errorf("%s: %+v", p.Key, p)
		}
		if strings.HasPrefix(p.Key, "edge_cache") && !strings.HasPrefix(p.CacheStatus, "conductor; hit") {
			t.Errorf("%s measured without hits: Cache-Status %q", p.Key, p.CacheStatus)
		}
	}
	t.Logf("\n%s", rep.Table())
}
