package caddymodule

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/gorilla/securecookie"
)

var (
	testSigningKey = strings.Repeat("ab", 32)
	otherKey       = strings.Repeat("cd", 32)
)

// signed is a cookie value as the origin makes it: gorilla/securecookie
// under key (hex).
func signed(t *testing.T, key, name, value string) string {
	t.Helper()
	k, _ := hex.DecodeString(key)
	v, err := securecookie.New(k, nil).Encode(name, value)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// priorityOf asks a site that answers with the priority it classed the
// request at.
func priorityOf(t *testing.T, c *http.Client, base string, hdr ...string) string {
	t.Helper()
	_, body := fetch(t, c, "GET", base+"/buy", hdr...)
	return body
}

// A priority rule on a cookie the client controls can require proof: with
// `signed`, only a value the origin signed with a shared key (any of the
// keys listed, for rotation) makes the request urgent; a plain, forged or
// foreign-key value is the default priority. Before, `Cookie: cart=1` made
// any request priority 0.
func TestUnsignedPriorityCookieIsDefault(t *testing.T) {
	base, _ := site(t, "", fmt.Sprintf(`	priority {
		signing_key %s %s
		default 3
		0 cookie cart signed
	}
	respond "{http.vars.conductor_priority}"`, otherKey, testSigningKey))
	cases := []struct{ name, cookie, want string }{
		{"no cookie", "", "3"},
		{"unsigned", "cart=1", "3"},
		{"forged", "cart=" + signed(t, testSigningKey, "cart", "1")[:20] + "x", "3"},
		{"another site's key", "cart=" + signed(t, strings.Repeat("ef", 32), "cart", "1"), "3"},
		{"another cookie's signature", "cart=" + signed(t, testSigningKey, "session", "1"), "3"},
		{"signed by the origin (old key)", "cart=" + signed(t, testSigningKey, "cart", "1"), "0"},
		{"signed by the origin (new key)", "cart=" + signed(t, otherKey, "cart", "1"), "0"},
	}
	for _, c := range cases {
		var hdr []string
		if c.cookie != "" {
			hdr = []string{"Cookie", c.cookie}
		}
		if got := priorityOf(t, nil, base, hdr...); got != c.want {
			t.Errorf("%s: priority %q, want %s", c.name, got, c.want)
		}
	}
	// A signed rule without a key fails at load and says what to set.
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":0 {\n\tpriority {\n\t\t0 cookie cart signed\n\t}\n}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := loadOnly(cfg); err == nil || !strings.Contains(err.Error(), "signing_key") {
		t.Fatalf("a signed rule without a key: %v", err)
	}
}

// fromAddr is a client whose requests come from local address ip.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// Urgent priorities bypass the waiting room and the load gate only within
// the owner's budget: per client address, and a share of the origin's
// capacity in all. 1 000 priority-0 requests from one address against a
// capacity of 50 (share 0.2, 2 a second per client, bursts of 10): at most
// the per-client budget stays urgent; four more addresses together get at
// most the share of capacity. The rest are the default priority. Before,
// every one of them was urgent.
func TestPriorityBypassBudget(t *testing.T) {
	base, _ := site(t, "", `	priority {
		default 2
		0 path /buy
		bypass_budget 2 burst 10 capacity 50 share 0.2
	}
	respond "{http.vars.conductor_priority}"`)
	// count sends n requests and counts those classed urgent; it runs in
	// several goroutines at once, so it reports errors without Fatal.
	count := func(c *http.Client, n int) (urgent int) {
		for range n {
			resp, err := c.Get(base + "/buy")
			if err != nil {
				t.Error(err)
				return urgent
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "0" {
				urgent++
			}
		}
		return urgent
	}
	start := time.Now()
	one := count(fromAddr("127.0.0.1"), 1000)
	elapsed := time.Since(start).Seconds()
	perClient := 10 + int(2*elapsed) + 1
	t.Logf("one address: %d of 1000 urgent in %.1f s (budget %d)", one, elapsed, perClient)
	if one == 0 || one > perClient {
		t.Fatalf("one address: %d urgent of 1000, budget %d", one, perClient)
	}

	// Four more addresses at once, once the shared budget has refilled:
	// each could make 10 urgent on its own, the share of capacity (10/s,
	// burst 10) caps them together.
	time.Sleep(1100 * time.Millisecond)
	start = time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	many := 0
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := count(fromAddr(ip), 250)
			mu.Lock()
			many += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed = time.Since(start).Seconds()
	total := 10 + int(10*elapsed) + 1
	t.Logf("four addresses: %d of 1000 urgent in %.1f s (share of capacity %d)", many, elapsed, total)
	if many == 0 || many > total || many >= 4*10 {
		t.Fatalf("four addresses: %d urgent, share of capacity %d, per-client bursts 40", many, total)
	}
}

// loadOnly loads a config that must fail; on failure Caddy keeps running
// the config it had.
func loadOnly(cfg []byte) error { return caddy.Load(cfg, true) }
