package transportbench

import (
	"testing"

	"go.uber.org/goleak"
)

// Every peer's servers and clients, and the friendliness test's TCP flows,
// must be gone when a run ends: a writer left blocked on a link that no
// longer exists would outlive the run that made it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
