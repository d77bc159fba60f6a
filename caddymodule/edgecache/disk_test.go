package edgecache

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

func TestDiskTierSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Language")
		w.Header().Set("Surrogate-Key", "kept")
		fmt.Fprintf(w, "%s in %s", r.URL.Path, r.Header.Get("Accept-Language"))
	})
	opts := "disk " + dir + " 10MiB"
	port, adminPort := freeTCPPort(t), freeTCPPort(t)
	e := startEdgeOn(t, o, opts, port, adminPort)
	e.get("/a", "Accept-Language", "de")
	e.get("/b", "Accept-Language", "de")
	caddy.Stop() // the whole server goes, and with it the memory tier

	e = startEdgeOn(t, o, opts, port, adminPort)
	r, b := e.get("/a", "Accept-Language", "de")
	if b != "/a in de" || !strings.Contains(cacheStatus(r), "hit") || o.count("/a") != 1 {
		t.Fatalf("after restart: %q %q, origin %d", b, cacheStatus(r), o.count("/a"))
	}
	// Another variant is still a miss; a tag purge reaches disk entries.
	if _, b := e.get("/a", "Accept-Language", "fr"); b != "/a in fr" || o.count("/a") != 2 {
		t.Fatalf("other variant: %q, origin %d", b, o.count("/a"))
	}
	if r, b := e.do("PURGE", "/", "Surrogate-Key", "kept"); r.StatusCode != 200 || !strings.Contains(b, `"purged":3`) {
		t.Fatalf("tag purge over both tiers: %d %s", r.StatusCode, b)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+diskSuffix))
	if len(files) != 0 {
		t.Fatalf("%d entry files left after purge", len(files))
	}
}

func TestDiskTierDropsDamagedFilesAndStaysBounded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad"+diskSuffix), []byte("\x00\x00\x00\x05{nope"), 0o600)
	os.WriteFile(filepath.Join(dir, "short"+diskSuffix), []byte("\xff\xff\xff\xff"), 0o600)
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half"), 0o600)
	d, err := openDisk(dir, 20_000, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("damaged files kept: %v", left)
	}
	for i := 0; i < 10; i++ {
		e := testEntry(fmt.Sprintf("k%d", i), 5000)
		e.responseTime = time.Unix(int64(1e9+i), 0)
		if err := d.store(e); err != nil {
			t.Fatal(err)
		}
	}
	if d.usedBytes() > 20_000 {
		t.Fatalf("disk tier holds %d bytes, bound 20000", d.usedBytes())
	}
	if d.load("k9") == nil || d.load("k0") != nil {
		t.Fatalf("the oldest should go first")
	}
}

// FuzzDiskHeader: an entry file's header, from a disk that may be
// damaged, decodes or fails cleanly.
func FuzzDiskHeader(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x02{}"))
	f.Add([]byte("\x00\x00\x00\x10{\"key\":\"a\"}     "))
	f.Add([]byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := decodeDiskHeader(strings.NewReader(string(b)))
		if err == nil && (m.Key == "" || n > int64(len(b))) {
			t.Fatalf("accepted %q as %+v", b, m)
		}
	})
}
