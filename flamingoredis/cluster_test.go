package flamingoredis

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// Timings of the test clusters: quick heartbeats, so that a dead node is noticed
// within half a second, and a short grace, though longer than the 2 s stalls of a
// loaded CI machine under the race detector: a user who drops and resumes must not
// find their session expired because the test process stood still meanwhile.
const (
	testHeartbeat = 100 * time.Millisecond
	testDeadAfter = 500 * time.Millisecond
	testGrace     = 3 * time.Second
)

// clusterNode is one flamingo node of a test cluster: an Engine with a Cluster broker,
// served over WebSocket by its own HTTP listener.
type clusterNode struct {
	t   testing.TB
	cl  *Cluster
	e   *flamingo.Engine
	srv *httptest.Server
	url string
}

func startClusterNode(t testing.TB, client redis.UniversalClient, prefix string) *clusterNode {
	t.Helper()
	// Each node has its own connections to Redis, which crash cuts.
	return startClusterNodeOn(t, newClient(t, client.(*redis.Client).Options().Addr), prefix)
}

// startClusterNodeOn starts a node that talks to Redis through client, its own.
func startClusterNodeOn(t testing.TB, client redis.UniversalClient, prefix string) *clusterNode {
	t.Helper()
	cl := NewCluster(client, ClusterOptions{
		Options:   Options{Prefix: prefix},
		Heartbeat: testHeartbeat,
		DeadAfter: testDeadAfter,
	})
	e, err := flamingo.New(flamingo.Config{
		Matcher:     cl.Matcher(),
		Broker:      cl,
		ResumeGrace: testGrace,
		// The cluster tests let the same users meet again and again; the repeat
		// window has tests of its own (matcher_v2_test.go, and the root package).
		RepeatWindow: time.Nanosecond,
		JoinRate:     flamingo.RateLimit{Rate: -1},
		InitRate:     flamingo.RateLimit{Rate: -1},
		EventRate:    flamingo.RateLimit{Rate: -1},
		MessageRate:  flamingo.RateLimit{Rate: -1},
	})
	require.NoError(t, err)
	srv := httptest.NewServer(flamingo.NewWebSocketHandler(e, nil))
	n := &clusterNode{t: t, cl: cl, e: e, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), stopWait)
		defer cancel()
		assert.NoError(t, e.Shutdown(ctx))
	})
	return n
}

// startNodes starts count nodes of one cluster, on a key prefix of the test's own.
func startNodes(t testing.TB, client redis.UniversalClient, count int) []*clusterNode {
	t.Helper()
	prefix := freshPrefix(t, client)
	nodes := make([]*clusterNode, count)
	for i := range nodes {
		nodes[i] = startClusterNode(t, client, prefix)
	}
	return nodes
}

// dial connects a new client to n.
func (n *clusterNode) dial() *flamingotest.Client {
	n.t.Helper()
	return flamingotest.Dial(n.t, n.url, nil)
}

// crash makes n vanish as if its process were killed: it stops talking to Redis
// without leaving the cluster, and its connections drop.
func (n *clusterNode) crash() {
	cl := n.cl
	cl.mu.Lock()
	cl.stopping, cl.stopped, cl.writerDone = true, true, true // nothing more is written
	cl.mu.Unlock()
	cl.cancel()
	cl.hbCancel()
	m := cl.m
	m.mu.Lock()
	m.state = stateStopped
	cancel := m.cancel
	m.mu.Unlock()
	cancel()
	// Cutting its connections stops the node's blocked stream read at once, as a
	// kill would: what is unread in its inbox stays there.
	_ = cl.client.Close()
	<-m.done
	// Its users lose their connections. (httptest's CloseClientConnections does not
	// reach WebSockets, which were hijacked; shutting the engine down closes them, and
	// tells the cluster nothing, since its broker is already cut off.)
	// It runs in the background: a close handshake with a client that is not reading
	// takes seconds, while the kill is immediate.
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), stopWait)
		defer cancel()
		_ = n.e.Shutdown(ctx)
	}()
	n.t.Cleanup(func() { <-done })
}

// waitSaved waits until Redis has the current chat of each client's session, which
// n wrote.
func (n *clusterNode) waitSaved(t testing.TB, clients ...*flamingotest.Client) {
	t.Helper()
	for _, c := range clients {
		key := n.cl.keys.session(handleOf(c.UserID))
		require.Eventually(t, func() bool {
			chat, err := n.cl.client.HGet(context.Background(), key, sessChat).Result()
			return err == nil && chat == c.ChatID
		}, 5*time.Second, 10*time.Millisecond, "session of %s saved", c.UserID)
	}
}

// leave closes c's connection and waits until n, its node, has seen the user go
// (the session is saved as away): what is sent to the user from then on is held,
// not written to a socket that is closing.
func (n *clusterNode) leave(t testing.TB, c *flamingotest.Client) {
	t.Helper()
	c.Close()
	key := n.cl.keys.session(handleOf(c.UserID))
	require.Eventually(t, func() bool {
		away, err := n.cl.client.HGet(context.Background(), key, sessAway).Result()
		return err == nil && away == "1"
	}, 5*time.Second, 5*time.Millisecond, "%s seen away", c.UserID)
}

// chat connects a new user to each of na and nb and matches them.
func chat(t testing.TB, na, nb *clusterNode) (a, b *flamingotest.Client) {
	t.Helper()
	a, b = na.dial(), nb.dial()
	a.Init("")
	b.Init("")
	match(t, a, b)
	return a, b
}

// match queues a and b (connected to any nodes) and waits until both are matched.
func match(t testing.TB, a, b *flamingotest.Client) {
	t.Helper()
	a.Join(flamingo.GenderFemale, flamingo.PreferAny)
	b.Join(flamingo.GenderMale, flamingo.PreferFemale)
	a.Expect(flamingo.EventMatchFound)
	b.Expect(flamingo.EventMatchFound)
	require.NotEmpty(t, a.ChatID)
	require.Equal(t, a.ChatID, b.ChatID)
}

// TestClusterCrossNode: strangers on two nodes are matched, chat both ways, see the
// cluster's counts, and one leaving ends the chat for both.
func TestClusterCrossNode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		n1, n2 := n[0], n[1]
		alice, bob := chat(t, n1, n2)
		for i := range 20 {
			alice.Say("a" + string(rune('a'+i)))
			bob.Say("b" + string(rune('a'+i)))
		}
		for i := range 20 {
			assert.Equal(t, "a"+string(rune('a'+i)), bob.ExpectMessage().Content)
			assert.Equal(t, "b"+string(rune('a'+i)), alice.ExpectMessage().Content)
		}

		// get_stats sums the nodes: both users are online and in a chat.
		require.Eventually(t, func() bool {
			alice.Send(flamingo.EventGetStats, nil)
			var st flamingo.Stats
			alice.ExpectPayload(flamingo.EventStats, &st)
			return st == flamingo.Stats{Online: 2, InChat: 2}
		}, 5*time.Second, 50*time.Millisecond, "cluster-wide stats")

		bob.Send(flamingo.EventLeaveChat, nil)
		var end flamingo.ChatEndedPayload
		bob.ExpectPayload(flamingo.EventChatEnded, &end)
		assert.Equal(t, flamingo.ReasonLeft, end.Reason)
		alice.ExpectPayload(flamingo.EventChatEnded, &end)
		assert.Equal(t, flamingo.ReasonPartnerLeft, end.Reason)
		alice.Sync()
		bob.Sync()
	})
}

// TestClusterResumeOnOtherNode: a user who drops mid-chat comes back on the other
// node; their partner is told partner_away, then partner_back; what the partner sent
// meanwhile is delivered, in order, and the chat goes on. A second tab on the other
// node takes the session over, which is no drop: the partner hears nothing of it.
func TestClusterResumeOnOtherNode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		n1, n2 := n[0], n[1]
		alice, bob := chat(t, n1, n2)
		alice.Say("before")
		assert.Equal(t, "before", bob.ExpectMessage().Content)

		n1.leave(t, alice)
		var away flamingo.PartnerAwayPayload
		bob.ExpectPayload(flamingo.EventPartnerAway, &away)
		assert.Equal(t, flamingo.PartnerAwayPayload{ChatID: alice.ChatID, GraceMs: testGrace.Milliseconds()}, away)
		bob.Say("while away 1")
		bob.Say("while away 2")
		bob.Sync()

		// Back on n2, the node of her partner.
		alice2 := n2.dial()
		ready := alice2.Init(alice.UserID)
		assert.True(t, ready.Resumed)
		assert.Equal(t, alice.ChatID, ready.ChatID)
		assert.Equal(t, "while away 1", alice2.ExpectMessage().Content)
		assert.Equal(t, "while away 2", alice2.ExpectMessage().Content)
		alice2.Say("back")
		var back struct {
			ChatID string `json:"chat_id"`
		}
		bob.ExpectPayload(flamingo.EventPartnerBack, &back)
		assert.Equal(t, alice.ChatID, back.ChatID)
		assert.Equal(t, "back", bob.ExpectMessage().Content)
		bob.Say("welcome")
		assert.Equal(t, "welcome", alice2.ExpectMessage().Content)

		// A second tab on n1 takes the session over from n2.
		alice3 := n1.dial()
		ready = alice3.Init(alice.UserID)
		assert.True(t, ready.Resumed)
		alice2.ExpectError(flamingo.CodeSessionReplaced)
		alice2.ExpectClosed(flamingo.CloseSessionReplaced)
		bob.Say("to the new tab")
		assert.Equal(t, "to the new tab", alice3.ExpectMessage().Content)
		alice3.Say("from the new tab")
		assert.Equal(t, "from the new tab", bob.ExpectMessage().Content)

		// (bob's next event is that message: the takeover sent no partner_back)

		// Bob hops too; both now on n1, still in one chat.
		n2.leave(t, bob)
		alice3.Expect(flamingo.EventPartnerAway)
		bob2 := n1.dial()
		assert.True(t, bob2.Init(bob.UserID).Resumed)
		bob2.Say("same node now")
		alice3.Expect(flamingo.EventPartnerBack)
		assert.Equal(t, "same node now", alice3.ExpectMessage().Content)
		alice3.Send(flamingo.EventLeaveChat, nil)
		alice3.Expect(flamingo.EventChatEnded)
		var end flamingo.ChatEndedPayload
		bob2.ExpectPayload(flamingo.EventChatEnded, &end)
		assert.Equal(t, flamingo.ReasonPartnerLeft, end.Reason)
		bob2.Sync()
	})
}

// TestClusterNodeKilled: a node dies without shutting down. The partners of its users
// are told partner_disconnected, once, within grace + 2 s; a user of the dead node who
// comes back in time resumes on the live one.
func TestClusterNodeKilled(t *testing.T) {
	client := realRedisClient(t)
	n := startNodes(t, client, 2)
	n1, n2 := n[0], n[1]

	alice, bob := n1.dial(), n2.dial()  // bob will lose alice
	carol, dave := n1.dial(), n2.dial() // carol will come back
	for _, c := range []*flamingotest.Client{alice, bob, carol, dave} {
		c.Init("")
	}
	match(t, alice, bob)
	match(t, carol, dave)
	// The kill comes in a steady state: n1 has written its sessions' chats to Redis
	// (what a node has not written when it dies is lost with it).
	n1.waitSaved(t, alice, carol)

	killed := time.Now()
	n1.crash()
	dave.Say("are you there?")

	carol2 := n2.dial()
	ready := carol2.Init(carol.UserID)
	assert.True(t, ready.Resumed)
	assert.Equal(t, carol.ChatID, ready.ChatID)
	assert.Equal(t, "are you there?", carol2.ExpectMessage().Content)
	carol2.Say("yes")
	assert.Equal(t, "yes", dave.ExpectMessage().Content)

	var end flamingo.ChatEndedPayload
	bob.ExpectPayload(flamingo.EventChatEnded, &end)
	took := time.Since(killed)
	assert.Equal(t, flamingo.ReasonPartnerDisconnected, end.Reason)
	assert.Less(t, took, testGrace+2*time.Second, "partner told %v after the kill", took)
	t.Logf("partner told %v after the kill (grace %v)", took, testGrace)

	// Exactly once: once the reaper is done with the dead node's sessions (alice's
	// expired, carol's claimed), nothing more came for bob and carol's chat lives on.
	require.Eventually(t, func() bool {
		n, err := client.ZCard(context.Background(), n2.cl.keys.orphans()).Result()
		return err == nil && n == 0
	}, 5*time.Second, 20*time.Millisecond, "orphans reaped")
	bob.Sync()
	dave.Sync()
	carol2.Sync()
}

// TestClusterNodeTakenForDead: a node that is alive but lost its registration (a stall
// longer than DeadAfter looks the same to the others) resyncs: its chats across nodes
// end once for both sides, its own chats go on, and its sessions stay its own (the
// reaper does not expire them as orphans), so they can still move to another node.
func TestClusterNodeTakenForDead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		n1, n2 := n[0], n[1]
		alice, bob := n1.dial(), n2.dial()
		carol, dave := n1.dial(), n1.dial()
		for _, c := range []*flamingotest.Client{alice, bob, carol, dave} {
			c.Init("")
		}
		match(t, alice, bob)
		match(t, carol, dave)
		n1.waitSaved(t, alice, carol, dave)

		// n1's registration lapses and, at once, a reaper takes it for dead: its
		// sessions become orphans, its inbox is set to expire.
		ctx := context.Background()
		cl := n2.cl
		_, err := client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, cl.keys.alive(n1.cl.NodeID()))
			p.EvalSha(ctx, reapScript.Hash(), []string{cl.keys.nodes()}, cl.keys.base, time.Now().UnixMilli(),
				cl.grace.Milliseconds(), cl.opts.MaxHeld, tombstoneTTL.Milliseconds(), 1000, cl.keepInbox())
			return nil
		})
		require.NoError(t, err)
		for _, c := range []*flamingotest.Client{alice, bob} {
			var end flamingo.ChatEndedPayload
			c.ExpectPayload(flamingo.EventChatEnded, &end)
			assert.Equal(t, flamingo.ReasonPartnerDisconnected, end.Reason)
		}
		carol.Say("still here")
		assert.Equal(t, "still here", dave.ExpectMessage().Content)

		// No orphan is left: the resync took them back (were it not so, they would
		// stay until the reaper expired them at the end of their grace).
		require.Eventually(t, func() bool {
			n, err := client.ZCard(ctx, n1.cl.keys.orphans()).Result()
			return err == nil && n == 0
		}, 5*time.Second, 20*time.Millisecond, "orphans reaped")
		// A second tab on n2 takes carol's session over, from what Redis has of it.
		carol2 := n2.dial()
		ready := carol2.Init(carol.UserID)
		require.True(t, ready.Resumed, "carol's session survived the resync")
		assert.Equal(t, carol.ChatID, ready.ChatID)
		carol.ExpectError(flamingo.CodeSessionReplaced)
		dave.Say("found you")
		assert.Equal(t, "found you", carol2.ExpectMessage().Content)
		for _, c := range []*flamingotest.Client{alice, bob, carol2, dave} {
			c.Sync()
		}
	})
}

// TestClusterShutdownHandsOver: a node shut down gracefully hands its sessions, with
// the events it held for users who were away, to the cluster; they resume on another
// node with everything, in order.
func TestClusterShutdownHandsOver(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		n1, n2 := n[0], n[1]
		alice, bob := chat(t, n1, n2)

		n1.leave(t, alice)
		bob.Expect(flamingo.EventPartnerAway)
		bob.Say("held on n1")
		bob.Sync()
		ctx, cancel := context.WithTimeout(context.Background(), stopWait)
		defer cancel()
		require.NoError(t, n1.e.Shutdown(ctx))
		bob.Say("after n1 left")
		bob.Sync()

		alice2 := n2.dial()
		ready := alice2.Init(alice.UserID)
		require.True(t, ready.Resumed)
		assert.Equal(t, alice.ChatID, ready.ChatID)
		assert.Equal(t, "held on n1", alice2.ExpectMessage().Content)
		assert.Equal(t, "after n1 left", alice2.ExpectMessage().Content)
		alice2.Say("back")
		bob.Expect(flamingo.EventPartnerBack)
		assert.Equal(t, "back", bob.ExpectMessage().Content)
	})
}

// readUntil reads c's events up to the message_received with content, and returns
// them, that message last.
func readUntil(t testing.TB, c *flamingotest.Client, content string) []flamingotest.Event {
	t.Helper()
	var evs []flamingotest.Event
	for {
		ev := c.Next()
		evs = append(evs, ev)
		if ev.Type != flamingo.EventMessageReceived {
			continue
		}
		var m flamingo.MessageReceivedPayload
		require.NoError(t, ev.Decode(&m))
		if m.Content == content {
			return evs
		}
	}
}

// presence returns the types of the partner_away and partner_back events in evs, in
// order.
func presence(evs ...[]flamingotest.Event) []flamingo.EventType {
	var out []flamingo.EventType
	for _, list := range evs {
		for _, ev := range list {
			if ev.Type == flamingo.EventPartnerAway || ev.Type == flamingo.EventPartnerBack {
				out = append(out, ev.Type)
			}
		}
	}
	return out
}
