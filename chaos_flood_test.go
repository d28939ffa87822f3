package flamingo_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// floodConn is what one flooding connection saw.
type floodConn struct {
	sent, rateLimited int
	status            websocket.StatusCode
}

// flood sends first (if not nil) and then frames, over and over, on c, one every pace,
// until the connection ends, and reports what came back.
func flood(c *chaosConn, first []byte, frames [][]byte, pace time.Duration) floodConn {
	var res floodConn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range c.frames {
			if f.Type == flamingo.EventError && f.Payload.Code == flamingo.CodeRateLimited {
				res.rateLimited++
			}
		}
	}()
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; ; i++ {
		f := frames[i%len(frames)]
		if first != nil {
			f, first = first, nil
		}
		if c.write(f) != nil {
			break
		}
		res.sent++
		select {
		case <-tick.C:
		case <-done:
		}
	}
	<-done
	res.status = websocket.CloseStatus(c.err)
	_ = c.ws.CloseNow()
	return res
}

// TestFlood_DoesNotHurtOthers floods the engine from one address, with messages,
// pings and garbage, while a well-behaved pair chats: every flooding connection is
// answered rate_limited and closed with 1008, and every message of the pair arrives,
// once and in order.
func TestFlood_DoesNotHurtOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("flood over loopback WebSockets: skipped with -short")
	}
	// The default limits are what is under test; a short grace only shortens the
	// cleanup of the flooder's chat.
	e := newEngine(t, flamingo.Config{ResumeGrace: 2 * time.Second})
	d := newChaosDialer(t, e, nil, 2) // the pair comes from 127.0.0.1, the flooder from 127.0.0.2
	const (
		pairAddr, floodAddr = 0, 1
		perSide             = 25
		pace                = 100 * time.Millisecond // the pair's: 5 messages a second each, as allowed
		floodPace           = 2 * time.Millisecond   // the flooder's: 500 frames a second
	)

	dial := func(addr int) *chaosConn {
		c, err := d.dial(addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.hangUp() })
		return c
	}
	expect := func(c *chaosConn, typ flamingo.EventType) *chaosFrame {
		t.Helper()
		f, err := c.next()
		require.NoError(t, err)
		require.Equal(t, typ, f.Type, "got %s", f.raw)
		return f
	}
	write := func(c *chaosConn, typ flamingo.EventType, payload any) {
		t.Helper()
		require.NoError(t, c.write(chaosEvent(typ, payload)))
	}
	match := func(x, y *chaosConn, gx, gy flamingo.Gender, px, py flamingo.Preference) string {
		t.Helper()
		for _, c := range []*chaosConn{x, y} {
			write(c, flamingo.EventInit, nil)
			expect(c, flamingo.EventReady)
		}
		write(x, flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: gx, Preference: px})
		expect(x, flamingo.EventQueueJoined)
		write(y, flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: gy, Preference: py})
		expect(y, flamingo.EventQueueJoined)
		chatID := expect(x, flamingo.EventMatchFound).Payload.ChatID
		require.Equal(t, chatID, expect(y, flamingo.EventMatchFound).Payload.ChatID)
		return chatID
	}

	a, b := dial(pairAddr), dial(pairAddr)
	chatID := match(a, b, flamingo.GenderFemale, flamingo.GenderMale, flamingo.PreferAny, flamingo.PreferFemale)
	// The flooder starts in a chat of its own (users of gender other who want the
	// same, whom the pair would not accept), so that its messages are real.
	flooder, victim := dial(floodAddr), dial(floodAddr)
	floodChat := match(flooder, victim, flamingo.GenderOther, flamingo.GenderOther, flamingo.PreferOther, flamingo.PreferOther)
	var victimGot int
	victimDone := make(chan struct{})
	go func() {
		defer close(victimDone)
		for f := range victim.frames {
			if f.Type == flamingo.EventMessageReceived {
				victimGot++
			}
		}
	}()

	pairDone := make(chan struct{})
	floodDone := make(chan []floodConn, 1)
	go func() {
		var results []floodConn
		defer func() { floodDone <- results }()
		say := chaosEvent(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: floodChat, Content: "spam"})
		garbage := []byte("}{ not json")
		results = append(results, flood(flooder, nil, [][]byte{say, say, chaosPing, say, garbage, say, chaosPing, say, say, say}, floodPace))
		// Then again and again from new connections, as fast as it is refused, with
		// events that are valid but too many (and some garbage). Mostly valid ones:
		// invalid ones spend the error budget before the event rate is reached.
		stats := chaosEvent(flamingo.EventGetStats, nil)
		frames := [][]byte{chaosPing, stats, chaosPing, chaosPing, garbage, chaosPing, stats, chaosPing, chaosPing}
		for len(results) < 100 {
			select {
			case <-pairDone:
				return
			default:
			}
			c, err := d.dial(floodAddr)
			if err != nil {
				return
			}
			results = append(results, flood(c, chaosEvent(flamingo.EventInit, nil), frames, floodPace))
		}
	}()

	// The pair chats, taking turns, while the flood goes on.
	var latencies []time.Duration
	tick := time.NewTicker(pace)
	for i := range 2 * perSide {
		<-tick.C
		from, to := a, b
		if i%2 == 1 {
			from, to = b, a
		}
		content := fmt.Sprintf("pair message %d", i)
		sent := time.Now()
		write(from, flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: chatID, Content: content})
		f := expect(to, flamingo.EventMessageReceived)
		latencies = append(latencies, f.at.Sub(sent))
		assert.Equal(t, content, f.Payload.Content)
		assert.Equal(t, chatID, f.Payload.ChatID)
	}
	tick.Stop()
	close(pairDone)
	// Nothing else came to the pair: no error, no repeat.
	for _, c := range []*chaosConn{a, b} {
		write(c, flamingo.EventPing, nil)
		expect(c, flamingo.EventPong)
	}

	var results []floodConn
	select {
	case results = <-floodDone:
	case <-time.After(chaosLimit):
		t.Fatal("the flooder did not stop")
	}
	victim.hangUp()
	<-victimDone
	var sent, limited int
	for i, res := range results {
		sent, limited = sent+res.sent, limited+res.rateLimited
		assert.Positive(t, res.rateLimited, "flooding connection %d got no rate_limited", i)
		assert.Equal(t, websocket.StatusPolicyViolation, res.status, "flooding connection %d was closed with %d", i, res.status)
	}
	slices.Sort(latencies)
	t.Logf("flood: %d connections, %d frames, %d rate_limited, %d messages reached the flooder's partner; pair: %d messages, latency median %v, max %v",
		len(results), sent, limited, victimGot, len(latencies), latencies[len(latencies)/2], latencies[len(latencies)-1])
}
