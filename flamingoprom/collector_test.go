package flamingoprom_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingoprom"
	"github.com/flamingochat/flamingo/flamingotest"
)

// newEngine returns an Engine with cfg that the test's cleanup shuts down.
func newEngine(t *testing.T, cfg flamingo.Config) *flamingo.Engine {
	t.Helper()
	e, err := flamingo.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, e.Shutdown(ctx))
	})
	return e
}

// TestCollector_CountsWhatHappened drives an engine through matches, messages,
// errors, a rate limit, hooks and a chat's end, in a synctest bubble so that every
// duration is exact, and compares the whole exposition with what the test did.
func TestCollector_CountsWhatHappened(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{
			JoinRate: flamingo.RateLimit{Rate: 0.001, Burst: 1}, // one join per connection
			OnMatch:  func(flamingo.ChatInfo) { panic("boom") }, // recovered and counted
			OnMessage: func(m flamingo.Message) error {
				time.Sleep(time.Millisecond)
				if m.Content == "spam" {
					return &flamingo.Error{Code: "spam", Message: "no spam"}
				}
				return nil
			},
		})
		c := flamingoprom.NewCollector(e, flamingoprom.Options{})

		// alice waits 3 s for bob: match waits of 3 s and 0 s.
		alice, bob := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		alice.Init("")
		bob.Init("")
		alice.Join(flamingo.GenderFemale, flamingo.PreferAny)
		time.Sleep(3 * time.Second)
		bob.Join(flamingo.GenderMale, flamingo.PreferFemale)
		alice.Expect(flamingo.EventMatchFound)
		bob.Expect(flamingo.EventMatchFound)

		// Three messages relayed, one refused by the hook with its own code, one to a
		// chat that is not alice's, one join over bob's limit.
		for range 3 {
			alice.Say("hello")
			bob.ExpectMessage()
		}
		alice.Say("spam")
		alice.ExpectError("spam")
		alice.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: "nope", Content: "x"})
		alice.ExpectError(flamingo.CodeNotInChat)
		bob.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderMale})
		bob.ExpectError(flamingo.CodeRateLimited)

		// The chat lasts 20 s.
		time.Sleep(20 * time.Second)
		alice.Send(flamingo.EventLeaveChat, nil)
		alice.Expect(flamingo.EventChatEnded)
		bob.Expect(flamingo.EventChatEnded)

		// carol waits 400 s, beyond the last bucket (300 s), for dave; dave waits 0 s.
		// They stay in their chat.
		carol, dave := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		carol.Init("")
		dave.Init("")
		carol.Join(flamingo.GenderFemale, flamingo.PreferAny)
		time.Sleep(400 * time.Second)
		dave.Join(flamingo.GenderMale, flamingo.PreferFemale)
		carol.Expect(flamingo.EventMatchFound)
		dave.Expect(flamingo.EventMatchFound)

		// erin waits in the queue.
		erin := flamingotest.Connect(t, e)
		erin.Init("")
		erin.Join(flamingo.GenderOther, flamingo.PreferOther)
		// The OnMatch hook of carol and dave runs after their match_found is sent:
		// let it finish.
		synctest.Wait()

		// Each bucket counts the observations at most its bound: the match waits are
		// 0, 0, 3 and 400 s; the OnMessage hook slept 1 ms four times; the chat lasted
		// those 4 ms and 20 s. The OnMatch hook ran twice, in no time, and panicked.
		const want = `
# HELP flamingo_chat_duration_seconds How long chats lasted, observed when they end.
# TYPE flamingo_chat_duration_seconds histogram
flamingo_chat_duration_seconds_bucket{le="5"} 0
flamingo_chat_duration_seconds_bucket{le="15"} 0
flamingo_chat_duration_seconds_bucket{le="30"} 1
flamingo_chat_duration_seconds_bucket{le="60"} 1
flamingo_chat_duration_seconds_bucket{le="120"} 1
flamingo_chat_duration_seconds_bucket{le="300"} 1
flamingo_chat_duration_seconds_bucket{le="600"} 1
flamingo_chat_duration_seconds_bucket{le="1800"} 1
flamingo_chat_duration_seconds_bucket{le="3600"} 1
flamingo_chat_duration_seconds_bucket{le="+Inf"} 1
flamingo_chat_duration_seconds_sum 20.004
flamingo_chat_duration_seconds_count 1
# HELP flamingo_closes_total Connections the engine closed, by WebSocket close code.
# TYPE flamingo_closes_total counter
# HELP flamingo_connections Connections being served, initialised or not.
# TYPE flamingo_connections gauge
flamingo_connections 5
# HELP flamingo_errors_total Error events sent, by error code.
# TYPE flamingo_errors_total counter
flamingo_errors_total{code="not_in_chat"} 1
flamingo_errors_total{code="rate_limited"} 1
flamingo_errors_total{code="spam"} 1
# HELP flamingo_hook_duration_seconds How long calls of a hook took, by hook.
# TYPE flamingo_hook_duration_seconds histogram
flamingo_hook_duration_seconds_bucket{hook="OnMatch",le="0.0001"} 2
flamingo_hook_duration_seconds_bucket{hook="OnMatch",le="0.001"} 2
flamingo_hook_duration_seconds_bucket{hook="OnMatch",le="0.01"} 2
flamingo_hook_duration_seconds_bucket{hook="OnMatch",le="0.1"} 2
flamingo_hook_duration_seconds_bucket{hook="OnMatch",le="1"} 2
flamingo_hook_duration_seconds_bucket{hook="OnMatch",le="+Inf"} 2
flamingo_hook_duration_seconds_sum{hook="OnMatch"} 0
flamingo_hook_duration_seconds_count{hook="OnMatch"} 2
flamingo_hook_duration_seconds_bucket{hook="OnMessage",le="0.0001"} 0
flamingo_hook_duration_seconds_bucket{hook="OnMessage",le="0.001"} 4
flamingo_hook_duration_seconds_bucket{hook="OnMessage",le="0.01"} 4
flamingo_hook_duration_seconds_bucket{hook="OnMessage",le="0.1"} 4
flamingo_hook_duration_seconds_bucket{hook="OnMessage",le="1"} 4
flamingo_hook_duration_seconds_bucket{hook="OnMessage",le="+Inf"} 4
flamingo_hook_duration_seconds_sum{hook="OnMessage"} 0.004
flamingo_hook_duration_seconds_count{hook="OnMessage"} 4
# HELP flamingo_hook_panics_total Calls of a hook that panicked, by hook.
# TYPE flamingo_hook_panics_total counter
flamingo_hook_panics_total{hook="OnMatch"} 2
flamingo_hook_panics_total{hook="OnMessage"} 0
# HELP flamingo_in_chat Users in a chat, including those within their resume grace.
# TYPE flamingo_in_chat gauge
flamingo_in_chat 2
# HELP flamingo_in_queue Users waiting to be matched.
# TYPE flamingo_in_queue gauge
flamingo_in_queue 1
# HELP flamingo_match_wait_seconds Time from join_queue to match_found, one observation per user paired.
# TYPE flamingo_match_wait_seconds histogram
flamingo_match_wait_seconds_bucket{le="0.1"} 2
flamingo_match_wait_seconds_bucket{le="0.25"} 2
flamingo_match_wait_seconds_bucket{le="0.5"} 2
flamingo_match_wait_seconds_bucket{le="1"} 2
flamingo_match_wait_seconds_bucket{le="2.5"} 2
flamingo_match_wait_seconds_bucket{le="5"} 3
flamingo_match_wait_seconds_bucket{le="10"} 3
flamingo_match_wait_seconds_bucket{le="30"} 3
flamingo_match_wait_seconds_bucket{le="60"} 3
flamingo_match_wait_seconds_bucket{le="120"} 3
flamingo_match_wait_seconds_bucket{le="300"} 3
flamingo_match_wait_seconds_bucket{le="+Inf"} 4
flamingo_match_wait_seconds_sum 403
flamingo_match_wait_seconds_count 4
# HELP flamingo_matches_total Chats started (on a cluster, counted on the node of the user who waited longer).
# TYPE flamingo_matches_total counter
flamingo_matches_total 2
# HELP flamingo_messages_total Messages relayed to a partner.
# TYPE flamingo_messages_total counter
flamingo_messages_total 3
# HELP flamingo_online Users with a live connection.
# TYPE flamingo_online gauge
flamingo_online 5
# HELP flamingo_rate_limited_total Events refused by a rate limit, by event type ("unparsed" when refused before parsing).
# TYPE flamingo_rate_limited_total counter
flamingo_rate_limited_total{event="join_queue"} 1
# HELP flamingo_resumes_total Sessions taken up again by a new connection (result="resumed") or ended because their user did not come back within the resume grace (result="expired").
# TYPE flamingo_resumes_total counter
flamingo_resumes_total{result="expired"} 0
flamingo_resumes_total{result="resumed"} 0
# HELP flamingo_slow_consumers_total Connections dropped because they did not read their events fast enough.
# TYPE flamingo_slow_consumers_total counter
flamingo_slow_consumers_total 0
`
		assert.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want)))
	})
}

// TestCollector_ClosesResumesAndSlowConsumers counts the connections the engine
// closed, by code, the sessions resumed and expired, and a slow consumer.
func TestCollector_ClosesResumesAndSlowConsumers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{
			ResumeGrace:     10 * time.Second,
			MaxFrameBytes:   256,
			MaxQueuedEvents: 8,
			MessageRate:     flamingo.RateLimit{Rate: -1},
			EventRate:       flamingo.RateLimit{Rate: -1},
		})
		c := flamingoprom.NewCollector(e, flamingoprom.Options{})

		// bob reads nothing and is dropped as a slow consumer (closed with 4002); he
		// resumes on a new connection.
		alice, bob := flamingotest.Pair(t, e)
		for i := 0; e.Stats().Online == 2; i++ {
			require.Less(t, i, flamingotest.PipeBuffer+100, "bob was never dropped")
			alice.Say("hello")
			alice.Send(flamingo.EventPing, nil)
			for alice.Next().Type != flamingo.EventPong {
			}
		}
		bob.ExpectClosed(flamingo.CloseSlowConsumer)
		synctest.Wait()
		bob2 := flamingotest.Connect(t, e)
		require.True(t, bob2.Init(bob.UserID).Resumed)

		// carol sends a frame over MaxFrameBytes (closed with 1009) and does not come
		// back: her session expires.
		carol, dave := flamingotest.Pair(t, e)
		carol.SendRaw([]byte(`{"type":"ping","payload":{"pad":"` + strings.Repeat("x", 300) + `"}}`))
		carol.ExpectClosed(flamingo.CloseMessageTooBig)
		time.Sleep(11 * time.Second)
		dave.Expect(flamingo.EventPartnerAway)
		dave.Expect(flamingo.EventChatEnded)

		// erin opens a second connection with her user_id, which takes the session over
		// (a resume) and closes the first with 4001.
		erin := flamingotest.Connect(t, e)
		erin.Init("")
		erin2 := flamingotest.Connect(t, e)
		require.True(t, erin2.Init(erin.UserID).Resumed)
		erin.ExpectClosed(flamingo.CloseSessionReplaced)

		const want = `
# HELP flamingo_closes_total Connections the engine closed, by WebSocket close code.
# TYPE flamingo_closes_total counter
flamingo_closes_total{code="1009"} 1
flamingo_closes_total{code="4001"} 1
flamingo_closes_total{code="4002"} 1
# HELP flamingo_resumes_total Sessions taken up again by a new connection (result="resumed") or ended because their user did not come back within the resume grace (result="expired").
# TYPE flamingo_resumes_total counter
flamingo_resumes_total{result="expired"} 1
flamingo_resumes_total{result="resumed"} 2
# HELP flamingo_slow_consumers_total Connections dropped because they did not read their events fast enough.
# TYPE flamingo_slow_consumers_total counter
flamingo_slow_consumers_total 1
`
		assert.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
			"flamingo_closes_total", "flamingo_resumes_total", "flamingo_slow_consumers_total"))
	})
}

// TestCollector_UnparsedRateLimited shows the label of events refused by
// Config.EventRate, which are refused before they are parsed.
func TestCollector_UnparsedRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{EventRate: flamingo.RateLimit{Rate: 0.001, Burst: 2}})
		c := flamingoprom.NewCollector(e, flamingoprom.Options{})
		alice := flamingotest.Connect(t, e)
		alice.Init("")
		alice.Sync()
		alice.Send(flamingo.EventPing, nil)
		alice.ExpectError(flamingo.CodeRateLimited)

		const want = `
# HELP flamingo_rate_limited_total Events refused by a rate limit, by event type ("unparsed" when refused before parsing).
# TYPE flamingo_rate_limited_total counter
flamingo_rate_limited_total{event="unparsed"} 1
`
		assert.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want), "flamingo_rate_limited_total"))
	})
}

// TestCollector_Lint checks every metric against Prometheus's naming and
// documentation conventions, with all of them present, and with constant labels.
func TestCollector_Lint(t *testing.T) {
	e := newEngine(t, flamingo.Config{
		JoinRate:  flamingo.RateLimit{Rate: 0.001, Burst: 1},
		OnMatch:   func(flamingo.ChatInfo) {},
		OnMessage: func(flamingo.Message) error { return nil },
		OnChatEnd: func(flamingo.ChatEnd) {},
	})
	alice, bob := flamingotest.Pair(t, e)
	alice.Say("hello")
	bob.ExpectMessage()
	alice.Send(flamingo.EventLeaveQueue, nil)
	alice.ExpectError(flamingo.CodeNotInQueue)
	bob.SendRaw([]byte{0xff})
	bob.ExpectClosed(flamingo.CloseInvalidPayload)
	alice.Expect(flamingo.EventPartnerAway)
	alice.Send(flamingo.EventLeaveChat, nil)
	alice.Expect(flamingo.EventChatEnded)
	alice.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderFemale})
	alice.ExpectError(flamingo.CodeRateLimited) // her one join is spent

	for _, opts := range []flamingoprom.Options{{}, {ConstLabels: prometheus.Labels{"engine": "public"}}} {
		c := flamingoprom.NewCollector(e, opts)
		problems, err := testutil.CollectAndLint(c)
		require.NoError(t, err)
		assert.Empty(t, problems, "with %+v", opts)
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, reg.Register(c))
		families, err := reg.Gather()
		require.NoError(t, err)
		assert.Len(t, families, 15, "every metric is there, with %+v", opts)
	}
}

// TestCollector_ConstLabels shows constant labels on every metric, and a registry
// refusing a constant label that a metric has already.
func TestCollector_ConstLabels(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	flamingotest.Pair(t, e)

	c := flamingoprom.NewCollector(e, flamingoprom.Options{ConstLabels: prometheus.Labels{"engine": "public"}})
	const want = `
# HELP flamingo_online Users with a live connection.
# TYPE flamingo_online gauge
flamingo_online{engine="public"} 2
# HELP flamingo_resumes_total Sessions taken up again by a new connection (result="resumed") or ended because their user did not come back within the resume grace (result="expired").
# TYPE flamingo_resumes_total counter
flamingo_resumes_total{engine="public",result="expired"} 0
flamingo_resumes_total{engine="public",result="resumed"} 0
`
	assert.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want), "flamingo_online", "flamingo_resumes_total"))

	reg := prometheus.NewRegistry()
	err := reg.Register(flamingoprom.NewCollector(e, flamingoprom.Options{ConstLabels: prometheus.Labels{"code": "x"}}))
	assert.ErrorContains(t, err, "code")
}
