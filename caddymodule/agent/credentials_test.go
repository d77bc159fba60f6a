package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// loadErr adapts and loads a Caddyfile that must fail to provision, and
// returns the error.
func loadErr(t *testing.T, caddyfile string) error {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return err
	}
	err = caddy.Load(cfg, true)
	if err == nil {
		caddy.Stop()
	}
	return err
}

// An empty or missing credential refuses to start, and the error says what
// to set. Before, a manager with no token served an open API, and an agent
// with none reported to it.
func TestEmptyCredentialRefusesToStart(t *testing.T) {
	for name, c := range map[string]struct{ caddyfile, want string }{
		"manager without token": {`{
	admin off
	conductor_manager {
		listen 127.0.0.1:0
	}
}`, "conductor_manager: token is required: set token <secret>"},
		"agent without token": {`{
	admin off
	conductor_agent {
		manager https://manager.example:7443
		node fe1
	}
}`, "conductor_agent: token is required: set token <secret>"},
	} {
		if err := loadErr(t, c.caddyfile); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, c.want)
		}
	}
}

// A bearer secret never travels over plain HTTP off this machine: an agent
// refuses an http:// manager that is not loopback, a manager refuses to
// serve plain HTTP beyond loopback, the worker checks every URL before it
// sends the token, and peers get no token at all (they serve bundles by
// digest). Before, the agent sent the token as a bearer header over plain
// http:// to every peer front-end.
func TestNoBearerOverPlainHTTP(t *testing.T) {
	for name, c := range map[string]struct{ caddyfile, want string }{
		"agent to a plain-HTTP manager": {`{
	admin off
	conductor_agent {
		manager http://192.0.2.1:7443
		token a-token-of-some-length
		node fe1
	}
}`, "the token would travel in clear"},
		"manager serving plain HTTP on all addresses": {`{
	admin off
	conductor_manager {
		listen 0.0.0.0:7443
		token a-token-of-some-length
	}
}`, "nodes would send the token in clear"},
	} {
		if err := loadErr(t, c.caddyfile); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, c.want)
		}
	}

	// The worker's own requests, against a server on loopback that
	// records what it gets.
	var mu sync.Mutex
	got := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
	}))
	defer srv.Close()
	w := &worker{}
	w.reconfigure(workerConfig{token: "secret-token", managers: []string{srv.URL}})
	ctx := context.Background()
	if _, _, err := w.request(ctx, http.MethodGet, srv.URL+"/v1/nodes/fe1/assignments", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.request(ctx, http.MethodGet, srv.URL+peerPath+"sha256:00", nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if got["/v1/nodes/fe1/assignments"] != "Bearer secret-token" {
		t.Errorf("the loopback manager did not get the token: %q", got["/v1/nodes/fe1/assignments"])
	}
	if a := got[peerPath+"sha256:00"]; a != "" {
		t.Errorf("a peer got the token: %q", a)
	}
	mu.Unlock()
	// Off loopback over plain HTTP, the request is refused before it is
	// sent (192.0.2.1 is TEST-NET-1: nothing is dialed).
	if _, _, err := w.request(ctx, http.MethodGet, "http://192.0.2.1:7443/v1/nodes/fe1/report", nil); err == nil || !strings.Contains(err.Error(), "in clear") {
		t.Errorf("a plain-HTTP manager off loopback: %v", err)
	}
}
