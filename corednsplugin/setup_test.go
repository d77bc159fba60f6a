package corednsplugin

import (
	"strings"
	"testing"

	"github.com/coredns/caddy"
)

func TestSetupParsesAndRejects(t *testing.T) {
	good := `conductor shop.example {
		frontend fe1 127.0.0.2 ::2 region eu weight 3 health http://127.0.0.2:8080/healthz
		frontend fe2 127.0.0.3 region us
		region 10.1.0.0/16 eu
		fallback 192.0.2.10 2001:db8::10
		ttl 20
		answers 2
		sticky
		max_load 0.8
		health_check 2s timeout 500ms up 2 down 3
	}`
	c := caddy.NewTestController("dns", good)
	cfg, err := parse(c)
	if err != nil {
		t.Fatalf("good stanza: %v", err)
	}
	if len(cfg.frontends) != 2 || cfg.frontends[0].weight != 3 || len(cfg.frontends[0].v6) != 1 || cfg.ttl != 20 ||
		cfg.answers != 2 || !cfg.sticky || cfg.maxLoad != 0.8 || cfg.up != 2 || cfg.down != 3 || len(cfg.fallback) != 2 ||
		cfg.zones[0] != "shop.example." {
		t.Fatalf("parsed %+v", cfg)
	}
	stanza := func(lines ...string) string { return "conductor {\n" + strings.Join(lines, "\n") + "\n}" }
	bad := []struct{ in, want string }{
		{stanza(), "no frontend, no manager and no fallback"},
		{stanza("frontend fe1"), "frontend: want NAME ADDRESS"},
		{stanza("frontend fe1 not-an-ip"), `fe1: "not-an-ip" is not an IP address`},
		{stanza("frontend fe1 127.0.0.2 weight 0"), `weight "0": want 1..1000`},
		{stanza("frontend fe1 127.0.0.2 health ftp://x"), "want an http(s) URL"},
		{stanza("frontend fe1 127.0.0.2 colour red"), `unknown option "colour"`},
		{stanza("frontend fe1 127.0.0.2", "frontend fe1 127.0.0.3"), `frontend "fe1" defined twice`},
		{stanza("frontend fe1 127.0.0.2", "region 10.0.0.0/33 eu"), "region: netip.ParsePrefix"},
		{stanza("fallback 999.1.1.1"), `"999.1.1.1" is not an IP address`},
		{stanza("fallback 192.0.2.1", "ttl forever"), `ttl: "forever": want 0..86400`},
		{stanza("fallback 192.0.2.1", "answers 0"), "answers:"},
		{stanza("fallback 192.0.2.1", "health_check 1s down zero"), `health_check down "zero": want 1..100`},
		{stanza("fallback 192.0.2.1", "frobnicate"), `unknown option "frobnicate"`},
	}
	for _, b := range bad {
		_, err := parse(caddy.NewTestController("dns", b.in))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q:\n err = %v\nwant it to contain %q", b.in, err, b.want)
		}
	}
	// setup wraps errors with the plugin's name, and the line.
	err = setup(caddy.NewTestController("dns", "conductor {\n\tfrontend fe1 127.0.0.2 weight x\n}"))
	if err == nil || !strings.Contains(err.Error(), "plugin/conductor") || !strings.Contains(err.Error(), "Testfile:2") {
		t.Errorf("setup error %v: want the plugin name and the line", err)
	}
}

// The plugin's side of the control plane's credentials: with a manager,
// a plugin that was never enrolled and has no join token refuses to
// start, and says what to set; the old token refuses to load.
func TestEmptyCredentialRefusesToStart(t *testing.T) {
	cfg, err := parse(caddy.NewTestController("dns", "conductor {\n\tmanager https://manager.example:7443\n\tmanager_node dns1\n\tmanager_identity_dir "+t.TempDir()+"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if err := newHandler(cfg).start(); err == nil || !strings.Contains(err.Error(), "node dns1 is not enrolled: set join_token") {
		t.Fatalf("manager without an identity or a join token: %v", err)
	}
	if _, err := parse(caddy.NewTestController("dns", "conductor {\n\tmanager https://manager.example:7443 tok\n}")); err == nil || !strings.Contains(err.Error(), "manager_join") {
		t.Fatalf("the old manager token: %v", err)
	}
}

// The plugin sends no secret over plain HTTP: an http:// manager, even on
// loopback, refuses to load (the join token is a secret, and the plugin's
// identity is its TLS certificate).
func TestNoBearerOverPlainHTTP(t *testing.T) {
	for _, u := range []string{"http://192.0.2.1:7443", "http://127.0.0.1:7443"} {
		_, err := parse(caddy.NewTestController("dns", "conductor {\n\tmanager "+u+"\n}"))
		if err == nil || !strings.Contains(err.Error(), "want an https:// URL") {
			t.Fatalf("plain-HTTP manager %s: %v", u, err)
		}
	}
}
