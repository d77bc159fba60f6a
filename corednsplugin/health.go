package corednsplugin

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// frontend is one candidate front-end of a site.
type frontend struct {
	name      string
	v4, v6    []net.IP
	region    string
	weight    int
	healthURL string

	healthy  atomic.Bool
	loadBits atomic.Uint64 // float64 bits: the load the front-end reports (0 idle, 1 full)

	// Health-check goroutine only.
	okRun, failRun int
}

func (f *frontend) load() float64 { return math.Float64frombits(f.loadBits.Load()) }

// LoadHeader is the response header of a front-end's health endpoint that
// carries its load (0 = idle, 1 = fully loaded).
const LoadHeader = "Conductor-Load"

// healthChecker polls every front-end's health URL, as gdnsd's http_status
// and Route 53's health checks do: a 2xx answer within the timeout is a
// success; `up` successes in a row bring a front-end back, `down` failures
// in a row take it out.
type healthChecker struct {
	cfg    *config
	client *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	onFlip func(f *frontend, healthy bool)
}

func (hc *healthChecker) start() {
	ctx, cancel := context.WithCancel(context.Background())
	hc.cancel = cancel
	hc.client = &http.Client{
		Timeout:   hc.cfg.timeout,
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: hc.cfg.timeout}).DialContext},
	}
	for _, f := range hc.cfg.frontends {
		if f.healthURL == "" {
			continue
		}
		hc.wg.Add(1)
		go hc.run(ctx, f)
	}
}

func (hc *healthChecker) stop() {
	if hc.cancel != nil {
		hc.cancel()
		hc.wg.Wait()
	}
}

func (hc *healthChecker) run(ctx context.Context, f *frontend) {
	defer hc.wg.Done()
	t := time.NewTicker(hc.cfg.interval)
	defer t.Stop()
	for {
		hc.check(ctx, f)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (hc *healthChecker) check(ctx context.Context, f *frontend) {
	ok := false
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.healthURL, nil)
	if err == nil {
		req.Header.Set("User-Agent", "coredns-conductor-health")
		if resp, err := hc.client.Do(req); err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			ok = resp.StatusCode >= 200 && resp.StatusCode < 300
			if v, err := strconv.ParseFloat(resp.Header.Get(LoadHeader), 64); err == nil && v >= 0 {
				f.loadBits.Store(math.Float64bits(v))
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	if ok {
		f.okRun++
		f.failRun = 0
		if !f.healthy.Load() && f.okRun >= hc.cfg.up {
			f.healthy.Store(true)
			hc.onFlip(f, true)
		}
		return
	}
	f.failRun++
	f.okRun = 0
	if f.healthy.Load() && f.failRun >= hc.cfg.down {
		f.healthy.Store(false)
		hc.onFlip(f, false)
	}
}
