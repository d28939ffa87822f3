package flamingoredis

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// TestEventsEncoding: appendEvent writes an event as an entry of events carries it,
// and eachEvent reads such an entry back, event for event, stopping at the first
// malformed one.
func TestEventsEncoding(t *testing.T) {
	evs := []flamingo.ClusterEvent{
		{ChatID: "c1", Frame: []byte(`{"type":"message_received"}`)},
		{Frame: []byte(`{"type":"partner_away"}`)},
		{ChatID: "c1", Ended: flamingo.ReasonPartnerLeft},
		{ChatID: "c2", Frame: []byte{}},
		{ChatID: "c:3", Frame: []byte("12:x")}, // colons and digits inside are data
	}
	var entry []byte
	for _, ev := range evs {
		one := appendEvent(nil, ev)
		assert.Equal(t, string(appendStateString(nil, encodeEvent(ev))), string(one))
		entry = append(entry, one...)
	}
	var got []flamingo.ClusterEvent
	require.True(t, eachEvent(string(entry), func(ev flamingo.ClusterEvent) { got = append(got, ev) }))
	require.Len(t, got, len(evs))
	for i, want := range evs {
		assert.Equal(t, want.ChatID, got[i].ChatID, "event %d", i)
		assert.Equal(t, string(want.Frame), string(got[i].Frame), "event %d", i)
		assert.Equal(t, want.Frame == nil, got[i].Frame == nil, "event %d: a frame or an end", i)
		assert.Equal(t, want.Ended, got[i].Ended, "event %d", i)
	}
	// The frames are slices of one copy, each capped at its end: appending to one
	// cannot overwrite the next.
	f := append(got[0].Frame, 'X')
	assert.Equal(t, string(evs[1].Frame), string(got[1].Frame))
	assert.Equal(t, string(evs[0].Frame)+"X", string(f))

	good := string(appendStateString(nil, encodeEvent(evs[0])))
	for _, bad := range []string{
		"x:m\x00a",          // no length
		"5",                 // no colon
		"9:m\x00ab",         // longer than what is left
		"3:\x00ab",          // no kind before the NUL
		"4:mabc",            // no NUL
		"4:z\x00ab",         // an unknown kind
		"99999999999:m\x00", // a length past what is left
	} {
		var n int
		assert.False(t, eachEvent(good+bad, func(flamingo.ClusterEvent) { n++ }), "%q", bad)
		assert.Equal(t, 1, n, "%q: the events before it are seen", bad)
	}
	assert.True(t, eachEvent("", func(flamingo.ClusterEvent) { t.Error("an event in an empty entry") }))
}

// TestSendsScript: one call of the sends script routes each event as route does,
// writing one inbox entry per user with that user's events in order; events for a
// user whose node is dead go onto the user's held list while it has room, and those
// for a user without a session are dropped.
func TestSendsScript(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		ctx := context.Background()
		k := newKeys(freshPrefix(t, client), "n1")
		const maxHeld = 4
		for user, node := range map[string]string{"u1": "n1", "u2": "n2", "u3": "dead", "u5": "dead"} {
			require.NoError(t, client.HSet(ctx, k.session(user), sessNode, node).Err())
		}
		for _, node := range []string{"n1", "n2"} {
			require.NoError(t, client.Set(ctx, k.alive(node), "1", time.Minute).Err())
		}
		// u5's held list has room for one more.
		for i := range maxHeld - 1 {
			require.NoError(t, client.RPush(ctx, k.held("u5"), "old"+strconv.Itoa(i)).Err())
		}

		msg := func(s string) flamingo.ClusterEvent { return flamingo.ClusterEvent{ChatID: "c", Frame: []byte(s)} }
		sends := []struct {
			user string
			ev   flamingo.ClusterEvent
		}{
			{"u1", msg("1a")}, {"u2", msg("2a")}, {"u1", msg("1b")}, {"u3", msg("3a")},
			{"u4", msg("4a")}, {"u3", flamingo.ClusterEvent{ChatID: "c", Ended: flamingo.ReasonPartnerLeft}},
			{"u2", msg("2b")}, {"u5", msg("5a")}, {"u5", msg("5b")}, {"u1", msg("1c")},
		}
		args := []any{k.base, maxHeld, time.Minute.Milliseconds()}
		for _, s := range sends {
			args = append(args, s.user, appendEvent(nil, s.ev))
		}
		users, err := sendsScript.Run(ctx, client, []string{k.nodes()}, args...).Int()
		require.NoError(t, err)
		assert.Equal(t, 5, users)

		inbox := func(node string) map[string][]string {
			msgs, err := client.XRange(ctx, k.inbox(node), "-", "+").Result()
			require.NoError(t, err)
			out := map[string][]string{}
			for _, m := range msgs {
				require.Len(t, m.Values, 1, "an entry of events has one field")
				user, events, ok := batchEntry(m.Values)
				require.True(t, ok)
				require.NotContains(t, out, user, "one entry per user")
				out[user] = []string{}
				require.True(t, eachEvent(events, func(ev flamingo.ClusterEvent) {
					out[user] = append(out[user], string(ev.Frame))
				}))
			}
			return out
		}
		assert.Equal(t, map[string][]string{"u1": {"1a", "1b", "1c"}}, inbox("n1"))
		assert.Equal(t, map[string][]string{"u2": {"2a", "2b"}}, inbox("n2"))
		assert.Empty(t, inbox("dead"))

		held, err := client.LRange(ctx, k.held("u3"), 0, -1).Result()
		require.NoError(t, err)
		assert.Equal(t, []string{encodeEvent(sends[3].ev), encodeEvent(sends[5].ev)}, held)
		ttl, err := client.PTTL(ctx, k.held("u3")).Result()
		require.NoError(t, err)
		assert.Positive(t, ttl)

		held, err = client.LRange(ctx, k.held("u5"), 0, -1).Result()
		require.NoError(t, err)
		assert.Equal(t, []string{"old0", "old1", "old2", encodeEvent(msg("5a"))}, held, "the first that fits")

		n, err := client.Exists(ctx, k.held("u4"), k.inbox("u4")).Result()
		require.NoError(t, err)
		assert.Zero(t, n, "nothing for a user without a session")
	})
}

// TestSalvageEntriesOfEvents: a claim that salvages a dead node's inbox takes the
// user's events from entries of events too, in stream order, and deletes those
// entries, leaving the other users' entries alone.
func TestSalvageEntriesOfEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		ctx := context.Background()
		c := NewCluster(client, ClusterOptions{Options: Options{Prefix: freshPrefix(t, client), NodeID: "n2"}})
		stream := c.keys.inbox("dead")
		entry := func(user string, frames ...string) {
			var b []byte
			for _, f := range frames {
				b = appendEvent(b, flamingo.ClusterEvent{ChatID: "c", Frame: []byte(f)})
			}
			require.NoError(t, client.XAdd(ctx, &redis.XAddArgs{Stream: stream,
				Values: []string{entryBatch, string(appendStateString(nil, user)) + string(b)}}).Err())
		}
		entry("u1", "1a", "1b")
		entry("u2", "2a")
		require.NoError(t, client.XAdd(ctx, &redis.XAddArgs{Stream: stream,
			Values: []string{entryKind, kindMessage, entryUser, "u1", entryChat, "c", entryPayload, "1c"}}).Err())
		entry("u1", "1d")

		st := c.salvage(ctx, "dead", flamingo.SessionState{Found: true, User: "u1",
			Events: []flamingo.ClusterEvent{{Frame: []byte("held")}}})
		var got []string
		for _, ev := range st.Events {
			got = append(got, string(ev.Frame))
		}
		assert.Equal(t, []string{"1a", "1b", "1c", "1d", "held"}, got)

		left, err := client.XRange(ctx, stream, "-", "+").Result()
		require.NoError(t, err)
		require.Len(t, left, 1)
		user, _, _ := batchEntry(left[0].Values)
		assert.Equal(t, "u2", user)
	})
}

// TestNextStreamID: the id after a stream entry's, which a trim of what the reader has
// read keeps.
func TestNextStreamID(t *testing.T) {
	for give, want := range map[string]string{
		"1700000000000-0":        "1700000000000-1",
		"5-41":                   "5-42",
		"5-18446744073709551615": "6-0",
		"18446744073709551615-18446744073709551615": "18446744073709551615-18446744073709551615",
		"garbage": "garbage",
		"1-x":     "1-x",
	} {
		assert.Equal(t, want, nextStreamID(give), give)
	}
}

// TestReaderTrimsWhatItRead: the reader deletes the entries it has handled, and only
// those: an entry added while it handles one (before its delete) is read next.
func TestReaderTrimsWhatItRead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		ctx := context.Background()
		prefix := freshPrefix(t, client)
		got := make(chan string, 10)
		m := New(client, Options{Prefix: prefix, NodeID: "n1"})
		add := func(p string) {
			require.NoError(t, client.XAdd(ctx, &redis.XAddArgs{Stream: m.keys.nodePairs,
				Values: []string{entryKind, kindKick, entryPayload, p}}).Err())
		}
		m.inbound = func(_ string, v map[string]any) {
			p := field(v, entryPayload)
			if p == "a" {
				add("b") // after the read of a, before its delete
			}
			got <- p
		}
		require.NoError(t, m.Start(func(flamingo.Pair) {}))
		t.Cleanup(func() { assert.NoError(t, m.Stop(context.Background())) })
		add("a")
		for _, want := range []string{"a", "b"} {
			select {
			case p := <-got:
				assert.Equal(t, want, p)
			case <-time.After(5 * time.Second):
				t.Fatalf("entry %s not read", want)
			}
		}
		require.Eventually(t, func() bool {
			n, err := client.XLen(ctx, m.keys.nodePairs).Result()
			return err == nil && n == 0
		}, 5*time.Second, time.Millisecond, "the entries read are deleted")
	})
}
