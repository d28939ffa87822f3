package property

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/flamingochat/flamingo"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newMemoryMatcher() flamingo.Matcher { return flamingo.NewMemoryMatcher() }

func TestMemoryMatcher_StateMachine(t *testing.T) {
	// The memory matcher reports each pair from within Enqueue, and says so.
	CheckMatcher(t, newMemoryMatcher, Options{Synchronous: true})
}

func TestMemoryMatcher_Concurrent(t *testing.T) {
	CheckMatcherConcurrent(t, newMemoryMatcher, 32, 300, Options{Synchronous: true})
}

// The checks make no assumption that only a synchronous matcher meets: they pass on
// the memory matcher without the option too.
func TestMemoryMatcher_AnyMatcherOptions(t *testing.T) {
	CheckMatcher(t, newMemoryMatcher, Options{})
	CheckMatcherRules(t, newMemoryMatcher, Options{})
	CheckMatcherConcurrent(t, newMemoryMatcher, 8, 200, Options{})
}
