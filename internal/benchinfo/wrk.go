package benchinfo

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// Wrk is what one wrk run measured.
type Wrk struct {
	RequestsSec float64 `json:"requests_sec"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Requests    int64   `json:"requests"`
	Non2xx      int     `json:"non_2xx"`
	SocketErrs  int     `json:"socket_errors"`
}

// RunWrk runs wrk (Debian's package; .ci/run installs it) with its latency
// report against url.
func RunWrk(ctx context.Context, url string, threads, conns int, d time.Duration) (Wrk, error) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		return Wrk{}, errors.New("wrk is not installed (Debian: apt-get install wrk; .ci/run installs it)")
	}
	out, err := exec.CommandContext(ctx, bin, "--latency", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", max(1, int(d.Seconds()))), url).CombinedOutput()
	if err != nil {
		return Wrk{}, fmt.Errorf("wrk on %s: %v\n%s", url, err, out)
	}
	w, err := ParseWrk(string(out))
	if err != nil {
		return w, fmt.Errorf("%s: %v\n%s", url, err, out)
	}
	return w, nil
}

var (
	reqSecRe  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	totalRe   = regexp.MustCompile(`(\d+) requests in `)
	non2xxRe  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	sockErrRe = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	pctRe     = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// ParseWrk reads wrk's --latency report.
func ParseWrk(out string) (Wrk, error) {
	var p Wrk
	m := reqSecRe.FindStringSubmatch(out)
	if m == nil {
		return p, errors.New("no Requests/sec in wrk's output")
	}
	p.RequestsSec, _ = strconv.ParseFloat(m[1], 64)
	if m := totalRe.FindStringSubmatch(out); m != nil {
		p.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := non2xxRe.FindStringSubmatch(out); m != nil {
		p.Non2xx, _ = strconv.Atoi(m[1])
	}
	if m := sockErrRe.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			p.SocketErrs += n
		}
	}
	for _, m := range pctRe.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			p.P50ms = v
		} else {
			p.P99ms = v
		}
	}
	return p, nil
}
