package flamingo_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newEngine returns an engine that the test's cleanup shuts down (after the clients
// made later, whose cleanups run first).
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

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// unlimited turns a rate limit off, for tests that send faster than a person types.
var unlimited = flamingo.RateLimit{Rate: -1}

func TestInit_NewIdentity(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	c := flamingotest.Connect(t, e)
	ready := c.Init("")
	assert.Regexp(t, hexID, ready.UserID)
	assert.False(t, ready.Resumed)
	assert.Empty(t, ready.ChatID)

	other := flamingotest.Connect(t, e).Init("")
	assert.NotEqual(t, ready.UserID, other.UserID, "each identity is new")
}

func TestInit_UnknownIDGetsFreshOne(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	for _, give := range []string{"00112233445566778899aabbccddeeff", "not-hex", strings.Repeat("a", 500)} {
		ready := flamingotest.Connect(t, e).Init(give)
		assert.NotEqual(t, give, ready.UserID)
		assert.Regexp(t, hexID, ready.UserID)
		assert.False(t, ready.Resumed)
	}
}

func TestProtocolErrors_KeepConnectionUsable(t *testing.T) {
	tests := []struct {
		name string
		give string
		want flamingo.ErrorCode
		ref  flamingo.EventType
	}{
		{"not json", `hello`, flamingo.CodeBadJSON, ""},
		{"array", `[1,2]`, flamingo.CodeBadJSON, ""},
		{"unknown type", `{"type":"fly"}`, flamingo.CodeUnknownEvent, ""},
		{"server event", `{"type":"ready"}`, flamingo.CodeUnknownEvent, ""},
		{"bad gender", `{"type":"join_queue","payload":{"gender":"robot"}}`, flamingo.CodeInvalidPayload, flamingo.EventJoinQueue},
		{"missing content", `{"type":"send_message","payload":{"chat_id":"x"}}`, flamingo.CodeInvalidPayload, flamingo.EventSendMessage},
		{"second init", `{"type":"init"}`, flamingo.CodeAlreadyInitialized, flamingo.EventInit},
		{"leave queue unqueued", `{"type":"leave_queue"}`, flamingo.CodeNotInQueue, flamingo.EventLeaveQueue},
		{"leave chat unchatted", `{"type":"leave_chat"}`, flamingo.CodeNotInChat, flamingo.EventLeaveChat},
		{"message without chat", `{"type":"send_message","payload":{"chat_id":"abc","content":"hi"}}`, flamingo.CodeNotInChat, flamingo.EventSendMessage},
	}
	e := newEngine(t, flamingo.Config{})
	c := flamingotest.Connect(t, e)
	c.Init("")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.SendRaw([]byte(tt.give))
			p := c.ExpectError(tt.want)
			assert.NotEmpty(t, p.Message)
			assert.Equal(t, tt.ref, p.Ref)
			c.Sync() // still usable, and nothing else was sent
		})
	}
}

func TestNotInitialized(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	c := flamingotest.Connect(t, e)
	for _, typ := range []flamingo.EventType{flamingo.EventPing, flamingo.EventGetStats, flamingo.EventLeaveQueue} {
		c.Send(typ, nil)
		assert.Equal(t, typ, c.ExpectError(flamingo.CodeNotInitialized).Ref)
	}
	c.Init("")
	c.Sync()
}

func TestChat_MessagesBothWaysExactlyAsSent(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)

	contents := []string{"hi 👋", `<img src=x onerror=alert(1)>`, "line\nbreak\ttab \"quoted\" \\ back", "\u2028é"}
	for _, content := range contents {
		a.Say(content)
		got := b.ExpectMessage()
		assert.Equal(t, content, got.Content)
		assert.Equal(t, a.ChatID, got.ChatID)
		assert.NotEmpty(t, got.MessageID)
		assert.WithinDuration(t, time.Now(), got.SentAt, 5*time.Second)
	}
	b.Say("hello back")
	assert.Equal(t, "hello back", a.ExpectMessage().Content)
	a.Sync() // the sender gets no echo
}

func TestChat_MessageIDsDiffer(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	a.Say("one")
	a.Say("two")
	assert.NotEqual(t, b.ExpectMessage().MessageID, b.ExpectMessage().MessageID)
}

func TestMatch_PartnerGenderAndNoUserIDs(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	a.Init("")
	b.Init("")
	a.Join(flamingo.GenderFemale, flamingo.PreferMale)
	b.Join(flamingo.GenderMale, flamingo.PreferFemale)
	var ma, mb flamingo.MatchFoundPayload
	a.ExpectPayload(flamingo.EventMatchFound, &ma)
	b.ExpectPayload(flamingo.EventMatchFound, &mb)
	assert.Equal(t, flamingo.GenderMale, ma.Partner.Gender)
	assert.Equal(t, flamingo.GenderFemale, mb.Partner.Gender)
	assert.Equal(t, ma.ChatID, mb.ChatID)
	assert.Regexp(t, hexID, ma.ChatID)

	a.Say("x")
	ev := b.Next()
	assert.NotContains(t, string(ev.Raw), a.UserID, "a partner's frames never carry your user_id")
}

func TestMatch_IncompatibleStayQueued(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	a.Init("")
	b.Init("")
	a.Join(flamingo.GenderMale, flamingo.PreferMale)
	b.Join(flamingo.GenderFemale, flamingo.PreferAny) // b accepts a, a does not accept b
	a.Sync()
	b.Sync()
	assert.Equal(t, flamingo.Stats{Online: 2, InQueue: 2}, e.Stats())
}

func TestJoinQueue_Rules(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	c := flamingotest.Connect(t, e)
	c.Init("")
	c.Join(flamingo.GenderOther, "")
	c.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
	c.ExpectError(flamingo.CodeAlreadyInQueue)
	c.Send(flamingo.EventLeaveQueue, nil)
	c.Expect(flamingo.EventQueueLeft)
	c.Send(flamingo.EventLeaveQueue, nil)
	c.ExpectError(flamingo.CodeNotInQueue)

	a, b := flamingotest.Pair(t, e)
	a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
	a.ExpectError(flamingo.CodeAlreadyInChat)
	b.Sync()
}

func TestLeaveQueue_IsNotMatchedAfterwards(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	a.Init("")
	b.Init("")
	a.Join(flamingo.GenderMale, flamingo.PreferAny)
	a.Send(flamingo.EventLeaveQueue, nil)
	a.Expect(flamingo.EventQueueLeft)
	b.Join(flamingo.GenderMale, flamingo.PreferAny)
	a.Sync()
	b.Sync()
	assert.Equal(t, 1, e.Stats().InQueue)
}

func TestLeaveChat_NotifiesPartner(t *testing.T) {
	tests := []struct {
		name   string
		chatID func(a *flamingotest.Client) string
	}{
		{"with chat id", func(a *flamingotest.Client) string { return a.ChatID }},
		{"without chat id", func(*flamingotest.Client) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, flamingo.Config{})
			a, b := flamingotest.Pair(t, e)
			chatID := a.ChatID
			a.Send(flamingo.EventLeaveChat, flamingo.LeaveChatPayload{ChatID: tt.chatID(a)})
			var pa, pb flamingo.ChatEndedPayload
			a.ExpectPayload(flamingo.EventChatEnded, &pa)
			b.ExpectPayload(flamingo.EventChatEnded, &pb)
			assert.Equal(t, flamingo.ChatEndedPayload{ChatID: chatID, Reason: flamingo.ReasonLeft}, pa)
			assert.Equal(t, flamingo.ChatEndedPayload{ChatID: chatID, Reason: flamingo.ReasonPartnerLeft}, pb)

			b.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: chatID, Content: "anyone?"})
			b.ExpectError(flamingo.CodeNotInChat)
			a.Sync()
			assert.Equal(t, flamingo.Stats{Online: 2}, e.Stats())
		})
	}
}

func TestSendMessage_Rules(t *testing.T) {
	e := newEngine(t, flamingo.Config{MaxMessageBytes: 10})
	a, b := flamingotest.Pair(t, e)
	c, d := flamingotest.Pair(t, e)

	a.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: c.ChatID, Content: "intrude"})
	a.ExpectError(flamingo.CodeNotInChat) // another pair's chat: same answer as no chat
	a.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: a.ChatID, Content: " \n\t "})
	a.ExpectError(flamingo.CodeEmptyMessage)
	a.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: a.ChatID, Content: " \n\t "[:1]})
	a.ExpectError(flamingo.CodeEmptyMessage)
	a.Say("0123456789")
	assert.Equal(t, "0123456789", b.ExpectMessage().Content, "exactly the limit is fine")
	a.Say("0123456789x")
	a.ExpectError(flamingo.CodeMessageTooLong)
	a.Say("é01234567") // 10 bytes
	assert.Equal(t, "é01234567", b.ExpectMessage().Content)
	for _, cl := range []*flamingotest.Client{b, c, d} {
		cl.Sync()
	}
}

func TestStats(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	q := flamingotest.Connect(t, e)
	q.Init("")
	q.Join(flamingo.GenderOther, flamingo.PreferOther)
	flamingotest.Connect(t, e).Init("")
	flamingotest.Connect(t, e) // not initialised: not counted

	want := flamingo.Stats{Online: 4, InQueue: 1, InChat: 2}
	assert.Equal(t, want, e.Stats())
	a.Send(flamingo.EventGetStats, nil)
	var got flamingo.Stats
	a.ExpectPayload(flamingo.EventStats, &got)
	assert.Equal(t, want, got)

	b.Close()
	require.Eventually(t, func() bool { return e.Stats().Online == 3 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, flamingo.Stats{Online: 3, InQueue: 1, InChat: 2}, e.Stats(), "an away user still counts in in_chat")
}

func TestDisconnectInQueue_LeavesQueueAtOnce(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a := flamingotest.Connect(t, e)
	a.Init("")
	a.Join(flamingo.GenderMale, flamingo.PreferAny)
	a.Close()
	require.Eventually(t, func() bool { return e.Stats().InQueue == 0 }, 5*time.Second, time.Millisecond)

	b := flamingotest.Connect(t, e)
	b.Init("")
	b.Join(flamingo.GenderMale, flamingo.PreferAny)
	b.Sync() // not matched with the departed a
	assert.Equal(t, 1, e.Stats().InQueue)
}

// away disconnects c and waits until the engine has seen it.
func away(t *testing.T, e *flamingo.Engine, c *flamingotest.Client) {
	t.Helper()
	before := e.Stats().Online
	c.Close()
	require.Eventually(t, func() bool { return e.Stats().Online == before-1 }, 5*time.Second, time.Millisecond)
}

// awaySynctest disconnects c inside a synctest bubble and returns once the engine has
// handled it, without moving the bubble's clock.
func awaySynctest(c *flamingotest.Client) {
	c.Close()
	synctest.Wait()
}

func TestResume_WithinGrace_ReplaysHeldEventsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{})
		a, b := flamingotest.Pair(t, e)
		chatID := a.ChatID
		awaySynctest(a)
		var away flamingo.PartnerAwayPayload
		b.ExpectPayload(flamingo.EventPartnerAway, &away)
		assert.Equal(t, flamingo.PartnerAwayPayload{ChatID: chatID, GraceMs: 30000}, away)

		time.Sleep(20 * time.Second) // virtual time: well within the 30 s grace
		for i := range 5 {
			b.Say(fmt.Sprint("held ", i))
		}
		b.Sync() // all five were accepted, none refused

		a2 := flamingotest.Connect(t, e)
		ready := a2.Init(a.UserID)
		assert.True(t, ready.Resumed)
		assert.Equal(t, a.UserID, ready.UserID)
		assert.Equal(t, chatID, ready.ChatID)
		for i := range 5 {
			assert.Equal(t, fmt.Sprint("held ", i), a2.ExpectMessage().Content)
		}
		a2.Sync()
		var back flamingo.ChatPayload
		b.ExpectPayload(flamingo.EventPartnerBack, &back)
		assert.Equal(t, chatID, back.ChatID)

		time.Sleep(time.Minute) // the old grace deadline passes: the resumed chat lives on
		a2.Say("back")
		assert.Equal(t, "back", b.ExpectMessage().Content)
		b.Sync()
	})
}

func TestResume_AfterGrace_PartnerToldOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ends []flamingo.ChatEnd
		var mu sync.Mutex
		e := newEngine(t, flamingo.Config{ResumeGrace: 10 * time.Second, OnChatEnd: func(end flamingo.ChatEnd) {
			mu.Lock()
			defer mu.Unlock()
			ends = append(ends, end)
		}})
		a, b := flamingotest.Pair(t, e)
		chatID := a.ChatID
		awaySynctest(a)
		b.Expect(flamingo.EventPartnerAway)

		time.Sleep(10*time.Second - time.Millisecond)
		b.Sync() // not yet
		time.Sleep(time.Millisecond)
		var p flamingo.ChatEndedPayload
		b.ExpectPayload(flamingo.EventChatEnded, &p)
		assert.Equal(t, flamingo.ChatEndedPayload{ChatID: chatID, Reason: flamingo.ReasonPartnerDisconnected}, p)

		time.Sleep(time.Minute)
		b.Sync() // told exactly once
		assert.Equal(t, flamingo.Stats{Online: 1}, e.Stats())
		mu.Lock()
		require.Len(t, ends, 1)
		assert.Equal(t, flamingo.ReasonPartnerDisconnected, ends[0].Reason)
		mu.Unlock()

		a2 := flamingotest.Connect(t, e)
		ready := a2.Init(a.UserID)
		assert.False(t, ready.Resumed, "the session was forgotten")
		assert.NotEqual(t, a.UserID, ready.UserID)
	})
}

func TestResume_IdleSessionKeepsIdentity(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a := flamingotest.Connect(t, e)
	id := a.Init("").UserID
	away(t, e, a)
	ready := flamingotest.Connect(t, e).Init(id)
	assert.True(t, ready.Resumed)
	assert.Equal(t, id, ready.UserID)
	assert.Empty(t, ready.ChatID)
}

func TestTakeover_OldConnectionReplaced(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)

	a2 := flamingotest.Connect(t, e)
	ready := a2.Init(a.UserID)
	assert.True(t, ready.Resumed)
	assert.Equal(t, a.ChatID, ready.ChatID)

	a.ExpectError(flamingo.CodeSessionReplaced)
	a.ExpectClosed(flamingo.CloseSessionReplaced)

	b.Say("to the new tab")
	assert.Equal(t, "to the new tab", a2.ExpectMessage().Content)
	a2.Say("from the new tab")
	assert.Equal(t, "from the new tab", b.ExpectMessage().Content)
	assert.Equal(t, flamingo.Stats{Online: 2, InChat: 2}, e.Stats())
}

func TestHeldEvents_Bounded(t *testing.T) {
	e := newEngine(t, flamingo.Config{MaxQueuedEvents: 3})
	a, b := flamingotest.Pair(t, e)
	away(t, e, a)
	b.Expect(flamingo.EventPartnerAway)
	for i := range 3 {
		b.Say(fmt.Sprint(i))
	}
	b.Say("one too many")
	b.ExpectError(flamingo.CodeRateLimited)

	a2 := flamingotest.Connect(t, e)
	a2.Init(a.UserID)
	for i := range 3 {
		assert.Equal(t, fmt.Sprint(i), a2.ExpectMessage().Content)
	}
	a2.Sync()
}

func TestHooks(t *testing.T) {
	var mu sync.Mutex
	var matches []flamingo.ChatInfo
	var messages []flamingo.Message
	var ends []flamingo.ChatEnd
	e := newEngine(t, flamingo.Config{
		OnMatch: func(ci flamingo.ChatInfo) { mu.Lock(); matches = append(matches, ci); mu.Unlock() },
		OnMessage: func(m flamingo.Message) error {
			mu.Lock()
			messages = append(messages, m)
			mu.Unlock()
			switch m.Content {
			case "spam":
				return &flamingo.Error{Code: "spam_detected", Message: "no spam please"}
			case "nope":
				return errors.New("refused")
			}
			return nil
		},
		OnChatEnd: func(end flamingo.ChatEnd) { mu.Lock(); ends = append(ends, end); mu.Unlock() },
	})
	a, b := flamingotest.Pair(t, e)
	a.Say("spam")
	assert.Equal(t, "no spam please", a.ExpectError("spam_detected").Message)
	a.Say("nope")
	a.ExpectError(flamingo.CodeMessageRejected)
	a.Say("fine")
	assert.Equal(t, "fine", b.ExpectMessage().Content)
	a.Send(flamingo.EventLeaveChat, nil)
	a.Expect(flamingo.EventChatEnded)
	b.Expect(flamingo.EventChatEnded)

	// OnMatch runs on the goroutine that made the pair, after match_found was queued:
	// it may still be running when the chat ends.
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(ends) == 1 && len(matches) == 1 }, 5*time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, matches, 1)
	assert.Equal(t, a.ChatID+b.ChatID, "", "both cleared by chat_ended")
	chatID := matches[0].ChatID
	require.Len(t, messages, 3)
	assert.Equal(t, chatID, messages[2].ChatID)
	assert.NotEqual(t, messages[2].From, messages[2].To)
	assert.Equal(t, flamingo.ChatEnd{ChatID: chatID, Users: matches[0].Users, By: messages[0].From, Reason: flamingo.ReasonLeft,
		StartedAt: matches[0].StartedAt, EndedAt: ends[0].EndedAt}, ends[0])
	for _, h := range append(matches[0].Users[:], messages[0].From, messages[0].To) {
		assert.NotEqual(t, a.UserID, h, "hooks see handles, never user_ids")
		assert.NotEqual(t, b.UserID, h)
	}
}

func TestHookPanic_ClosesOnlyThatConnection(t *testing.T) {
	e := newEngine(t, flamingo.Config{OnMessage: func(m flamingo.Message) error {
		if m.Content == "boom" {
			panic("moderation bug")
		}
		return nil
	}})
	a, b := flamingotest.Pair(t, e)
	c, d := flamingotest.Pair(t, e)
	a.Say("boom")
	a.ExpectClosed(flamingo.CloseInternalError)
	c.Say("still fine")
	assert.Equal(t, "still fine", d.ExpectMessage().Content)
	b.Expect(flamingo.EventPartnerAway)
	b.Sync()
}

func TestSlowConsumer_DroppedWithoutBlockingPartner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{MaxQueuedEvents: 8, MessageRate: unlimited, EventRate: unlimited})
		a, b := flamingotest.Pair(t, e)
		// b reads nothing: the pipe takes PipeBuffer frames, the engine queues 8 more, then
		// b is dropped as a slow consumer and a's later messages are held for b.
		var sent []string
		refused := map[string]bool{}
		for e.Stats().Online == 2 {
			require.Less(t, len(sent), flamingotest.PipeBuffer+100, "b was never dropped")
			content := fmt.Sprint(len(sent))
			a.Say(content)
			a.Send(flamingo.EventPing, nil)
			for ev := a.Next(); ev.Type != flamingo.EventPong; ev = a.Next() { // a is never blocked
				if ev.Type == flamingo.EventPartnerAway { // b was dropped
					continue
				}
				var p flamingo.ErrorPayload
				require.NoError(t, ev.Decode(&p))
				require.Equal(t, flamingo.CodeRateLimited, p.Code, "only a full hold refuses a message")
				refused[content] = true
			}
			sent = append(sent, content)
		}
		onOld := contentsOf(t, b.ExpectClosed(flamingo.CloseSlowConsumer))
		// The dropped connection's writer finishes first: a user who resumes while
		// a failed write is still being noticed may get that one event after the
		// replay instead of at its head (FRONTEND_GUIDE.md, "What is replayed").
		synctest.Wait()

		b2 := flamingotest.Connect(t, e)
		ready := b2.Init(b.UserID)
		assert.True(t, ready.Resumed, "a slow consumer keeps its session")
		assert.Equal(t, a.ChatID, ready.ChatID)
		b2.Send(flamingo.EventPing, nil)
		var replayed []flamingotest.Event
		for ev := b2.Next(); ev.Type != flamingo.EventPong; ev = b2.Next() {
			if ev.Type == flamingo.EventMatchFound {
				// The replay repeats what the dropped connection may not have
				// written; that can be the match_found of this chat.
				var m flamingo.MatchFoundPayload
				require.NoError(t, ev.Decode(&m))
				require.Equal(t, a.ChatID, m.ChatID)
				continue
			}
			replayed = append(replayed, ev)
		}
		onNew := contentsOf(t, replayed)

		// The ledger: each message reached b exactly once per connection (the replay may
		// repeat what the dropped connection had already received), in order, or was
		// refused to a.
		assert.Equal(t, len(onOld), len(dedupe(onOld)))
		assert.Equal(t, len(onNew), len(dedupe(onNew)))
		got := dedupe(append(onOld, onNew...))
		var want []string
		for _, c := range sent {
			if !refused[c] {
				want = append(want, c)
			}
		}
		assert.Equal(t, want, got)
		assert.LessOrEqual(t, len(refused), 1)
	})
}

func contentsOf(t *testing.T, events []flamingotest.Event) []string {
	t.Helper()
	var out []string
	for _, ev := range events {
		require.Equal(t, flamingo.EventMessageReceived, ev.Type)
		var m flamingo.MessageReceivedPayload
		require.NoError(t, ev.Decode(&m))
		out = append(out, m.Content)
	}
	return out
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func TestInitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{InitTimeout: 3 * time.Second})
		c := flamingotest.Connect(t, e)
		start := time.Now()
		c.ExpectClosed(flamingo.ClosePolicyViolation)
		// Deadlines are checked ten times per the shortest of them (here 3 s).
		assert.GreaterOrEqual(t, time.Since(start), 3*time.Second)
		assert.LessOrEqual(t, time.Since(start), 3*time.Second+300*time.Millisecond)

		ok := flamingotest.Connect(t, e)
		ok.Init("")
		time.Sleep(time.Minute)
		ok.Sync() // an initialised connection has no idle timeout
	})
}

func TestHeartbeat_DeadPeerClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{HeartbeatInterval: 20 * time.Second, HeartbeatTimeout: 5 * time.Second})
		alive, dead := flamingotest.Pair(t, e)
		dead.Conn().(*flamingotest.PipeEnd).MutePings()
		start := time.Now()
		time.Sleep(15*time.Second - time.Millisecond)
		// The first ping (due at 10 to 20 s) is not yet overdue. (Asked without a
		// frame from dead: a frame is a sign of life, which puts the ping off.)
		require.Equal(t, 2, e.Stats().Online)
		time.Sleep(11 * time.Second)
		dead.ExpectClosed(flamingo.CloseGoingAway)
		alive.Expect(flamingo.EventPartnerAway)
		// Due at 10 to 20 s, checked every second (a tenth of the 10 s default
		// InitTimeout), unanswered for 5 s.
		assert.LessOrEqual(t, time.Since(start), 26*time.Second)

		time.Sleep(2 * time.Minute)
		alive.Expect(flamingo.EventChatEnded) // the dead peer's grace ran out
		alive.Sync()                          // pings answered: still connected
	})
}

func TestWriteTimeout_DropsStalledReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{WriteTimeout: 4 * time.Second, MaxQueuedEvents: 1000, MessageRate: unlimited, EventRate: unlimited})
		a, b := flamingotest.Pair(t, e)
		// b stops reading: once its pipe is full, the engine's write to b blocks.
		for i := range flamingotest.PipeBuffer + 1 {
			a.Say(fmt.Sprint(i))
		}
		a.Sync()
		start := time.Now()
		synctest.Wait() // the writer is blocked on the full pipe
		time.Sleep(4*time.Second - time.Millisecond)
		assert.Equal(t, 2, e.Stats().Online, "not before WriteTimeout")
		time.Sleep(500 * time.Millisecond)
		assert.Equal(t, 1, e.Stats().Online, "dropped within a tenth of the shortest deadline after it")
		assert.LessOrEqual(t, time.Since(start), 5*time.Second)
		b.ExpectClosed(flamingo.CloseSlowConsumer)
		a.Expect(flamingo.EventPartnerAway) // the partner was never held up
		a.Sync()
	})
}

func TestFrameChecks_CloseCodes(t *testing.T) {
	tests := []struct {
		name string
		give []byte
		want flamingo.CloseCode
	}{
		{"invalid utf-8", []byte("{\"type\":\"ping\",\"x\":\"\xff\"}"), flamingo.CloseInvalidPayload},
		{"too big", []byte(`{"type":"ping","pad":"` + strings.Repeat("a", 200) + `"}`), flamingo.CloseMessageTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, flamingo.Config{MaxFrameBytes: 100})
			c := flamingotest.Connect(t, e)
			c.Init("")
			c.SendRaw(tt.give)
			c.ExpectClosed(tt.want)
		})
	}
}

func TestShutdown(t *testing.T) {
	e, err := flamingo.New(flamingo.Config{})
	require.NoError(t, err)
	a, b := flamingotest.Pair(t, e)
	q := flamingotest.Connect(t, e)
	q.Init("")
	q.Join(flamingo.GenderOther, flamingo.PreferAny)

	require.NoError(t, e.Shutdown(context.Background()))
	for _, c := range []*flamingotest.Client{a, b, q} {
		c.ExpectClosed(flamingo.CloseGoingAway)
	}
	require.NoError(t, e.Shutdown(context.Background()), "idempotent")

	server, client := flamingotest.Pipe()
	assert.ErrorIs(t, e.Serve(context.Background(), server), flamingo.ErrEngineClosed)
	select {
	case <-client.Closed():
	default:
		t.Error("Serve after Shutdown must close the transport")
	}
}

// heldMatcher is a Matcher that pairs nothing by itself: the test reports pairs when it
// chooses, as a matcher on another node might, late.
type heldMatcher struct {
	mu       sync.Mutex
	report   func(flamingo.Pair)
	enqueued []flamingo.Ticket
}

func (m *heldMatcher) Start(report func(flamingo.Pair)) error { m.report = report; return nil }
func (m *heldMatcher) Stop(context.Context) error             { return nil }
func (m *heldMatcher) Cancel(context.Context, string) (bool, error) {
	return false, nil // as if the ticket had just been paired
}
func (m *heldMatcher) Enqueue(_ context.Context, t flamingo.Ticket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enqueued = append(m.enqueued, t)
	return nil
}
func (m *heldMatcher) tickets() []flamingo.Ticket {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]flamingo.Ticket(nil), m.enqueued...)
}

func TestLatePair_WithDepartedUser_RequeuesTheOther(t *testing.T) {
	m := &heldMatcher{}
	e := newEngine(t, flamingo.Config{Matcher: m})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	a.Init("")
	b.Init("")
	a.Join(flamingo.GenderMale, flamingo.PreferAny)
	b.Join(flamingo.GenderFemale, flamingo.PreferAny)
	a.Send(flamingo.EventLeaveQueue, nil)
	a.Expect(flamingo.EventQueueLeft)
	require.Eventually(t, func() bool { return len(m.tickets()) == 2 }, 5*time.Second, time.Millisecond)
	tickets := m.tickets()
	ta, tb := tickets[0], tickets[1] // a is the male one
	if tb.Gender == flamingo.GenderMale {
		ta, tb = tb, ta
	}

	m.report(flamingo.Pair{A: ta, B: tb}) // arrives after a left
	a.Sync()
	b.Sync() // nobody was matched
	assert.Equal(t, flamingo.Stats{Online: 2, InQueue: 1}, e.Stats())
	// Matcher calls are made off the engine lock, on another goroutine.
	require.Eventually(t, func() bool { return len(m.tickets()) == 3 }, 5*time.Second, time.Millisecond, "b's ticket is put back")
	again := m.tickets()
	assert.Equal(t, tb, again[2], "with its original JoinedAt")

	m.report(flamingo.Pair{A: tb, B: tb}) // a broken matcher pairing b with itself
	b.Sync()
	assert.Equal(t, 1, e.Stats().InQueue)
}

// gatedEnd is a pipe end whose writes can be held and then failed, as a socket that
// dies mid-write would.
type gatedEnd struct {
	*flamingotest.PipeEnd
	hold    atomic.Bool
	blocked chan struct{} // a held write has begun
	release chan struct{} // fail the held write
}

func (g *gatedEnd) Write(ctx context.Context, b []byte) error {
	if g.hold.Load() {
		close(g.blocked)
		<-g.release
		return errors.New("connection reset")
	}
	return g.PipeEnd.Write(ctx, b)
}

func TestFailedWriteAfterDisconnect_HeldOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{})
		server, client := flamingotest.Pipe()
		g := &gatedEnd{PipeEnd: server, blocked: make(chan struct{}), release: make(chan struct{})}
		go func() { _ = e.Serve(context.Background(), g) }()
		a, b := flamingotest.Connect(t, e), flamingotest.NewClient(t, client)
		flamingotest.Match(t, a, b)

		g.hold.Store(true)
		a.Say("in flight when the line died")
		<-g.blocked                                // the engine is writing it to b
		require.NoError(t, client.Close(1006, "")) // b's side goes away meanwhile
		synctest.Wait()                            // the engine has seen b go
		require.Equal(t, 1, e.Stats().Online)
		close(g.release) // and the write fails
		synctest.Wait()

		b2 := flamingotest.Connect(t, e)
		ready := b2.Init(b.UserID)
		require.True(t, ready.Resumed)
		assert.Equal(t, "in flight when the line died", b2.ExpectMessage().Content)
		b2.Sync() // exactly once
	})
}

// pingClock is a pipe end that records when it was first pinged.
type pingClock struct {
	*flamingotest.PipeEnd
	mu    sync.Mutex
	first time.Time
}

func (p *pingClock) Ping(ctx context.Context) error {
	p.mu.Lock()
	if p.first.IsZero() {
		p.first = time.Now()
	}
	p.mu.Unlock()
	return p.PipeEnd.Ping(ctx)
}

// pingCount is a pipe end that counts the pings it is sent.
type pingCount struct {
	*flamingotest.PipeEnd
	n atomic.Int32
}

func (p *pingCount) Ping(ctx context.Context) error {
	p.n.Add(1)
	return p.PipeEnd.Ping(ctx)
}

// connectThrough serves a new pipe with e through the transport wrap makes of the
// pipe's server end, and returns the client on the other end, initialised.
func connectThrough(t *testing.T, e *flamingo.Engine, wrap func(*flamingotest.PipeEnd) flamingo.Transport) *flamingotest.Client {
	server, client := flamingotest.Pipe()
	tr := wrap(server)
	go func() { _ = e.Serve(context.Background(), tr) }()
	c := flamingotest.NewClient(t, client)
	t.Cleanup(func() { _ = client.Close(flamingo.CloseNormal, "") })
	c.Init("")
	return c
}

// TestHeartbeat_TalkingConnectionNotPinged: a frame read is a sign of life. A
// connection that keeps talking is pinged only once four intervals have passed since
// its start or last pong; once it falls silent, it is pinged within an interval of
// its last frame, as one that never talked is.
func TestHeartbeat_TalkingConnectionNotPinged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{HeartbeatInterval: 20 * time.Second})
		pc := &pingCount{}
		c := connectThrough(t, e, func(p *flamingotest.PipeEnd) flamingo.Transport { pc.PipeEnd = p; return pc })
		talk := func(d time.Duration) { // a frame every 5 s
			for end := time.Now().Add(d); time.Now().Before(end); {
				time.Sleep(5 * time.Second)
				c.Send(flamingo.EventPing, nil)
				c.Expect(flamingo.EventPong)
			}
		}
		talk(60 * time.Second) // three intervals
		assert.Zero(t, pc.n.Load(), "pinged while it talked")
		// Past four intervals, and the interval in which the due ping comes.
		talk(45 * time.Second)
		assert.Equal(t, int32(1), pc.n.Load(), "a connection that talks is pinged every fourth interval")

		time.Sleep(20*time.Second + time.Second) // an interval, and a sweep
		synctest.Wait()
		assert.Equal(t, int32(2), pc.n.Load(), "pinged once within an interval of its last frame")
		c.Sync() // and still connected
	})
}

// TestHeartbeat_LaterWaitsNearlyWhole: once the first wait (half to a whole interval)
// is over, by a ping or by a frame that put it off, a frame puts the ping off by the
// interval less a random tenth. A client that talks more often than that (here every
// 15 s against 20) is pinged at most once, from the first wait, until the
// four-interval check.
func TestHeartbeat_LaterWaitsNearlyWhole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{HeartbeatInterval: 20 * time.Second})
		var ends []*pingCount
		var clients []*flamingotest.Client
		for range 3 {
			pc := &pingCount{}
			ends = append(ends, pc)
			clients = append(clients, connectThrough(t, e, func(p *flamingotest.PipeEnd) flamingo.Transport { pc.PipeEnd = p; return pc }))
		}
		for range 5 { // 75 s: under four intervals
			time.Sleep(15 * time.Second)
			for _, c := range clients {
				c.Send(flamingo.EventPing, nil)
				c.Expect(flamingo.EventPong)
			}
		}
		for i, pc := range ends {
			assert.LessOrEqual(t, pc.n.Load(), int32(1), "connection %d", i)
		}
	})
}

// TestHeartbeat_FirstPingsSpread: connections made together are first pinged at
// random between half and the whole interval, not all at once.
func TestHeartbeat_FirstPingsSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{HeartbeatInterval: 20 * time.Second})
		start := time.Now()
		var ends []*pingClock
		for range 10 {
			pc := &pingClock{}
			ends = append(ends, pc)
			connectThrough(t, e, func(p *flamingotest.PipeEnd) flamingo.Transport { pc.PipeEnd = p; return pc })
		}
		time.Sleep(21 * time.Second) // the sweep looks every second
		seconds := map[time.Duration]bool{}
		for _, pc := range ends {
			pc.mu.Lock()
			d := pc.first.Sub(start)
			pc.mu.Unlock()
			assert.GreaterOrEqual(t, d, 10*time.Second, "not before half the interval")
			assert.LessOrEqual(t, d, 21*time.Second, "within the interval and a sweep")
			seconds[d.Truncate(time.Second)] = true
		}
		assert.Greater(t, len(seconds), 1, "the first pings are spread")
	})
}
