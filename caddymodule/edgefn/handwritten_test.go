package edgefn

import (
	"encoding/binary"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

// handWrittenModule is a WASI reactor with no language runtime at all, as
// C (-mexec-model=reactor) or Rust (cdylib, wasm32-wasip1) build them: it
// exports memory and conductor_handle, which writes a CGI response held in
// a data segment to stdout with fd_write and returns. It shows the
// convention needs nothing of Go's.
func handWrittenModule(response string) []byte {
	section := func(id byte, body ...byte) []byte { return append([]byte{id, byte(len(body))}, body...) }
	str := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	iovec := make([]byte, 8)
	binary.LittleEndian.PutUint32(iovec[0:], 16)
	binary.LittleEndian.PutUint32(iovec[4:], uint32(len(response)))
	body := []byte{
		0x00,       // no locals
		0x41, 0x01, // i32.const 1: stdout
		0x41, 0x00, // i32.const 0: the iovec
		0x41, 0x01, // i32.const 1: one of them
		0x41, 0x08, // i32.const 8: where the count goes
		0x10, 0x00, // call fd_write
		0x1a,       // drop its errno
		0x41, 0x00, // i32.const 0
		0x0b, // end
	}
	return cat(
		[]byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00},
		// Types: (i32 i32 i32 i32) -> i32 for fd_write; () -> i32.
		section(1, 2, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f, 0x60, 0, 1, 0x7f),
		section(2, cat([]byte{1}, str("wasi_snapshot_preview1"), str("fd_write"), []byte{0x00, 0})...),
		section(3, 1, 1),
		section(5, 1, 0x00, 1), // one memory, one page
		section(7, cat([]byte{2}, str("memory"), []byte{0x02, 0}, str("conductor_handle"), []byte{0x00, 1})...),
		section(10, cat([]byte{1, byte(len(body))}, body)...),
		section(11, cat([]byte{2},
			[]byte{0, 0x41, 0, 0x0b, byte(len(iovec))}, iovec,
			[]byte{0, 0x41, 16, 0x0b, byte(len(response))}, []byte(response))...),
	)
}

func TestHandWrittenModuleAnswers(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	mod := filepath.Join(t.TempDir(), "hand.wasm")
	if err := os.WriteFile(mod, handWrittenModule("Status: 201\r\nContent-Type: text/plain\r\n\r\nno runtime here"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &Handler{Module: mod, Name: "hand", MaxMemory: 1 << 20, Instances: 2}
	if err := h.Open(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	for range 3 {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil), nil); err != nil {
			t.Fatal(err)
		}
		if w.Code != 201 || w.Body.String() != "no runtime here" || w.Header().Get("Content-Type") != "text/plain" {
			t.Fatalf("answer: %d %q %v", w.Code, w.Body.String(), w.Header())
		}
	}
}

// The interpreter serves while the compiler works, and the compiler's
// pool takes over: every call is answered throughout.
func TestInterpreterThenCompiler(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	mod := filepath.Join(t.TempDir(), "hand.wasm")
	os.WriteFile(mod, handWrittenModule("Content-Type: text/plain\r\n\r\nok"), 0o644)
	h := &Handler{Module: mod, Name: "hand2", MaxMemory: 1 << 20, Instances: 2, interpreterAfter: time.Nanosecond}
	if err := h.Open(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	first := h.cur.Load().engine
	deadline := time.Now().Add(30 * time.Second)
	for h.cur.Load().engine != "compiler" {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil), nil); err != nil || w.Body.String() != "ok" {
			t.Fatalf("during the switch: %v %q", err, w.Body.String())
		}
		if time.Now().After(deadline) {
			t.Fatal("the compiler's pool never took over")
		}
	}
	t.Logf("first engine: %s; then the compiler", first)
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil), nil); err != nil || w.Body.String() != "ok" {
		t.Fatalf("after the switch: %v %q", err, w.Body.String())
	}
}
