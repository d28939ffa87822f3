package flamingo_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

func TestRateLimit_Messages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{MessageRate: flamingo.RateLimit{Rate: 1, Burst: 3}})
		a, b := flamingotest.Pair(t, e)
		for i := range 3 {
			a.Say(fmt.Sprint(i))
		}
		a.Say("one too many")
		p := a.ExpectError(flamingo.CodeRateLimited)
		assert.Equal(t, flamingo.EventSendMessage, p.Ref)
		assert.Positive(t, p.RetryAfterMs)
		assert.LessOrEqual(t, p.RetryAfterMs, int64(1000))
		for i := range 3 {
			assert.Equal(t, fmt.Sprint(i), b.ExpectMessage().Content)
		}
		b.Sync() // the dropped message never arrives

		time.Sleep(time.Second) // one token back
		a.Say("later")
		assert.Equal(t, "later", b.ExpectMessage().Content)
		a.Sync()
	})
}

func TestRateLimit_AllEvents(t *testing.T) {
	e := newEngine(t, flamingo.Config{EventRate: flamingo.RateLimit{Rate: 0.001, Burst: 4}})
	c := flamingotest.Connect(t, e)
	c.Init("") // 1
	c.Sync()   // 2
	c.Sync()   // 3
	c.Send(flamingo.EventGetStats, nil)
	c.Expect(flamingo.EventStats) // 4
	c.Send(flamingo.EventPing, nil)
	p := c.ExpectError(flamingo.CodeRateLimited)
	assert.Empty(t, p.Ref, "dropped before it was read")
	assert.Positive(t, p.RetryAfterMs)
}

func TestRateLimit_Joins(t *testing.T) {
	e := newEngine(t, flamingo.Config{JoinRate: flamingo.RateLimit{Rate: 0.001, Burst: 2}})
	c := flamingotest.Connect(t, e)
	c.Init("")
	for range 2 {
		c.Join(flamingo.GenderOther, flamingo.PreferOther)
		c.Send(flamingo.EventLeaveQueue, nil)
		c.Expect(flamingo.EventQueueLeft)
	}
	c.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
	assert.Equal(t, flamingo.EventJoinQueue, c.ExpectError(flamingo.CodeRateLimited).Ref)
	assert.Equal(t, 0, e.Stats().InQueue)
}

func TestErrorBudget_ClosesOnlyTheAbuser(t *testing.T) {
	e := newEngine(t, flamingo.Config{ErrorBudget: flamingo.RateLimit{Rate: 0.001, Burst: 5}})
	a, b := flamingotest.Pair(t, e)
	abuser := flamingotest.Connect(t, e)
	abuser.Init("")
	for range 5 {
		abuser.SendRaw([]byte("garbage"))
		abuser.ExpectError(flamingo.CodeBadJSON)
	}
	abuser.SendRaw([]byte("garbage"))
	abuser.ExpectClosed(flamingo.ClosePolicyViolation)

	a.Say("unbothered")
	assert.Equal(t, "unbothered", b.ExpectMessage().Content)
}

func TestContentRules(t *testing.T) {
	tests := []struct {
		name string
		give string
		want flamingo.ErrorCode // "" means delivered
	}{
		{"plain", "hello", ""},
		{"newline and tab", "a\nb\tc", ""},
		{"exactly the character limit, multi-byte", "ééééé", ""},
		{"emoji count as one character each", "🦩🦩🦩🦩🦩", ""},
		{"over the character limit", "héllo!", flamingo.CodeMessageTooLong},
		{"over the byte limit", strings.Repeat("🦩", 5) + "x", flamingo.CodeMessageTooLong},
		{"blank", " \n\t ", flamingo.CodeEmptyMessage},
		{"ideographic space only", "\u3000", flamingo.CodeEmptyMessage},
		{"carriage return", "a\rb", flamingo.CodeInvalidPayload},
		{"escape character", "a\x1bb", flamingo.CodeInvalidPayload},
		{"NUL", "a\x00", flamingo.CodeInvalidPayload},
		{"C1 control", "a\u0085", flamingo.CodeInvalidPayload},
		{"right-to-left override", "abc\u202efdp.exe", flamingo.CodeInvalidPayload},
		{"isolate", "\u2067x\u2069", flamingo.CodeInvalidPayload},
		{"HTML stays text", "<b>", ""},
	}
	e := newEngine(t, flamingo.Config{MaxMessageRunes: 5, MaxMessageBytes: 20, MessageRate: unlimited})
	a, b := flamingotest.Pair(t, e)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.Say(tt.give)
			if tt.want == "" {
				assert.Equal(t, tt.give, b.ExpectMessage().Content)
			} else {
				assert.Equal(t, flamingo.EventSendMessage, a.ExpectError(tt.want).Ref)
			}
			a.Sync()
			b.Sync()
		})
	}
}

// addressed is a pipe end that says which address it comes from.
type addressed struct {
	*flamingotest.PipeEnd
	addr netip.Addr
}

func (a addressed) RemoteAddr() netip.Addr { return a.addr }

// connectFrom serves a pipe whose server end reports addr, like the WebSocket handler.
func connectFrom(t *testing.T, e *flamingo.Engine, addr string) *flamingotest.Client {
	t.Helper()
	server, client := flamingotest.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Serve(context.Background(), addressed{server, netip.MustParseAddr(addr)})
	}()
	t.Cleanup(func() {
		_ = client.Close(flamingo.CloseNormal, "")
		<-done
	})
	return flamingotest.NewClient(t, client)
}

func TestInitRate_PerAddress(t *testing.T) {
	e := newEngine(t, flamingo.Config{InitRate: flamingo.RateLimit{Rate: 0.001, Burst: 2}})
	owner := connectFrom(t, e, "192.0.2.1")
	id := owner.Init("").UserID
	connectFrom(t, e, "192.0.2.1").Init("")
	storm := connectFrom(t, e, "192.0.2.1")
	storm.Send(flamingo.EventInit, nil)
	assert.Equal(t, flamingo.EventInit, storm.ExpectError(flamingo.CodeRateLimited).Ref)
	assert.Equal(t, 2, e.Stats().Online, "no session for the refused init")

	// The address's bucket is empty, yet its users can still come back.
	away(t, e, owner)
	assert.True(t, connectFrom(t, e, "192.0.2.1").Init(id).Resumed, "resuming is never limited")

	connectFrom(t, e, "2001:db8::1").Init("") // another address has its own bucket
	connectFrom(t, e, "2001:db8::2").Init("")
	sameNet := connectFrom(t, e, "2001:db8::3:4") // an IPv6 client's /64 counts as one address
	sameNet.Send(flamingo.EventInit, nil)
	sameNet.ExpectError(flamingo.CodeRateLimited)
	connectFrom(t, e, "2001:db8:0:1::1").Init("") // the next /64 is another address
	flamingotest.Connect(t, e).Init("")           // a transport without an address is not limited
}

func TestResumeGuessing_PerAddress(t *testing.T) {
	e := newEngine(t, flamingo.Config{ResumeGuessRate: flamingo.RateLimit{Rate: 0.001, Burst: 3}})
	owner := connectFrom(t, e, "192.0.2.7")
	id := owner.Init("").UserID
	away(t, e, owner)

	guesser := connectFrom(t, e, "198.51.100.9")
	for i := range 3 {
		ready := connectFrom(t, e, "198.51.100.9").Init(fmt.Sprintf("%032x", i))
		assert.False(t, ready.Resumed)
	}
	guesser.Send(flamingo.EventInit, flamingo.InitPayload{UserID: fmt.Sprintf("%032x", 99)})
	assert.Equal(t, flamingo.EventInit, guesser.ExpectError(flamingo.CodeRateLimited).Ref)

	// The owner is unaffected: a right id is not a guess, and its address has tokens.
	ready := connectFrom(t, e, "192.0.2.7").Init(id)
	assert.True(t, ready.Resumed)
}

func TestWebSocket_ConnectionCaps(t *testing.T) {
	tests := []struct {
		name  string
		opts  flamingo.WebSocketOptions
		extra []string // X-Forwarded-For of each connection
		want  int
	}{
		{"per address", flamingo.WebSocketOptions{MaxConnsPerIP: 2}, []string{"", "", ""}, http.StatusTooManyRequests},
		{"global", flamingo.WebSocketOptions{MaxConns: 2, MaxConnsPerIP: -1}, []string{"", "", ""}, http.StatusServiceUnavailable},
		{"per address from the proxy header", flamingo.WebSocketOptions{MaxConnsPerIP: 1, ClientIPHeader: "X-Forwarded-For"},
			[]string{"203.0.113.5, 192.0.2.1", "192.0.2.2", "203.0.113.9, 192.0.2.1"}, http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, flamingo.Config{})
			url := wsServer(t, e, &tt.opts)
			dial := func(xff string) (*websocket.Conn, *http.Response, error) {
				h := http.Header{}
				if xff != "" {
					h.Set("X-Forwarded-For", xff)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
			}
			var open []*websocket.Conn
			for _, xff := range tt.extra[:len(tt.extra)-1] {
				c, _, err := dial(xff)
				require.NoError(t, err)
				open = append(open, c)
			}
			_, resp, err := dial(tt.extra[len(tt.extra)-1])
			require.Error(t, err)
			require.NotNil(t, resp)
			assert.Equal(t, tt.want, resp.StatusCode)

			// A slot frees up when a connection ends.
			require.NoError(t, open[0].Close(websocket.StatusNormalClosure, ""))
			require.Eventually(t, func() bool {
				c, _, err := dial(tt.extra[0])
				if err != nil {
					return false
				}
				c.CloseNow()
				return true
			}, 5*time.Second, 10*time.Millisecond)
			for _, c := range open[1:] {
				c.CloseNow()
			}
		})
	}
}

func TestWebSocket_NoCompression(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	url := wsServer(t, e, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
	require.NoError(t, err)
	defer c.CloseNow()
	assert.Empty(t, resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate is never negotiated")
}

func TestNotInChat_SameAnswerForMissingAndForeignChats(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	a, _ := flamingotest.Pair(t, e)
	c, _ := flamingotest.Pair(t, e)
	var answers []flamingo.ErrorPayload
	for _, chatID := range []string{c.ChatID, "00000000000000000000000000000000", "x"} {
		a.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: chatID, Content: "hi"})
		answers = append(answers, a.ExpectError(flamingo.CodeNotInChat))
		a.Send(flamingo.EventLeaveChat, flamingo.LeaveChatPayload{ChatID: chatID})
		answers = append(answers, a.ExpectError(flamingo.CodeNotInChat))
	}
	for _, p := range answers[2:] {
		assert.Equal(t, answers[0].Message, p.Message, "nothing tells another pair's chat from no chat")
	}
}

// endings reads c's events up to the pong of a ping and returns the chat_ended ones
// and the error codes.
func endings(t *testing.T, c *flamingotest.Client) (ended []flamingo.ChatEndedPayload, errs []flamingo.ErrorCode) {
	t.Helper()
	c.Send(flamingo.EventPing, nil)
	for ev := c.Next(); ev.Type != flamingo.EventPong; ev = c.Next() {
		switch ev.Type {
		case flamingo.EventChatEnded:
			var p flamingo.ChatEndedPayload
			require.NoError(t, ev.Decode(&p))
			ended = append(ended, p)
		case flamingo.EventError:
			var p flamingo.ErrorPayload
			require.NoError(t, ev.Decode(&p))
			errs = append(errs, p.Code)
		}
	}
	return ended, errs
}

func TestChatEnded_ExactlyOnceWhenBothLeaveAtOnce(t *testing.T) {
	for range 20 {
		e := newEngine(t, flamingo.Config{})
		a, b := flamingotest.Pair(t, e)
		a.Send(flamingo.EventLeaveChat, nil)
		b.Send(flamingo.EventLeaveChat, nil)
		ea, errA := endings(t, a)
		eb, errB := endings(t, b)
		require.Len(t, ea, 1)
		require.Len(t, eb, 1)
		// Whoever was first left; the other was told and its own leave found no chat.
		reasons := []flamingo.EndReason{ea[0].Reason, eb[0].Reason}
		assert.ElementsMatch(t, []flamingo.EndReason{flamingo.ReasonLeft, flamingo.ReasonPartnerLeft}, reasons)
		assert.Equal(t, 1, len(errA)+len(errB))
	}
}

func TestChatEnded_ExactlyOnceWhenLeaveRacesGraceExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{ResumeGrace: 5 * time.Second})
		a, b := flamingotest.Pair(t, e)
		a.Close()
		synctest.Wait()
		time.Sleep(5 * time.Second) // the grace runs out now, as b leaves
		b.Send(flamingo.EventLeaveChat, nil)
		ended, errs := endings(t, b)
		require.Len(t, ended, 1)
		if ended[0].Reason == flamingo.ReasonPartnerDisconnected {
			assert.Equal(t, []flamingo.ErrorCode{flamingo.CodeNotInChat}, errs)
		} else {
			assert.Equal(t, flamingo.ReasonLeft, ended[0].Reason)
			assert.Empty(t, errs)
		}
		time.Sleep(time.Minute)
		ended, _ = endings(t, b)
		assert.Empty(t, ended, "never a second chat_ended")
	})
}

func TestSlowConsumer_ByteBoundKeepsHeapBounded(t *testing.T) {
	const bound = 64 << 10
	e := newEngine(t, flamingo.Config{
		MaxQueuedEvents: 100000, MaxQueuedBytes: bound, // only the byte bound can trip
		MessageRate: unlimited, EventRate: unlimited, ErrorBudget: unlimited,
	})
	a, b := flamingotest.Pair(t, e)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	// b reads nothing. Each frame is over 4 KiB: the pipe takes PipeBuffer of them,
	// the engine queues up to 64 KiB more, then drops b.
	content := strings.Repeat("🦩", 1000) // 4000 bytes, 1000 characters: the most a message may have
	sent := 0
	for e.Stats().Online == 2 {
		require.Less(t, sent, flamingotest.PipeBuffer+bound/4000+10, "b was never dropped")
		a.Say(content)
		sent++
		refusedTo(t, a) // the message that tipped b over may find the hold full
	}
	for range 200 { // b is away now: what is held for it is bounded too
		a.Say(content)
	}
	assert.Greater(t, refusedTo(t, a), 150, "once the hold is full, messages are refused to the sender")

	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// The pipe's frames, the queue's bound and the hold's bound, with room for the
	// garbage collector's timing: far below the 1 MiB the 200 extra messages weigh.
	assert.Less(t, grown, int64(flamingotest.PipeBuffer*4200+3*bound+512<<10), "heap grew by %d bytes", grown)
	b.ExpectClosed(flamingo.CloseSlowConsumer)
}

// refusedTo counts the rate_limited errors c gets before the pong of a ping.
func refusedTo(t *testing.T, c *flamingotest.Client) int {
	t.Helper()
	c.Send(flamingo.EventPing, nil)
	n := 0
	for ev := c.Next(); ev.Type != flamingo.EventPong; ev = c.Next() {
		if ev.Type == flamingo.EventPartnerAway { // the partner was dropped
			continue
		}
		var p flamingo.ErrorPayload
		require.NoError(t, ev.Decode(&p))
		require.Equal(t, flamingo.CodeRateLimited, p.Code)
		n++
	}
	return n
}
