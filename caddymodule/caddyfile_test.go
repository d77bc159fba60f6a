package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdapt: each testdata/caddyfile_adapt/*.caddytest holds a
// Caddyfile, a line of dashes, and the JSON it must adapt to.
func TestCaddyfileAdapt(t *testing.T) {
	files, _ := filepath.Glob("testdata/caddyfile_adapt/*.caddytest")
	if len(files) == 0 {
		t.Fatal("no adapt tests found")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(b), "----------")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			if !caddytest.CompareAdapt(t, f, in, "caddyfile", strings.TrimSpace(want)) {
				t.Fail()
			}
		})
	}
}

// TestCaddyfileErrorsNameTheProblem: a bad option fails at adapt time with
// the offending file and line.
func TestCaddyfileErrorsNameTheProblem(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"unknown global option": {"{\n\tconductor {\n\t\tfoo bar\n\t}\n}\n:80\n", `conductor: unrecognized option "foo" (want name, role, region, weights, idle_timeout, max_streams, handshake_timeout, max_half_open, retry or tls), at Caddyfile:3`},
		"bad role":              {"{\n\tconductor {\n\t\trole edge\n\t}\n}\n:80\n", `conductor: role "edge": want frontend, backend or both`},
		"weights count":         {"{\n\tconductor {\n\t\tweights 1 2 3\n\t}\n}\n:80\n", "conductor: weights takes 5 values (priorities 0..4), got 3, at Caddyfile:3"},
		"zero weight":           {"{\n\tconductor {\n\t\tweights 1 0 1 1 1\n\t}\n}\n:80\n", "weight of priority 1"},
		"unknown tls option":    {"{\n\tconductor {\n\t\ttls {\n\t\t\tcert foo\n\t\t}\n\t}\n}\n:80\n", `conductor: unrecognized tls option "cert" (want cert_file, key_file, ca_file, ca, fleet, cert_lifetime or server_name), at Caddyfile:4`},
		"bad idle timeout":      {"{\n\tconductor {\n\t\tidle_timeout soon\n\t}\n}\n:80\n", `idle_timeout "soon": want a positive duration`},
		"unknown transport option": {":80 {\n\treverse_proxy be:4433 {\n\t\ttransport tmp {\n\t\t\tpriority 1\n\t\t}\n\t}\n}\n",
			`tmp transport: unrecognized option "priority" (want default_priority, compress, dial_timeout, response_header_timeout or max_idle_streams), at Caddyfile:4`},
		"service option": {"{\n\tconductor {\n\t\tservice smtp 127.0.0.1:25 {\n\t\t\tproxy v2\n\t\t}\n\t}\n}\n:80\n",
			`conductor: service smtp: unrecognized option "proxy" (want proxy_protocol), at Caddyfile:4`},
		"proxy protocol version": {"{\n\tconductor {\n\t\tservice smtp 127.0.0.1:25 {\n\t\t\tproxy_protocol v3\n\t\t}\n\t}\n}\n:80\n",
			`conductor: service smtp: proxy_protocol "v3": want v1 or v2`},
		"esi bad limit":      {":80 {\n\tesi {\n\t\tparallel many\n\t}\n}\n", `esi: parallel: invalid value "many", at Caddyfile:3`},
		"esi unknown option": {":80 {\n\tesi {\n\t\tdepth 2\n\t}\n}\n", `esi: unknown subdirective "depth", at Caddyfile:3`},
		"priority out of range": {":80 {\n\treverse_proxy be:4433 {\n\t\ttransport tmp {\n\t\t\tdefault_priority 7\n\t\t}\n\t}\n}\n",
			"default_priority \"7\": want 0 (most urgent) to 4"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			adapter := caddyconfig.GetAdapter("caddyfile")
			_, _, err := adapter.Adapt([]byte(c.in), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestCaddyfileExampleAdapts keeps the repository's Caddyfile.example
// runnable.
func TestCaddyfileExampleAdapts(t *testing.T) {
	b, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(b, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Errorf("warning: line %d: %s", w.Line, w.Message)
	}
	for _, want := range []string{`"conductor":{"name":"fe-paris-1"`, `"protocol":"tmp"`, `"tmp/0.0.0.0:4433"`, `"handler":"bundle"`, `"conductor_agent":{`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted Caddyfile.example lacks %s", want)
		}
	}
}

func TestPriorityCaddyfileErrors(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"level out of range":  {":80 {\n\tpriority {\n\t\t7 path /x\n\t}\n}\n", `priority: "7": want default, or a priority 0 (most urgent) to 4 followed by matchers, at Caddyfile:3`},
		"bad default":         {":80 {\n\tpriority {\n\t\tdefault high\n\t}\n}\n", `priority: default "high": want 0 (most urgent) to 4, at Caddyfile:3`},
		"no matchers":         {":80 {\n\tpriority {\n\t\t1\n\t}\n}\n", "priority 1: no matchers"},
		"unknown matcher":     {":80 {\n\tpriority {\n\t\t1 colour red\n\t}\n}\n", "getting matcher module 'colour'"},
		"cookie without name": {":80 {\n\tpriority {\n\t\t1 cookie\n\t}\n}\n", "wrong argument count"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(c.in), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}
