package flamingotest

import (
	"testing"

	"github.com/flamingochat/flamingo"
)

func TestPipe_Conformance(t *testing.T) {
	TestTransport(t, func(t *testing.T) (a, b flamingo.Transport) {
		server, client := Pipe()
		return server, client
	})
}
