package flamingo_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

func TestMetrics_CountWhatHappened(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{
			JoinRate:  flamingo.RateLimit{Rate: 0.001, Burst: 1},
			OnMessage: func(flamingo.Message) error { time.Sleep(time.Millisecond); return nil },
		})
		a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		a.Init("")
		b.Init("")
		a.Join(flamingo.GenderFemale, flamingo.PreferAny)
		time.Sleep(3 * time.Second) // a waits 3 s for b
		b.Join(flamingo.GenderMale, flamingo.PreferFemale)
		a.Expect(flamingo.EventMatchFound)
		b.Expect(flamingo.EventMatchFound)
		for range 3 {
			a.Say("hello")
			b.ExpectMessage()
		}
		a.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: "nope", Content: "x"})
		a.ExpectError(flamingo.CodeNotInChat)
		b.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderMale})
		b.ExpectError(flamingo.CodeRateLimited) // b's one join is spent
		time.Sleep(20 * time.Second)
		a.Send(flamingo.EventLeaveChat, nil)
		a.Expect(flamingo.EventChatEnded)
		b.Expect(flamingo.EventChatEnded)

		m := e.Metrics()
		assert.Equal(t, flamingo.Stats{Online: 2}, m.Stats)
		assert.Equal(t, 2, m.Connections)
		assert.EqualValues(t, 1, m.Matches)
		assert.EqualValues(t, 3, m.Messages)
		assert.Equal(t, map[flamingo.ErrorCode]uint64{flamingo.CodeNotInChat: 1, flamingo.CodeRateLimited: 1}, m.Errors)
		assert.Equal(t, map[flamingo.EventType]uint64{flamingo.EventJoinQueue: 1}, m.RateLimited)

		require.EqualValues(t, 2, m.MatchWait.Count, "one observation per user paired")
		assert.InDelta(t, 3, m.MatchWait.Sum, 0.001, "a waited 3 s, b not at all")
		assert.Equal(t, []uint64{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0}, m.MatchWait.Counts) // 0 s and 3 s
		require.EqualValues(t, 1, m.ChatDuration.Count)
		assert.InDelta(t, 20, m.ChatDuration.Sum, 0.1)

		hook := m.HookDuration["OnMessage"]
		assert.EqualValues(t, 3, hook.Count)
		assert.InDelta(t, 0.003, hook.Sum, 0.0001)
		assert.Equal(t, map[string]uint64{"OnMessage": 0}, m.HookPanics)
		assert.NotContains(t, m.HookDuration, "OnMatch", "a hook that is not set has no metrics")
	})
}

func TestMetrics_ClosesResumesAndExpiries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{ResumeGrace: 10 * time.Second, MaxFrameBytes: 128})
		a, b := flamingotest.Pair(t, e)
		a.Close()
		synctest.Wait()
		a2 := flamingotest.Connect(t, e)
		a2.Init(a.UserID) // resumed
		b.SendRaw([]byte(`{"type":"ping","payload":{"pad":"` + strings.Repeat("x", 200) + `"}}`))
		b.ExpectClosed(flamingo.CloseMessageTooBig)
		time.Sleep(11 * time.Second) // b's grace ends
		a2.Expect(flamingo.EventPartnerAway)
		a2.Expect(flamingo.EventChatEnded)

		m := e.Metrics()
		assert.EqualValues(t, 1, m.Resumed)
		assert.EqualValues(t, 1, m.Expired)
		assert.EqualValues(t, 1, m.Closes[flamingo.CloseMessageTooBig])
	})
}

func TestMetrics_HookPanics(t *testing.T) {
	e := newEngine(t, flamingo.Config{OnMatch: func(flamingo.ChatInfo) { panic("a bug in the embedder's hook") }})
	flamingotest.Pair(t, e)
	require.Eventually(t, func() bool { return e.Metrics().HookDuration["OnMatch"].Count == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, map[string]uint64{"OnMatch": 1}, e.Metrics().HookPanics)
}

// Closes counts the closes the engine decided, Shutdown's included, and not those of
// peers.
func TestMetrics_ClosesAreTheEngines(t *testing.T) {
	e, err := flamingo.New(flamingo.Config{})
	require.NoError(t, err)
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	a.Init("")
	b.Init("")
	a.Close()
	require.Eventually(t, func() bool { return flamingo.ConnCount(e) == 1 }, 5*time.Second, time.Millisecond)
	assert.Empty(t, e.Metrics().Closes, "a peer's close is not counted")
	require.NoError(t, e.Shutdown(context.Background()))
	b.ExpectClosed(flamingo.CloseGoingAway)
	assert.Equal(t, map[flamingo.CloseCode]uint64{flamingo.CloseGoingAway: 1}, e.Metrics().Closes)
}

// A message refused because the partner is away with a full hold is not counted as
// relayed.
func TestMetrics_RefusedMessageNotCounted(t *testing.T) {
	e := newEngine(t, flamingo.Config{MaxQueuedEvents: 2, MessageRate: unlimited})
	a, b := flamingotest.Pair(t, e)
	b.Close()
	require.Eventually(t, func() bool { return flamingo.SessionAway(e, b.UserID) }, 5*time.Second, time.Millisecond)
	a.Expect(flamingo.EventPartnerAway)
	a.Say("1")
	a.Say("2")
	a.Say("3")
	a.ExpectError(flamingo.CodeRateLimited)
	assert.EqualValues(t, 2, e.Metrics().Messages)
}
