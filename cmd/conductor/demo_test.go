package main

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// captureStderr runs f and returns what it wrote to os.Stderr.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	f()
	os.Stderr = old
	w.Close()
	return <-done
}

// The demo fails fast and clearly when a port it needs is taken: it names
// the port and the program that holds it, starts nothing, and says how to
// move its ports. Before, it printed "origin ready" while another program
// held the port, then hung on the first front-end.
func TestDemoPortTaken(t *testing.T) {
	// Another program (this test) holds the origin's port, shifted by an
	// offset nobody else uses, so the test does not depend on 9080 being
	// free.
	const offset = 31007
	l, err := net.Listen("tcp", shiftPort("127.0.0.1:9080", offset))
	if err != nil {
		t.Skipf("cannot hold the port for the test: %v", err)
	}
	defer l.Close()
	start := time.Now()
	var code int
	out := captureStderr(t, func() {
		code = runDemo([]string{"-port-offset", "31007", "-dir", t.TempDir()})
	})
	took := time.Since(start)
	if code == 0 {
		t.Fatal("the demo started with its origin port taken")
	}
	for _, want := range []string{"tcp 127.0.0.1:40087 (origin shop) is in use", "-port-offset"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error does not say %q:\n%s", want, out)
		}
	}
	// The holder is this process; /proc names it when it can.
	if self, err := os.ReadFile("/proc/self/comm"); err == nil && !strings.Contains(out, strings.TrimSpace(string(self))) {
		t.Errorf("the error does not name the holder %q:\n%s", strings.TrimSpace(string(self)), out)
	}
	if took > 5*time.Second {
		t.Errorf("the demo took %v to fail", took)
	}
}
