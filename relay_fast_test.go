package flamingo_test

import (
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// TestRelayConcurrentBothWays: both users of a chat send at once, with client_msg_id,
// while metrics are read, so that the shared-lock relay runs on both sides together
// (run with -race). Each side gets every message of the other in order and an
// acknowledgement for each of its own; the report carries the chat's last messages;
// the metrics count every message once.
func TestRelayConcurrentBothWays(t *testing.T) {
	const n = 100
	reports := make(chan flamingo.Report, 1)
	e := newEngine(t, flamingo.Config{
		MessageRate: unlimited, EventRate: unlimited,
		OnReport: func(r flamingo.Report) { reports <- r },
	})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	flamingotest.Match(t, a, b)

	var wg sync.WaitGroup
	for _, c := range []*flamingotest.Client{a, b} {
		wg.Go(func() {
			for i := range n {
				c.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{
					ChatID: c.ChatID, Content: c.UserID[:4] + " " + strconv.Itoa(i), ClientMsgID: "m" + strconv.Itoa(i),
				})
			}
		})
	}
	wg.Go(func() {
		for range n {
			_ = e.Metrics()
		}
	})
	wg.Wait()

	for _, tt := range []struct{ me, other *flamingotest.Client }{{a, b}, {b, a}} {
		var got []string
		acks := map[string]bool{}
		for len(got) < n || len(acks) < n {
			ev := tt.me.Next()
			switch ev.Type {
			case flamingo.EventMessageReceived:
				var p flamingo.MessageReceivedPayload
				require.NoError(t, ev.Decode(&p))
				got = append(got, p.Content)
			case flamingo.EventMessageSent:
				var p flamingo.MessageSentPayload
				require.NoError(t, ev.Decode(&p))
				assert.False(t, acks[p.ClientMsgID], "acknowledged twice: %s", p.ClientMsgID)
				acks[p.ClientMsgID] = true
			default:
				t.Fatalf("unexpected %s", ev.Type)
			}
		}
		for i, content := range got {
			assert.Equal(t, tt.other.UserID[:4]+" "+strconv.Itoa(i), content)
		}
	}
	assert.Equal(t, uint64(2*n), e.Metrics().Messages)

	a.Send(flamingo.EventReport, flamingo.ReportPayload{ChatID: a.ChatID, Reason: flamingo.ReportSpam})
	for a.Next().Type != flamingo.EventReported { // (a report ends the chat first)
	}
	r := <-reports
	require.Len(t, r.Messages, 20, "the default report context")
	last := map[string]int{}
	for _, m := range r.Messages {
		from := a.UserID[:4]
		if m.From == r.Reported {
			from = b.UserID[:4]
		}
		prefix := from + " "
		require.Contains(t, m.Content, prefix)
		i, err := strconv.Atoi(m.Content[len(prefix):])
		require.NoError(t, err)
		if prev, ok := last[from]; ok {
			assert.Equal(t, prev+1, i, "each sender's messages in order")
		}
		last[from] = i
	}
	for _, i := range last {
		assert.Equal(t, n-1, i, "the record ends with each sender's last message")
	}
}
