package flamingoredis

import (
	"testing"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// TestConformance runs the flamingotest conformance suite over the Redis matcher, on
// miniredis and on a real redis-server, each subtest on its own key prefix.
func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			client := b.client(t)
			flamingotest.TestMatcher(t, func(t *testing.T) flamingo.Matcher {
				return New(client, Options{Prefix: freshPrefix(t, client)})
			})
		})
	}
}

// TestConformance_MemoryMatcher runs the same suite over the in-memory matcher, as a
// control that the suite passes in this module's build too.
func TestConformance_MemoryMatcher(t *testing.T) {
	flamingotest.TestMatcher(t, func(*testing.T) flamingo.Matcher { return flamingo.NewMemoryMatcher() })
}
