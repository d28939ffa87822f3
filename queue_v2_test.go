package flamingo_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// Tests of matching v2 as the engine does it (DESIGN.md §4.7): interests in the
// ticket and in match_found, relaxation, the OnJoin hook and its pools, and the
// join_queue inputs it refuses. The pairing rules themselves are the matcher's: these
// tests run over the default MemoryMatcher.

// recordingMatcher is a MemoryMatcher that keeps every ticket the engine enqueues and
// the report function the engine installs.
type recordingMatcher struct {
	*flamingo.MemoryMatcher
	mu       sync.Mutex
	enqueued []flamingo.Ticket
	cancels  int
	report   func(flamingo.Pair)
}

func newRecordingMatcher() *recordingMatcher {
	return &recordingMatcher{MemoryMatcher: flamingo.NewMemoryMatcher()}
}

func (m *recordingMatcher) Start(r func(flamingo.Pair)) error {
	m.report = r
	return m.MemoryMatcher.Start(r)
}

func (m *recordingMatcher) Enqueue(ctx context.Context, t flamingo.Ticket) error {
	m.mu.Lock()
	m.enqueued = append(m.enqueued, t)
	m.mu.Unlock()
	return m.MemoryMatcher.Enqueue(ctx, t)
}

func (m *recordingMatcher) Cancel(ctx context.Context, user string) (bool, error) {
	m.mu.Lock()
	m.cancels++
	m.mu.Unlock()
	return m.MemoryMatcher.Cancel(ctx, user)
}

// tickets returns the tickets enqueued so far, in order.
func (m *recordingMatcher) tickets() []flamingo.Ticket {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]flamingo.Ticket(nil), m.enqueued...)
}

// last returns the last ticket enqueued.
func (m *recordingMatcher) last(t *testing.T) flamingo.Ticket {
	t.Helper()
	ts := m.tickets()
	require.NotEmpty(t, ts)
	return ts[len(ts)-1]
}

// join sends join_queue with interests and expects queue_joined.
func join(c *flamingotest.Client, g flamingo.Gender, p flamingo.Preference, interests ...string) {
	c.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: g, Preference: p, Interests: interests})
	c.Expect(flamingo.EventQueueJoined)
}

// expectMatch expects match_found and returns its payload.
func expectMatch(t *testing.T, c *flamingotest.Client) flamingo.MatchFoundPayload {
	t.Helper()
	var m flamingo.MatchFoundPayload
	c.ExpectPayload(flamingo.EventMatchFound, &m)
	return m
}

// connectWith serves a new pipe with e under ctx, as Connect does under
// context.Background, and returns a client on its other end.
func connectWith(t *testing.T, ctx context.Context, e *flamingo.Engine) *flamingotest.Client {
	t.Helper()
	server, client := flamingotest.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Serve(ctx, server)
	}()
	t.Cleanup(func() {
		_ = client.Close(flamingo.CloseNormal, "")
		<-done
	})
	return flamingotest.NewClient(t, client)
}

func TestJoin_InterestsInTicketAndMatchFound(t *testing.T) {
	m := newRecordingMatcher()
	e := newEngine(t, flamingo.Config{Matcher: m, InterestWait: time.Hour})
	a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	a.Init("")
	b.Init("")

	before := time.Now()
	join(a, flamingo.GenderFemale, flamingo.PreferAny, " Music", "chess", "secret-a", "music")
	ta := m.last(t)
	assert.Equal(t, []string{"chess", "music", "secret-a"}, ta.Interests, "trimmed, lower-cased, without duplicates, sorted")
	assert.False(t, ta.JoinedAt.Before(before))
	assert.Equal(t, ta.JoinedAt.Add(time.Hour), ta.RelaxAt, "RelaxAt is JoinedAt + InterestWait")
	assert.Empty(t, ta.Pool)
	assert.Empty(t, ta.Avoid)

	join(b, flamingo.GenderMale, flamingo.PreferFemale, "music", "chess", "secret-b")
	mb := expectMatch(t, b)
	ev := a.Expect(flamingo.EventMatchFound)
	var ma flamingo.MatchFoundPayload
	require.NoError(t, ev.Decode(&ma))
	for _, mf := range []flamingo.MatchFoundPayload{ma, mb} {
		assert.Equal(t, []string{"chess", "music"}, mf.CommonInterests, "exactly the shared ones, sorted")
		assert.False(t, mf.Relaxed)
	}
	assert.NotContains(t, string(ev.Raw), "secret-b", "the partner's other interests never leak")
}

func TestJoin_NoInterests_EmptyCommonAndNotRelaxed(t *testing.T) {
	m := newRecordingMatcher()
	e := newEngine(t, flamingo.Config{Matcher: m})
	flamingotest.Pair(t, e)
	for _, tk := range m.tickets() {
		assert.Nil(t, tk.Interests)
		assert.True(t, tk.RelaxAt.IsZero(), "a ticket without interests is always relaxed")
	}

	c, d := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	c.Init("")
	d.Init("")
	join(c, flamingo.GenderOther, flamingo.PreferAny)
	join(d, flamingo.GenderOther, flamingo.PreferAny)
	ev := c.Expect(flamingo.EventMatchFound)
	assert.Contains(t, string(ev.Raw), `"common_interests":[]`, "[] rather than null")
	assert.Contains(t, string(ev.Raw), `"relaxed":false`)
}

// A newcomer is paired with a younger waiter that shares an interest rather than an
// older one that shares none.
func TestJoin_SharedInterestBeforeAge(t *testing.T) {
	e := newEngine(t, flamingo.Config{InterestWait: time.Hour})
	old, young, newcomer := flamingotest.Connect(t, e), flamingotest.Connect(t, e), flamingotest.Connect(t, e)
	for _, c := range []*flamingotest.Client{old, young, newcomer} {
		c.Init("")
	}
	join(old, flamingo.GenderOther, flamingo.PreferAny)
	join(young, flamingo.GenderOther, flamingo.PreferAny, "go")
	old.Sync() // old (no interests) and young (not relaxed, nothing shared) wait apart
	join(newcomer, flamingo.GenderOther, flamingo.PreferAny, "go", "rust")
	m := expectMatch(t, newcomer)
	assert.Equal(t, []string{"go"}, m.CommonInterests)
	expectMatch(t, young)
	old.Sync()
	assert.Equal(t, 1, e.Stats().InQueue, "the older waiter still waits")
}

// Two users who share no interest meet once InterestWait has passed, without anyone
// else arriving, and are told the match is relaxed.
func TestJoin_RelaxesAfterInterestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{InterestWait: 2 * time.Second})
		a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		a.Init("")
		b.Init("")
		start := time.Now()
		join(a, flamingo.GenderOther, flamingo.PreferAny, "cats")
		join(b, flamingo.GenderOther, flamingo.PreferAny, "dogs")
		time.Sleep(2*time.Second - time.Millisecond) // virtual time
		a.Sync()
		b.Sync()
		ma := expectMatch(t, a)
		// Paired when the later ticket relaxes (its JoinedAt may be a nanosecond later
		// than start, since JoinedAt never repeats).
		assert.InDelta(t, 2*time.Second, time.Since(start), float64(time.Microsecond))
		mb := expectMatch(t, b)
		for _, m := range []flamingo.MatchFoundPayload{ma, mb} {
			assert.Empty(t, m.CommonInterests)
			assert.True(t, m.Relaxed)
		}
	})
}

// A user with interests meets a user who gave none once relaxed: relaxed is true,
// since one side gave interests and they share none.
func TestJoin_RelaxedWithUserWithoutInterests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{InterestWait: 3 * time.Second})
		a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		a.Init("")
		b.Init("")
		join(a, flamingo.GenderOther, flamingo.PreferAny, "cats")
		join(b, flamingo.GenderOther, flamingo.PreferAny)
		b.Sync()
		time.Sleep(3 * time.Second)
		assert.True(t, expectMatch(t, a).Relaxed)
		assert.True(t, expectMatch(t, b).Relaxed)
	})
}

func TestJoin_BadInterestsRefused_ConnectionKept(t *testing.T) {
	e := newEngine(t, flamingo.Config{JoinRate: unlimited})
	c := flamingotest.Connect(t, e)
	c.Init("")
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = string(rune('a' + i))
	}
	tests := []struct {
		name string
		give []string
	}{
		{"eleven", eleven},
		{"33 characters", []string{strings.Repeat("é", 33)}},
		{"blank", []string{"  "}},
		{"control character", []string{"a\u0007b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther, Interests: tt.give})
			p := c.ExpectError(flamingo.CodeInvalidPayload)
			assert.Equal(t, flamingo.EventJoinQueue, p.Ref)
			c.Sync()
		})
	}
	assert.Equal(t, 0, e.Stats().InQueue)
	// Ten interests of 32 characters are fine.
	ten := make([]string, 10)
	for i := range ten {
		ten[i] = strings.Repeat(string(rune('a'+i)), 32)
	}
	join(c, flamingo.GenderOther, flamingo.PreferAny, ten...)
}

func TestOnJoin_RefusesWithItsCodeOrJoinRefused(t *testing.T) {
	e := newEngine(t, flamingo.Config{OnJoin: func(_ context.Context, j *flamingo.JoinRequest) error {
		switch {
		case len(j.Interests) == 0:
			return nil
		case j.Interests[0] == "banned":
			return &flamingo.Error{Code: "banned", Message: "you are banned"}
		case j.Interests[0] == "nocode":
			return &flamingo.Error{Message: "no code given"}
		}
		return errors.New("database down")
	}})
	c := flamingotest.Connect(t, e)
	c.Init("")

	c.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther, Interests: []string{"banned"}})
	p := c.ExpectError("banned")
	assert.Equal(t, "you are banned", p.Message)
	assert.Equal(t, flamingo.EventJoinQueue, p.Ref)
	c.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther, Interests: []string{"nocode"}})
	assert.Equal(t, "no code given", c.ExpectError(flamingo.CodeJoinRefused).Message)
	c.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther, Interests: []string{"other"}})
	p = c.ExpectError(flamingo.CodeJoinRefused)
	assert.NotContains(t, p.Message, "database", "a plain error's text stays on the server")
	c.Sync()
	assert.Equal(t, 0, e.Stats().InQueue, "a refused user does not wait")

	// The connection is kept, and a join the hook accepts goes through.
	join(c, flamingo.GenderOther, flamingo.PreferAny)
	assert.Equal(t, 1, e.Stats().InQueue)
}

// The state checks come before the hook: a user in a chat is answered
// already_in_chat without asking it.
func TestOnJoin_StateCheckedFirst(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	e := newEngine(t, flamingo.Config{OnJoin: func(context.Context, *flamingo.JoinRequest) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return nil
	}})
	a, _ := flamingotest.Pair(t, e)
	a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
	a.ExpectError(flamingo.CodeAlreadyInChat)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 2, calls, "once for each join of the pair, not for the refused one")
}

type ctxKey struct{}

func TestOnJoin_SeesServeContextAndRequest_SetsPoolAndLabels(t *testing.T) {
	m := newRecordingMatcher()
	seen := make(chan flamingo.JoinRequest, 1)
	e := newEngine(t, flamingo.Config{Matcher: m, OnJoin: func(ctx context.Context, j *flamingo.JoinRequest) error {
		seen <- *j
		j.Pool = ctx.Value(ctxKey{}).(string)
		j.Labels = map[string]string{"tier": "gold"}
		j.Interests = append(j.Interests, "injected") // for reading only: no effect
		return nil
	}})
	c := connectWith(t, context.WithValue(context.Background(), ctxKey{}, "fr"), e)
	c.Init("")
	join(c, flamingo.GenderFemale, flamingo.PreferMale, "Jazz")
	j := <-seen
	tk := m.last(t)
	assert.Equal(t, flamingo.JoinRequest{User: tk.User, Gender: flamingo.GenderFemale, Preference: flamingo.PreferMale,
		Interests: []string{"jazz"}}, j)
	assert.NotEqual(t, c.UserID, j.User, "the hook sees the handle, not the user_id")
	assert.Equal(t, "fr", tk.Pool)
	assert.Equal(t, map[string]string{"tier": "gold"}, tk.Labels)
	assert.Equal(t, []string{"jazz"}, tk.Interests)
}

// Users meet only within their pool.
func TestOnJoin_Pools(t *testing.T) {
	e := newEngine(t, flamingo.Config{OnJoin: func(ctx context.Context, j *flamingo.JoinRequest) error {
		j.Pool = ctx.Value(ctxKey{}).(string)
		return nil
	}})
	in := func(pool string) *flamingotest.Client {
		c := connectWith(t, context.WithValue(context.Background(), ctxKey{}, pool), e)
		c.Init("")
		return c
	}
	en1, fr1 := in("en"), in("fr")
	join(en1, flamingo.GenderOther, flamingo.PreferAny)
	join(fr1, flamingo.GenderOther, flamingo.PreferAny)
	en1.Sync()
	fr1.Sync()
	assert.Equal(t, 2, e.Stats().InQueue, "different pools: no pair")

	fr2, en2 := in("fr"), in("en")
	join(fr2, flamingo.GenderOther, flamingo.PreferAny)
	mf := expectMatch(t, fr1)
	assert.Equal(t, mf.ChatID, expectMatch(t, fr2).ChatID)
	join(en2, flamingo.GenderOther, flamingo.PreferAny)
	me := expectMatch(t, en1)
	assert.Equal(t, me.ChatID, expectMatch(t, en2).ChatID)
}

// While the hook runs, the session is taken over by another connection, which joins:
// the first join, once the hook returns, is not queued a second time.
func TestOnJoin_TakeoverDuringHook_NoDoubleEnqueue(t *testing.T) {
	m := newRecordingMatcher()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e := newEngine(t, flamingo.Config{Matcher: m, OnJoin: func(context.Context, *flamingo.JoinRequest) error {
		first := false
		once.Do(func() { first = true })
		if first {
			close(entered)
			<-release
		}
		return nil
	}})
	a := flamingotest.Connect(t, e)
	a.Init("")
	a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
	<-entered

	a2 := flamingotest.Connect(t, e)
	a2.Init(a.UserID)
	join(a2, flamingo.GenderOther, flamingo.PreferAny)
	close(release)
	a.ExpectError(flamingo.CodeSessionReplaced)
	a2.Sync()
	assert.Len(t, m.tickets(), 1, "one Enqueue")
	assert.Equal(t, 1, e.Stats().InQueue)
}

// The user is kicked while the hook runs: once it returns and accepts the join,
// nothing is queued for the session that is gone.
func TestOnJoin_KickedDuringHook_NotQueued(t *testing.T) {
	m := newRecordingMatcher()
	entered, release := make(chan string), make(chan struct{})
	e := newEngine(t, flamingo.Config{Matcher: m, OnJoin: func(_ context.Context, j *flamingo.JoinRequest) error {
		entered <- j.User
		<-release
		return nil
	}})
	c := flamingotest.Connect(t, e)
	c.Init("")
	c.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
	require.NoError(t, e.Kick(<-entered, "banned"))
	close(release)
	c.ExpectClosed(flamingo.ClosePolicyViolation)
	assert.Empty(t, m.tickets())
	assert.Equal(t, 0, e.Stats().InQueue)
}

func TestOnJoin_Panic_ClosesConnection(t *testing.T) {
	e := newEngine(t, flamingo.Config{OnJoin: func(context.Context, *flamingo.JoinRequest) error { panic("bug") }})
	c := flamingotest.Connect(t, e)
	c.Init("")
	c.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
	c.ExpectClosed(flamingo.CloseInternalError)
	assert.EqualValues(t, 1, e.Metrics().HookPanics["OnJoin"])
	assert.Equal(t, 0, e.Stats().InQueue)
}
