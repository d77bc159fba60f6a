// Package inproc runs a real Caddy inside a test process, from a
// Caddyfile, for tests of one handler at a time (the end-to-end tests run
// whole processes instead).
package inproc

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile" // the adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/conductor-edge/conductor/internal/topology"
)

// Port returns a port that no address of this machine listens on, from
// below the kernel's ephemeral range (topology.FreePortRunOn says why).
// Caddy binds a site's port on every address (":port"), so a port free on
// 127.0.0.1 alone is not enough: an end-to-end test may hold it on
// 127.0.0.4 (that collision failed a CI run once).
func Port(t testing.TB) int {
	t.Helper()
	p, err := topology.FreePortRunOn("", 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Load adapts a Caddyfile and runs it, replacing the running config;
// Caddy stops when the test ends.
func Load(t testing.TB, caddyfile string) {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting: %v\n%s", err, caddyfile)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading: %v", err)
	}
	t.Cleanup(func() { caddy.Stop() })
}
