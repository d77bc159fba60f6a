package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/admissionbench"
)

// The front-end under load, end to end: an origin capped at 50 requests/s
// gets 500 requests/s offered for 30 s through a front-end with priority
// rules, a waiting room, the load gate and fallback pages. The origin is
// never pushed past its cap + 10 %, every client gets content, a queue
// page or a wait page, and the line moves in ticket order. Buyers'
// latency is reported here and judged by `conductor bench admission`
// (timing has no place in a pass/fail test on a shared machine).
func TestAdmissionUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := admissionbench.Run(ctx, admissionbench.Options{
		Binary:   binary,
		Dir:      filepath.Join(tmpDir, "admission"),
		Progress: func(f string, a ...any) { t.Logf(f, a...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep.Table())
	if limit := float64(rep.OriginCapRPS) * 1.1; float64(rep.OriginMaxRPS) > limit {
		t.Errorf("the origin saw %d requests/s, cap %d + 10 %%", rep.OriginMaxRPS, rep.OriginCapRPS)
	}
	if rep.Outcomes["error"] != 0 {
		t.Errorf("%d client errors: %v", rep.Outcomes["error"], rep.Errors)
	}
	if rep.Outcomes["content"] == 0 || rep.Outcomes["queue"] == 0 {
		t.Errorf("outcomes %v: the load should both serve content and queue", rep.Outcomes)
	}
	if rep.AdmittedFromQ == 0 || rep.FIFOViolations != 0 {
		t.Errorf("%d admitted from the line, %d out of ticket order", rep.AdmittedFromQ, rep.FIFOViolations)
	}
}
