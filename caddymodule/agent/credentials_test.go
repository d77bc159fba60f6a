package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
	"go.uber.org/zap"

	"github.com/conductor-edge/conductor/caddymodule/bundle"
	"github.com/conductor-edge/conductor/internal/enrol"
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
	dir := t.TempDir()
	for name, c := range map[string]struct{ caddyfile, want string }{
		"manager without operators": {`{
	admin off
	storage file_system ` + dir + `
	conductor_manager {
		listen 127.0.0.1:0
	}
}`, "conductor_manager: no operator: set operator <name> admin <key>"},
		"manager with an empty key": {`{
	admin off
	storage file_system ` + dir + `
	conductor_manager {
		listen 127.0.0.1:0
		operator alice admin ""
	}
}`, "operator alice: the key is empty or shorter than 16 characters"},
		"manager with the old fleet token": {`{
	conductor_manager {
		listen 127.0.0.1:0
		token s3cret
	}
}`, "token was replaced"},
		"agent never enrolled, without a join token": {`{
	admin off
	conductor_agent {
		manager https://manager.example:7443
		node fe1
		identity_dir ` + dir + `/fe1
	}
}`, "node fe1 is not enrolled: set join_token"},
	} {
		if err := loadErr(t, c.caddyfile); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, c.want)
		}
	}
}

// A secret never travels over plain HTTP: an agent refuses an http://
// manager (even on loopback: its join token is a secret, and its identity
// is its TLS certificate), the manager serves HTTPS only, and neither the
// manager nor the peers get a bearer secret from the worker. Before, the
// agent sent the fleet token as a bearer header over plain http:// to
// every peer front-end.
func TestNoBearerOverPlainHTTP(t *testing.T) {
	if err := loadErr(t, `{
	admin off
	conductor_agent {
		manager http://127.0.0.1:7443
		join_token 0011.2233
		node fe1
	}
}`); err == nil || !strings.Contains(err.Error(), "want an https:// URL") {
		t.Errorf("agent to a plain-HTTP manager: %v", err)
	}

	// The manager answers plain HTTP with nothing but an error.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`{
	admin off
	storage file_system `+t.TempDir()+`
	conductor_manager {
		listen `+addr+`
		operator alice admin a-key-of-some-length-for-alice
		state_dir `+t.TempDir()+`
	}
}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/v1/state")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "HTTPS") {
			t.Errorf("plain HTTP to the manager: %d %s", resp.StatusCode, b)
		}
	}
	caddy.Stop()

	// The worker's own requests, against a server on loopback that
	// records what it gets: no Authorization, to the manager or a peer.
	var mu sync.Mutex
	got := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
	}))
	defer srv.Close()
	w := newWorker(workerConfig{managers: []string{srv.URL}}, bundle.NewStore(t.TempDir(), zap.NewNop()), zap.NewNop())
	ctx := context.Background()
	for _, p := range []string{"/v1/nodes/fe1/assignments", peerPath + "sha256:00"} {
		if _, _, err := w.request(ctx, http.MethodGet, srv.URL+p, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Enrolment refuses a plain-HTTP manager before it sends the token.
	if _, err := enrol.Load(ctx, enrol.Config{Dir: t.TempDir(), Managers: []string{srv.URL}, JoinToken: "0011.2233", Name: "fe1", Role: "frontend"}); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("enrolment over plain HTTP: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for p, a := range got {
		if a != "" {
			t.Errorf("%s got a bearer secret: %q", p, a)
		}
	}
	if _, sent := got["/v1/enroll"]; sent || len(got) != 2 {
		t.Errorf("requests seen: %v", got)
	}
}
