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
)

// redisAddrEnv names the environment variable with the address of a real redis-server
// for the tests. Without it they run on miniredis only, unless CI is "true", where a
// missing or unreachable server fails them.
const redisAddrEnv = "FLAMINGO_REDIS_ADDR"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
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

// realRedisClient connects to the server at FLAMINGO_REDIS_ADDR. It skips the test if
// the variable is unset, except in CI, and fails it if the server does not answer.
func realRedisClient(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	addr := os.Getenv(redisAddrEnv)
	if addr == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is not set: CI must start a redis-server and point the tests at it", redisAddrEnv)
		}
		tb.Skipf("%s is not set: start a redis-server and set it (host:port) to run this test", redisAddrEnv)
	}
	c := newClient(tb, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(tb, c.Ping(ctx).Err(), "redis-server at %s=%s does not answer", redisAddrEnv, addr)
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
