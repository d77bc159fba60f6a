package transportbench

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/wan"
)

// TestSmokeLossy is CI's smoke run: a few seconds of every workload on the
// lossy profile, TMP and HTTP/2 with BBR. It fails on protocol errors and
// corrupt or missing data, never on timing.
func TestSmokeLossy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and TUN devices")
	}
	prof, _ := ProfileByName("lossy")
	rep, err := Run(context.Background(), Options{Profiles: []ProfileSpec{prof}, Peers: []string{"tmp", "http2-bbr"}, Duration: 3 * time.Second, Progress: testWriter{t}})
	if errors.Is(err, wan.ErrNotRoot) {
		t.Skip("needs root")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.Table([]ProfileSpec{prof}))
	for peer, r := range rep["lossy"] {
		if len(r.Errors) > 0 {
			t.Errorf("%s: %v", peer, r.Errors)
		}
		if r.GoodputMbps <= 0 {
			t.Errorf("%s moved no data", peer)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
