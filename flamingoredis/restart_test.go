package flamingoredis

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// redisProcess is a redis-server of the test's own, which it may kill and restart.
type redisProcess struct {
	t    testing.TB
	bin  string
	port int
	cmd  *exec.Cmd
}

// startRedis starts a redis-server without persistence on a free loopback port. It
// skips the test if there is no redis-server binary, except in CI.
func startRedis(t testing.TB) *redisProcess {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed: CI must install it (%v)", err)
		}
		t.Skipf("redis-server is not installed: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	r := &redisProcess{t: t, bin: bin, port: port}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *redisProcess) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisProcess) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	require.NoError(r.t, r.cmd.Start())
	c := redis.NewClient(&redis.Options{Addr: r.addr(), DisableIdentity: true})
	defer c.Close()
	require.Eventually(r.t, func() bool {
		return c.Ping(context.Background()).Err() == nil
	}, 10*time.Second, 20*time.Millisecond, "redis-server on port %d ready", r.port)
}

// kill kills the server at once, losing everything it held.
func (r *redisProcess) kill() {
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// TestClusterRedisRestart: Redis is killed and restarted empty mid-test. Chats between
// users of one node go on through the outage and after it; the chats across nodes,
// whose state was lost, end with partner_disconnected on both sides, once; and the
// nodes match and deliver across each other again.
func TestClusterRedisRestart(t *testing.T) {
	rp := startRedis(t)
	client := newClient(t, rp.addr())
	n := startNodes(t, client, 2)
	n1, n2 := n[0], n[1]

	alice, bob := n1.dial(), n1.dial()  // a chat within n1
	carol, dave := n1.dial(), n2.dial() // a chat across the nodes
	for _, c := range []*flamingotest.Client{alice, bob, carol, dave} {
		c.Init("")
	}
	match(t, alice, bob)
	match(t, carol, dave)
	carol.Say("across")
	assert.Equal(t, "across", dave.ExpectMessage().Content)

	rp.kill()
	alice.Say("during the outage")
	assert.Equal(t, "during the outage", bob.ExpectMessage().Content)
	rp.start()

	// Once the nodes see that Redis forgot them, the chat across them ends for both.
	for _, c := range []*flamingotest.Client{carol, dave} {
		var end flamingo.ChatEndedPayload
		c.ExpectPayload(flamingo.EventChatEnded, &end)
		assert.Equal(t, flamingo.ReasonPartnerDisconnected, end.Reason)
	}
	bob.Say("after the restart")
	assert.Equal(t, "after the restart", alice.ExpectMessage().Content)

	// The cluster works again: carol and dave meet again, across the nodes.
	match(t, carol, dave)
	dave.Say("again")
	assert.Equal(t, "again", carol.ExpectMessage().Content)
	carol.Say("yes")
	assert.Equal(t, "yes", dave.ExpectMessage().Content)
	for _, c := range []*flamingotest.Client{alice, bob, carol, dave} {
		c.Sync() // nothing else arrived: one chat_ended each
	}
}
