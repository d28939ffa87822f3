package flamingoredis

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flamingochat/flamingo/internal/redistest"
)

// sharedRedis is the redis-server the package's tests share: started on first use
// when redis-server is installed (or the one FLAMINGO_REDIS_ADDR names), stopped after
// the tests.
var sharedRedis redistest.Shared

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(stopRedisAfter{m})
}

// stopRedisAfter runs the tests, then stops the shared redis-server, before goleak
// looks for goroutines left running.
type stopRedisAfter struct{ m *testing.M }

func (s stopRedisAfter) Run() int {
	code := s.m.Run()
	if err := sharedRedis.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the tests' redis-server:", err)
		code = 1
	}
	return code
}

// backend is a Redis the tests run against.
type backend struct {
	name   string
	client func(tb testing.TB) redis.UniversalClient
}

var backends = []backend{
	{"miniredis", miniredisClient},
	{"redis", realRedisClient},
}

// forEachBackend runs f as a subtest on miniredis and on the real redis-server.
func forEachBackend(t *testing.T, f func(t *testing.T, client redis.UniversalClient)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.client(t)) })
	}
}

func miniredisClient(tb testing.TB) redis.UniversalClient {
	s := miniredis.RunT(tb)
	return newClient(tb, s.Addr())
}

// realRedisClient connects to the real redis-server the package's tests share (see
// sharedRedis). Without redis-server it skips the test, except in CI, and it fails the
// test if the server does not answer.
func realRedisClient(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	addr := sharedRedis.Addr(tb)
	c := newClient(tb, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(tb, c.Ping(ctx).Err(), "redis-server at %s does not answer", addr)
	return c
}

func newClient(tb testing.TB, addr string) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{
		Addr:            addr,
		DisableIdentity: true,
		PoolSize:        64,
	})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// freshPrefix returns a key prefix no other test uses, and deletes its keys when the
// test ends (after the matchers using it have been stopped).
func freshPrefix(tb testing.TB, client redis.UniversalClient) string {
	prefix := fmt.Sprintf("flamingotest:%s:", randomHex(6))
	tb.Cleanup(func() {
		ctx := context.Background()
		keys, err := client.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = client.Del(ctx, keys...).Err()
		}
		if err != nil {
			tb.Errorf("deleting the test's keys: %v", err)
		}
	})
	return prefix
}
