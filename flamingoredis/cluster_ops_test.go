package flamingoredis

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// TestClusterDrainMovesChats: a drained node sends its users away with 1012; they come
// back on the other nodes and find their chats, and what was sent to them meanwhile.
// Two chats: one across the nodes, one with both users on the drained node. Each
// partner sees the move as partner_away, then partner_back, once.
func TestClusterDrainMovesChats(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		n1, n2 := n[0], n[1]
		alice, bob := chat(t, n1, n2)  // across
		carol, dave := chat(t, n1, n1) // both on n1
		n1.waitSaved(t, alice, carol, dave)
		require.NoError(t, n1.e.Ready(context.Background()))

		drained := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			drained <- n1.e.Drain(ctx)
		}()
		before := map[*flamingotest.Client][]flamingotest.Event{}
		for _, c := range []*flamingotest.Client{alice, carol, dave} {
			before[c] = c.ExpectClosed(flamingo.CloseServiceRestart)
		}
		assert.ErrorIs(t, n1.e.Ready(context.Background()), flamingo.ErrEngineClosed)
		n1.waitAway(t, alice, carol, dave)
		bob.Expect(flamingo.EventPartnerAway)
		bob.Say("while you moved")
		bob.Sync()

		alice2, carol2, dave2 := n2.dial(), n2.dial(), n2.dial()
		for _, p := range []struct{ old, now *flamingotest.Client }{{alice, alice2}, {carol, carol2}, {dave, dave2}} {
			ready := p.now.Init(p.old.UserID)
			require.True(t, ready.Resumed, "the session moved to n2")
			require.Equal(t, p.old.ChatID, ready.ChatID, "with its chat")
		}
		assert.Equal(t, "while you moved", alice2.ExpectMessage().Content)
		alice2.Say("still here")
		bob.Expect(flamingo.EventPartnerBack)
		assert.Equal(t, "still here", bob.ExpectMessage().Content)
		// Carol and Dave each saw the other go, on the old connection or in the
		// replay, and come back: the resume of each was published before the
		// other's next message.
		carol2.Say("and us")
		toDave := readUntil(t, dave2, "and us")
		dave2.Say("and you")
		toCarol := readUntil(t, carol2, "and you")
		want := []flamingo.EventType{flamingo.EventPartnerAway, flamingo.EventPartnerBack}
		assert.Equal(t, want, presence(before[carol], toCarol), "carol")
		assert.Equal(t, want, presence(before[dave], toDave), "dave")
		for _, c := range []*flamingotest.Client{alice2, bob, carol2, dave2} {
			c.Sync()
		}
		require.NoError(t, <-drained, "Drain returns once every session has moved")
	})
}

// waitAway waits until Redis has each client's session as away.
func (n *clusterNode) waitAway(t testing.TB, clients ...*flamingotest.Client) {
	t.Helper()
	for _, c := range clients {
		key := n.cl.keys.session(handleOf(c.UserID))
		require.Eventually(t, func() bool {
			away, err := n.cl.client.HGet(context.Background(), key, sessAway).Result()
			return err == nil && away == "1"
		}, 5*time.Second, 5*time.Millisecond, "%s seen away", c.UserID)
	}
}

// TestClusterKick: a user is kicked from the node of their partner.
func TestClusterKick(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		n1, n2 := n[0], n[1]
		alice, bob := chat(t, n1, n2)
		n1.waitSaved(t, alice)

		require.NoError(t, n2.e.Kick(handleOf(alice.UserID), "spam"))
		alice.ExpectClosed(flamingo.ClosePolicyViolation)
		var end flamingo.ChatEndedPayload
		bob.ExpectPayload(flamingo.EventChatEnded, &end)
		assert.Equal(t, flamingo.ReasonPartnerLeft, end.Reason)

		// Once n1's Forget has reached Redis (a moment after the close), the id
		// resumes nothing anywhere.
		key := n1.cl.keys.session(handleOf(alice.UserID))
		require.Eventually(t, func() bool {
			n, err := n1.cl.client.Exists(context.Background(), key).Result()
			return err == nil && n == 0
		}, 5*time.Second, time.Millisecond, "the kicked session is forgotten in Redis")
		again := n2.dial()
		assert.False(t, again.Init(alice.UserID).Resumed, "a kicked user's id resumes nothing")
	})
}

// TestClusterMetrics: a node counts the messages it sent across, and what its writer
// applied to Redis.
func TestClusterMetrics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		alice, bob := chat(t, n[0], n[1])
		for range 3 {
			alice.Say("over there")
			assert.Equal(t, "over there", bob.ExpectMessage().Content)
		}
		m := n[0].e.Metrics()
		assert.EqualValues(t, 3, m.CrossNodeMessages)
		assert.EqualValues(t, 3, m.Messages)
		// The writer counts an op once Redis has answered, which may be just after
		// the partner's node has read it.
		require.Eventually(t, func() bool { return n[0].e.Metrics().BrokerOps["send"] >= 3 }, 5*time.Second, time.Millisecond)
		assert.GreaterOrEqual(t, m.BrokerOps["save"], uint64(2), "alice's new session and her chat")
		assert.Positive(t, m.BrokerRoundTrip.Count)
		assert.Len(t, m.BrokerRoundTrip.Counts, len(m.BrokerRoundTrip.Bounds))
		assert.Zero(t, n[1].e.Metrics().CrossNodeMessages, "bob sent nothing")
	})
}
