package flamingoredis

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// gate is a go-redis hook that holds the first command sent through the client until
// it is opened, and says when that command has arrived.
type gate struct {
	arrived chan struct{} // closed when the first command reaches the hook
	open    chan struct{} // closed by the test to let it through
	once    sync.Once
}

func newGate() *gate { return &gate{arrived: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		g.once.Do(func() {
			close(g.arrived)
			<-g.open
		})
		return next(ctx, cmd)
	}
}

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestMatcher_StopWhileStarting: a Stop that runs while Start is still talking to
// Redis is final. Start then returns ErrMatcherStopped and leaves no reader running
// (TestMain's goleak check would find it), and the matcher stays refused.
func TestMatcher_StopWhileStarting(t *testing.T) {
	client := miniredisClient(t)
	g := newGate()
	client.AddHook(g)
	m := New(client, Options{Prefix: freshPrefix(t, client)})

	started := make(chan error, 1)
	go func() { started <- m.Start(func(p flamingo.Pair) { t.Errorf("reported %+v", p) }) }()
	<-g.arrived // Start is preparing
	require.NoError(t, m.Stop(t.Context()), "Stop while Start runs")
	close(g.open)

	assert.ErrorIs(t, <-started, flamingo.ErrMatcherStopped, "Start that a Stop overtook")
	assert.ErrorIs(t, m.Start(func(flamingo.Pair) {}), flamingo.ErrMatcherStopped, "Start after Stop")
	tk := flamingo.Ticket{User: "u", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, JoinedAt: time.Now()}
	assert.ErrorIs(t, m.Enqueue(t.Context(), tk), flamingo.ErrMatcherNotStarted)
}
