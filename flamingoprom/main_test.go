package flamingoprom_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the engines and
// the in-memory connections of the tests start goroutines of their own.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
