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
// there; the tab on n2 is told it was replaced. Bob sees alice away, and back once:
// the move from n2 to n3 is a takeover.
func TestClusterClaimWhileClaimed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 3)
		n1, n2, n3 := n[0], n[1], n[2]
		alice, bob := chat(t, n1, n1)
		n1.waitSaved(t, alice, bob)
		n1.leave(t, alice)
		bob.Expect(flamingo.EventPartnerAway)
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
		bob.Expect(flamingo.EventPartnerBack)
		assert.Equal(t, "from n3", bob.ExpectMessage().Content)

		// Only n3 holds the session now.
		node, err := client.HGet(context.Background(), n1.cl.keys.session(handleOf(alice.UserID)), sessNode).Result()
		require.NoError(t, err)
		assert.Equal(t, n3.cl.NodeID(), node)
		for _, n := range []*clusterNode{n1, n2} {
			ok, err := client.SIsMember(context.Background(), n.cl.keys.sessions(n.cl.NodeID()), handleOf(alice.UserID)).Result()
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
	bob.Expect(flamingo.EventPartnerAway)
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

// gatedClient is a node's own Redis client whose pipelines wait at Exec while its gate
// is shut. A Cluster's writer sends every published op in a pipeline, and nothing
// else does: shutting the gate stalls the node's writes to Redis, and only them (its
// engine, its Matcher's calls and its stream reader go on).
type gatedClient struct {
	redis.UniversalClient
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newGatedClient(t testing.TB, addr string) *gatedClient {
	g := &gatedClient{UniversalClient: newClient(t, addr), open: make(chan struct{})}
	close(g.open)
	return g
}

// shut makes the pipelines executed from now on wait until release. A test that
// shuts the gate must release it before its node stops.
func (g *gatedClient) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

// release lets the waiting pipelines, and later ones, go.
func (g *gatedClient) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *gatedClient) Pipeline() redis.Pipeliner {
	return gatedPipeline{Pipeliner: g.UniversalClient.Pipeline(), g: g}
}

type gatedPipeline struct {
	redis.Pipeliner
	g *gatedClient
}

func (p gatedPipeline) Exec(ctx context.Context) ([]redis.Cmder, error) {
	p.g.mu.Lock()
	open := p.g.open
	p.g.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done(): // (Exec then fails each command with ctx's error)
	}
	return p.Pipeliner.Exec(ctx)
}

// enqueueWaiting reports whether an Enqueue on n waits for n's earlier writes.
func (n *clusterNode) enqueueWaiting() bool {
	n.cl.mu.Lock()
	defer n.cl.mu.Unlock()
	return n.cl.progress != nil
}

// TestClusterPairWaitsForSession: a user is paired only once the session their node
// created for them is in Redis, where the partner's node looks up where to send them
// events. Here n2's writes to Redis stall (as when its writer lags behind) between
// bob's init and his join: his join must wait for them, or alice's node, which routes
// by bob's session, would drop her first messages to him (the send script drops an
// event for a user without a session).
func TestClusterPairWaitsForSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		prefix := freshPrefix(t, client)
		n1 := startClusterNode(t, client, prefix)
		gate := newGatedClient(t, client.(*redis.Client).Options().Addr)
		n2 := startClusterNodeOn(t, gate, prefix)
		ctx := context.Background()

		alice := n1.dial()
		alice.Init("")
		alice.Join(flamingo.GenderFemale, flamingo.PreferAny)
		aliceTicket := n1.cl.keys.ticket(handleOf(alice.UserID))
		require.Eventually(t, func() bool {
			n, err := client.Exists(ctx, aliceTicket).Result()
			return err == nil && n == 1
		}, 5*time.Second, time.Millisecond, "alice waits in the queue")

		gate.shut()
		defer gate.release()
		bob := n2.dial()
		bob.Init("") // n2 cannot write his session now
		// queue_joined comes once the matcher has the ticket: not yet.
		bob.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderMale, Preference: flamingo.PreferFemale})
		var paired bool
		require.Eventually(t, func() bool {
			n, err := client.Exists(ctx, aliceTicket).Result()
			paired = err == nil && n == 0
			return paired || n2.enqueueWaiting()
		}, 5*time.Second, time.Millisecond, "bob's join is under way")
		require.False(t, paired, "bob was paired before n2 wrote his session to Redis: alice's node would drop her messages to him")

		gate.release()
		alice.Expect(flamingo.EventMatchFound)
		bob.Expect(flamingo.EventQueueJoined)
		bob.Expect(flamingo.EventMatchFound)
		require.Equal(t, alice.ChatID, bob.ChatID)
		alice.Say("hello")
		assert.Equal(t, "hello", bob.ExpectMessage().Content)
		bob.Say("hi")
		assert.Equal(t, "hi", alice.ExpectMessage().Content)
		alice.Sync()
		bob.Sync()
	})
}

// TestClusterFlushedBounded: an Enqueue's wait for its node's earlier writes ends with
// an error when its context does (or after flushWait), without queueing the ticket,
// and without one once the writer has caught up.
func TestClusterFlushedBounded(t *testing.T) {
	client := miniredisClient(t)
	prefix := freshPrefix(t, client)
	gate := newGatedClient(t, client.(*redis.Client).Options().Addr)
	n := startClusterNodeOn(t, gate, prefix)

	gate.shut()
	defer gate.release()
	c := n.dial()
	c.Init("") // its session's save waits at the gate
	for _, call := range []struct {
		name string
		f    func(context.Context) error
	}{
		{"flushed", n.cl.flushed},
		{"Enqueue", func(ctx context.Context) error {
			return n.cl.Matcher().Enqueue(ctx, flamingo.Ticket{User: "u1", Gender: flamingo.GenderMale,
				Preference: flamingo.PreferAny, JoinedAt: time.Now(), Node: n.cl.NodeID()})
		}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		assert.ErrorIs(t, call.f(ctx), context.DeadlineExceeded, call.name)
		cancel()
	}
	queued, err := client.Exists(context.Background(), n.cl.keys.ticket("u1")).Result()
	require.NoError(t, err)
	assert.Zero(t, queued, "the ticket of the Enqueue that gave up is not queued")

	gate.release()
	require.NoError(t, n.cl.flushed(context.Background()))
	c.Sync()
}
