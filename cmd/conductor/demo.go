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
	if err := fs.Parse(args); err != nil {
		return 2
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
	t, err := topology.Start(ctx, topology.Options{
		Binary:     self,
		Dir:        *dir,
		OriginAddr: *origin,
		BackendTMP: *backend,
		AdminBase:  *admin,
		DNSAddr:    *dnsAddr,
		Progress:   say,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	dnsHost, dnsPort, _ := net.SplitHostPort(*dnsAddr)
	fmt.Printf(`
The shop is up. Try:
  curl %s/               front-end 1 (over TMP to the back-end)
  curl %s/               front-end 2
  curl %s/product/1
  curl -X POST -d id=2 -i %s/cart/add
  curl %s/slow           a deliberately slow page
  curl %s/nope           the origin's 404
Metrics (TMP sessions, per upstream): curl http://%s/metrics | grep conductor_tmp
Origin directly: http://%s/
DNS steering:  dig @%s -p %s shop.example   (or: conductor dns's Corefile in %s)

Press Ctrl-C to stop.
`, t.FrontendURL(0), t.FrontendURL(1), t.FrontendURL(0), t.FrontendURL(0), t.FrontendURL(0), t.FrontendURL(0), t.FrontendAdmin(0), *origin, dnsHost, dnsPort, t.DNSConfig())
	<-ctx.Done()
	say("stopping …")
	t.Stop()
	say("stopped")
	return 0
}
