package flamingo_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// typing sends a typing event from c in its chat.
func typing(c *flamingotest.Client, on bool) {
	c.Send(flamingo.EventTyping, flamingo.TypingPayload{ChatID: c.ChatID, Typing: on})
}

// expectTyping reads the next event of c, which must be partner_typing with value on.
func expectTyping(t *testing.T, c *flamingotest.Client, on bool) {
	t.Helper()
	var p flamingo.TypingPayload
	c.ExpectPayload(flamingo.EventPartnerTyping, &p)
	assert.Equal(t, flamingo.TypingPayload{ChatID: c.ChatID, Typing: on}, p)
}

func TestTyping_ForwardedOnAndOff(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	typing(a, true)
	expectTyping(t, b, true)
	typing(a, false)
	expectTyping(t, b, false)
	a.Sync() // nothing comes back to the typer
}

func TestTyping_RepeatWithinASecondNotForwarded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{})
		a, b := flamingotest.Pair(t, e)
		typing(a, true)
		expectTyping(t, b, true)
		typing(a, true) // a repeat at once: not forwarded
		a.Sync()
		b.Sync()
		time.Sleep(time.Second)
		typing(a, true) // a second later: forwarded again
		expectTyping(t, b, true)
	})
}

func TestTyping_ClearedWhenTheMessageIsDelivered(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	typing(a, true)
	expectTyping(t, b, true)
	a.Say("done typing")
	assert.Equal(t, "done typing", b.ExpectMessage().Content)
	expectTyping(t, b, false)
	a.Say("no indicator was on") // no second typing:false
	assert.Equal(t, "no indicator was on", b.ExpectMessage().Content)
	b.Sync()
}

func TestTyping_ClearedAfterSixSecondsWithoutRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{})
		a, b := flamingotest.Pair(t, e)
		typing(a, true)
		expectTyping(t, b, true)
		time.Sleep(4 * time.Second)
		typing(a, true) // a refresh, forwarded again: the last was over a second ago
		expectTyping(t, b, true)
		time.Sleep(5 * time.Second) // 9 s after the first, 5 s after the refresh
		b.Sync()                    // still typing
		time.Sleep(2 * time.Second) // past 6 s after the refresh (the sweep runs every second)
		expectTyping(t, b, false)
	})
}

func TestTyping_ClearedWhenTheTyperDisconnects(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	typing(a, true)
	expectTyping(t, b, true)
	a.Close()
	expectTyping(t, b, false)
	b.Expect(flamingo.EventPartnerAway)
}

func TestTyping_ClearedWhenTheChatEnds(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	typing(a, true)
	expectTyping(t, b, true)
	b.Send(flamingo.EventLeaveChat, nil)
	expectTyping(t, b, false) // the chat ends: the indicator goes first
	b.Expect(flamingo.EventChatEnded)
	a.Expect(flamingo.EventChatEnded)
	a.Sync()

	c, d := flamingotest.Pair(t, e)
	typing(c, true)
	expectTyping(t, d, true)
	c.Send(flamingo.EventLeaveChat, nil)
	expectTyping(t, d, false) // the typer left: the indicator goes first
	d.Expect(flamingo.EventChatEnded)
}

func TestTyping_OutsideAChatRefused(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, _ := flamingotest.Pair(t, e)
	a.Send(flamingo.EventTyping, flamingo.TypingPayload{ChatID: "someone-elses", Typing: true})
	a.ExpectError(flamingo.CodeNotInChat)
	a.SendRaw([]byte(`{"type":"typing","payload":{"chat_id":"` + a.ChatID + `","typing":"yes"}}`))
	a.ExpectError(flamingo.CodeInvalidPayload)
	a.Sync() // the connection is kept
}

func TestTyping_FloodCountsAgainstTheEventRate(t *testing.T) {
	e := newEngine(t, flamingo.Config{EventRate: flamingo.RateLimit{Rate: 0.001, Burst: 10}})
	a, b := flamingotest.Pair(t, e)
	for range 12 {
		typing(a, true)
	}
	var limited int
	for range 2 {
		if a.ExpectError(flamingo.CodeRateLimited).Code == flamingo.CodeRateLimited {
			limited++
		}
	}
	assert.Equal(t, 2, limited)
	expectTyping(t, b, true) // the first got through, the repeats were not forwarded
}

// say sends a message with a client_msg_id.
func say(c *flamingotest.Client, content, clientMsgID string) {
	c.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: c.ChatID, Content: content, ClientMsgID: clientMsgID})
}

func expectSent(t *testing.T, c *flamingotest.Client, clientMsgID string) flamingo.MessageSentPayload {
	t.Helper()
	var p flamingo.MessageSentPayload
	c.ExpectPayload(flamingo.EventMessageSent, &p)
	assert.Equal(t, c.ChatID, p.ChatID)
	assert.Equal(t, clientMsgID, p.ClientMsgID)
	return p
}

func TestAcks_MessageSentMatchesWhatThePartnerGot(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	say(a, "hello", "m-1")
	ack := expectSent(t, a, "m-1")
	got := b.ExpectMessage()
	assert.Equal(t, got.MessageID, ack.MessageID)
	assert.True(t, got.SentAt.Equal(ack.SentAt))

	a.Say("no id, no ack")
	assert.Equal(t, "no id, no ack", b.ExpectMessage().Content)
	a.Sync()
}

func TestAcks_RepeatAcknowledgedAgainNotDeliveredTwice(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	say(a, "once", "retry_me")
	first := expectSent(t, a, "retry_me")
	say(a, "once", "retry_me")
	again := expectSent(t, a, "retry_me")
	assert.Equal(t, first, again)
	assert.Equal(t, "once", b.ExpectMessage().Content)
	b.Sync() // delivered once

	// Ids are per chat: in the next chat the same id is a new message.
	a.Send(flamingo.EventLeaveChat, nil)
	a.Expect(flamingo.EventChatEnded)
	b.Expect(flamingo.EventChatEnded)
	a.Join(flamingo.GenderFemale, flamingo.PreferAny)
	b.Join(flamingo.GenderMale, flamingo.PreferFemale)
	a.Expect(flamingo.EventMatchFound)
	b.Expect(flamingo.EventMatchFound)
	say(a, "new chat", "retry_me")
	assert.NotEqual(t, first.MessageID, expectSent(t, a, "retry_me").MessageID)
	assert.Equal(t, "new chat", b.ExpectMessage().Content)
}

func TestAcks_RetryAfterAResume(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	say(a, "sent just before the reload", "k1")
	msg := b.ExpectMessage()
	a.Close() // the ack may not have been read
	b.Expect(flamingo.EventPartnerAway)

	a2 := flamingotest.Connect(t, e)
	a2.ChatID = a.ChatID
	ready := a2.Init(a.UserID)
	require.True(t, ready.Resumed)
	b.Expect(flamingo.EventPartnerBack)
	// What the old connection had not written is replayed, then the page re-sends
	// what it saw no ack for.
	say(a2, "sent just before the reload", "k1")
	var acks []flamingo.MessageSentPayload
	a2.Send(flamingo.EventPing, nil)
	for ev := a2.Next(); ev.Type != flamingo.EventPong; ev = a2.Next() {
		require.Equal(t, flamingo.EventMessageSent, ev.Type)
		var p flamingo.MessageSentPayload
		require.NoError(t, ev.Decode(&p))
		acks = append(acks, p)
	}
	require.NotEmpty(t, acks)
	for _, ack := range acks {
		assert.Equal(t, msg.MessageID, ack.MessageID)
	}
	b.Sync() // not delivered again
}

func TestAcks_BadClientMsgIDRefused(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	for _, id := range []string{"has space", strings.Repeat("x", 65), "ümlaut", "a.b"} {
		say(a, "x", id)
		a.ExpectError(flamingo.CodeInvalidPayload)
	}
	a.SendRaw([]byte(`{"type":"send_message","payload":{"chat_id":"` + a.ChatID + `","content":"x","client_msg_id":""}}`))
	a.ExpectError(flamingo.CodeInvalidPayload)
	say(a, "fine", strings.Repeat("x", 64))
	expectSent(t, a, strings.Repeat("x", 64))
	assert.Equal(t, "fine", b.ExpectMessage().Content)
}

func TestAcks_RememberTheLast256(t *testing.T) {
	e := newEngine(t, flamingo.Config{MessageRate: unlimited, EventRate: unlimited})
	a, b := flamingotest.Pair(t, e)
	for i := range 257 {
		say(a, fmt.Sprint(i), fmt.Sprint("id", i))
		expectSent(t, a, fmt.Sprint("id", i))
		b.ExpectMessage()
	}
	say(a, "256", "id256") // remembered
	expectSent(t, a, "id256")
	say(a, "0", "id0") // forgotten: the 257th pushed it out
	expectSent(t, a, "id0")
	assert.Equal(t, "0", b.ExpectMessage().Content)
	b.Sync()
}

func TestPresence_AwayAndBack(t *testing.T) {
	e := newEngine(t, flamingo.Config{ResumeGrace: 20 * time.Second})
	a, b := flamingotest.Pair(t, e)
	a.Close()
	var away flamingo.PartnerAwayPayload
	b.ExpectPayload(flamingo.EventPartnerAway, &away)
	assert.Equal(t, flamingo.PartnerAwayPayload{ChatID: b.ChatID, GraceMs: 20000}, away)

	a2 := flamingotest.Connect(t, e)
	a2.Init(a.UserID)
	var back flamingo.ChatPayload
	b.ExpectPayload(flamingo.EventPartnerBack, &back)
	assert.Equal(t, b.ChatID, back.ChatID)
}

func TestPresence_TakeoverIsNoDrop(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	a2 := flamingotest.Connect(t, e)
	a2.Init(a.UserID) // a second tab takes the session over
	a.ExpectError(flamingo.CodeSessionReplaced)
	a.ExpectClosed(flamingo.CloseSessionReplaced)
	b.Sync() // neither partner_away nor partner_back
}

func TestMatchFound_ExactlyOneInitiatorAndICEServers(t *testing.T) {
	var asked []string
	e := newEngine(t, flamingo.Config{ICEServers: func(user string) []flamingo.ICEServer {
		asked = append(asked, user) // (called one pair at a time here)
		return []flamingo.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}, {URLs: []string{"turn:127.0.0.1:3478"}, Username: "u-" + user, Credential: "c"}}
	}})
	a := flamingotest.Connect(t, e)
	b := flamingotest.Connect(t, e)
	a.Init("")
	b.Init("")
	a.Join(flamingo.GenderFemale, flamingo.PreferAny)
	b.Join(flamingo.GenderMale, flamingo.PreferAny)
	var ma, mb flamingo.MatchFoundPayload
	a.ExpectPayload(flamingo.EventMatchFound, &ma)
	b.ExpectPayload(flamingo.EventMatchFound, &mb)
	assert.True(t, ma.Initiator, "the user who waited longer offers")
	assert.False(t, mb.Initiator)
	require.Len(t, asked, 2)
	assert.Len(t, ma.ICEServers, 2)
	assert.Equal(t, "u-"+asked[0], ma.ICEServers[1].Username)
	assert.Equal(t, "u-"+asked[1], mb.ICEServers[1].Username)
	assert.NotEqual(t, asked[0], asked[1])
}

func TestMatchFound_NoICEServersIsAnEmptyList(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a := flamingotest.Connect(t, e)
	b := flamingotest.Connect(t, e)
	a.Init("")
	b.Init("")
	a.Join(flamingo.GenderFemale, flamingo.PreferAny)
	b.Join(flamingo.GenderMale, flamingo.PreferAny)
	ev := a.Expect(flamingo.EventMatchFound)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(ev.Payload, &raw))
	assert.JSONEq(t, `[]`, string(raw["ice_servers"]))
	assert.JSONEq(t, `[]`, string(raw["common_interests"]))
	assert.JSONEq(t, `false`, string(raw["relaxed"]))
}

func signal(c *flamingotest.Client, data string) {
	c.SendRaw([]byte(`{"type":"signal","payload":{"chat_id":"` + c.ChatID + `","data":` + data + `}}`))
}

func TestSignal_RelayedIntactAndInOrder(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	datas := []string{
		`{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}`,
		`{"candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
		`{ "nested" : { "a" : [1, 2.5e3, true, null, "é\u00e9"] } }`,
	}
	for _, d := range datas {
		signal(a, d)
	}
	a.Say("after the signals")
	for _, d := range datas {
		ev := b.Expect(flamingo.EventSignal)
		var p flamingo.SignalPayload
		require.NoError(t, ev.Decode(&p))
		assert.Equal(t, b.ChatID, p.ChatID)
		assert.Equal(t, d, string(p.Data), "the data object is relayed byte for byte")
	}
	assert.Equal(t, "after the signals", b.ExpectMessage().Content)
}

func TestSignal_BadInputsRefused(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	big := `{"sdp":"` + strings.Repeat("x", 17<<10) + `"}`
	signal(a, big)
	a.ExpectError(flamingo.CodeInvalidPayload)
	signal(a, `"not an object"`)
	a.ExpectError(flamingo.CodeInvalidPayload)
	a.SendRaw([]byte(`{"type":"signal","payload":{"chat_id":"elsewhere","data":{}}}`))
	a.ExpectError(flamingo.CodeNotInChat)

	q := flamingotest.Connect(t, e)
	q.Init("")
	q.SendRaw([]byte(`{"type":"signal","payload":{"chat_id":"x","data":{}}}`))
	q.ExpectError(flamingo.CodeNotInChat)
	a.Sync()
	b.Sync() // nothing reached the partner
}

func TestSignal_OwnRateLimitFitsABurstOfCandidates(t *testing.T) {
	e := newEngine(t, flamingo.Config{EventRate: flamingo.RateLimit{Rate: 0.001, Burst: 20}, SignalRate: flamingo.RateLimit{Rate: 0.001, Burst: 60}})
	a, b := flamingotest.Pair(t, e)
	for i := range 61 {
		signal(a, fmt.Sprintf(`{"candidate":%d}`, i))
	}
	assert.Equal(t, flamingo.EventSignal, a.ExpectError(flamingo.CodeRateLimited).Ref)
	for range 60 {
		b.Expect(flamingo.EventSignal)
	}
	a.Sync() // the signals did not spend the event rate (a burst of 20)
}

func TestSignal_HeldThroughTheGrace(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	b.Close()
	a.Expect(flamingo.EventPartnerAway)
	signal(a, `{"type":"offer","sdp":"x"}`)
	a.Sync()
	b2 := flamingotest.Connect(t, e)
	b2.Init(b.UserID)
	ev := b2.Expect(flamingo.EventSignal)
	var p flamingo.SignalPayload
	require.NoError(t, ev.Decode(&p))
	assert.JSONEq(t, `{"type":"offer","sdp":"x"}`, string(p.Data))
}

// The TURN REST scheme: the credential is base64(HMAC-SHA1(secret, username)). The
// expected value was computed with OpenSSL:
//
//	echo -n "1700000000:0123abcd" | openssl dgst -sha1 -hmac "north" -binary | base64
func TestTURNCredentials_PublishedScheme(t *testing.T) {
	name, cred := flamingo.TURNCredentials("north", "0123abcd", time.Unix(1700000000, 0))
	assert.Equal(t, "1700000000:0123abcd", name)
	assert.Equal(t, "JjzjHR8L4C3hxod2yfMIXrU7fPU=", cred)

	servers := flamingo.TURNServers("north", time.Hour, "turn:127.0.0.1:3478?transport=udp")("0123abcd")
	require.Len(t, servers, 1)
	assert.Equal(t, []string{"turn:127.0.0.1:3478?transport=udp"}, servers[0].URLs)
	var expiry int64
	var user string
	_, err := fmt.Sscanf(strings.Replace(servers[0].Username, ":", " ", 1), "%d %s", &expiry, &user)
	require.NoError(t, err)
	assert.Equal(t, "0123abcd", user)
	assert.InDelta(t, time.Now().Add(time.Hour).Unix(), expiry, 5)
	_, want := flamingo.TURNCredentials("north", "0123abcd", time.Unix(expiry, 0))
	assert.Equal(t, want, servers[0].Credential)
}
