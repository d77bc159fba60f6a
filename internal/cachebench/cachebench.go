// Package cachebench measures the edge cache's hit path against Caddy's
// own file_server with wrk, in one run and one Caddy process: the same
// 10 kB file served by file_server, by edge_cache from memory in front of
// a file_server origin, and by a plain reverse proxy to that origin (what
// every request would cost without the cache). Then the esi handler: the
// same page whole from the cache, against the page composed from ten
// cached fragments (the goal: at least half the whole page's
// requests per second). Souin/cache-handler would
// be the next peer; the Go module proxy reachable here does not serve it.
package cachebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/conductor-edge/conductor/internal/benchinfo"
)

// Options configure a run.
type Options struct {
	Binary      string        // the conductor binary (runs `conductor caddy run`)
	Duration    time.Duration // per peer; default 10s
	Connections int           // wrk connections; default 64
	Threads     int           // wrk threads; default 1 (Caddy gets the other core)
	FileSize    int           // default 10 kB
	Progress    io.Writer
}

// Peer is one measured server.
type Peer struct {
	Key         string  `json:"key"`
	What        string  `json:"what"`
	RequestsSec float64 `json:"requests_per_sec"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Non2xx      int     `json:"non_2xx"`
	SocketErrs  int     `json:"socket_errors"`
	CacheStatus string  `json:"cache_status,omitempty"` // of one request before the run
	Ratio       float64 `json:"ratio_to_file_server"`
}

// Report is a run's result.
type Report struct {
	When        time.Time `json:"when"`
	Machine     string    `json:"machine"`
	Duration    string    `json:"duration"`
	Connections int       `json:"connections"`
	Threads     int       `json:"threads"`
	FileSize    int       `json:"file_size"`
	Peers       []Peer    `json:"peers"`
	// ESIRatio is esi-fragments' requests/s over esi-whole's.
	ESIRatio float64 `json:"esi_fragments_to_whole"`
}

var peers = []struct{ key, what string }{
	{"file_server", "Caddy file_server, the file from disk (page cache)"},
	{"edge_cache", "edge_cache hit, from memory (tinylfu), in front of a file_server origin"},
	{"edge_cache-lru", "edge_cache hit with the lru policy"},
	{"reverse_proxy", "reverse_proxy to the same origin, no cache"},
	{"esi-whole", "the page whole, an edge_cache hit behind esi"},
	{"esi-fragments", "the same page composed by esi from ten fragments, each an edge_cache hit"},
}

// Run starts Caddy, measures every peer with wrk and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Connections == 0 {
		o.Connections = 64
	}
	if o.Threads == 0 {
		o.Threads = 1
	}
	if o.FileSize == 0 {
		o.FileSize = 10_000
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return nil, errors.New("wrk is not installed (Debian: apt-get install wrk; .ci/run installs it)")
	}
	dir, err := os.MkdirTemp("", "conductor-cachebench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "file.html"), bytes.Repeat([]byte("0123456789"), o.FileSize/10), 0o644); err != nil {
		return nil, err
	}
	if err := writeESIPages(dir, o.FileSize); err != nil {
		return nil, err
	}
	ports := make([]int, 7)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	cf := fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	auto_https off
	persist_config off
	log {
		level WARN
	}
}
http://127.0.0.1:%[2]d {
	root * %[7]s
	file_server
}
http://127.0.0.1:%[3]d {
	root * %[7]s
	header Cache-Control "max-age=3600"
	header /esi/template.html Surrogate-Control "content=\"ESI/1.0\""
	file_server
}
http://127.0.0.1:%[4]d {
	edge_cache bench
	reverse_proxy 127.0.0.1:%[3]d
}
http://127.0.0.1:%[5]d {
	edge_cache bench-lru {
		policy lru
	}
	reverse_proxy 127.0.0.1:%[3]d
}
http://127.0.0.1:%[6]d {
	reverse_proxy 127.0.0.1:%[3]d
}
http://127.0.0.1:%[8]d {
	esi
	edge_cache bench-esi
	reverse_proxy 127.0.0.1:%[3]d
}
`, ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], dir, ports[6])
	cfPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfPath, []byte(cf), 0o644); err != nil {
		return nil, err
	}
	caddy := exec.CommandContext(ctx, o.Binary, "caddy", "run", "--config", cfPath, "--adapter", "caddyfile")
	caddy.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var caddyLog bytes.Buffer
	caddy.Stdout, caddy.Stderr = &caddyLog, &caddyLog
	if err := caddy.Start(); err != nil {
		return nil, err
	}
	defer func() {
		syscall.Kill(-caddy.Process.Pid, syscall.SIGINT)
		caddy.Wait()
	}()
	urls := map[string]string{
		"file_server":    fmt.Sprintf("http://127.0.0.1:%d/file.html", ports[1]),
		"edge_cache":     fmt.Sprintf("http://127.0.0.1:%d/file.html", ports[3]),
		"edge_cache-lru": fmt.Sprintf("http://127.0.0.1:%d/file.html", ports[4]),
		"reverse_proxy":  fmt.Sprintf("http://127.0.0.1:%d/file.html", ports[5]),
		"esi-whole":      fmt.Sprintf("http://127.0.0.1:%d/esi/whole.html", ports[6]),
		"esi-fragments":  fmt.Sprintf("http://127.0.0.1:%d/esi/template.html", ports[6]),
	}
	if err := waitOK(ctx, urls["file_server"], 30*time.Second); err != nil {
		return nil, fmt.Errorf("caddy did not start: %v\n%s", err, caddyLog.String())
	}
	rep := &Report{When: time.Now().UTC(), Machine: benchinfo.Machine(), Duration: o.Duration.String(),
		Connections: o.Connections, Threads: o.Threads, FileSize: o.FileSize}
	for _, p := range peers {
		url := urls[p.key]
		// One request first: it fills the cache, and its Cache-Status
		// shows the run measures hits.
		resp, err := http.Get(url)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", p.key, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		resp, err = http.Get(url)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", p.key, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Fprintf(o.Progress, "cachebench: %s for %s (%d connections) …\n", p.key, o.Duration, o.Connections)
		w, err := benchinfo.RunWrk(ctx, url, o.Threads, o.Connections, o.Duration)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", p.key, err)
		}
		peer := Peer{Key: p.key, What: p.what, CacheStatus: resp.Header.Get("Cache-Status"),
			RequestsSec: w.RequestsSec, P50ms: w.P50ms, P99ms: w.P99ms, Non2xx: w.Non2xx, SocketErrs: w.SocketErrs}
		rep.Peers = append(rep.Peers, peer)
		fmt.Fprintf(o.Progress, "cachebench: %s: %.0f requests/s\n", p.key, peer.RequestsSec)
	}
	for i := range rep.Peers {
		rep.Peers[i].Ratio = rep.Peers[i].RequestsSec / rep.Peers[0].RequestsSec
	}
	if n := len(rep.Peers); n >= 2 && rep.Peers[n-2].Key == "esi-whole" && rep.Peers[n-1].Key == "esi-fragments" {
		rep.ESIRatio = rep.Peers[n-1].RequestsSec / rep.Peers[n-2].RequestsSec
	}
	return rep, nil
}

// writeESIPages writes a page of about size bytes twice: whole, and as an
// ESI template of ten fragments that add up to the same page.
func writeESIPages(dir string, size int) error {
	esiDir := filepath.Join(dir, "esi")
	if err := os.MkdirAll(esiDir, 0o755); err != nil {
		return err
	}
	var whole, tmpl bytes.Buffer
	whole.WriteString("<html><body>")
	tmpl.WriteString("<html><body>")
	for i := range 10 {
		frag := bytes.Repeat([]byte{byte('a' + i)}, size/10)
		if err := os.WriteFile(filepath.Join(esiDir, fmt.Sprintf("frag%d.html", i)), frag, 0o644); err != nil {
			return err
		}
		whole.Write(frag)
		fmt.Fprintf(&tmpl, `<esi:include src="/esi/frag%d.html"/>`, i)
	}
	whole.WriteString("</body></html>")
	tmpl.WriteString("</body></html>")
	if err := os.WriteFile(filepath.Join(esiDir, "whole.html"), whole.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(esiDir, "template.html"), tmpl.Bytes(), 0o644)
}

// Table renders the report as Markdown.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| peer | requests/s | × file_server | p50 ms | p99 ms | non-2xx | socket errors | Cache-Status |\n")
	fmt.Fprintf(&b, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, p := range r.Peers {
		fmt.Fprintf(&b, "| `%s` | %.0f | %.2f | %.2f | %.2f | %d | %d | %s |\n",
			p.Key, p.RequestsSec, p.Ratio, p.P50ms, p.P99ms, p.Non2xx, p.SocketErrs, p.CacheStatus)
	}
	if r.ESIRatio > 0 {
		fmt.Fprintf(&b, "\nA page composed from ten cached fragments: %.2f× the requests/s of the same page whole from the cache.\n", r.ESIRatio)
	}
	return b.String()
}

// WriteJSON writes the report.
func (r *Report) WriteJSON(path string) error {
	return benchinfo.WriteJSON(path, r)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitOK(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
