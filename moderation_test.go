package flamingo_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// Tests of next, block and report (DESIGN.md §4.7) over the real engine.

// expectEnded expects chat_ended with reason.
func expectEnded(t *testing.T, c *flamingotest.Client, chatID string, reason flamingo.EndReason) {
	t.Helper()
	var p flamingo.ChatEndedPayload
	c.ExpectPayload(flamingo.EventChatEnded, &p)
	assert.Equal(t, flamingo.ChatEndedPayload{ChatID: chatID, Reason: reason}, p)
}

// expectChat expects an event of type typ whose payload names chatID alone.
func expectChat(t *testing.T, c *flamingotest.Client, typ flamingo.EventType, chatID string) {
	t.Helper()
	ev := c.Expect(typ)
	var p map[string]any
	require.NoError(t, ev.Decode(&p))
	assert.Equal(t, map[string]any{"chat_id": chatID}, p)
}

// pairOthers matches a and b, new users who both say "other" and accept anyone.
func pairOthers(t *testing.T, a, b *flamingotest.Client) string {
	t.Helper()
	a.Init("")
	b.Init("")
	join(a, flamingo.GenderOther, flamingo.PreferAny)
	join(b, flamingo.GenderOther, flamingo.PreferAny)
	id := expectMatch(t, a).ChatID
	require.Equal(t, id, expectMatch(t, b).ChatID)
	return id
}

// endsRecorder collects what OnChatEnd is told.
type endsRecorder struct {
	mu   sync.Mutex
	ends []flamingo.ChatEnd
}

func (r *endsRecorder) add(end flamingo.ChatEnd) {
	r.mu.Lock()
	r.ends = append(r.ends, end)
	r.mu.Unlock()
}
func (r *endsRecorder) len() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.ends) }

func TestNext_InChat_EndsAndJoinsAgainWithSameCriteria(t *testing.T) {
	m := newRecordingMatcher()
	var ends endsRecorder
	e := newEngine(t, flamingo.Config{Matcher: m, OnChatEnd: ends.add, InterestWait: time.Hour})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	a.Init("")
	b.Init("")
	join(a, flamingo.GenderFemale, flamingo.PreferMale, "films", "tea")
	join(b, flamingo.GenderMale, flamingo.PreferAny, "tea")
	id := expectMatch(t, a).ChatID
	expectMatch(t, b)
	first := m.tickets()[0]

	a.Send(flamingo.EventNext, nil)
	expectEnded(t, a, id, flamingo.ReasonLeft)
	a.Expect(flamingo.EventQueueJoined)
	expectEnded(t, b, id, flamingo.ReasonPartnerLeft)
	b.Sync()
	require.Eventually(t, func() bool { return ends.len() == 1 }, 5*time.Second, time.Millisecond)

	again := m.last(t)
	assert.Equal(t, first.User, again.User)
	assert.Equal(t, first.Gender, again.Gender)
	assert.Equal(t, first.Preference, again.Preference)
	assert.Equal(t, first.Interests, again.Interests)
	assert.True(t, again.JoinedAt.After(first.JoinedAt))
	assert.Equal(t, []string{m.tickets()[1].User}, again.Avoid, "the partner just left is avoided")
	assert.Equal(t, 1, e.Stats().InQueue)
}

func TestNext_States(t *testing.T) {
	e := newEngine(t, flamingo.Config{JoinRate: unlimited})
	c := flamingotest.Connect(t, e)
	c.Init("")
	c.Send(flamingo.EventNext, nil)
	assert.Equal(t, flamingo.EventNext, c.ExpectError(flamingo.CodeNotInChat).Ref, "never joined")

	join(c, flamingo.GenderOther, flamingo.PreferAny)
	c.Send(flamingo.EventNext, nil)
	c.ExpectError(flamingo.CodeAlreadyInQueue)

	c.Send(flamingo.EventLeaveQueue, nil)
	c.Expect(flamingo.EventQueueLeft)
	c.Send(flamingo.EventNext, nil)
	c.Expect(flamingo.EventQueueJoined) // joined before: joins again
	c.Sync()
	assert.Equal(t, 1, e.Stats().InQueue)
}

func TestNext_AfterPartnerLeft_JoinsAgain(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	id := a.ChatID
	b.Send(flamingo.EventLeaveChat, nil)
	expectEnded(t, a, id, flamingo.ReasonPartnerLeft)
	a.Send(flamingo.EventNext, nil)
	a.Expect(flamingo.EventQueueJoined)
}

// After next, the two who just met do not meet again while a third stranger is
// there: each is paired with someone new.
func TestNext_NoRepeatWithinWindow(t *testing.T) {
	e := newEngine(t, flamingo.Config{JoinRate: unlimited})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	id := pairOthers(t, a, b)

	a.Send(flamingo.EventNext, nil)
	expectEnded(t, a, id, flamingo.ReasonLeft)
	a.Expect(flamingo.EventQueueJoined)
	expectEnded(t, b, id, flamingo.ReasonPartnerLeft)
	b.Send(flamingo.EventNext, nil)
	b.Expect(flamingo.EventQueueJoined)
	a.Sync()
	b.Sync()
	assert.Equal(t, 2, e.Stats().InQueue, "the two just parted do not meet again")

	c := flamingotest.Connect(t, e)
	c.Init("")
	join(c, flamingo.GenderOther, flamingo.PreferAny)
	mc := expectMatch(t, c)
	assert.Equal(t, mc.ChatID, expectMatch(t, a).ChatID, "the third meets the oldest waiter")
	b.Sync()
	assert.Equal(t, 1, e.Stats().InQueue)
}

// Once RepeatWindow has passed, a new join may meet the old partner again.
func TestNext_RepeatAllowedAfterWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{JoinRate: unlimited, RepeatWindow: time.Minute})
		a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		id := pairOthers(t, a, b)
		a.Send(flamingo.EventLeaveChat, nil)
		expectEnded(t, a, id, flamingo.ReasonLeft)
		expectEnded(t, b, id, flamingo.ReasonPartnerLeft)

		time.Sleep(time.Minute - time.Millisecond)
		a.Send(flamingo.EventNext, nil)
		a.Expect(flamingo.EventQueueJoined)
		b.Send(flamingo.EventNext, nil)
		b.Expect(flamingo.EventQueueJoined)
		a.Sync()
		assert.Equal(t, 2, e.Stats().InQueue, "still within the window")

		time.Sleep(time.Millisecond)
		a.Send(flamingo.EventLeaveQueue, nil)
		a.Expect(flamingo.EventQueueLeft)
		a.Send(flamingo.EventNext, nil)
		a.Expect(flamingo.EventQueueJoined)
		// b's waiting ticket was made within the window and still avoids a: the
		// window is judged when a ticket is made (Ticket.Avoid).
		b.Send(flamingo.EventLeaveQueue, nil)
		b.Expect(flamingo.EventQueueLeft)
		b.Send(flamingo.EventNext, nil)
		b.Expect(flamingo.EventQueueJoined)
		assert.Equal(t, expectMatch(t, a).ChatID, expectMatch(t, b).ChatID)
	})
}

func TestNext_CountsAgainstJoinRate(t *testing.T) {
	e := newEngine(t, flamingo.Config{JoinRate: flamingo.RateLimit{Rate: 0.001, Burst: 1}})
	c := flamingotest.Connect(t, e)
	c.Init("")
	join(c, flamingo.GenderOther, flamingo.PreferAny)
	c.Send(flamingo.EventNext, nil)
	assert.Equal(t, flamingo.EventNext, c.ExpectError(flamingo.CodeRateLimited).Ref)
}

func TestBlock_LiveChat(t *testing.T) {
	var ends endsRecorder
	e := newEngine(t, flamingo.Config{OnChatEnd: ends.add, JoinRate: unlimited})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	id := pairOthers(t, a, b)

	a.Send(flamingo.EventBlock, flamingo.ChatPayload{ChatID: id})
	expectEnded(t, a, id, flamingo.ReasonLeft)
	expectChat(t, a, flamingo.EventBlocked, id)
	expectEnded(t, b, id, flamingo.ReasonPartnerLeft)
	b.Sync() // the partner learns nothing more than "left"
	require.Eventually(t, func() bool { return ends.len() == 1 }, 5*time.Second, time.Millisecond)

	// Blocking again is answered the same, and ends nothing.
	a.Send(flamingo.EventBlock, flamingo.ChatPayload{ChatID: id})
	expectChat(t, a, flamingo.EventBlocked, id)
	assert.Equal(t, 1, ends.len())

	expectNeverPaired(t, e, a, b)
}

// expectNeverPaired queues a and b, who have ended a chat, and checks that they are not
// paired with each other while a third user is paired with the one who waited longer.
func expectNeverPaired(t *testing.T, e *flamingo.Engine, a, b *flamingotest.Client) {
	t.Helper()
	a.Send(flamingo.EventNext, nil)
	a.Expect(flamingo.EventQueueJoined)
	b.Send(flamingo.EventNext, nil)
	b.Expect(flamingo.EventQueueJoined)
	a.Sync()
	b.Sync()
	require.Equal(t, 2, e.Stats().InQueue, "not paired")
	c := flamingotest.Connect(t, e)
	c.Init("")
	join(c, flamingo.GenderOther, flamingo.PreferAny)
	assert.Equal(t, expectMatch(t, c).ChatID, expectMatch(t, a).ChatID)
	b.Sync()
}

// A block outlasts RepeatWindow: the two are never paired again.
func TestBlock_OutlastsRepeatWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{JoinRate: unlimited, RepeatWindow: time.Second})
		a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		id := pairOthers(t, a, b)
		b.Send(flamingo.EventBlock, flamingo.ChatPayload{ChatID: id})
		expectEnded(t, b, id, flamingo.ReasonLeft)
		expectChat(t, b, flamingo.EventBlocked, id)
		expectEnded(t, a, id, flamingo.ReasonPartnerLeft)
		time.Sleep(time.Hour)
		expectNeverPaired(t, e, a, b)
	})
}

func TestBlock_EndedChat_WithinFiveMinutesOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{RepeatWindow: time.Second, JoinRate: unlimited})
		a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		id := pairOthers(t, a, b)
		b.Send(flamingo.EventLeaveChat, nil)
		expectEnded(t, b, id, flamingo.ReasonLeft)
		expectEnded(t, a, id, flamingo.ReasonPartnerLeft)

		time.Sleep(5 * time.Minute)
		a.Send(flamingo.EventBlock, flamingo.ChatPayload{ChatID: id})
		expectChat(t, a, flamingo.EventBlocked, id)
		b.Sync() // nothing for b

		time.Sleep(time.Millisecond)
		a.Send(flamingo.EventBlock, flamingo.ChatPayload{ChatID: id})
		a.ExpectError(flamingo.CodeNotInChat)
		a.Sync()
		expectNeverPaired(t, e, a, b) // the block made in time holds
	})
}

func TestBlock_UnknownOrOthersChat_NotInChat(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	c, _ := flamingotest.Pair(t, e)
	for _, id := range []string{c.ChatID, "nope", ""} {
		a.Send(flamingo.EventBlock, flamingo.ChatPayload{ChatID: id})
		assert.Equal(t, flamingo.EventBlock, a.ExpectError(flamingo.CodeNotInChat).Ref)
	}
	a.Say("still here") // the connection and the chat are kept
	assert.Equal(t, "still here", b.ExpectMessage().Content)
	c.Sync()
}

// A blocker who is waiting with a ticket made before the block (here after
// RepeatWindow let the old partner through) gets a ticket that avoids the blocked
// user, in the same place in the queue.
func TestBlock_WhileWaiting_TicketReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newRecordingMatcher()
		e := newEngine(t, flamingo.Config{Matcher: m, RepeatWindow: time.Second, JoinRate: unlimited})
		a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		id := pairOthers(t, a, b)
		handleB := m.tickets()[1].User
		b.Send(flamingo.EventLeaveChat, nil)
		expectEnded(t, b, id, flamingo.ReasonLeft)
		expectEnded(t, a, id, flamingo.ReasonPartnerLeft)
		time.Sleep(2 * time.Second)
		a.Send(flamingo.EventNext, nil)
		a.Expect(flamingo.EventQueueJoined)
		old := m.last(t)
		require.Empty(t, old.Avoid, "the repeat window has passed")

		a.Send(flamingo.EventBlock, flamingo.ChatPayload{ChatID: id})
		expectChat(t, a, flamingo.EventBlocked, id)
		synctest.Wait()
		replaced := m.last(t)
		assert.Equal(t, []string{handleB}, replaced.Avoid)
		assert.Equal(t, old.JoinedAt.Add(time.Nanosecond), replaced.JoinedAt, "keeps its place")
		assert.Equal(t, 1, m.Len())

		b.Send(flamingo.EventNext, nil)
		b.Expect(flamingo.EventQueueJoined)
		a.Sync()
		b.Sync()
		assert.Equal(t, 2, e.Stats().InQueue)
	})
}

// reports collects what OnReport is told.
type reports struct {
	ch chan flamingo.Report
}

func newReports() *reports                 { return &reports{ch: make(chan flamingo.Report, 16)} }
func (r *reports) add(rep flamingo.Report) { r.ch <- rep }

func (r *reports) next(t *testing.T) flamingo.Report {
	t.Helper()
	select {
	case rep := <-r.ch:
		return rep
	case <-time.After(5 * time.Second):
		t.Fatal("OnReport was not called")
		return flamingo.Report{}
	}
}

func TestReport_LiveChat_OnReportSeesBothSides(t *testing.T) {
	m := newRecordingMatcher()
	reps := newReports()
	e := newEngine(t, flamingo.Config{Matcher: m, OnReport: reps.add, ReportContext: 3})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	id := pairOthers(t, a, b)
	ha, hb := m.tickets()[0].User, m.tickets()[1].User

	type said struct {
		from *flamingotest.Client
		text string
	}
	var got []flamingo.MessageReceivedPayload
	for _, s := range []said{{a, "dropped: only the last 3 are kept"}, {a, "hi"}, {b, "hello"}, {a, "bye"}} {
		s.from.Say(s.text)
		to := b
		if s.from == b {
			to = a
		}
		got = append(got, to.ExpectMessage())
	}

	start := time.Now()
	a.Send(flamingo.EventReport, flamingo.ReportPayload{ChatID: id, Reason: flamingo.ReportHarassment, Details: "rude"})
	expectEnded(t, a, id, flamingo.ReasonLeft)
	expectChat(t, a, flamingo.EventReported, id)
	a.Sync() // reported alone: no blocked
	expectEnded(t, b, id, flamingo.ReasonPartnerLeft)
	b.Sync()

	rep := reps.next(t)
	assert.Equal(t, id, rep.ChatID)
	assert.Equal(t, ha, rep.Reporter)
	assert.Equal(t, hb, rep.Reported)
	assert.Equal(t, flamingo.ReportHarassment, rep.Reason)
	assert.Equal(t, "rude", rep.Details)
	assert.False(t, rep.At.Before(start))
	want := []flamingo.Message{
		{ChatID: id, MessageID: got[1].MessageID, From: ha, To: hb, Content: "hi", SentAt: got[1].SentAt},
		{ChatID: id, MessageID: got[2].MessageID, From: hb, To: ha, Content: "hello", SentAt: got[2].SentAt},
		{ChatID: id, MessageID: got[3].MessageID, From: ha, To: hb, Content: "bye", SentAt: got[3].SentAt},
	}
	require.Len(t, rep.Messages, 3)
	for i := range want {
		// The wire's sent_at has millisecond precision; the report has the time itself.
		assert.WithinDuration(t, want[i].SentAt, rep.Messages[i].SentAt, time.Millisecond, "message %d", i)
		want[i].SentAt = rep.Messages[i].SentAt
	}
	assert.Equal(t, want, rep.Messages, "the last 3, oldest first, both sides")

	expectNeverPaired(t, e, a, b) // a report implies a block
}

// The reported user may report back, within the five minutes, the chat that ended.
func TestReport_EndedChat_ByEitherUser(t *testing.T) {
	reps := newReports()
	e := newEngine(t, flamingo.Config{OnReport: reps.add})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	id := pairOthers(t, a, b)
	b.Say("you first")
	a.ExpectMessage()
	a.Send(flamingo.EventReport, flamingo.ReportPayload{ChatID: id, Reason: flamingo.ReportSpam})
	expectEnded(t, a, id, flamingo.ReasonLeft)
	expectChat(t, a, flamingo.EventReported, id)
	expectEnded(t, b, id, flamingo.ReasonPartnerLeft)
	first := reps.next(t)

	b.Send(flamingo.EventReport, flamingo.ReportPayload{ChatID: id, Reason: flamingo.ReportOther, Details: "they reported me"})
	expectChat(t, b, flamingo.EventReported, id)
	second := reps.next(t)
	// A user's second report of a chat is answered, but not passed on again.
	b.Send(flamingo.EventReport, flamingo.ReportPayload{ChatID: id, Reason: flamingo.ReportSpam})
	expectChat(t, b, flamingo.EventReported, id)
	b.Sync()
	assert.Empty(t, reps.ch)
	assert.Equal(t, first.Reporter, second.Reported)
	assert.Equal(t, first.Reported, second.Reporter)
	require.Len(t, second.Messages, 1)
	assert.Equal(t, first.Messages, second.Messages, "the same record, seen from either side")
	assert.Equal(t, "you first", second.Messages[0].Content)
}

func TestReport_ContextOff_NoMessages(t *testing.T) {
	reps := newReports()
	e := newEngine(t, flamingo.Config{OnReport: reps.add, ReportContext: -1})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	id := pairOthers(t, a, b)
	a.Say("not kept")
	b.ExpectMessage()
	assert.Equal(t, 0, flamingo.ReportedMessages(e), "nothing is kept")
	b.Send(flamingo.EventReport, flamingo.ReportPayload{ChatID: id, Reason: flamingo.ReportNudity})
	expectEnded(t, b, id, flamingo.ReasonLeft)
	expectChat(t, b, flamingo.EventReported, id)
	rep := reps.next(t)
	assert.Equal(t, flamingo.ReportNudity, rep.Reason)
	assert.Empty(t, rep.Messages)
}

// Five minutes after the chat ended, its messages are gone: a report is refused, and
// the engine keeps none of them (the sweep dropped them).
func TestReport_AfterFiveMinutes_Refused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reps := newReports()
		e := newEngine(t, flamingo.Config{OnReport: reps.add})
		a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		id := pairOthers(t, a, b)
		a.Say("hello")
		b.ExpectMessage()
		a.Send(flamingo.EventLeaveChat, nil)
		expectEnded(t, a, id, flamingo.ReasonLeft)
		expectEnded(t, b, id, flamingo.ReasonPartnerLeft)
		assert.Equal(t, 1, flamingo.ReportedMessages(e))

		time.Sleep(5*time.Minute + time.Second)
		synctest.Wait()
		assert.Equal(t, 0, flamingo.ReportedMessages(e), "dropped by the sweep")
		b.Send(flamingo.EventReport, flamingo.ReportPayload{ChatID: id, Reason: flamingo.ReportSpam})
		b.ExpectError(flamingo.CodeNotInChat)
		b.Sync()
		assert.Empty(t, reps.ch)
	})
}

func TestReport_BadInputs_RefusedConnectionKept(t *testing.T) {
	reps := newReports()
	e := newEngine(t, flamingo.Config{OnReport: reps.add})
	a, b := flamingotest.Pair(t, e)
	c, _ := flamingotest.Pair(t, e)
	tests := []struct {
		name  string
		frame string
		code  flamingo.ErrorCode
	}{
		{"unknown reason", `{"type":"report","payload":{"chat_id":"` + a.ChatID + `","reason":"boring"}}`, flamingo.CodeInvalidPayload},
		{"no reason", `{"type":"report","payload":{"chat_id":"` + a.ChatID + `"}}`, flamingo.CodeInvalidPayload},
		{"details too long", `{"type":"report","payload":{"chat_id":"` + a.ChatID + `","reason":"spam","details":"` + string(make501()) + `"}}`, flamingo.CodeInvalidPayload},
		{"someone else's chat", `{"type":"report","payload":{"chat_id":"` + c.ChatID + `","reason":"spam"}}`, flamingo.CodeNotInChat},
		{"unknown chat", `{"type":"report","payload":{"chat_id":"0123","reason":"spam"}}`, flamingo.CodeNotInChat},
		{"block without chat_id", `{"type":"block","payload":{}}`, flamingo.CodeInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.SendRaw([]byte(tt.frame))
			a.ExpectError(tt.code)
			a.Sync()
		})
	}
	a.Say("still chatting")
	assert.Equal(t, "still chatting", b.ExpectMessage().Content)
	c.Sync()
	assert.Empty(t, reps.ch)
}

func make501() []byte {
	b := make([]byte, 501)
	for i := range b {
		b[i] = 'x'
	}
	return b
}

func TestReport_OnReportPanic_ClosesReporterOnly(t *testing.T) {
	e := newEngine(t, flamingo.Config{OnReport: func(flamingo.Report) { panic("bug") }})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	id := pairOthers(t, a, b)
	a.Send(flamingo.EventReport, flamingo.ReportPayload{ChatID: id, Reason: flamingo.ReportSpam})
	a.ExpectClosed(flamingo.CloseInternalError)
	expectEnded(t, b, id, flamingo.ReasonPartnerLeft) // the report was made before the hook
	b.Sync()
	assert.EqualValues(t, 1, e.Metrics().HookPanics["OnReport"])
}

// On a cluster, a user's node sees both directions of a chat with a user of another
// node: what its user sends, and the message_received frames the cluster delivers.
func TestReport_RemotePartner_BothDirections(t *testing.T) {
	m := newRecordingMatcher()
	reps := newReports()
	br := &fakeBroker{}
	e := newEngine(t, flamingo.Config{Matcher: m, Broker: br, OnReport: reps.add})
	a := flamingotest.Connect(t, e)
	a.Init("")
	join(a, flamingo.GenderOther, flamingo.PreferAny)
	mine := m.last(t)
	remote := flamingo.Ticket{User: "remote-user", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny,
		JoinedAt: mine.JoinedAt.Add(time.Second), Node: "n2"}
	_, err := m.Cancel(context.Background(), mine.User)
	require.NoError(t, err)
	m.report(flamingo.Pair{A: mine, B: remote, ChatID: "chat-x"})
	require.Equal(t, "chat-x", expectMatch(t, a).ChatID)

	a.Say("from a")
	a.Sync() // relayed before the other node answers
	sent := time.Date(2026, 1, 2, 3, 4, 5, 6000000, time.UTC)
	// As the other node builds it: type first.
	frame, err := json.Marshal(struct {
		Type    flamingo.EventType              `json:"type"`
		Payload flamingo.MessageReceivedPayload `json:"payload"`
	}{flamingo.EventMessageReceived, flamingo.MessageReceivedPayload{
		ChatID: "chat-x", MessageID: "abc", Content: "from the other node", SentAt: sent}})
	require.NoError(t, err)
	br.host.Deliver(mine.User, flamingo.ClusterEvent{ChatID: "chat-x", Frame: frame})
	assert.Equal(t, "from the other node", a.ExpectMessage().Content)
	typing := []byte(`{"type":"partner_typing","payload":{"chat_id":"chat-x","typing":true}}`)
	br.host.Deliver(mine.User, flamingo.ClusterEvent{ChatID: "chat-x", Frame: typing})
	a.Expect(flamingo.EventPartnerTyping)

	a.Send(flamingo.EventReport, flamingo.ReportPayload{ChatID: "chat-x", Reason: flamingo.ReportSpam})
	expectEnded(t, a, "chat-x", flamingo.ReasonLeft)
	expectChat(t, a, flamingo.EventReported, "chat-x")
	rep := reps.next(t)
	require.Len(t, rep.Messages, 2, "a typing frame is not a message")
	assert.Equal(t, "from a", rep.Messages[0].Content)
	assert.Equal(t, mine.User, rep.Messages[0].From)
	assert.Equal(t, "remote-user", rep.Messages[0].To)
	assert.Equal(t, flamingo.Message{ChatID: "chat-x", MessageID: "abc", From: "remote-user", To: mine.User,
		Content: "from the other node", SentAt: sent}, rep.Messages[1])

	// The block travels with the session: its state avoids the reported user for good.
	require.Eventually(t, func() bool {
		st := br.lastSaved()
		until, ok := st.Avoid["remote-user"]
		return ok && until.IsZero()
	}, 5*time.Second, time.Millisecond)
	a.Send(flamingo.EventNext, nil)
	a.Expect(flamingo.EventQueueJoined)
	assert.Equal(t, []string{"remote-user"}, m.last(t).Avoid)
}

// A session claimed from another node keeps its criteria (next joins with them) and
// whom it avoids.
func TestClaimedSession_KeepsCriteriaAndAvoid(t *testing.T) {
	m := newRecordingMatcher()
	soon := time.Now().Add(time.Hour)
	br := &claimBroker{st: flamingo.SessionState{
		Found: true, Gender: flamingo.GenderFemale, Preference: flamingo.PreferMale, Interests: []string{"go", "jazz"},
		Avoid: map[string]time.Time{"blocked": {}, "recent": soon, "long-ago": time.Now().Add(-time.Hour)},
	}}
	e := newEngine(t, flamingo.Config{Matcher: m, Broker: br, InterestWait: time.Minute})
	c := flamingotest.Connect(t, e)
	ready := c.Init("a-user-id-from-another-node")
	require.True(t, ready.Resumed)
	c.Send(flamingo.EventNext, nil)
	c.Expect(flamingo.EventQueueJoined)
	tk := m.last(t)
	assert.Equal(t, flamingo.GenderFemale, tk.Gender)
	assert.Equal(t, flamingo.PreferMale, tk.Preference)
	assert.Equal(t, []string{"go", "jazz"}, tk.Interests)
	assert.Equal(t, tk.JoinedAt.Add(time.Minute), tk.RelaxAt)
	assert.Equal(t, []string{"blocked", "recent"}, tk.Avoid)

	// And its state, as it would move on, says the same.
	var st flamingo.SessionState
	br.fakeBroker.host.Release(tk.User, func(s flamingo.SessionState) { br.mu.Lock(); st = s; br.mu.Unlock() })
	require.Eventually(t, func() bool { br.mu.Lock(); defer br.mu.Unlock(); return st.Found }, 5*time.Second, time.Millisecond)
	br.mu.Lock()
	defer br.mu.Unlock()
	assert.Equal(t, flamingo.PreferMale, st.Preference)
	assert.Equal(t, []string{"go", "jazz"}, st.Interests)
	assert.Equal(t, map[string]time.Time{"blocked": {}, "recent": soon}, st.Avoid)
	assert.True(t, slices.IsSorted(tk.Avoid))
}

// claimBroker is a fakeBroker whose Claim finds st.
type claimBroker struct {
	fakeBroker
	st flamingo.SessionState
}

func (b *claimBroker) Claim(_ context.Context, user string, digest [32]byte) (flamingo.SessionState, error) {
	st := b.st
	st.User, st.Digest = user, digest
	return st, nil
}
