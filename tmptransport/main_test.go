package tmptransport

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a session or listener starts must end with its owner.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
