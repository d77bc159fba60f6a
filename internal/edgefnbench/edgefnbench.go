// Package edgefnbench measures edge functions as a site would use them
// (`conductor bench edgefn`): the demo shop's cart function (Go, wasip1)
// answering at a front-end Caddy, against the same JSON from Caddy's
// `respond` on that front-end, and against the origin's own answer, a
// round trip over TMP across the emulated continental link (front-end →
// back-end Caddy → origin). It also measures cold start: from loading a
// config with the function, the compilation cache empty, to its first
// answer; and the same with the cache warm.
//
// The goals: p50 added latency under 1 ms over respond, at least
// 5× the origin round trip's requests/s, and a cold start under 1 s.
package edgefnbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/conductor-edge/conductor/internal/benchinfo"
	"github.com/conductor-edge/conductor/internal/nscaddy"
	"github.com/conductor-edge/conductor/internal/shop"
	"github.com/conductor-edge/conductor/internal/shop/cart"
	"github.com/conductor-edge/conductor/internal/transportbench"
	"github.com/conductor-edge/conductor/internal/wan"
)

// Options configure a run.
type Options struct {
	Binary   string        // the conductor binary
	Dir      string        // configs, logs, the built function
	Duration time.Duration // each load; default 10s
	Conns    []int         // concurrent clients per load; default 1 and 16
	Progress func(format string, args ...any)
}

// Load is one peer under one load.
type Load struct {
	Peer     string  `json:"peer"`
	Conns    int     `json:"conns"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	RPS      float64 `json:"rps"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
}

// Report is a run's result.
type Report struct {
	When    time.Time `json:"when"`
	Machine string    `json:"machine"`
	Profile string    `json:"profile"` // of the origin round trip
	Loads   []Load    `json:"loads"`
	// Cold start: loading a config with the function to its first answer.
	ColdStartMs     float64 `json:"cold_start_ms"`    // compilation cache empty
	WarmStartMs     float64 `json:"warm_start_ms"`    // compilation cache filled
	AddedP50Ms      float64 `json:"added_p50_ms"`     // edge_function p50 − respond p50, 1 client
	TimesOriginRPS  float64 `json:"times_origin_rps"` // edge_function req/s ÷ the origin round trip's, most clients
	GoalsMet        bool    `json:"goals_met"`
	FunctionBytes   int     `json:"function_bytes"`
	AnswerByteCount int     `json:"answer_bytes"`
}

const (
	originPort   = 9091
	tmpPort      = 4491
	respondPort  = 8201
	functionPort = 8202
	originRTPort = 8203
	cookie       = "1.3.3.5"
)

// Run measures.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if len(o.Conns) == 0 {
		o.Conns = []int{1, 16}
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	wasm := filepath.Join(o.Dir, "cart.wasm")
	o.Progress("building the cart function (GOOS=wasip1) …")
	build := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", wasm, "github.com/conductor-edge/conductor/internal/shop/cartfn")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the cart function (run from the repository, with Go): %v\n%s", err, out)
	}
	data := filepath.Join(o.Dir, "data")
	os.MkdirAll(data, 0o755)
	answer := cart.Compute(cookie, shop.Prices()).JSON()
	prices, _ := json.Marshal(shop.Prices())
	if err := os.WriteFile(filepath.Join(data, "catalogue.json"), prices, 0o644); err != nil {
		return nil, err
	}
	fi, _ := os.Stat(wasm)
	rep := &Report{When: time.Now().UTC(), Machine: benchinfo.Machine(), Profile: "continental", FunctionBytes: int(fi.Size()), AnswerByteCount: len(answer)}

	spec, _ := transportbench.ProfileByName("continental")
	l, err := spec.Link("")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	origin, err := nscaddy.ServeInB(l, fmt.Sprintf("127.0.0.1:%d", originPort), shop.Handler("shop"))
	if err != nil {
		return nil, err
	}
	defer origin.Close()
	back, err := nscaddy.Start(ctx, o.Dir, "backend", l.NSB, backendConfig(o.Dir, l), o.Binary)
	if err != nil {
		return nil, err
	}
	defer back.Stop()
	front, err := nscaddy.Start(ctx, o.Dir, "frontend", l.NSA, frontendConfig(o.Dir, l, answer, ""), o.Binary)
	if err != nil {
		return nil, err
	}
	defer front.Stop()
	client := clientIn(l, 64)

	// Cold, then warm: the second load compiles nothing.
	for i, name := range []string{"cold", "warm"} {
		fn := fmt.Sprintf("cart-%s", name)
		ms, err := startToAnswer(ctx, o.Dir, client, frontendConfig(o.Dir, l, answer, functionSite(wasm, data, fn)))
		if err != nil {
			return nil, fmt.Errorf("%s start: %w", name, err)
		}
		o.Progress("%s start (install to first answer): %.0f ms", name, ms)
		if i == 0 {
			rep.ColdStartMs = ms
		} else {
			rep.WarmStartMs = ms
		}
		// Let the compiler finish and its pool take over from the
		// interpreter's (a config stopped while it compiles waits for it).
		time.Sleep(3 * time.Second)
	}

	peers := []struct {
		name string
		port int
	}{{"respond", respondPort}, {"edge_function", functionPort}, {"origin over TMP (continental)", originRTPort}}
	for _, conns := range o.Conns {
		for _, p := range peers {
			url := fmt.Sprintf("http://127.0.0.1:%d/api/cart", p.port)
			// Warm the connections and the pool first.
			load(ctx, client, url, conns, time.Second, answer)
			ld := load(ctx, client, url, conns, o.Duration, answer)
			ld.Peer = p.name
			o.Progress("%-30s %2d clients: %8.0f req/s, p50 %.3f ms, p99 %.3f ms, %d errors", p.name, conns, ld.RPS, ld.P50Ms, ld.P99Ms, ld.Errors)
			rep.Loads = append(rep.Loads, ld)
		}
	}
	find := func(peer string, conns int) Load {
		for _, ld := range rep.Loads {
			if ld.Peer == peer && ld.Conns == conns {
				return ld
			}
		}
		return Load{}
	}
	lo, hi := slices.Min(o.Conns), slices.Max(o.Conns)
	rep.AddedP50Ms = find("edge_function", lo).P50Ms - find("respond", lo).P50Ms
	rep.TimesOriginRPS = find("edge_function", hi).RPS / max(find(peers[2].name, hi).RPS, 1e-9)
	rep.GoalsMet = rep.AddedP50Ms < 1 && rep.TimesOriginRPS >= 5 && rep.ColdStartMs < 1000
	for _, ld := range rep.Loads {
		if ld.Errors > 0 {
			rep.GoalsMet = false
		}
	}
	return rep, nil
}

// clientIn makes requests from namespace A, where the front-end is.
func clientIn(l *wan.Link, conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = l.InA(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return
			})
			return
		},
	}}
}

// startToAnswer loads config into the front-end and times it to the
// function's first good answer.
func startToAnswer(ctx context.Context, dir string, c *http.Client, config string) (float64, error) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://admin/load", strings.NewReader(config))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := nscaddy.AdminClient(dir, "frontend").Do(req)
	if err != nil {
		return 0, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("load: %s %s", resp.Status, body)
	}
	for time.Since(start) < 30*time.Second {
		if code, _ := get(ctx, c, fmt.Sprintf("http://127.0.0.1:%d/api/cart", functionPort)); code == 200 {
			return float64(time.Since(start).Microseconds()) / 1000, nil
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("no answer within 30 s")
}

func get(ctx context.Context, c *http.Client, url string) (int, []byte) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Cookie", "cart="+cookie)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// load runs conns closed-loop clients for d; an answer that is not the
// cart's JSON counts as an error.
func load(ctx context.Context, c *http.Client, url string, conns int, d time.Duration, want []byte) Load {
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for time.Now().Before(end) && ctx.Err() == nil {
				s := time.Now()
				code, body := get(ctx, c, url)
				mine = append(mine, time.Since(s))
				if code != 200 || !bytes.Equal(body, want) {
					bad++
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	ld := Load{Conns: conns, Requests: len(lat), Errors: errs, RPS: float64(len(lat)) / d.Seconds()}
	if len(lat) > 0 {
		ld.P50Ms = float64(lat[len(lat)/2].Microseconds()) / 1000
		ld.P99Ms = float64(lat[len(lat)*99/100].Microseconds()) / 1000
	}
	return ld
}

// backendConfig: the back-end beside the origin, reached over TMP.
func backendConfig(dir string, l *wan.Link) string {
	return globals(dir, "backend", "\tconductor {\n\t\tname be1\n\t\trole backend\n\t}\n") +
		fmt.Sprintf("http://:%d {\n\tbind tmp/%s\n\treverse_proxy 127.0.0.1:%d\n}\n", tmpPort, l.AddrB, originPort)
}

// frontendConfig: respond, and the origin over TMP; fnSite adds the
// function's site.
func frontendConfig(dir string, l *wan.Link, answer []byte, fnSite string) string {
	return globals(dir, "frontend", "\tconductor {\n\t\tname fe1\n\t\trole frontend\n\t}\n") +
		fmt.Sprintf("http://127.0.0.1:%d {\n\theader Content-Type application/json\n\trespond %q 200\n}\n", respondPort, answer) +
		fmt.Sprintf("http://127.0.0.1:%d {\n\treverse_proxy %s:%d {\n\t\ttransport tmp\n\t}\n}\n", originRTPort, l.AddrB, tmpPort) +
		fnSite
}

func functionSite(wasm, data, name string) string {
	return fmt.Sprintf("http://127.0.0.1:%d {\n\tedge_function {\n\t\tmodule %s\n\t\tdata %s\n\t\tname %s\n\t\tinstances 16\n\t\tmax_memory 64MiB\n\t}\n}\n", functionPort, wasm, data, name)
}

// globals: both Caddys share one storage directory (the fleet CA of TMP's
// credentials); the admin endpoint is a Unix socket.
func globals(dir, name, extra string) string {
	return fmt.Sprintf("{\n\tadmin unix/%s\n\tstorage file_system %s\n\tskip_install_trust\n\tpersist_config off\n\tlog {\n\t\tlevel WARN\n\t}\n%s}\n",
		nscaddy.AdminSocket(dir, name), filepath.Join(dir, "storage"), extra)
}

// Table renders the report as Markdown.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| peer | clients | req/s | p50 ms | p99 ms | errors |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, ld := range r.Loads {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.3f | %.3f | %d |\n", ld.Peer, ld.Conns, ld.RPS, ld.P50Ms, ld.P99Ms, ld.Errors)
	}
	fmt.Fprintf(&b, "\n| measure | value | goal |\n| --- | ---: | --- |\n")
	fmt.Fprintf(&b, "| p50 added over respond (1 client) | %.3f ms | < 1 ms |\n", r.AddedP50Ms)
	fmt.Fprintf(&b, "| req/s over the origin round trip (%s) | %.1f× | ≥ 5× |\n", r.Profile, r.TimesOriginRPS)
	fmt.Fprintf(&b, "| cold start, compilation cache empty | %.0f ms | < 1000 ms |\n", r.ColdStartMs)
	fmt.Fprintf(&b, "| start, compilation cache warm | %.0f ms | |\n", r.WarmStartMs)
	fmt.Fprintf(&b, "| goals met | %v | |\n", r.GoalsMet)
	return b.String()
}

// WriteJSON writes the report.
func (r *Report) WriteJSON(path string) error { return benchinfo.WriteJSON(path, r) }
