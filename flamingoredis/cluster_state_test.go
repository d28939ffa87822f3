package flamingoredis

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

func TestStateEncoding(t *testing.T) {
	now := time.Now()
	// Times are kept in ms, as the wire shows them.
	ms := func(d time.Duration) time.Time { return time.UnixMilli(now.Add(d).UnixMilli()) }

	interests := [][]string{nil, {"music"}, {"", "a:b", "4:x", "日本語", "with space"}}
	for _, give := range interests {
		got := decodeInterests(encodeInterests(give))
		if len(give) == 0 {
			assert.Nil(t, got)
			continue
		}
		assert.Equal(t, give, got)
	}
	assert.Empty(t, encodeInterests(nil), "no interests, no field")

	avoid := map[string]time.Time{"aa": {}, "bb": ms(time.Minute), "cc": ms(-time.Minute)}
	got := decodeAvoid(encodeAvoid(avoid, now))
	assert.Equal(t, map[string]time.Time{"aa": {}, "bb": ms(time.Minute)}, got, "a past entry is dropped, never is kept")
	assert.Empty(t, encodeAvoid(map[string]time.Time{"cc": ms(-time.Second)}, now))
	assert.Nil(t, decodeAvoid(""))

	var acked []flamingo.AckedMessage
	for i := range 256 {
		acked = append(acked, flamingo.AckedMessage{ClientMsgID: "c-" + string(rune('a'+i%26)), MessageID: "18f0a1b2c3d4e5f6", SentAt: ms(time.Duration(i) * time.Millisecond)})
	}
	enc := encodeAcked(acked)
	assert.Equal(t, acked, decodeAcked(enc))
	assert.Less(t, len(enc), 256*48, "256 acknowledgements stay compact")
	assert.Nil(t, decodeAcked(""))

	for _, bad := range []string{"x", "3:ab", "2ab", ":", "1:a1:b", "99999999999:a", "-1:a"} {
		assert.Nil(t, decodeAcked(bad), "%q", bad)
		assert.Nil(t, decodeAvoid(bad), "%q", bad)
	}
	assert.Nil(t, decodeInterests("3:ab"))
}

// stateHost is a BrokerHost for tests of a bare Cluster: its Release answers with
// give, and Held returns held.
type stateHost struct {
	mu       sync.Mutex
	give     flamingo.SessionState
	held     []flamingo.SessionState
	released chan string
}

func (h *stateHost) Deliver(string, flamingo.ClusterEvent) {}
func (h *stateHost) Resync()                               {}
func (h *stateHost) Kick(string, string)                   {}
func (h *stateHost) LocalStats() flamingo.Stats            { return flamingo.Stats{} }
func (h *stateHost) Grace() time.Duration                  { return testGrace }

func (h *stateHost) Release(user string, reply func(flamingo.SessionState)) {
	h.mu.Lock()
	st := h.give
	h.mu.Unlock()
	reply(st)
	h.released <- user
}

func (h *stateHost) Held() []flamingo.SessionState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// startStateNode starts a Cluster (and its Matcher, which reads its inbox) on prefix,
// with a stateHost.
func startStateNode(t *testing.T, client redis.UniversalClient, prefix string) (*Cluster, *stateHost) {
	t.Helper()
	cl := NewCluster(newClient(t, client.(*redis.Client).Options().Addr), ClusterOptions{
		Options:   Options{Prefix: prefix},
		Heartbeat: testHeartbeat,
		DeadAfter: testDeadAfter,
	})
	h := &stateHost{released: make(chan string, 1)}
	require.NoError(t, cl.Start(h))
	require.NoError(t, cl.Matcher().Start(func(flamingo.Pair) {}))
	t.Cleanup(func() { stopState(t, cl) })
	return cl, h
}

func stopState(t *testing.T, cl *Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	assert.NoError(t, cl.Stop(ctx))
}

// movingState is a session with every field that moves between nodes set, in the
// precision Redis keeps (ms).
func movingState(user string, now time.Time) flamingo.SessionState {
	ms := func(d time.Duration) time.Time { return time.UnixMilli(now.Add(d).UnixMilli()) }
	return flamingo.SessionState{
		Found:      true,
		User:       user,
		Digest:     sha256.Sum256([]byte("id of " + user)),
		Gender:     flamingo.GenderFemale,
		Preference: flamingo.PreferMale,
		Interests:  []string{"chess", "jazz music"},
		Avoid:      map[string]time.Time{"blocked0000": {}, "recent00000": ms(10 * time.Minute)},
		Away:       true,
		Chat: &flamingo.ChatState{
			ID: "chat1", Peer: "peer0000000", PeerGender: flamingo.GenderMale, StartedAt: ms(-time.Minute),
			Acked: []flamingo.AckedMessage{
				{ClientMsgID: "m-1", MessageID: "18f0000000000001", SentAt: ms(-30 * time.Second)},
				{ClientMsgID: "m_2", MessageID: "18f0000000000002", SentAt: ms(-20 * time.Second)},
			},
		},
	}
}

// assertMoved checks that got, a claim's answer, has want's fields.
func assertMoved(t *testing.T, want, got flamingo.SessionState) {
	t.Helper()
	assert.Equal(t, want.Gender, got.Gender)
	assert.Equal(t, want.Preference, got.Preference)
	assert.Equal(t, want.Interests, got.Interests)
	assert.Equal(t, want.Avoid, got.Avoid)
	assert.Equal(t, want.Away, got.Away)
	require.NotNil(t, got.Chat)
	assert.Equal(t, *want.Chat, *got.Chat)
}

// TestClusterStateMoves: what the engine keeps of a session besides its chat (the
// join criteria, the users to avoid, the chat's acknowledged messages, whether it is
// away) comes back from Claim on another node, by each way a session moves: from what
// the old node saved in Redis, from the old node's handover, and from what a stopping
// node left.
func TestClusterStateMoves(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		ctx := context.Background()
		now := time.Now()

		t.Run("saved", func(t *testing.T) {
			prefix := freshPrefix(t, client)
			c1, _ := startStateNode(t, client, prefix)
			c2, _ := startStateNode(t, client, prefix)
			st := movingState("user1", now)
			c1.Save(st)
			require.NoError(t, c1.flushed(ctx))
			stopState(t, c1) // gone: the claim reads Redis
			got, err := c2.Claim(ctx, st.User, st.Digest)
			require.NoError(t, err)
			assertMoved(t, st, got)

			// Emptied fields are emptied in Redis too.
			st.Interests, st.Avoid, st.Preference, st.Chat.Acked = nil, nil, "", nil
			c2.Save(st)
			require.NoError(t, c2.flushed(ctx))
			fields, err := client.HKeys(ctx, c2.keys.session(st.User)).Result()
			require.NoError(t, err)
			for _, f := range []string{sessPreference, sessInterests, sessAvoid, sessAcked} {
				assert.NotContains(t, fields, f)
			}
		})

		t.Run("handover", func(t *testing.T) {
			prefix := freshPrefix(t, client)
			c1, h1 := startStateNode(t, client, prefix)
			c2, _ := startStateNode(t, client, prefix)
			saved := movingState("user2", now)
			c1.Save(saved)
			require.NoError(t, c1.flushed(ctx))
			// What the live node hands over wins over what it saved earlier.
			live := movingState("user2", now)
			live.Interests = []string{"go"}
			live.Avoid["another0000"] = time.UnixMilli(now.Add(time.Hour).UnixMilli())
			live.Away = false
			live.Chat.Acked = append(live.Chat.Acked, flamingo.AckedMessage{ClientMsgID: "m-3", MessageID: "18f0000000000003", SentAt: time.UnixMilli(now.UnixMilli())})
			h1.mu.Lock()
			h1.give = live
			h1.mu.Unlock()
			got, err := c2.Claim(ctx, saved.User, saved.Digest)
			require.NoError(t, err)
			assert.Equal(t, saved.User, <-h1.released)
			assertMoved(t, live, got)
		})

		t.Run("handoff", func(t *testing.T) {
			prefix := freshPrefix(t, client)
			c1, h1 := startStateNode(t, client, prefix)
			c2, _ := startStateNode(t, client, prefix)
			st := movingState("user3", now)
			c1.Save(flamingo.SessionState{Found: true, User: st.User, Digest: st.Digest})
			h1.mu.Lock()
			h1.held = []flamingo.SessionState{st} // what the engine holds as it stops
			h1.mu.Unlock()
			stopState(t, c1)
			got, err := c2.Claim(ctx, st.User, st.Digest)
			require.NoError(t, err)
			assertMoved(t, st, got)
		})

		t.Run("ended chat", func(t *testing.T) {
			// A chat that ended takes its acknowledgements with it.
			prefix := freshPrefix(t, client)
			c1, _ := startStateNode(t, client, prefix)
			c2, _ := startStateNode(t, client, prefix)
			st := movingState("user4", now)
			c1.Save(st)
			c1.EndChat(st.Chat.ID, [2]string{st.User, st.Chat.Peer}, "", flamingo.ReasonLeft)
			require.NoError(t, c1.flushed(ctx))
			n, err := client.HExists(ctx, c1.keys.session(st.User), sessAcked).Result()
			require.NoError(t, err)
			assert.False(t, n, "the acknowledgements went with the chat")
			stopState(t, c1)
			got, err := c2.Claim(ctx, st.User, st.Digest)
			require.NoError(t, err)
			assert.Nil(t, got.Chat)
			assert.Equal(t, st.Interests, got.Interests, "the criteria stay")
		})
	})
}
