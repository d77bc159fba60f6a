// Package tcpbench measures a bulk TCP transfer carried Caddy to Caddy
// across the emulated WAN (issue 18): a client beside the front-end reads
// a large body (1 GB by default) from a server beside the origin, through
//
//   - tmp: a front-end Caddy whose layer4 route carries the connection as
//     one TMP stream (`layer4.handlers.tmp`) to a back-end Caddy, which
//     connects it to the origin (`conductor { service … }`);
//   - l4-proxy-bbr, l4-proxy-cubic: the same two Caddys with caddy-l4's own
//     `proxy` handler on both, so that the WAN hop is plain TCP with BBR or
//     with Cubic; this is what an operator would run without Conductor.
//
// The front-end and its client live in the link's namespace A, the
// back-end and the origin in namespace B; the download direction carries
// the profile's loss and bottleneck. Every process is the conductor binary
// (`conductor caddy run`), started in its namespace with `ip netns exec`.
package tcpbench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/conductor-edge/conductor/internal/benchinfo"
	"github.com/conductor-edge/conductor/internal/nscaddy"
	"github.com/conductor-edge/conductor/internal/transportbench"
	"github.com/conductor-edge/conductor/internal/wan"
)

// Peer is one way of carrying the connection across the WAN.
type Peer struct {
	Key  string
	What string
	// CC is the congestion control of TCP on the WAN hop ("" for TMP,
	// which runs its own over UDP).
	CC string
}

// Peers are the peers in the order they run.
var Peers = []Peer{
	{"tmp", "Caddy layer4 → TMP stream → Caddy back-end service → origin", ""},
	{"l4-proxy-bbr", "Caddy layer4 proxy → TCP (BBR) → Caddy layer4 proxy → origin", "bbr"},
	{"l4-proxy-cubic", "Caddy layer4 proxy → TCP (Cubic) → Caddy layer4 proxy → origin", "cubic"},
}

// Options configure a run.
type Options struct {
	Binary   string // the conductor binary
	Dir      string // configs, storage and process logs
	Profiles []transportbench.ProfileSpec
	Peers    []string // keys; empty: all
	// Size is what each transfer moves (default 1 GB). A transfer still
	// running after MaxTime (default 3 min) stops there, and its goodput
	// is what it moved by then.
	Size     int64
	MaxTime  time.Duration
	Progress func(format string, args ...any)
}

// Result is one peer's transfer on one profile.
type Result struct {
	Profile     string  `json:"profile"`
	Peer        string  `json:"peer"`
	Bytes       int64   `json:"bytes"`
	Seconds     float64 `json:"seconds"`
	GoodputMbps float64 `json:"goodput_mbps"`
	// Capped: the transfer hit MaxTime before it moved Size.
	Capped bool `json:"capped"`
	// LinkUtilization is the bottleneck's busy share during the transfer.
	LinkUtilization float64 `json:"link_utilization"`
	// CPU seconds of the two Caddy processes during the transfer, and
	// both together per GB moved.
	FrontendCPUSeconds float64 `json:"frontend_cpu_seconds"`
	BackendCPUSeconds  float64 `json:"backend_cpu_seconds"`
	CPUSecondsPerGB    float64 `json:"cpu_seconds_per_gb"`
	// RatioToBBR is goodput over l4-proxy-bbr's on the same profile.
	RatioToBBR float64 `json:"ratio_to_bbr,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// Report is a run's result.
type Report struct {
	When    time.Time `json:"when"`
	Machine string    `json:"machine"`
	Size    int64     `json:"size"`
	MaxTime string    `json:"max_time"`
	Results []Result  `json:"results"`
}

// Fixed ports: every namespace is new, so nothing else holds them.
const (
	originPort   = 9000
	frontendPort = 9100
	tmpPort      = 4433
	l4Port       = 4434
)

// Run measures every selected peer on every selected profile.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Size == 0 {
		o.Size = 1 << 30
	}
	if o.MaxTime == 0 {
		o.MaxTime = 3 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if len(o.Profiles) == 0 {
		p, _ := transportbench.ProfileByName("lossy")
		o.Profiles = []transportbench.ProfileSpec{p}
	}
	peers := Peers
	if len(o.Peers) > 0 {
		peers = nil
		for _, k := range o.Peers {
			p, ok := peerByKey(k)
			if !ok {
				return nil, fmt.Errorf("tcpbench: unknown peer %q", k)
			}
			peers = append(peers, p)
		}
	}
	rep := &Report{When: time.Now().UTC(), Machine: benchinfo.Machine(), Size: o.Size, MaxTime: o.MaxTime.String()}
	for _, prof := range o.Profiles {
		var bbr float64
		var results []Result
		for _, p := range peers {
			o.Progress("[%s] %s: %s …", prof.Name, p.Key, p.What)
			r, err := runOne(ctx, o, prof, p)
			if err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				r.Error = err.Error()
			}
			o.Progress("[%s] %s: %.1f MB in %.1f s, %.1f Mbit/s, link %.1f %% busy, %.1f CPU s per GB%s", prof.Name, p.Key,
				float64(r.Bytes)/1e6, r.Seconds, r.GoodputMbps, 100*r.LinkUtilization, r.CPUSecondsPerGB, map[bool]string{true: " (capped)"}[r.Capped])
			if p.Key == "l4-proxy-bbr" {
				bbr = r.GoodputMbps
			}
			results = append(results, r)
		}
		for i := range results {
			if bbr > 0 {
				results[i].RatioToBBR = results[i].GoodputMbps / bbr
			}
		}
		rep.Results = append(rep.Results, results...)
	}
	return rep, nil
}

func peerByKey(k string) (Peer, bool) {
	for _, p := range Peers {
		if p.Key == k {
			return p, true
		}
	}
	return Peer{}, false
}

// runOne builds the link and the two Caddys for one peer, and moves Size.
func runOne(ctx context.Context, o Options, prof transportbench.ProfileSpec, p Peer) (Result, error) {
	r := Result{Profile: prof.Name, Peer: p.Key}
	l, err := prof.Link(p.CC)
	if err != nil {
		return r, err
	}
	defer l.Close()
	dir := filepath.Join(o.Dir, prof.Name+"-"+p.Key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	stopOrigin, err := serveOrigin(l)
	if err != nil {
		return r, err
	}
	defer stopOrigin()
	back, err := nscaddy.Start(ctx, dir, "backend", l.NSB, backendConfig(dir, l, p), o.Binary)
	if err != nil {
		return r, err
	}
	defer back.Stop()
	front, err := nscaddy.Start(ctx, dir, "frontend", l.NSA, frontendConfig(dir, l, p), o.Binary)
	if err != nil {
		return r, err
	}
	defer front.Stop()
	// Until a small transfer goes through, the path is not up yet.
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, _, err := transfer(ctx, l, 1<<20, 10*time.Second)
		if err == nil && n == 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("the path did not carry a first megabyte: %v (logs in %s)", err, dir)
		}
		time.Sleep(300 * time.Millisecond)
	}
	fcpu0, bcpu0 := front.CPU(), back.CPU()
	_, down0 := l.Stats()
	n, elapsed, err := transfer(ctx, l, o.Size, o.MaxTime)
	_, down1 := l.Stats()
	r.Bytes, r.Seconds = n, elapsed.Seconds()
	r.FrontendCPUSeconds, r.BackendCPUSeconds = front.CPU()-fcpu0, back.CPU()-bcpu0
	if r.Seconds > 0 {
		r.GoodputMbps = float64(n) * 8 / r.Seconds / 1e6
		r.LinkUtilization = float64(down1.DeliveredBytes-down0.DeliveredBytes) * 8 / r.Seconds / prof.RateBps
	}
	if n > 0 {
		r.CPUSecondsPerGB = (r.FrontendCPUSeconds + r.BackendCPUSeconds) / (float64(n) / 1e9)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		r.Capped, err = true, nil
	} else if err == nil && n != o.Size {
		err = fmt.Errorf("the transfer ended after %d of %d bytes", n, o.Size)
	}
	return r, err
}

// backendConfig is the origin side's Caddy: for TMP, a back-end that
// serves the origin as the service "bulk" (and a site, as a TMP listener
// is a Caddy server's binding); for the TCP peers, caddy-l4's proxy.
func backendConfig(dir string, l *wan.Link, p Peer) string {
	origin := fmt.Sprintf("127.0.0.1:%d", originPort)
	if p.CC == "" {
		return globals(dir, "backend", fmt.Sprintf("\tconductor {\n\t\tname be1\n\t\trole backend\n\t\tservice bulk %s\n\t}\n", origin)) +
			fmt.Sprintf("http://:%d {\n\tbind tmp/%s\n\trespond \"ok\"\n}\n", tmpPort, l.AddrB)
	}
	return globals(dir, "backend", layer4(fmt.Sprintf("%s:%d", l.AddrB, l4Port), "proxy "+origin))
}

// frontendConfig is the client side's Caddy: a layer4 listener on its
// loopback that carries each connection across the WAN.
func frontendConfig(dir string, l *wan.Link, p Peer) string {
	listen := fmt.Sprintf("127.0.0.1:%d", frontendPort)
	if p.CC == "" {
		return globals(dir, "frontend", "\tconductor {\n\t\tname fe1\n\t\trole frontend\n\t}\n"+
			layer4(listen, fmt.Sprintf("tmp %s:%d bulk", l.AddrB, tmpPort)))
	}
	return globals(dir, "frontend", layer4(listen, fmt.Sprintf("proxy %s:%d", l.AddrB, l4Port)))
}

func layer4(listen, handler string) string {
	return fmt.Sprintf("\tlayer4 {\n\t\t%s {\n\t\t\troute {\n\t\t\t\t%s\n\t\t\t}\n\t\t}\n\t}\n", listen, handler)
}

// globals: both Caddys share one storage directory, so that they share
// the fleet CA that TMP's credentials come from. The admin endpoint is a
// Unix socket, which the benchmark reaches from any namespace.
func globals(dir, name, extra string) string {
	return fmt.Sprintf("{\n\tadmin unix/%s\n\tstorage file_system %s\n\tskip_install_trust\n\tpersist_config off\n\tlog {\n\t\tlevel WARN\n\t}\n%s}\n",
		nscaddy.AdminSocket(dir, name), filepath.Join(filepath.Dir(dir), "storage"), extra)
}

// serveOrigin is the origin: it reads an 8-byte size and writes that many
// bytes of an incompressible pattern, then closes.
func serveOrigin(l *wan.Link) (stop func(), err error) {
	var ln net.Listener
	if err := l.InB(func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", originPort))
		return
	}); err != nil {
		return nil, err
	}
	pattern := make([]byte, 1<<20)
	rand.Read(pattern)
	return transportbench.ServeConns(ln, func(c net.Conn) {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		for left := int64(binary.BigEndian.Uint64(hdr[:])); left > 0; {
			n := min(left, int64(len(pattern)))
			if _, err := c.Write(pattern[:n]); err != nil {
				return
			}
			left -= n
		}
	}), nil
}

// transfer asks the origin, through the front-end, for size bytes and
// reads them, within limit. It returns what arrived and how long it took;
// the error is os.ErrDeadlineExceeded if limit ran out.
func transfer(ctx context.Context, l *wan.Link, size int64, limit time.Duration) (int64, time.Duration, error) {
	var c net.Conn
	if err := l.InA(func() (err error) {
		c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", frontendPort))
		return
	}); err != nil {
		return 0, 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	start := time.Now()
	c.SetDeadline(start.Add(limit))
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(size))
	if _, err := c.Write(hdr[:]); err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, c)
	return n, time.Since(start), err
}

// Table renders the report as Markdown.
func (r *Report) Table() string {
	var b strings.Builder
	b.WriteString("| profile | peer | moved MB | seconds | goodput Mbit/s | × l4-proxy-bbr | link busy | front-end CPU s | back-end CPU s | CPU s per GB | note |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, x := range r.Results {
		note := x.Error
		if x.Capped {
			note = fmt.Sprintf("stopped at the %s limit", r.MaxTime)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %.0f | %.1f | %.1f | %.2f | %.1f %% | %.1f | %.1f | %.1f | %s |\n", x.Profile, x.Peer,
			float64(x.Bytes)/1e6, x.Seconds, x.GoodputMbps, x.RatioToBBR, 100*x.LinkUtilization, x.FrontendCPUSeconds, x.BackendCPUSeconds, x.CPUSecondsPerGB, note)
	}
	return b.String()
}

// WriteJSON writes the report.
func (r *Report) WriteJSON(path string) error {
	return benchinfo.WriteJSON(path, r)
}
