package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/conductor-edge/conductor/internal/shop"
)

// runOrigin serves the demo shop until SIGINT/SIGTERM.
func runOrigin(args []string) int {
	fs := flag.NewFlagSet("conductor origin", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9080", "address to serve the shop on")
	name := fs.String("name", "origin", "name shown in page footers")
	maxRPS := fs.Int("max-rps", 0, "answer 503 beyond this many requests per second, like an origin at capacity (0: no cap); /__origin/stats reports the peak")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var h http.Handler = shop.Handler(*name)
	if *maxRPS > 0 {
		h = shop.Limit(h, *maxRPS)
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "origin %s serving on http://%s\n", *name, *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "origin:", err)
		return 1
	}
	return 0
}
