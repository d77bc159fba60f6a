package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
)

// runDemo starts the local topology and keeps it up until Ctrl-C.
func runDemo(args []string) int {
	fs := flag.NewFlagSet("conductor demo", flag.ContinueOnError)
	dir := fs.String("dir", filepath.Join(os.TempDir(), "conductor-demo"), "directory for configs, certificates and logs")
	origin := fs.String("origin", "127.0.0.1:9080", "origin shop address")
	backend := fs.String("backend", "127.0.0.1:4433", "back-end TMP address (UDP)")
	admin := fs.Int("admin-port", 2019, "back-end admin port; front-ends use the next ones")
	dnsAddr := fs.String("dns", "127.0.0.1:5300", "where CoreDNS with the conductor plugin answers for shop.example (empty: no DNS)")
	manager := fs.String("manager", "127.0.0.1:7070", "where the shifting manager listens (HTTPS; empty: no manager)")
	offset := fs.Int("port-offset", 0, "add this to every port of the demo (when another program holds one)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	*origin, *backend, *dnsAddr, *manager = shiftPort(*origin, *offset), shiftPort(*backend, *offset), shiftPort(*dnsAddr, *offset), shiftPort(*manager, *offset)
	*admin += *offset
	frontends := []string{shiftPort("127.0.0.2:8080", *offset), shiftPort("127.0.0.3:8080", *offset)}
	ports := []demoPort{{"tcp", *origin, "origin shop"}, {"udp", *backend, "back-end TMP"}, {"tcp", *manager, "shifting manager"},
		{"udp", *dnsAddr, "DNS"}, {"tcp", *dnsAddr, "DNS"}}
	for i, fe := range frontends {
		ports = append(ports, demoPort{"tcp", fe, fmt.Sprintf("front-end %d", i+1)})
	}
	for i := range 1 + len(frontends) {
		ports = append(ports, demoPort{"tcp", fmt.Sprintf("127.0.0.1:%d", *admin+i), "admin endpoint"})
	}
	if err := checkPorts(ports); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	say := func(format string, a ...any) {
		fmt.Printf("[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	say("Conductor demo: origin shop → back-end Caddy ⇐ TMP ⇒ two front-end Caddys (logs in %s)", *dir)
	pagesDir := filepath.Join(*dir, "pages")
	if err := os.MkdirAll(pagesDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(pagesDir, "404.html"), []byte(demo404), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	t, err := topology.Start(ctx, topology.Options{
		Binary:        self,
		Dir:           *dir,
		OriginAddr:    *origin,
		BackendTMP:    *backend,
		AdminBase:     *admin,
		Frontends:     frontends,
		DNSAddr:       *dnsAddr,
		Progress:      say,
		FrontendExtra: fmt.Sprintf(demoFrontend, pagesDir),
		BackendExtra:  demoBackend,
		Manager:       *manager,
		// The front-ends proxy to the back-ends the manager assigns
		// each site (the static list until it has).
		DynamicUpstreams: *manager != "",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	if *manager != "" {
		if err := shipShopBundle(t, *dir, say); err != nil {
			say("no shop bundle: %v", err)
		}
	}
	dnsHost, dnsPort, _ := net.SplitHostPort(*dnsAddr)
	fmt.Printf(`
The shop is up. Try:
  curl -i %[1]s/               front-end 1 (over TMP to the back-end; Cache-Status shows the edge cache)
  curl -i %[2]s/               front-end 2
  curl -i %[1]s/product/1      behind the waiting room (a line forms past 300 active visitors);
                               composed at the front-end from price, stock and recommendation fragments
  curl -s -H 'Save-Data: on' -H 'Accept: image/webp' %[1]s/img/p1.jpg | wc -c
                               the photo for a client on a slow link (lite: 800 px WebP), against
  curl -s %[1]s/img/p1.jpg | wc -c       the full one
  curl -X POST -d id=2 -i %[1]s/cart/add    the cart cookie makes a shopper priority 0
  curl -i %[1]s/slow           slower than 1s: a page that waits and retries in the browser
  curl -i %[1]s/nope           the shop's own 404 page, not the origin's
  curl -i -H 'Host: shop.example' %[1]s/promo/
                               a page of the shop's bundle (for the site shop.example),
                               served by the front-end itself
  curl -i -H 'Host: shop.example' -b cart=1.3.3 %[1]s/api/cart
                               the cart summed by an edge function (WebAssembly) at the
                               front-end; stop the origin and it still answers
  curl -X POST -H 'Content-Type: application/json' -d '{"index": 2, "ttl": "1m"}' http://%[8]s/load_index
                               declare the origin overloaded: browsing gets the wait page,
                               carts (priority 0-1) still go through
  curl -X PURGE -H 'Surrogate-Key: x' %[1]s/    purge (from loopback)
Metrics: curl http://%[3]s/metrics | grep conductor_%[9]s
Origin directly: http://%[4]s/
DNS steering:  dig @%[5]s -p %[6]s shop.example   (or: conductor dns's Corefile in %[7]s)

Press Ctrl-C to stop.
`, t.FrontendURL(0), t.FrontendURL(1), t.FrontendAdmin(0), *origin, dnsHost, dnsPort, t.DNSConfig(), t.BackendAdmin(), managerHelp(t, *manager))
	<-ctx.Done()
	say("stopping …")
	t.Stop()
	say("stopped")
	return 0
}

// The demo front-ends use every edge handler: priority rules, a waiting
// room on product pages and the load gate (both one limit across the two
// front-ends, by leases from the manager), fallback pages, client
// adaptation, product pages composed from fragments (esi), the shop's
// bundle (the topology adds `bundle`), and the edge cache, which holds
// each fragment and each image variant apart.
const demoFrontend = `priority {
		0 cookie cart
		1 path /cart /checkout
		4 path /img/*
	}
	waiting_room /product/* shop {
		total_active_users 300
		new_users_per_minute 600
		refresh 10s
		site_name "Conductor Demo Shop"
		fleet
	}
	load_gate {
		poll http://{frontend}/.well-known/conductor-load 2s
		site_name "Conductor Demo Shop"
		fleet
	}
	fallback {
		not_found %s
		slow 1s
		site_name "Conductor Demo Shop"
	}
	adapt
	esi
	adapt_images
	edge_cache demo {
		stale_on_error 10m
		bypass_cookie cart
		warm http://{frontend}/ http://{frontend}/product/1
	}`

// The demo back-end publishes the origin's load index.
const demoBackend = `load_index {
		capacity 200
		max_in_flight 64
	}`

const demo404 = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found · Conductor Demo Shop</title>
<style>body{font:16px/1.5 system-ui,sans-serif;display:flex;min-height:100vh;margin:0;align-items:center;justify-content:center;background:#f4f6fb;color:#1d2330}
main{background:#fff;padding:2.5rem;border-radius:18px;box-shadow:0 18px 50px rgba(31,45,80,.12);max-width:32rem;text-align:center}
a{color:#2f6fed}</style></head>
<body><main><h1>That page is not on our shelves</h1>
<p>It may have sold out or moved. The <a href="/">catalogue</a> has everything we have today.</p></main></body></html>
`

// managerHelp says how to reach the manager: the read-only status page
// URL, and what the admin key is for. The keys are random per run; the
// demo's nodes enrolled with join tokens minted with the admin key.
func managerHelp(t *topology.Topology, manager string) string {
	if manager == "" {
		return ""
	}
	return fmt.Sprintf(`
Shifting manager, status page (read-only operator; the key is in the fragment):
  %[1]s
  (the manager's certificate is from the fleet CA: %[3]s)
Admin (the admin key is in %[4]s):
  conductor bundle build ./mysite -o site.bundle -key %[5]s
  conductor bundle push site.bundle -manager %[2]s -key "$(cat %[4]s)" -ca %[3]s
  curl --cacert %[3]s -H "Authorization: Bearer $(cat %[4]s)" -d '{"node":"fe1"}' %[2]s/v1/sites/<site>/assign`,
		t.StatusURL(), t.ManagerURL(), t.ManagerCA(), t.AdminKeyFile(), t.BundleKeyFile())
}
