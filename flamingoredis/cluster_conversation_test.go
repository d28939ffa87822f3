package flamingoredis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// The conversation events of DESIGN.md §4.8 between users on different nodes.

// sendAcked sends content into c's chat with a client_msg_id.
func sendAcked(c *flamingotest.Client, clientMsgID, content string) {
	c.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: c.ChatID, Content: content, ClientMsgID: clientMsgID})
}

// expectSent expects message_sent for clientMsgID and returns it.
func expectSent(t *testing.T, c *flamingotest.Client, clientMsgID string) flamingo.MessageSentPayload {
	t.Helper()
	var p flamingo.MessageSentPayload
	c.ExpectPayload(flamingo.EventMessageSent, &p)
	assert.Equal(t, c.ChatID, p.ChatID)
	assert.Equal(t, clientMsgID, p.ClientMsgID)
	return p
}

func sendTyping(c *flamingotest.Client, on bool) {
	c.Send(flamingo.EventTyping, flamingo.TypingPayload{ChatID: c.ChatID, Typing: on})
}

func expectTyping(t *testing.T, c *flamingotest.Client, on bool) {
	t.Helper()
	var p flamingo.TypingPayload
	c.ExpectPayload(flamingo.EventPartnerTyping, &p)
	assert.Equal(t, flamingo.TypingPayload{ChatID: c.ChatID, Typing: on}, p)
}

// TestClusterTyping: typing crosses nodes both ways; the typer's message clears it
// (after the message), and so does the typer's disconnect (before partner_away).
func TestClusterTyping(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		alice, bob := chat(t, n[0], n[1])
		sendTyping(alice, true)
		expectTyping(t, bob, true)
		sendTyping(alice, false)
		expectTyping(t, bob, false)
		sendTyping(bob, true)
		expectTyping(t, alice, true)

		bob.Say("done typing")
		assert.Equal(t, "done typing", alice.ExpectMessage().Content)
		expectTyping(t, alice, false)

		sendTyping(alice, true)
		expectTyping(t, bob, true)
		n[0].leave(t, alice)
		expectTyping(t, bob, false)
		bob.Expect(flamingo.EventPartnerAway)
		bob.Sync()
	})
}

// TestClusterSignals: signals cross nodes both ways with their data intact (as JSON)
// and in order, interleaved with messages.
func TestClusterSignals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		alice, bob := chat(t, n[0], n[1])
		const count = 30
		data := func(from string, i int) json.RawMessage {
			return json.RawMessage(fmt.Sprintf(`{"type":"candidate","from":%q,"seq":%d,"candidate":{"sdpMid":"0","sdpMLineIndex":0,"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 %d typ host"},"nested":[1,"two",{"three":null}],"text":"é\"\\\u2028"}`, from, i, 50000+i))
		}
		for i := range count {
			alice.Send(flamingo.EventSignal, flamingo.SignalPayload{ChatID: alice.ChatID, Data: data("alice", i)})
			bob.Send(flamingo.EventSignal, flamingo.SignalPayload{ChatID: bob.ChatID, Data: data("bob", i)})
			if i%10 == 9 {
				alice.Say(fmt.Sprintf("after signal %d", i))
			}
		}
		for i := range count {
			var p flamingo.SignalPayload
			bob.ExpectPayload(flamingo.EventSignal, &p)
			assert.Equal(t, bob.ChatID, p.ChatID)
			assert.JSONEq(t, string(data("alice", i)), string(p.Data), "signal %d to bob", i)
			if i%10 == 9 {
				assert.Equal(t, fmt.Sprintf("after signal %d", i), bob.ExpectMessage().Content)
			}
			alice.ExpectPayload(flamingo.EventSignal, &p)
			assert.JSONEq(t, string(data("bob", i)), string(p.Data), "signal %d to alice", i)
		}
		alice.Sync()
		bob.Sync()
	})
}

// TestClusterSignalsHeldThroughAMove: signals sent while the partner is away are held
// and replayed in order when the partner resumes on another node.
func TestClusterSignalsHeldThroughAMove(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		alice, bob := chat(t, n[0], n[1])
		n[0].leave(t, alice)
		bob.Expect(flamingo.EventPartnerAway)
		for i := range 5 {
			bob.Send(flamingo.EventSignal, flamingo.SignalPayload{ChatID: bob.ChatID, Data: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, i))})
		}
		bob.Sync()
		alice2 := n[1].dial()
		require.True(t, alice2.Init(alice.UserID).Resumed)
		for i := range 5 {
			var p flamingo.SignalPayload
			alice2.ExpectPayload(flamingo.EventSignal, &p)
			assert.JSONEq(t, fmt.Sprintf(`{"seq":%d}`, i), string(p.Data))
		}
		bob.Expect(flamingo.EventPartnerBack)
		alice2.Sync()
	})
}

// TestClusterAckedRetryAfterAMove: a sender whose message was acknowledged moves to
// another node and sends it again with the same client_msg_id (as a client that did
// not see the ack would): it gets the same message_id and sent_at again, and the
// partner gets the message once. The acknowledgements move with the session whichever
// way it moves: handed over by the live old node, left by a node that stops, or read
// from Redis after the old node crashed (as saved when the user went away).
func TestClusterAckedRetryAfterAMove(t *testing.T) {
	moves := []struct {
		name string
		move func(t *testing.T, old, other *clusterNode)
	}{
		{name: "handover", move: func(*testing.T, *clusterNode, *clusterNode) {}},
		{name: "stop", move: func(t *testing.T, old, _ *clusterNode) {
			ctx, cancel := context.WithTimeout(context.Background(), stopWait)
			defer cancel()
			require.NoError(t, old.e.Shutdown(ctx))
		}},
		{name: "crash", move: func(t *testing.T, old, other *clusterNode) {
			old.crash()
			if strings.HasSuffix(t.Name(), "/miniredis/crash") {
				// miniredis does not expire the crashed node's alive key in real
				// time: the claim waits HandoverWait for a handover, then reads Redis.
				return
			}
			require.Eventually(t, func() bool {
				n, err := other.cl.client.Exists(context.Background(), old.cl.keys.alive(old.cl.NodeID())).Result()
				return err == nil && n == 0
			}, 5*time.Second, 10*time.Millisecond, "the crashed node's registration lapses")
		}},
	}
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		for _, tt := range moves {
			t.Run(tt.name, func(t *testing.T) {
				n := startNodes(t, client, 3)
				alice, bob := chat(t, n[0], n[1])
				sendAcked(alice, "a-1", "one")
				first := expectSent(t, alice, "a-1")
				assert.Equal(t, "one", bob.ExpectMessage().Content)
				sendAcked(alice, "a-2", "two")
				second := expectSent(t, alice, "a-2")
				assert.Equal(t, "two", bob.ExpectMessage().Content)

				n[0].leave(t, alice)
				bob.Expect(flamingo.EventPartnerAway)
				tt.move(t, n[0], n[1])
				alice2 := n[2].dial()
				ready := alice2.Init(alice.UserID)
				require.True(t, ready.Resumed)
				require.Equal(t, alice.ChatID, ready.ChatID)
				alice2.Sync()

				// Both again, as a client re-sends what it has no ack for.
				sendAcked(alice2, "a-1", "one")
				sendAcked(alice2, "a-2", "two")
				for _, want := range []flamingo.MessageSentPayload{first, second} {
					got := expectSent(t, alice2, want.ClientMsgID)
					assert.Equal(t, want.MessageID, got.MessageID)
					assert.True(t, want.SentAt.Equal(got.SentAt), "sent_at %v, first %v", got.SentAt, want.SentAt)
				}
				sendAcked(alice2, "a-3", "three")
				third := expectSent(t, alice2, "a-3")
				assert.NotEqual(t, second.MessageID, third.MessageID)
				// Bob: alice is back, then only the new message.
				bob.Expect(flamingo.EventPartnerBack)
				m := bob.ExpectMessage()
				assert.Equal(t, "three", m.Content)
				assert.Equal(t, third.MessageID, m.MessageID)
				bob.Sync()
				alice2.Sync()
			})
		}
	})
}
