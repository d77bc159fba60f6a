package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/tcpbench"
	"github.com/conductor-edge/conductor/internal/wan"
)

// TestTCPBenchSmoke is CI's run of `conductor bench tcp`: every peer moves
// a few MB through its two Caddys across the lossy profile. It fails on a
// path that does not carry the bytes, never on timing (Cubic may stop at
// its time limit).
func TestTCPBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and TUN devices")
	}
	const size = 4 << 20
	rep, err := tcpbench.Run(context.Background(), tcpbench.Options{
		Binary: binary, Dir: filepath.Join(tmpDir, "tcpbench"), Size: size, MaxTime: 20 * time.Second,
		Progress: func(f string, a ...any) { t.Logf(f, a...) },
	})
	if errors.Is(err, wan.ErrNotRoot) {
		t.Skip("needs root")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.Table())
	if len(rep.Results) != len(tcpbench.Peers) {
		t.Fatalf("%d results for %d peers", len(rep.Results), len(tcpbench.Peers))
	}
	for _, r := range rep.Results {
		switch {
		case r.Error != "":
			t.Errorf("%s: %s", r.Peer, r.Error)
		case !r.Capped && r.Bytes != size:
			t.Errorf("%s moved %d bytes of %d", r.Peer, r.Bytes, size)
		case r.Bytes == 0:
			t.Errorf("%s moved nothing", r.Peer)
		}
	}
}
