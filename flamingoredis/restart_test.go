package flamingoredis

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
	"github.com/flamingochat/flamingo/internal/redistest"
)

// TestClusterRedisRestart: Redis is killed and restarted empty mid-test. Chats between
// users of one node go on through the outage and after it; the chats across nodes,
// whose state was lost, end with partner_disconnected on both sides, once; and the
// nodes match and deliver across each other again.
func TestClusterRedisRestart(t *testing.T) {
	rp := redistest.Start(t)
	client := newClient(t, rp.Addr())
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

	require.NoError(t, rp.Kill())
	alice.Say("during the outage")
	assert.Equal(t, "during the outage", bob.ExpectMessage().Content)
	require.NoError(t, rp.Restart())

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
