package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/conductor-edge/conductor/internal/adaptbench"
	"github.com/conductor-edge/conductor/internal/admissionbench"
	"github.com/conductor-edge/conductor/internal/cachebench"
	"github.com/conductor-edge/conductor/internal/edgefnbench"
	"github.com/conductor-edge/conductor/internal/proxybench"
	"github.com/conductor-edge/conductor/internal/tcpbench"
	"github.com/conductor-edge/conductor/internal/transportbench"
)

// profileFlag collects repeated --profile flags.
type profileFlag []string

func (p *profileFlag) String() string     { return strings.Join(*p, ",") }
func (p *profileFlag) Set(v string) error { *p = append(*p, v); return nil }

// specs looks the named profiles up; it says which name it does not know.
func (p profileFlag) specs() ([]transportbench.ProfileSpec, bool) {
	var sel []transportbench.ProfileSpec
	for _, name := range p {
		spec, ok := transportbench.ProfileByName(name)
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown profile %q (want lan, continental, lossy or mobile)\n", name)
			return nil, false
		}
		sel = append(sel, spec)
	}
	return sel, true
}

// runBench runs `conductor bench transport`: TMP against HTTP/2 (Cubic,
// BBR), HTTP/3 and an HTTP/1.1 pool on the same emulated WAN, in one run.
func runBench(args []string) int {
	if len(args) > 0 && args[0] == "cache" {
		return runCacheBench(args[1:])
	}
	if len(args) > 0 && args[0] == "admission" {
		return runAdmissionBench(args[1:])
	}
	if len(args) > 0 && args[0] == "tcp" {
		return runTCPBench(args[1:])
	}
	if len(args) > 0 && args[0] == "adapt" {
		return runAdaptBench(args[1:])
	}
	if len(args) > 0 && args[0] == "edgefn" {
		return runEdgefnBench(args[1:])
	}
	if len(args) > 0 && args[0] == "proxy" {
		return runProxyBench(args[1:])
	}
	if len(args) == 0 || args[0] != "transport" {
		fmt.Fprintln(os.Stderr, "usage: conductor bench transport [--profile lan|continental|lossy|mobile]... [--peer KEY]... [--duration 15s] [--json FILE] [--png FILE] [--from FILE] [--markdown]")
		fmt.Fprintln(os.Stderr, "       conductor bench cache [--duration 10s] [--connections 64] [--json FILE]")
		fmt.Fprintln(os.Stderr, "       conductor bench admission [--duration 30s] [--rps 500] [--json FILE]")
		fmt.Fprintln(os.Stderr, "       conductor bench tcp [--profile lossy]... [--peer tmp|l4-proxy-bbr|l4-proxy-cubic]... [--size-mb 1024] [--max-time 3m] [--json FILE]")
		fmt.Fprintln(os.Stderr, "       conductor bench adapt [--profile mobile --profile lan]... [--runs 3] [--json FILE]")
		fmt.Fprintln(os.Stderr, "       conductor bench edgefn [--duration 10s] [--json FILE]")
		fmt.Fprintln(os.Stderr, "       conductor bench proxy [--peer tmp|h2-tls|h1-tls|h2c|nginx|tmp-zstd]... [--body 1k|1m]... [--profile lan]... [--duration 10s] [--gomaxprocs N] [--runs N] [--pprof DIR] [--json FILE]")
		return 2
	}
	fs := flag.NewFlagSet("conductor bench transport", flag.ContinueOnError)
	var profiles, peers profileFlag
	fs.Var(&profiles, "profile", "WAN profile (repeatable; default all): lan, continental, lossy, mobile")
	fs.Var(&peers, "peer", "peer (repeatable; default all): tmp, http2-cubic, http2-bbr, http3, http1")
	duration := fs.Duration("duration", 15*time.Second, "length of each bulk workload")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	pngOut := fs.String("png", "", "draw a chart of the results to this PNG (default: the JSON file's name with .png)")
	from := fs.String("from", "", "do not run: print the table and draw the chart of a JSON file from an earlier run")
	markdown := fs.Bool("markdown", false, "print the table as Markdown (as in bench/RESULTS.md)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *pngOut == "" && *jsonOut != "" {
		*pngOut = strings.TrimSuffix(*jsonOut, ".json") + ".png"
	}
	sel, ok := profiles.specs()
	if !ok {
		return 2
	}
	if len(sel) == 0 {
		sel = transportbench.Profiles
	}
	var rep transportbench.Report
	if *from != "" {
		b, err := os.ReadFile(*from)
		if err == nil {
			err = json.Unmarshal(b, &rep)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		if *pngOut == "" {
			*pngOut = strings.TrimSuffix(*from, ".json") + ".png"
		}
	} else {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		var err error
		rep, err = transportbench.Run(ctx, transportbench.Options{Profiles: sel, Peers: peers, Duration: *duration, Progress: os.Stderr})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	if *markdown {
		fmt.Print(rep.Markdown(sel))
	} else {
		fmt.Print(rep.Table(sel))
	}
	if *jsonOut != "" {
		if err := rep.WriteJSON(*jsonOut); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	if *pngOut != "" {
		if err := rep.WriteChart(*pngOut, sel); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "chart:", *pngOut)
	}
	return 0
}

// runCacheBench runs `conductor bench cache`: edge_cache hits against
// Caddy's file_server, with wrk, in one run.
func runCacheBench(args []string) int {
	fs := flag.NewFlagSet("conductor bench cache", flag.ContinueOnError)
	duration := fs.Duration("duration", 10*time.Second, "wrk run per peer")
	conns := fs.Int("connections", 64, "wrk connections")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := cachebench.Run(ctx, cachebench.Options{Binary: self, Duration: *duration, Connections: *conns, Progress: os.Stderr})
	return report(rep, err, *jsonOut)
}

// report prints a benchmark's table and writes its JSON.
func report(rep interface {
	Table() string
	WriteJSON(string) error
}, err error, jsonOut string) int {
	if err == nil {
		fmt.Print(rep.Table())
		if jsonOut != "" {
			err = rep.WriteJSON(jsonOut)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// runAdmissionBench runs `conductor bench admission`: the front-end's load
// test (origin capped at 50 requests/s, 500 offered).
func runAdmissionBench(args []string) int {
	fs := flag.NewFlagSet("conductor bench admission", flag.ContinueOnError)
	duration := fs.Duration("duration", 30*time.Second, "length of the loaded run")
	rps := fs.Int("rps", 500, "requests per second offered")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	dir := fs.String("dir", "", "keep configs and process logs here (default: a temporary directory, removed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	run, err := startRun("admission", *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer run.done()
	rep, err := admissionbench.Run(run.ctx, admissionbench.Options{Binary: run.self, Dir: run.dir, Duration: *duration, OfferedRPS: *rps, Progress: run.progress})
	return report(rep, err, *jsonOut)
}

// runAdaptBench runs `conductor bench adapt`: the demo's product page in
// headless Chromium across the emulated WAN, from a front-end with client
// adaptation and from one without (needs root).
func runAdaptBench(args []string) int {
	fs := flag.NewFlagSet("conductor bench adapt", flag.ContinueOnError)
	var profiles profileFlag
	fs.Var(&profiles, "profile", "WAN profile (repeatable; default mobile and lan): lan, continental, lossy, mobile")
	runs := fs.Int("runs", 3, "measured page loads per front-end and profile (the median is reported)")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	dir := fs.String("dir", "", "keep configs and process logs here (default: a temporary directory, removed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(profiles) == 0 {
		profiles = profileFlag{"mobile", "lan"}
	}
	sel, ok := profiles.specs()
	if !ok {
		return 2
	}
	run, err := startRun("adapt", *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer run.done()
	rep, err := adaptbench.Run(run.ctx, adaptbench.Options{Binary: run.self, Dir: run.dir, Profiles: sel, Runs: *runs, Progress: run.progress})
	return report(rep, err, *jsonOut)
}

// runTCPBench runs `conductor bench tcp`: a bulk TCP transfer through a
// Caddy front-end and back-end across the emulated WAN, over TMP against
// caddy-l4's proxy with BBR and with Cubic (needs root).
func runTCPBench(args []string) int {
	fs := flag.NewFlagSet("conductor bench tcp", flag.ContinueOnError)
	var profiles, peers profileFlag
	fs.Var(&profiles, "profile", "WAN profile (repeatable; default lossy): lan, continental, lossy, mobile")
	fs.Var(&peers, "peer", "peer (repeatable; default all): tmp, l4-proxy-bbr, l4-proxy-cubic")
	sizeMB := fs.Int64("size-mb", 1024, "MiB each transfer moves")
	maxTime := fs.Duration("max-time", 3*time.Minute, "a transfer still running after this stops, and counts what it moved")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	dir := fs.String("dir", "", "keep configs and process logs here (default: a temporary directory, removed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sel, ok := profiles.specs()
	if !ok {
		return 2
	}
	run, err := startRun("tcpbench", *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer run.done()
	rep, err := tcpbench.Run(run.ctx, tcpbench.Options{Binary: run.self, Dir: run.dir, Profiles: sel, Peers: peers, Size: *sizeMB << 20, MaxTime: *maxTime, Progress: run.progress})
	return report(rep, err, *jsonOut)
}

// benchRun is what the benchmarks that start Caddy processes share: this
// binary to run them, a working directory (a temporary one unless given),
// a context that ends on ^C, and progress on stderr with the time since
// the start.
type benchRun struct {
	self, dir string
	ctx       context.Context
	progress  func(format string, args ...any)
	done      func()
}

func startRun(name, dir string) (*benchRun, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var cleanups []func()
	if dir == "" {
		tmp, err := os.MkdirTemp("", "conductor-"+name+"-")
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, func() { os.RemoveAll(tmp) })
		dir = tmp
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	start := time.Now()
	return &benchRun{self: self, dir: dir, ctx: ctx,
		progress: func(f string, a ...any) {
			fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(f, a...))
		},
		done: func() {
			stop()
			for _, c := range cleanups {
				c()
			}
		}}, nil
}

// runEdgefnBench runs `conductor bench edgefn`: the demo's cart function
// at a front-end, against respond and against the origin over TMP on the
// continental link, and its cold start (needs root).
func runEdgefnBench(args []string) int {
	fs := flag.NewFlagSet("conductor bench edgefn", flag.ContinueOnError)
	duration := fs.Duration("duration", 10*time.Second, "length of each load")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	dir := fs.String("dir", "", "keep configs and process logs here (default: a temporary directory, removed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	run, err := startRun("edgefn", *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer run.done()
	rep, err := edgefnbench.Run(run.ctx, edgefnbench.Options{Binary: run.self, Dir: run.dir, Duration: *duration, Progress: run.progress})
	return report(rep, err, *jsonOut)
}

// runProxyBench runs `conductor bench proxy`: front-end Caddy → back-end
// Caddy → nginx on loopback, over TMP and over Caddy's http transport.
func runProxyBench(args []string) int {
	fs := flag.NewFlagSet("conductor bench proxy", flag.ContinueOnError)
	duration := fs.Duration("duration", 10*time.Second, "length of each load")
	conns := fs.Int("connections", 64, "wrk connections")
	var peers, bodies profileFlag
	fs.Var(&peers, "peer", "peer (repeatable; default all): tmp, h2-tls, h1-tls, h2c, nginx; on a profile also h2-tls-cubic, h2-tls-bbr, h1-tls-bbr")
	fs.Var(&bodies, "body", "body size (repeatable; default both): 1k, 1m")
	prof := fs.String("pprof", "", "write CPU profiles of both Caddys during each load to this directory")
	var links profileFlag
	fs.Var(&links, "profile", "measure across this emulated WAN profile instead of loopback (repeatable): lan, continental, lossy, mobile; needs root")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	dir := fs.String("dir", "", "keep configs and process logs here (default: a temporary directory, removed)")
	procs := fs.Int("gomaxprocs", 0, "GOMAXPROCS of every Caddy, all peers alike (default: Go's, the CPUs available)")
	runs := fs.Int("runs", 1, "measure every peer this many times, in turn; the ratios are medians, with their ranges")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sel, ok := links.specs()
	if !ok {
		return 2
	}
	run, err := startRun("proxy", *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer run.done()
	rep, err := proxybench.Run(run.ctx, proxybench.Options{Binary: run.self, Dir: run.dir, Duration: *duration, Conns: *conns,
		Peers: peers, Bodies: bodies, Profile: *prof, Profiles: sel, GoMaxProcs: *procs, Runs: *runs, Progress: run.progress})
	return report(rep, err, *jsonOut)
}
