package tmptransport

import (
	"context"
	"io"
	"testing"
	"time"
)

// A sender that makes everything urgent gets at most a bounded share of
// redundancy: copies of urgent data go through the congestion window and the
// pacer like any packet, and copies in flight are at most 5 % of the window.
// Before, every packet carrying priority-0 data was followed by a copy,
// outside both: a bulk transfer at priority 0 sent each byte twice.
func TestUrgentDuplicationBounded(t *testing.T) {
	p := getPKI(t)
	_, c, s := pair(t, p.serverConfig(), p.clientConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		st, err := s.AcceptStream(ctx)
		if err != nil {
			return
		}
		io.Copy(io.Discard, st)
		st.Close()
	}()
	st, err := c.OpenStream(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(make([]byte, 8<<20)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	io.Copy(io.Discard, st)
	stats := c.Stats()
	share := float64(stats.UrgentCopyBytes) / float64(stats.BytesSent)
	t.Logf("8 MiB at priority 0: %d of %d bytes sent were urgent copies (%.1f %%)", stats.UrgentCopyBytes, stats.BytesSent, 100*share)
	if stats.UrgentCopyBytes == 0 {
		t.Error("no urgent copy was sent at all")
	}
	if share > 0.06 {
		t.Fatalf("urgent copies are %.1f %% of what was sent, want ≤ 6 %%", 100*share)
	}
}
