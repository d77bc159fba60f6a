// Package adaptbench measures what client adaptation (caddymodule/adapt)
// gives a visitor, as a visitor sees it: headless Chromium loads the demo
// shop's product page (its HTML composed from ESI fragments, and four
// 1600-pixel product photos) across the emulated WAN, from a front-end
// Caddy with adapt and adapt_images, and from the same front-end without
// them. What is measured: the bytes the link carried to the browser, and
// the time to the page's load event (which the page reports in its title).
//
// On a slow link the adapted page should carry ≥ 3× fewer bytes and load
// ≥ 2× sooner; on a fast one it should be the page as the origin made it.
package adaptbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conductor-edge/conductor/internal/benchinfo"
	"github.com/conductor-edge/conductor/internal/nscaddy"
	"github.com/conductor-edge/conductor/internal/shop"
	"github.com/conductor-edge/conductor/internal/transportbench"
	"github.com/conductor-edge/conductor/internal/wan"
)

// Options configure a run.
type Options struct {
	Binary   string // the conductor binary
	Dir      string // configs and logs
	Profiles []transportbench.ProfileSpec
	Runs     int    // measured loads per peer and profile; default 3
	Chromium string // the browser; default: found on PATH
	Progress func(format string, args ...any)
}

// Peer is one front-end configuration on one profile.
type Peer struct {
	Profile string `json:"profile"`
	Peer    string `json:"peer"` // adapted or unadapted
	// Medians over the runs.
	Bytes  uint64  `json:"bytes"`
	LoadMs float64 `json:"load_ms"`
	// Each run's figures.
	RunBytes  []uint64  `json:"run_bytes"`
	RunLoadMs []float64 `json:"run_load_ms"`
	Class     string    `json:"class"` // the class adapt gave the browser

	dom string
}

// Comparison is adapted against unadapted on one profile.
type Comparison struct {
	Profile      string  `json:"profile"`
	FewerBytes   float64 `json:"fewer_bytes"` // unadapted bytes / adapted bytes
	Sooner       float64 `json:"sooner"`      // unadapted load / adapted load
	SamePage     bool    `json:"same_page"`   // the same DOM (stock count and timing aside)
	BytesPercent float64 `json:"bytes_percent"`
}

// Report is a run's result.
type Report struct {
	When        time.Time    `json:"when"`
	Machine     string       `json:"machine"`
	Page        string       `json:"page"`
	Peers       []Peer       `json:"peers"`
	Comparisons []Comparison `json:"comparisons"`
}

const (
	originPort  = 9081
	adaptedPort = 8081
	plainPort   = 8082
	page        = "/product/1"
)

// Run measures every profile.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Runs == 0 {
		o.Runs = 3
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if o.Chromium == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				o.Chromium = p
				break
			}
		}
		if o.Chromium == "" {
			return nil, errors.New("no Chromium (Debian: apt-get install chromium; .ci/run installs it)")
		}
	}
	rep := &Report{When: time.Now().UTC(), Machine: benchinfo.Machine(), Page: page}
	for _, spec := range o.Profiles {
		peers, err := runProfile(ctx, o, spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Name, err)
		}
		rep.Peers = append(rep.Peers, peers...)
		a, u := peers[0], peers[1]
		rep.Comparisons = append(rep.Comparisons, Comparison{
			Profile:      spec.Name,
			FewerBytes:   float64(u.Bytes) / float64(max(a.Bytes, 1)),
			Sooner:       u.LoadMs / max(a.LoadMs, 1),
			SamePage:     a.dom == u.dom,
			BytesPercent: 100 * float64(a.Bytes) / float64(max(u.Bytes, 1)),
		})
	}
	return rep, nil
}

func runProfile(ctx context.Context, o Options, spec transportbench.ProfileSpec) ([]Peer, error) {
	dir := filepath.Join(o.Dir, spec.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
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
	fe, err := nscaddy.Start(ctx, dir, "frontend", l.NSB, frontendConfig(dir, l), o.Binary)
	if err != nil {
		return nil, err
	}
	defer fe.Stop()

	var peers []Peer
	for _, p := range []struct {
		name string
		port int
	}{{"adapted", adaptedPort}, {"unadapted", plainPort}} {
		url := fmt.Sprintf("http://%s:%d%s", l.AddrB, p.port, page)
		peer := Peer{Profile: spec.Name, Peer: p.name}
		// A first load fills the front-end's cache (fragments, and the
		// image variants for this browser's class), as a busy site's is.
		if _, _, err := load(ctx, o, l, dir, url); err != nil {
			return nil, err
		}
		for i := range o.Runs {
			_, before := l.Stats()
			dom, ms, err := load(ctx, o, l, dir, url)
			if err != nil {
				return nil, err
			}
			_, after := l.Stats()
			peer.RunBytes = append(peer.RunBytes, after.DeliveredBytes-before.DeliveredBytes)
			peer.RunLoadMs = append(peer.RunLoadMs, ms)
			peer.dom = normalize(dom)
			o.Progress("%s %s run %d: %d bytes, load event at %.0f ms", spec.Name, p.name, i+1, peer.RunBytes[i], ms)
		}
		peer.Bytes = median(peer.RunBytes)
		peer.LoadMs = median(peer.RunLoadMs)
		peer.Class = classOf(ctx, l, url)
		peers = append(peers, peer)
	}
	return peers, nil
}

// frontendConfig is one Caddy with two sites on the link's far end: the
// shop adapted, and the same shop without adaptation. Both compose the
// page with esi and cache with edge_cache.
func frontendConfig(dir string, l *wan.Link) string {
	return fmt.Sprintf(`{
	admin unix/%[1]s
	persist_config off
	storage file_system %[2]s
	log {
		level WARN
	}
}
http://:%[3]d {
	bind %[5]s
	adapt
	esi
	adapt_images
	edge_cache adapted
	reverse_proxy 127.0.0.1:%[6]d
}
http://:%[4]d {
	bind %[5]s
	esi
	edge_cache plain
	reverse_proxy 127.0.0.1:%[6]d
}
`, nscaddy.AdminSocket(dir, "frontend"), filepath.Join(dir, "storage"), adaptedPort, plainPort, l.AddrB, originPort)
}

var loadRe = regexp.MustCompile(`<title>[^<]*\| load (\d+) ms</title>`)

// load runs headless Chromium in namespace A, with a fresh profile (an
// empty browser cache), and returns the page's DOM and its load time.
func load(ctx context.Context, o Options, l *wan.Link, dir, url string) (string, float64, error) {
	var lastErr error
	for try := 0; try < 3; try++ {
		profile, err := os.MkdirTemp(dir, "chromium-")
		if err != nil {
			return "", 0, err
		}
		cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		out, err := exec.CommandContext(cctx, "ip", "netns", "exec", l.NSA, o.Chromium,
			"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+profile,
			"--disable-background-networking", "--no-first-run", "--dump-dom", url).Output()
		cancel()
		os.RemoveAll(profile)
		if err == nil {
			if m := loadRe.FindStringSubmatch(string(out)); m != nil {
				ms, _ := strconv.ParseFloat(m[1], 64)
				return string(out), ms, nil
			}
			err = fmt.Errorf("no load time in the page's title: %.200s", out)
		}
		lastErr = err
		// Chromium sometimes crashes on a machine starved of CPU.
		o.Progress("chromium %s: %v (try %d)", url, err, try+1)
	}
	return "", 0, lastErr
}

var (
	stockRe = regexp.MustCompile(`\d+ in stock`)
	titleRe = regexp.MustCompile(` \| load \d+ ms`)
)

// normalize removes what differs between two loads of the same page: the
// stock count (it changes every few seconds) and the load time.
func normalize(dom string) string {
	return titleRe.ReplaceAllString(stockRe.ReplaceAllString(dom, "N in stock"), "")
}

// classOf asks the front-end, from namespace A, which class it gives.
func classOf(ctx context.Context, l *wan.Link, url string) string {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			err = l.InA(func() (err error) {
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return
			})
			return
		},
	}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get("Conductor-Client-Class")
}

func median[T uint64 | float64](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// Table renders the report as Markdown.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| profile | front-end | class | bytes to the browser | load event ms | runs (bytes / ms) |\n| --- | --- | --- | ---: | ---: | --- |\n")
	for _, p := range r.Peers {
		var runs []string
		for i := range p.RunBytes {
			runs = append(runs, fmt.Sprintf("%d / %.0f", p.RunBytes[i], p.RunLoadMs[i]))
		}
		class := p.Class
		if class == "" {
			class = "–"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %.0f | %s |\n", p.Profile, p.Peer, class, p.Bytes, p.LoadMs, strings.Join(runs, ", "))
	}
	fmt.Fprintf(&b, "\n| profile | fewer bytes (× unadapted) | load event sooner (×) | same page |\n| --- | ---: | ---: | --- |\n")
	for _, c := range r.Comparisons {
		fmt.Fprintf(&b, "| %s | %.1f | %.2f | %v |\n", c.Profile, c.FewerBytes, c.Sooner, c.SamePage)
	}
	return b.String()
}

// WriteJSON writes the report.
func (r *Report) WriteJSON(path string) error { return benchinfo.WriteJSON(path, r) }
