package flamingoredis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// hold stalls n's writes to Redis (and with them its engine, whose ops wait) until the
// returned function is called.
func (n *clusterNode) hold() (release func()) {
	n.cl.mu.Lock()
	var once sync.Once
	return func() { once.Do(n.cl.mu.Unlock) }
}

// waitClaiming waits until n has a claim waiting for another node's handover.
func (n *clusterNode) waitClaiming(t testing.TB) {
	t.Helper()
	require.Eventually(t, func() bool {
		n.cl.mu.Lock()
		defer n.cl.mu.Unlock()
		return len(n.cl.waiters) > 0
	}, 5*time.Second, time.Millisecond, "a claim on %s waits for a handover", n.cl.NodeID())
}

// tabResult is what a tab that was taken over saw: its events, and its close code.
type tabResult struct {
	events []flamingotest.Event
	code   int
}

// initReplaced sends init with userID on c in the background and reads c until it is
// closed: the tab that another one will take over.
func initReplaced(c *flamingotest.Client, userID string) <-chan tabResult {
	ch := make(chan tabResult, 1)
	c.Send(flamingo.EventInit, flamingo.InitPayload{UserID: userID})
	go func() {
		var r tabResult
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			b, err := c.Conn().Read(ctx)
			if err != nil {
				r.code = int(websocket.CloseStatus(err))
				ch <- r
				return
			}
			var env flamingo.Envelope
			if json.Unmarshal(b, &env) == nil {
				r.events = append(r.events, flamingotest.Event{Type: env.Type, Payload: env.Payload, Raw: append([]byte(nil), b...)})
			}
		}
	}()
	return ch
}

// initLater sends init with userID on c in the background; the result is the ready
// payload.
func initLater(t testing.TB, c *flamingotest.Client, userID string) <-chan flamingo.ReadyPayload {
	ch := make(chan flamingo.ReadyPayload, 1)
	c.Send(flamingo.EventInit, flamingo.InitPayload{UserID: userID})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := c.Conn().Read(ctx)
		var env struct {
			Type    flamingo.EventType
			Payload flamingo.ReadyPayload
		}
		if err == nil {
			err = json.Unmarshal(b, &env)
		}
		if err != nil || env.Type != flamingo.EventReady {
			t.Errorf("init: got %s, %v", b, err)
		}
		c.UserID, c.ChatID = env.Payload.UserID, env.Payload.ChatID
		ch <- env.Payload
	}()
	return ch
}

// contents returns the contents of the message_received events among evs, and
// whether evs held an error session_replaced.
func contents(t testing.TB, evs []flamingotest.Event) (msgs []string, replaced bool) {
	for _, ev := range evs {
		switch ev.Type {
		case flamingo.EventMessageReceived:
			var m flamingo.MessageReceivedPayload
			require.NoError(t, ev.Decode(&m))
			msgs = append(msgs, m.Content)
		case flamingo.EventError:
			var p flamingo.ErrorPayload
			require.NoError(t, ev.Decode(&p))
			replaced = replaced || p.Code == flamingo.CodeSessionReplaced
		}
	}
	return msgs, replaced
}

// TestClusterClaimWhileClaimed: a user comes back on n2 and, while n2 still waits for
// n1 to hand the session over, again on n3. The session ends up on n3 only, with the
// event n1 held for it delivered once (to one tab or the other), and the chat goes on
// there; the tab on n2 is told it was replaced.
func TestClusterClaimWhileClaimed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 3)
		n1, n2, n3 := n[0], n[1], n[2]
		alice, bob := chat(t, n1, n1)
		n1.waitSaved(t, alice, bob)
		n1.leave(t, alice)
		bob.Say("held for alice")
		bob.Sync()

		release := n1.hold()
		defer release()
		tab2, tab3 := n2.dial(), n3.dial()
		r2 := initReplaced(tab2, alice.UserID)
		n2.waitClaiming(t)
		r3 := initLater(t, tab3, alice.UserID)
		n3.waitClaiming(t)
		release()

		ready3 := <-r3
		assert.True(t, ready3.Resumed)
		assert.Equal(t, alice.ChatID, ready3.ChatID)
		// tab2 is taken over; the message held for alice reaches one of the two
		// tabs, once.
		res2 := <-r2
		assert.Equal(t, int(flamingo.CloseSessionReplaced), res2.code, "tab2 events %v", res2.events)
		got2, replaced := contents(t, res2.events)
		assert.True(t, replaced, "tab2 told it was replaced")
		if len(got2) == 0 {
			assert.Equal(t, "held for alice", tab3.ExpectMessage().Content)
		} else {
			assert.Equal(t, []string{"held for alice"}, got2)
		}
		bob.Say("to alice")
		assert.Equal(t, "to alice", tab3.ExpectMessage().Content)
		tab3.Say("from n3")
		assert.Equal(t, "from n3", bob.ExpectMessage().Content)

		// Only n3 holds the session now.
		node, err := client.HGet(context.Background(), n1.cl.base+"sess:"+handleOf(alice.UserID), "node").Result()
		require.NoError(t, err)
		assert.Equal(t, n3.cl.NodeID(), node)
		for _, n := range []*clusterNode{n1, n2} {
			ok, err := client.SIsMember(context.Background(), n.cl.base+"node:"+n.cl.NodeID()+":sessions", handleOf(alice.UserID)).Result()
			require.NoError(t, err)
			assert.False(t, ok, "%s still lists the session", n.cl.NodeID())
		}
		tab3.Sync()
		bob.Sync()
	})
}

// TestClusterTwoTabsOneNode: two tabs of one user reconnect to the same node at once,
// while that node claims the session from another: both resume the same session (the
// second takes it over), neither gets a new identity.
func TestClusterTwoTabsOneNode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		n1, n2 := n[0], n[1]
		alice, bob := chat(t, n1, n1)
		n1.waitSaved(t, alice, bob)
		n1.leave(t, alice)

		release := n1.hold()
		defer release()
		tab2, tab3 := n2.dial(), n2.dial()
		r2 := initReplaced(tab2, alice.UserID)
		n2.waitClaiming(t)
		r3 := initLater(t, tab3, alice.UserID)
		release()
		ready3 := <-r3
		assert.True(t, ready3.Resumed, "the second tab resumes too")
		assert.Equal(t, alice.UserID, ready3.UserID)
		assert.Equal(t, alice.ChatID, ready3.ChatID)
		res2 := <-r2
		assert.Equal(t, int(flamingo.CloseSessionReplaced), res2.code, "tab2 events %v", res2.events)
		bob.Say("hello")
		assert.Equal(t, "hello", tab3.ExpectMessage().Content)
	})
}

// TestClusterShutdownWhileReconnecting: a node shuts down while one of its
// connections is slow to close; a user of it who reconnects to another node at once
// resumes without waiting for a handover that cannot come, and gets every message in
// order: the one the stopping node held, one sent while it stopped, one after.
func TestClusterShutdownWhileReconnecting(t *testing.T) {
	client := realRedisClient(t)
	n := startNodes(t, client, 2)
	n1, n2 := n[0], n[1]
	alice, bob := chat(t, n1, n2)
	n1.leave(t, alice)
	bob.Say("1")
	bob.Sync()
	slow := n1.dial() // does not read: its close handshake keeps n1's Shutdown waiting
	slow.Init("")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopWait)
		defer cancel()
		done <- n1.e.Shutdown(ctx)
	}()
	alice2 := n2.dial()
	start := time.Now()
	ready := alice2.Init(alice.UserID)
	took := time.Since(start)
	require.True(t, ready.Resumed)
	assert.Less(t, took, time.Second, "resume waited %v", took)
	bob.Say("2")
	require.NoError(t, <-done)
	bob.Say("3")
	for _, want := range []string{"1", "2", "3"} {
		assert.Equal(t, want, alice2.ExpectMessage().Content)
	}
	alice2.Sync()
}

// handleOf is the engine's handle of a user_id (half of its SHA-256 digest, hex).
func handleOf(userID string) string {
	d := sha256.Sum256([]byte(userID))
	return hex.EncodeToString(d[:16])
}
