package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// healthEndpoint is a front-end's health URL that can be switched off.
type healthEndpoint struct {
	srv  *httptest.Server
	down atomic.Bool
}

func newHealthEndpoint() *healthEndpoint {
	h := &healthEndpoint{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	return h
}

// The conductor plugin in a real `conductor dns` process, queried with
// miekg/dns: health drives the answers, ECS picks the region, and with
// every front-end down the origin answers.
func TestDNSPluginEndToEnd(t *testing.T) {
	eu, us := newHealthEndpoint(), newHealthEndpoint()
	defer eu.srv.Close()
	defer us.srv.Close()
	port := freePort(t, "127.0.0.1")
	healthPort, readyPort, promPort := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	dir := t.TempDir()
	corefile := filepath.Join(dir, "Corefile")
	os.WriteFile(corefile, []byte(fmt.Sprintf(`shop.example:%d {
	bind 127.0.0.1
	conductor {
		frontend fe-eu 127.0.0.2 region eu health %s/healthz
		frontend fe-us 127.0.0.3 region us health %s/healthz
		region 10.1.0.0/16 eu
		region 10.2.0.0/16 us
		fallback 192.0.2.10
		ttl 1
		health_check 200ms timeout 500ms up 2 down 3
	}
}

# Behind cache (which keys on the name only, so it is for sites that do
# not steer by subnet), with the usual companions.
cached.example:%d {
	bind 127.0.0.1
	errors
	log
	cache 30
	health 127.0.0.1:%d
	ready 127.0.0.1:%d
	prometheus 127.0.0.1:%d
	conductor {
		frontend fe 127.0.0.4
	}
}
`, port, eu.srv.URL, us.srv.URL, port, healthPort, readyPort, promPort)), 0o644)
	startDNS(t, corefile)
	server := fmt.Sprintf("127.0.0.1:%d", port)
	ask := func(subnet string) (string, uint8) {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion("shop.example.", dns.TypeA)
		m.SetEdns0(1232, false)
		_, n, _ := net.ParseCIDR(subnet)
		bits, _ := n.Mask.Size()
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(bits), Address: n.IP})
		c := &dns.Client{Timeout: time.Second}
		var r *dns.Msg
		var err error
		for i := 0; i < 50; i++ {
			if r, _, err = c.Exchange(m, server); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			b, _ := os.ReadFile(filepath.Join(dir, "dns.log"))
			t.Fatalf("query: %v\n%s", err, b)
		}
		if len(r.Answer) != 1 {
			t.Fatalf("answer %v", r)
		}
		var scope uint8
		if opt := r.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if e, ok := o.(*dns.EDNS0_SUBNET); ok {
					scope = e.SourceScope
				}
			}
		}
		return r.Answer[0].(*dns.A).A.String(), scope
	}
	// ECS from two regions: each gets its own region's front-end.
	if ip, scope := ask("10.1.4.0/24"); ip != "127.0.0.2" || scope != 16 {
		t.Fatalf("eu client: %s scope /%d, want 127.0.0.2 /16", ip, scope)
	}
	if ip, _ := ask("10.2.4.0/24"); ip != "127.0.0.3" {
		t.Fatalf("us client: %s, want 127.0.0.3", ip)
	}
	for i := 0; i < 3; i++ {
		m := new(dns.Msg)
		m.SetQuestion("cached.example.", dns.TypeA)
		r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, server)
		if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.4" {
			t.Fatalf("behind cache: %v %v", r, err)
		}
	}
	// Alongside health, ready and prometheus.
	for _, u := range []string{fmt.Sprintf("http://127.0.0.1:%d/health", healthPort), fmt.Sprintf("http://127.0.0.1:%d/ready", readyPort)} {
		resp, err := http.Get(u)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", u, resp, err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort))
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`coredns_conductor_answers_total{frontend="fe-eu",server=`, `coredns_conductor_frontend_healthy{frontend="fe-us",site="shop.example."} 1`, "coredns_conductor_decision_duration_seconds_bucket"} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The eu front-end's health endpoint fails: within interval × down
	// (+ one interval of phase, + the 1 s TTL in cache) eu clients move.
	eu.down.Store(true)
	start := time.Now()
	waitFor := func(what, subnet, want string, limit time.Duration) {
		t.Helper()
		for {
			if ip, _ := ask(subnet); ip == want {
				t.Logf("%s after %v", what, time.Since(start).Round(10*time.Millisecond))
				return
			}
			if time.Since(start) > limit {
				t.Fatalf("%s: still not %s after %v", what, want, limit)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("eu front-end left the answers", "10.1.4.0/24", "127.0.0.3", 200*time.Millisecond*4+time.Second+500*time.Millisecond)
	// Every front-end down: the origin answers.
	us.down.Store(true)
	start = time.Now()
	waitFor("all down, origin answers", "10.1.5.0/24", "192.0.2.10", 200*time.Millisecond*4+time.Second+500*time.Millisecond)
	// Back after the up threshold.
	eu.down.Store(false)
	start = time.Now()
	waitFor("eu front-end came back", "10.1.6.0/24", "127.0.0.2", 200*time.Millisecond*3+time.Second+500*time.Millisecond)
}
