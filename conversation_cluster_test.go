package flamingo_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// handleFor finds the handle of userID among the sessions b saw saved (the flusher
// saves them after the engine answers, so it waits for one).
func handleFor(t *testing.T, b *fakeBroker, userID string) string {
	t.Helper()
	d := sha256.Sum256([]byte(userID))
	var handle string
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, st := range b.saved {
			if st.Digest == d {
				handle = st.User
				return true
			}
		}
		return false
	}, 5*time.Second, time.Millisecond, "no session saved for the user")
	return handle
}

// eventsUntilPong returns the types and payloads c reads before the pong of a ping.
func eventsUntilPong(c *flamingotest.Client) []string {
	c.Send(flamingo.EventPing, nil)
	var got []string
	for ev := c.Next(); ev.Type != flamingo.EventPong; ev = c.Next() {
		got = append(got, string(ev.Type)+" "+string(ev.Payload))
	}
	return got
}

// A takeover from another node while a is typing: the new node knows nothing of the
// indicator, so the old one ends it.
func TestTyping_ClearedWhenTheTyperMovesToAnotherNode(t *testing.T) {
	fb := &fakeBroker{}
	e := newEngine(t, flamingo.Config{Broker: fb})
	a, b := flamingotest.Pair(t, e)
	typing(a, true)
	expectTyping(t, b, true)
	done := make(chan flamingo.SessionState, 1)
	fb.host.Release(handleFor(t, fb, a.UserID), func(st flamingo.SessionState) { done <- st })
	st := <-done
	assert.False(t, st.Away, "a takeover is no drop")
	a.ExpectError(flamingo.CodeSessionReplaced)
	got := eventsUntilPong(b)
	require.NotEmpty(t, got)
	assert.Equal(t, `partner_typing {"chat_id":"`+b.ChatID+`","typing":false}`, got[0])
}

// The partner is away with a full backlog: its typing:true was held, and the
// typing:false that ends it is held too, past the bound.
func TestTyping_OffReachesAnAwayPartnerWithAFullBacklog(t *testing.T) {
	e := newEngine(t, flamingo.Config{MaxQueuedEvents: 2})
	a, b := flamingotest.Pair(t, e)
	b.Close()
	a.Expect(flamingo.EventPartnerAway)
	a.Say("one")
	typing(a, true)
	a.Sync()
	typing(a, false)
	a.Sync()
	b2 := flamingotest.Connect(t, e)
	b2.ChatID = a.ChatID
	b2.Init(b.UserID)
	assert.Equal(t, "one", b2.ExpectMessage().Content)
	expectTyping(t, b2, true)
	expectTyping(t, b2, false)
}
