// Package admissionbench is the front-end's load test, end to end with
// real processes: an origin capped at 50 requests/s (503 beyond), a
// back-end publishing its load index, and a front-end with priority rules,
// a waiting room, the load gate and fallback pages. It offers 500
// requests/s for 30 s — visitors browsing product pages, and buyers with a
// cart (priority 0) — and reports what the origin saw, what every client
// got, the order in which the waiting room admitted its line, and the
// buyers' latency against an unloaded run.
package admissionbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conductor-edge/conductor/internal/benchinfo"
	"github.com/conductor-edge/conductor/internal/topology"
)

// Options configure a run.
type Options struct {
	Binary     string
	Dir        string        // configs and logs
	Duration   time.Duration // default 30s
	OfferedRPS int           // default 500
	OriginCap  int           // default 50
	Visitors   int           // browsing population; default 3000
	BuyerShare float64       // share of requests from buyers (priority 0); default 0.05
	Progress   func(format string, args ...any)
}

// Report is a run's result.
type Report struct {
	When            time.Time      `json:"when"`
	Duration        string         `json:"duration"`
	OfferedRPS      int            `json:"offered_rps"`
	OriginCapRPS    int            `json:"origin_cap_rps"`
	OriginMaxRPS    int            `json:"origin_max_rps"` // most requests that reached the origin in any sliding second
	OriginServed    int64          `json:"origin_served"`
	OriginRejected  int64          `json:"origin_rejected"` // the origin's own 503s
	Requests        int64          `json:"requests"`
	Outcomes        map[string]int `json:"outcomes"` // content, queue, wait, error
	Errors          []string       `json:"errors,omitempty"`
	AdmittedFromQ   int            `json:"admitted_from_queue"`
	FIFOViolations  int            `json:"fifo_violations"`
	UrgentUnloadP50 float64        `json:"urgent_unloaded_p50_ms"`
	UrgentUnloadP99 float64        `json:"urgent_unloaded_p99_ms"`
	UrgentLoadP50   float64        `json:"urgent_loaded_p50_ms"`
	UrgentLoadP99   float64        `json:"urgent_loaded_p99_ms"`
	UrgentP99Ratio  float64        `json:"urgent_p99_ratio"`
	UrgentRequests  int            `json:"urgent_requests"`
}

const frontendExtra = `priority {
		0 cookie cart
		# Every simulated client comes from 127.0.0.1: the owner's budget
		# for urgent requests is per address, so it is sized for all of
		# them together (25 buyers' requests a second).
		bypass_budget 100 burst 100
	}
	waiting_room /product/* load-room {
		# Every visitor of this test gets a place in line (the default cap,
		# one session's admissions, would turn most of them away).
		max_waiting 100000
		total_active_users 300
		new_users_per_minute 1200
		session_duration 20s
		refresh 1s
		site_name "Load test shop"
	}
	load_gate {
		threshold 0.7
		poll http://{frontend}/.well-known/conductor-load 250ms
		retry 2s
		site_name "Load test shop"
	}
	fallback {
		site_name "Load test shop"
	}`

// Run starts the topology, measures, and stops it.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	if o.OfferedRPS == 0 {
		o.OfferedRPS = 500
	}
	if o.OriginCap == 0 {
		o.OriginCap = 50
	}
	if o.Visitors == 0 {
		o.Visitors = 3000
	}
	if o.BuyerShare == 0 {
		o.BuyerShare = 0.05
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	ports := make([]int, 4)
	for i := range ports {
		p, err := topology.FreePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	adminBase, err := topology.FreePortRun(2)
	if err != nil {
		return nil, err
	}
	origin := fmt.Sprintf("127.0.0.1:%d", ports[0])
	tp, err := topology.Start(ctx, topology.Options{
		Binary:        o.Binary,
		Dir:           o.Dir,
		OriginAddr:    origin,
		OriginArgs:    []string{"-max-rps", fmt.Sprint(o.OriginCap)},
		BackendTMP:    fmt.Sprintf("127.0.0.1:%d", ports[1]),
		Frontends:     []string{fmt.Sprintf("127.0.0.7:%d", ports[2])},
		AdminBase:     adminBase,
		BackendExtra:  fmt.Sprintf("load_index {\n\t\tcapacity %d\n\t}", o.OriginCap),
		FrontendExtra: frontendExtra,
		Progress:      o.Progress,
	})
	if err != nil {
		return nil, err
	}
	defer tp.Stop()
	fe := tp.FrontendURL(0)
	tr := &http.Transport{MaxIdleConnsPerHost: 1000, MaxIdleConns: 2000, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()

	rep := &Report{When: time.Now().UTC(), Duration: o.Duration.String(), OfferedRPS: o.OfferedRPS,
		OriginCapRPS: o.OriginCap, Outcomes: map[string]int{}}

	buyer := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		u, _ := http.NewRequest("GET", fe, nil)
		jar.SetCookies(u.URL, []*http.Cookie{{Name: "cart", Value: "1.2"}})
		return &http.Client{Transport: tr, Jar: jar, Timeout: 20 * time.Second}
	}
	// Unloaded: the buyers' latency with nobody else around.
	o.Progress("measuring buyers' latency unloaded …")
	b0 := buyer()
	var unloaded []float64
	for i := 0; i < 100; i++ { // 20/s, well within the origin's capacity
		t0 := time.Now()
		cls, _, err := classify(b0.Get(fe + fmt.Sprintf("/product/%d", 1+i%5)))
		if err != nil || cls != "content" {
			return nil, fmt.Errorf("unloaded buyer request: %s %v", cls, err)
		}
		unloaded = append(unloaded, ms(time.Since(t0)))
		time.Sleep(50 * time.Millisecond)
	}
	rep.UrgentUnloadP50, rep.UrgentUnloadP99 = pct(unloaded, 50), pct(unloaded, 99)

	// Loaded: open-loop arrivals at OfferedRPS.
	o.Progress("offering %d requests/s for %s …", o.OfferedRPS, o.Duration)
	visitors := make([]*http.Client, o.Visitors)
	for i := range visitors {
		jar, _ := cookiejar.New(nil)
		visitors[i] = &http.Client{Transport: tr, Jar: jar, Timeout: 20 * time.Second}
	}
	buyers := make([]*http.Client, 20)
	for i := range buyers {
		buyers[i] = buyer()
	}
	var (
		mu        sync.Mutex
		loaded    []float64
		admitted  [][2]int // seq, ticket
		requests  atomic.Int64
		wg        sync.WaitGroup
		vmu       = make([]sync.Mutex, o.Visitors) // one request per visitor at a time, as a browser tab
		inflight  = make(chan struct{}, 4000)
		interval  = time.Second / time.Duration(o.OfferedRPS)
		deadline  = time.Now().Add(o.Duration)
		rng       = rand.New(rand.NewPCG(1, 2))
		nextPrint = time.Now().Add(5 * time.Second)
	)
	record := func(cls, detail string) {
		mu.Lock()
		rep.Outcomes[cls]++
		if cls == "error" && len(rep.Errors) < 20 {
			rep.Errors = append(rep.Errors, detail)
		}
		mu.Unlock()
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for now := time.Now(); now.Before(deadline); now = <-tick.C {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if now.After(nextPrint) {
			o.Progress("%.0fs: %d requests, outcomes %v", o.Duration.Seconds()-time.Until(deadline).Seconds(), requests.Load(), snapshot(&mu, rep.Outcomes))
			nextPrint = nextPrint.Add(5 * time.Second)
		}
		path := fmt.Sprintf("/product/%d", 1+rng.IntN(5))
		isBuyer := rng.Float64() < o.BuyerShare
		var c *http.Client
		vi := -1
		if isBuyer {
			c = buyers[rng.IntN(len(buyers))]
		} else {
			vi = rng.IntN(len(visitors))
			c = visitors[vi]
		}
		select {
		case inflight <- struct{}{}:
		default:
			record("error", "load generator: 4000 requests in flight")
			continue
		}
		requests.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			if vi >= 0 {
				vmu[vi].Lock()
				defer vmu[vi].Unlock()
			}
			t0 := time.Now()
			cls, room, err := classify(c.Get(fe + path))
			lat := ms(time.Since(t0))
			detail := ""
			if err != nil {
				detail = err.Error()
			}
			record(cls, detail)
			mu.Lock()
			if isBuyer && cls == "content" {
				loaded = append(loaded, lat)
			}
			if isBuyer && cls != "content" {
				rep.Errors = append(rep.Errors, "buyer got "+cls)
			}
			var seq, ticket int
			if n, _ := fmt.Sscanf(room, "admitted; seq=%d; ticket=%d", &seq, &ticket); n == 2 && ticket > 0 {
				admitted = append(admitted, [2]int{seq, ticket})
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep.Requests = requests.Load()
	rep.UrgentRequests = len(loaded)
	rep.UrgentLoadP50, rep.UrgentLoadP99 = pct(loaded, 50), pct(loaded, 99)
	if rep.UrgentUnloadP99 > 0 {
		rep.UrgentP99Ratio = rep.UrgentLoadP99 / rep.UrgentUnloadP99
	}
	slices.SortFunc(admitted, func(a, b [2]int) int { return a[0] - b[0] })
	rep.AdmittedFromQ = len(admitted)
	for i := 1; i < len(admitted); i++ {
		if admitted[i][1] < admitted[i-1][1] {
			rep.FIFOViolations++
		}
	}
	resp, err := http.Get("http://" + origin + "/__origin/stats")
	if err != nil {
		return nil, err
	}
	var st struct {
		MaxRPS   int   `json:"max_rps"`
		Served   int64 `json:"served"`
		Rejected int64 `json:"rejected"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	rep.OriginMaxRPS, rep.OriginServed, rep.OriginRejected = st.MaxRPS, st.Served, st.Rejected
	return rep, nil
}

// classify sorts an answer: content from the origin, the waiting room's
// queue page, the load gate's wait page, or an error (anything else,
// including an apology page: the origin failed someone).
func classify(resp *http.Response, err error) (class, room string, _ error) {
	if err != nil {
		return "error", "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	room = resp.Header.Get("Conductor-Waiting-Room")
	switch {
	case strings.HasPrefix(room, "queued") && resp.StatusCode == 200:
		return "queue", room, nil
	case resp.Header.Get("Conductor-Substitute") == "wait" && resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
		return "wait", room, nil
	case resp.StatusCode == 200 && resp.Header.Get("Conductor-Substitute") == "":
		return "content", room, nil
	}
	return "error", room, fmt.Errorf("status %d, substitute %q", resp.StatusCode, resp.Header.Get("Conductor-Substitute"))
}

func snapshot(mu *sync.Mutex, m map[string]int) map[string]int {
	mu.Lock()
	defer mu.Unlock()
	out := map[string]int{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// Table renders the report against the goals.
func (r *Report) Table() string {
	var b strings.Builder
	check := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	fmt.Fprintf(&b, "| measure | value | goal | met |\n| --- | --- | --- | --- |\n")
	fmt.Fprintf(&b, "| offered | %d requests/s for %s (%d requests) | 500/s for 30 s | |\n", r.OfferedRPS, r.Duration, r.Requests)
	fmt.Fprintf(&b, "| origin peak (sliding second) | %d requests/s (cap %d; %d served, %d refused by the origin) | ≤ cap + 10 %% | %s |\n",
		r.OriginMaxRPS, r.OriginCapRPS, r.OriginServed, r.OriginRejected, check(float64(r.OriginMaxRPS) <= float64(r.OriginCapRPS)*1.1))
	fmt.Fprintf(&b, "| client outcomes | content %d, queue page %d, wait page %d, errors %d | 0 errors | %s |\n",
		r.Outcomes["content"], r.Outcomes["queue"], r.Outcomes["wait"], r.Outcomes["error"], check(r.Outcomes["error"] == 0))
	fmt.Fprintf(&b, "| admissions from the line | %d, %d out of ticket order | FIFO | %s |\n", r.AdmittedFromQ, r.FIFOViolations, check(r.FIFOViolations == 0 && r.AdmittedFromQ > 0))
	fmt.Fprintf(&b, "| priority-0 latency | unloaded p50 %.1f ms / p99 %.1f ms; loaded p50 %.1f ms / p99 %.1f ms (%d requests) | loaded p99 ≤ 2× unloaded | %s (%.2f×) |\n",
		r.UrgentUnloadP50, r.UrgentUnloadP99, r.UrgentLoadP50, r.UrgentLoadP99, r.UrgentRequests, check(r.UrgentP99Ratio <= 2), r.UrgentP99Ratio)
	return b.String()
}

// WriteJSON writes the report.
func (r *Report) WriteJSON(path string) error {
	return benchinfo.WriteJSON(path, r)
}
