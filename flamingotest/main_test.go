package flamingotest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the pipe and the
// conformance suites start goroutines of their own.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
