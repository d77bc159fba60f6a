// Package proxybench measures the proxy path as users deploy it
// (`conductor bench proxy`): a front-end Caddy → a back-end Caddy → an
// origin (Debian's nginx), on loopback, with the link between the Caddys
// carried by each peer in turn:
//
//   - tmp:      reverse_proxy { transport tmp } to a back-end `bind tmp/…`
//   - h2-tls:   transport http { versions 2 } over TLS (one connection)
//   - h1-tls:   transport http { versions 1.1 } over TLS, keep-alive
//   - h2c:      HTTP/2 over cleartext TCP
//   - nginx:    wrk straight at the origin, the ceiling
//   - tmp-zstd: transport tmp { compress }: the bodies are random bytes,
//     so this is the cost of compression on data that does not compress
//
// wrk loads the front-end with small bodies (1 kB: requests/s and p99)
// and large ones (1 MB: throughput); each Caddy's CPU seconds per GB
// moved come from /proc. With a profile directory, both Caddys' CPU
// profiles are taken during each load (Caddy's /debug/pprof).
package proxybench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/conductor-edge/conductor/internal/benchinfo"
	"github.com/conductor-edge/conductor/internal/nscaddy"
	"github.com/conductor-edge/conductor/internal/transportbench"
)

// Options configure a run.
type Options struct {
	Binary   string
	Dir      string
	Duration time.Duration // each load; default 10s
	Conns    int           // wrk connections; default 64
	Peers    []string      // default all
	Bodies   []string      // "1k", "1m"; default both
	Profile  string        // if set, CPU profiles of both Caddys during each load go here
	// Profiles, if set, measure across these emulated links instead of
	// loopback (profile.go).
	Profiles []transportbench.ProfileSpec
	// GoMaxProcs, if set, is every Caddy's GOMAXPROCS, for TMP and the
	// TCP peers alike: a Caddy in a container limited to that many CPUs
	// (Go sizes GOMAXPROCS to the limit).
	GoMaxProcs int
	// Runs is how many times every peer is measured, in turn (default 1):
	// the ratios are then medians, with their ranges (ratios.go).
	Runs     int
	Progress func(format string, args ...any)
}

// caddyEnv is the environment the options give every Caddy.
func (o Options) caddyEnv() []string {
	if o.GoMaxProcs > 0 {
		return []string{fmt.Sprintf("GOMAXPROCS=%d", o.GoMaxProcs)}
	}
	return nil
}

// Result is one peer with one body size.
type Result struct {
	Peer  string `json:"peer"`
	Body  string `json:"body"`
	Bytes int    `json:"body_bytes"`
	Run   int    `json:"run"` // 1, 2, … of Options.Runs
	benchinfo.Wrk
	MBps float64 `json:"mb_per_sec"` // response bodies
	// CPU seconds per GB of bodies moved, per process.
	FrontCPUPerGB float64 `json:"front_cpu_s_per_gb,omitempty"`
	BackCPUPerGB  float64 `json:"back_cpu_s_per_gb,omitempty"`
}

// Report is a run's result.
type Report struct {
	When    time.Time `json:"when"`
	Machine string    `json:"machine"`
	Conns   int       `json:"conns"`
	// GoMaxProcs is the Caddys' GOMAXPROCS when the run set it.
	GoMaxProcs int      `json:"gomaxprocs,omitempty"`
	Results    []Result `json:"results,omitempty"`
	// Links: the emulated profiles' bulk and urgent workloads.
	Links []LinkResult `json:"links,omitempty"`
	// Ratios of TMP to each peer, per body: req/s, p99 and back-end CPU/GB.
	Ratios []Ratio `json:"ratios"`
	// LinkRatios: TMP's goodput and urgent p99 against each peer, per
	// profile.
	LinkRatios []LinkRatio `json:"link_ratios,omitempty"`
}

// Peers are the links measured, in order.
var Peers = []string{"tmp", "h2-tls", "h1-tls", "h2c", "nginx", "tmp-zstd"}

var bodies = map[string]int{"1k": 1 << 10, "1m": 1 << 20, "4m": 4 << 20}

// ports: front-end sites per peer, back-end listeners, the origin.
const (
	originPort = 9181
	tmpPort    = 4481
	tlsPort    = 9443
	h2cPort    = 9182
	frontBase  = 8181 // + index in Peers
)

// Run measures.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Conns == 0 {
		o.Conns = 64
	}
	if len(o.Peers) == 0 {
		o.Peers = Peers
	}
	if len(o.Bodies) == 0 {
		o.Bodies = []string{"1k", "1m"}
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	o.Runs = max(o.Runs, 1)
	for _, b := range o.Bodies {
		if bodies[b] == 0 {
			return nil, fmt.Errorf("body %q: want 1k or 1m", b)
		}
	}
	if len(o.Profiles) > 0 {
		return runProfiles(ctx, o)
	}
	stopOrigin, err := startNginx(o.Dir, "", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	defer stopOrigin()
	back, err := nscaddy.Start(ctx, o.Dir, "backend", "", backendConfig(o.Dir), o.Binary, o.caddyEnv()...)
	if err != nil {
		return nil, err
	}
	defer back.Stop()
	front, err := nscaddy.Start(ctx, o.Dir, "frontend", "", frontendConfig(o.Dir), o.Binary, o.caddyEnv()...)
	if err != nil {
		return nil, err
	}
	defer front.Stop()

	rep := &Report{When: time.Now().UTC(), Machine: benchinfo.Machine(), Conns: o.Conns, GoMaxProcs: o.GoMaxProcs}
	for _, body := range o.Bodies {
		for run := 1; run <= o.Runs; run++ {
			for _, peer := range o.Peers {
				r, err := o.measure(ctx, front, back, body, peer, run)
				if err != nil {
					return nil, err
				}
				rep.Results = append(rep.Results, r)
			}
		}
	}
	rep.ratios()
	return rep, nil
}

// measure loads one peer with one body size through the running Caddys.
func (o Options) measure(ctx context.Context, front, back *nscaddy.Proc, body, peer string, run int) (Result, error) {
	r := Result{Peer: peer, Body: body, Bytes: bodies[body], Run: run}
	i := indexOf(peer)
	if i < 0 {
		return r, fmt.Errorf("unknown peer %q (want %s)", peer, strings.Join(Peers, ", "))
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/%s", frontBase+i, body)
	if peer == "nginx" {
		url = fmt.Sprintf("http://127.0.0.1:%d/%s", originPort, body)
	}
	if err := check(ctx, url, bodies[body]); err != nil {
		return r, fmt.Errorf("%s: %w", peer, err)
	}
	// A short warm-up: connections, sessions, windows.
	benchinfo.RunWrk(ctx, url, 1, o.Conns, time.Second)
	profiles := o.profileBoth(ctx, o.Dir, peer, peer+"-"+body+o.runSuffix(run))
	fc, bc := front.CPU(), back.CPU()
	w, err := benchinfo.RunWrk(ctx, url, 1, o.Conns, o.Duration)
	if err != nil {
		return r, err
	}
	fc, bc = front.CPU()-fc, back.CPU()-bc
	profiles()
	r.Wrk = w
	moved := float64(w.Requests) * float64(bodies[body])
	r.MBps = moved / o.Duration.Seconds() / 1e6
	if peer != "nginx" && moved > 0 {
		r.FrontCPUPerGB, r.BackCPUPerGB = fc/(moved/1e9), bc/(moved/1e9)
	}
	o.Progress("%-3s %-7s %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms  %7.1f MB/s  CPU s/GB front %6.1f back %6.1f  errors %d%s",
		body, peer, w.RequestsSec, w.P50ms, w.P99ms, r.MBps, r.FrontCPUPerGB, r.BackCPUPerGB, w.Non2xx+w.SocketErrs, o.runNote(run))
	return r, nil
}

// runSuffix tells apart the CPU profiles of several runs.
func (o Options) runSuffix(run int) string {
	if o.Runs > 1 {
		return fmt.Sprintf("-run%d", run)
	}
	return ""
}

// runNote names the run in progress lines when there are several.
func (o Options) runNote(run int) string {
	if o.Runs > 1 {
		return fmt.Sprintf("  (run %d of %d)", run, o.Runs)
	}
	return ""
}

func indexOf(peer string) int {
	for i, p := range Peers {
		if p == peer {
			return i
		}
	}
	return -1
}

// check asks url once and wants a body of size bytes.
func check(ctx context.Context, url string, size int) error {
	// Each request is bounded: without a bound, one answer that never came
	// held a whole `--runs 3` sequence for minutes, with nothing said.
	client := &http.Client{Timeout: 20 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && int(n) == size {
				return nil
			}
			err = fmt.Errorf("%s: %d, %d bytes", url, resp.StatusCode, n)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// profileBoth takes CPU profiles of both Caddys (admin sockets in dir)
// during a load, as <Profile>/<name>-<side>.pprof, if asked to (nginx
// alone has no Caddy). It returns a function that waits for them.
func (o Options) profileBoth(ctx context.Context, dir, peer, name string) (wait func()) {
	var profiles sync.WaitGroup
	if o.Profile != "" && peer != "nginx" {
		for _, side := range []string{"frontend", "backend"} {
			profiles.Add(1)
			go func() {
				defer profiles.Done()
				if err := profile(ctx, dir, side, filepath.Join(o.Profile, name+"-"+side+".pprof"), o.Duration-time.Second); err != nil {
					o.Progress("profile of the %s: %v", side, err)
				}
			}()
		}
	}
	return profiles.Wait
}

// profile takes a CPU profile of the Caddy called name for d.
func profile(ctx context.Context, dir, name, out string, d time.Duration) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	body, err := adminGet(ctx, dir, name, fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(1, int(d.Seconds()))))
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, body)
	return err
}

// adminGet asks the admin endpoint of the Caddy called name in dir for
// path, and returns the answer's body if it is 200 OK.
func adminGet(ctx context.Context, dir, name, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://admin"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := nscaddy.AdminClient(dir, name).Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s", name, path, resp.Status)
	}
	return resp.Body, nil
}

// startNginx serves /1k and /1m (random bytes: nothing compresses) from
// Debian's nginx on the origin port.
func startNginx(dir, ns, host string) (stop func(), err error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, serr := os.Stat(bin); serr != nil {
			return nil, errors.New("nginx is not installed (Debian: apt-get install nginx-light; .ci/run installs it)")
		}
	}
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return nil, err
	}
	for name, n := range bodies {
		if _, err := os.Stat(filepath.Join(www, name)); err == nil {
			continue
		}
		b := make([]byte, n)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(www, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;"
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	client_body_temp_path %[2]s/tmp-body;
	proxy_temp_path %[2]s/tmp-proxy;
	fastcgi_temp_path %[2]s/tmp-fastcgi;
	uwsgi_temp_path %[2]s/tmp-uwsgi;
	scgi_temp_path %[2]s/tmp-scgi;
	server {
		listen %[5]s:%[3]d;
		root %[4]s;
		default_type application/octet-stream;
	}
}
`, user, dir, originPort, www, host)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath)
	if ns != "" {
		cmd = exec.Command("ip", "netns", "exec", ns, bin, "-p", dir, "-c", confPath)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, _ := os.Create(filepath.Join(dir, "nginx.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		log.Close()
	}
	for range 100 {
		if _, err := os.Stat(filepath.Join(dir, "nginx.pid")); err == nil {
			if ns != "" {
				return stop, nil
			}
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", originPort)); err == nil {
				c.Close()
				return stop, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, errors.New("nginx did not start (see nginx.log)")
}

// globals: both Caddys share one storage directory (the fleet CA of TMP's
// credentials, and the internal CA of the TLS peers); admin on a Unix
// socket (pprof comes from there).
func globals(dir, name, extra string) string {
	return fmt.Sprintf("{\n\tadmin unix/%s\n\tstorage file_system %s\n\tskip_install_trust\n\tpersist_config off\n\tauto_https disable_redirects\n\tlog {\n\t\tlevel WARN\n\t}\n%s}\n",
		nscaddy.AdminSocket(dir, name), filepath.Join(dir, "storage"), extra)
}

// toOrigin is every back-end site's proxy to nginx. The pool of idle
// connections holds all 64 of the load's: with Caddy's default of 32, a
// tenth of the back-end's CPU went to dialling nginx again, for every
// peer alike.
var toOrigin = fmt.Sprintf("reverse_proxy 127.0.0.1:%d {\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host 128\n\t\t}\n\t}", originPort)

func backendConfig(dir string) string {
	return globals(dir, "backend", "\tconductor {\n\t\tname be1\n\t\trole backend\n\t}\n\tservers :"+fmt.Sprint(h2cPort)+" {\n\t\tprotocols h1 h2c\n\t}\n") +
		fmt.Sprintf("http://:%d {\n\tbind tmp/127.0.0.1\n\t%s\n}\n", tmpPort, toOrigin) +
		fmt.Sprintf("https://127.0.0.1:%d {\n\ttls internal\n\t%s\n}\n", tlsPort, toOrigin) +
		fmt.Sprintf("http://127.0.0.1:%d {\n\t%s\n}\n", h2cPort, toOrigin)
}

func frontendConfig(dir string) string {
	site := func(peer, upstream, transport string) string {
		return fmt.Sprintf("http://127.0.0.1:%d {\n\treverse_proxy %s {\n\t\t%s\n\t}\n}\n", frontBase+indexOf(peer), upstream, transport)
	}
	return globals(dir, "frontend", "\tconductor {\n\t\tname fe1\n\t\trole frontend\n\t}\n") +
		site("tmp", fmt.Sprintf("127.0.0.1:%d", tmpPort), "transport tmp") +
		site("h2-tls", fmt.Sprintf("https://127.0.0.1:%d", tlsPort), "transport http {\n\t\t\tversions 2\n\t\t\ttls_insecure_skip_verify\n\t\t}") +
		site("h1-tls", fmt.Sprintf("https://127.0.0.1:%d", tlsPort), "transport http {\n\t\t\tversions 1.1\n\t\t\ttls_insecure_skip_verify\n\t\t\tkeepalive_idle_conns_per_host 128\n\t\t}") +
		site("h2c", fmt.Sprintf("127.0.0.1:%d", h2cPort), "transport http {\n\t\t\tversions h2c 2\n\t\t}") +
		site("tmp-zstd", fmt.Sprintf("127.0.0.1:%d", tmpPort), "transport tmp {\n\t\t\tcompress\n\t\t}")
}

// Table renders the report as Markdown.
func (r *Report) Table() string {
	var b strings.Builder
	if r.GoMaxProcs > 0 {
		fmt.Fprintf(&b, "Every Caddy ran with GOMAXPROCS=%d.\n\n", r.GoMaxProcs)
	}
	if len(r.Links) > 0 {
		return b.String() + r.linksTable()
	}
	fmt.Fprintf(&b, "| body | peer | run | req/s | p50 ms | p99 ms | MB/s | front CPU s/GB | back CPU s/GB | errors |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, x := range r.Results {
		fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %.2f | %.2f | %.1f | %.1f | %.1f | %d |\n", x.Body, x.Peer, x.Run, x.RequestsSec, x.P50ms, x.P99ms, x.MBps, x.FrontCPUPerGB, x.BackCPUPerGB, x.Non2xx+x.SocketErrs)
	}
	fmt.Fprintf(&b, "\n| body | TMP against | req/s × | p99 × | back-end CPU/GB × | runs |\n| --- | --- | ---: | ---: | ---: | ---: |\n")
	for _, x := range r.Ratios {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d |\n", x.Body, x.Against, cell(x.RPS, x.RPSRange), cell(x.P99, x.P99Range), cell(x.BackCPU, x.BackCPURange), x.Runs)
	}
	return b.String()
}

// WriteJSON writes the report.
func (r *Report) WriteJSON(path string) error { return benchinfo.WriteJSON(path, r) }
