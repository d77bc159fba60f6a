// Package e2e runs Conductor as real processes: the conductor binary is built
// once per test run, and every test talks to real Caddy front-ends and
// back-ends over real sockets on loopback.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
)

var (
	binary string
	topo   *topology.Topology
	once   sync.Once
	topErr error
	tmpDir string
	// atExit stops what fixtures shared by several tests started; it runs
	// after every test, last first.
	atExit []func()
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "conductor-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpDir = dir
	binary = filepath.Join(dir, "conductor")
	build := exec.Command("go", "build", "-o", binary, "github.com/conductor-edge/conductor/cmd/conductor")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building conductor:", err)
		os.Exit(1)
	}
	code := m.Run()
	for i := len(atExit) - 1; i >= 0; i-- {
		atExit[i]()
	}
	if topo != nil {
		topo.Stop()
	}
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "process logs kept in", dir)
	}
	os.Exit(code)
}

// freePort returns a port free for TCP and UDP on ip.
func freePort(t testing.TB, ip string) int {
	t.Helper()
	p, err := topology.FreePort(ip)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freeAdminBase returns the first of n consecutive free ports on 127.0.0.1.
func freeAdminBase(t testing.TB, n int) int {
	t.Helper()
	p, err := topology.FreePortRun(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// shared returns the topology shared by the tests of this package: origin,
// back-end, and two front-ends on 127.0.0.2 and 127.0.0.3.
func shared(t *testing.T) *topology.Topology {
	t.Helper()
	once.Do(func() {
		admin := freeAdminBase(t, 3)
		opts := topology.Options{
			Binary:     binary,
			Dir:        filepath.Join(tmpDir, "topology"),
			OriginAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
			BackendTMP: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
			Frontends: []string{
				fmt.Sprintf("127.0.0.2:%d", freePort(t, "127.0.0.2")),
				fmt.Sprintf("127.0.0.3:%d", freePort(t, "127.0.0.3")),
			},
			AdminBase: admin,
			DNSAddr:   fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
			Progress:  func(f string, a ...any) { t.Logf(f, a...) },
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		topo, topErr = topology.Start(ctx, opts)
	})
	if topErr != nil {
		t.Fatal(topErr)
	}
	return topo
}

// loadLoop runs fn over and over in workers goroutines until the stop it
// returns is called; stop waits for them.
func loadLoop(workers int, fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				fn()
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}
