package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// edgefnFixture is a front-end running the test function
// (testdata/edgefn, built for wasip1 once per run) at /fn/*, with
// edge_cache, over TMP to a back-end and the ESI tests' kind of origin.
type edgefnFixture struct{ *esiFixture }

var (
	edgefnOnce sync.Once
	edgefnFix  *edgefnFixture
	edgefnErr  error
)

func edgefnSetup(t *testing.T) *edgefnFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	edgefnOnce.Do(func() {
		edgefnFix, edgefnErr = startEdgefnFixture(t)
		if edgefnErr != nil {
			return
		}
		// The tests are about the function's limits as compiled code:
		// wazero's interpreter serves only until the compiler is done,
		// and it is far slower (an allocation loop meets its deadline
		// before its memory limit).
		deadline := time.Now().Add(2 * time.Minute)
		for edgefnFix.metric(t, "conductor_edge_function_compiled", `function="test"`) != 1 {
			if time.Now().After(deadline) {
				edgefnErr = fmt.Errorf("the test function was not compiled within 2 minutes")
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if edgefnErr != nil {
		t.Fatal(edgefnErr)
	}
	return edgefnFix
}

func startEdgefnFixture(t *testing.T) (*edgefnFixture, error) {
	dir := filepath.Join(tmpDir, "edgefn")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	wasm, err := testFunction()
	if err != nil {
		return nil, err
	}
	os.WriteFile(filepath.Join(dir, "data", "price.json"), []byte(`{"price":19.99}`), 0o644)
	f, err := startOriginTopology(t, dir, "127.0.0.16",
		fmt.Sprintf("edge_function /fn/* {\n\t\tmodule %s\n\t\tdata %s\n\t\tenv VERSION v1\n\t\tmax_memory 64MiB\n\t\ttimeout 1s\n\t\tinstances 4\n\t\tname test\n\t}\n\tedge_cache fn {\n\t\tsite fn\n\t}",
			wasm, filepath.Join(dir, "data")))
	if err != nil {
		return nil, err
	}
	return &edgefnFixture{f}, nil
}

var (
	testFnOnce sync.Once
	testFnPath string
	testFnErr  error
)

// testFunction builds testdata/edgefn for wasip1, once per run.
func testFunction() (string, error) {
	testFnOnce.Do(func() {
		testFnPath = filepath.Join(tmpDir, "fn.wasm")
		build := exec.Command("go", "build", "-buildmode=c-shared", "-o", testFnPath, "./testdata/edgefn")
		build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := build.CombinedOutput(); err != nil {
			testFnErr = fmt.Errorf("building the test function: %v\n%s", err, out)
		}
	})
	return testFnPath, testFnErr
}

func (f *edgefnFixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := client.Get(f.tp.FrontendURL(0) + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// The function answers at the front-end, from a live instance that
// serves request after request (its globals count the calls).
func TestEdgeFunctionAnswers(t *testing.T) {
	f := edgefnSetup(t)
	var calls []string
	for range 3 {
		code, body := f.get(t, "/fn/hello?name=edge")
		if code != 200 || !strings.Contains(body, `"hello":"edge","version":"v1"`) {
			t.Fatalf("answer: %d %q", code, body)
		}
		calls = append(calls, body[strings.LastIndex(body, ":")+1:])
	}
	if calls[0] == calls[2] {
		t.Fatalf("calls %v: the instance was not reused", calls)
	}
	if code, body := f.get(t, "/fn/data?f=price.json"); code != 200 || body != `{"price":19.99}` {
		t.Fatalf("data file: %d %q", code, body)
	}
	if code, _ := f.get(t, "/fn/data?f=../../etc/passwd"); code != 404 {
		t.Fatalf("a data path outside the directory: %d, want 404", code)
	}
}

// An infinite loop is stopped at its deadline with a 504, the instance is
// discarded, and the next request is answered.
func TestEdgeFunctionTimeout(t *testing.T) {
	f := edgefnSetup(t)
	before := f.metric(t, "conductor_edge_function_timeouts_total", `function="test"`)
	start := time.Now()
	code, _ := f.get(t, "/fn/loop")
	if took := time.Since(start); code != http.StatusGatewayTimeout || took > 10*time.Second {
		t.Fatalf("infinite loop: %d after %v, want 504 at the 1s deadline", code, took)
	}
	if code, body := f.get(t, "/fn/hello"); code != 200 {
		t.Fatalf("after the timeout: %d %q", code, body)
	}
	if got := f.metric(t, "conductor_edge_function_timeouts_total", `function="test"`) - before; got != 1 {
		t.Fatalf("timeouts_total rose by %v, want 1", got)
	}
}

// A function that allocates past max_memory (64 MiB) traps with a 502;
// the next request is answered by a fresh instance.
func TestEdgeFunctionMemoryLimit(t *testing.T) {
	f := edgefnSetup(t)
	before := f.metric(t, "conductor_edge_function_traps_total", `function="test"`)
	if code, body := f.get(t, "/fn/alloc"); code != http.StatusBadGateway || strings.Contains(body, "allocated") {
		t.Fatalf("allocating 1 GiB under a 64 MiB limit: %d %q", code, body)
	}
	if code, _ := f.get(t, "/fn/hello"); code != 200 {
		t.Fatalf("after the trap: %d", code)
	}
	if got := f.metric(t, "conductor_edge_function_traps_total", `function="test"`) - before; got != 1 {
		t.Fatalf("traps_total rose by %v, want 1", got)
	}
}

// A function has no files and no sockets of the host's.
func TestEdgeFunctionNoAmbientAccess(t *testing.T) {
	f := edgefnSetup(t)
	code, body := f.get(t, "/fn/ambient")
	if code != 200 || strings.Contains(body, "file: <nil>") || strings.Contains(body, "socket: <nil>") || strings.Contains(body, "root:") {
		t.Fatalf("ambient access: %d %q", code, body)
	}
	t.Logf("what the function got: %q", body)
}

// fetch goes through the front-end's own routes: the origin's answer
// comes over TMP, the second fetch from edge_cache, and a host that is
// not the request's is refused.
func TestEdgeFunctionFetchesThroughChain(t *testing.T) {
	f := edgefnSetup(t)
	host := strings.TrimPrefix(f.tp.FrontendURL(0), "http://")
	for range 2 {
		if code, body := f.get(t, "/fn/fetch?u=/frag/static"); code != 200 || body != "fetched 200: static" {
			t.Fatalf("fetch: %d %q", code, body)
		}
	}
	if n := f.origin.seen(host + " /frag/static"); n != 1 {
		t.Fatalf("the origin served /frag/static %d times, want 1 (the second fetch from edge_cache)", n)
	}
	if code, _ := f.get(t, "/fn/fetch?u=http://evil.example/steal"); code != http.StatusBadGateway {
		t.Fatalf("fetch of another host: %d, want the function's 502", code)
	}
	if n := f.origin.seen("evil.example /steal"); n != 0 {
		t.Fatalf("the origin was asked for evil.example %d times", n)
	}
}
