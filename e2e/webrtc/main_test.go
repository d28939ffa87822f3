package webrtc

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the tests: the peers' ICE, DTLS and SCTP
// loops, the WebSocket readers, the engines and the cluster brokers must all have
// stopped once each test's cleanup has run.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
