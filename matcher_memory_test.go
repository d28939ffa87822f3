package flamingo_test

import (
	"context"
	"fmt"
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

func TestMemoryMatcher_Conformance(t *testing.T) {
	flamingotest.TestMatcher(t, func(*testing.T) flamingo.Matcher { return flamingo.NewMemoryMatcher() })
}

func memoryTicket(user string, g flamingo.Gender, p flamingo.Preference) flamingo.Ticket {
	return flamingo.Ticket{User: user, Gender: g, Preference: p, JoinedAt: time.Now()}
}

func TestMemoryMatcher_NotStarted(t *testing.T) {
	ctx := t.Context()
	m := flamingo.NewMemoryMatcher()
	tk := memoryTicket("a", flamingo.GenderMale, flamingo.PreferAny)
	assert.ErrorIs(t, m.Enqueue(ctx, tk), flamingo.ErrMatcherNotStarted, "Enqueue before Start")
	ok, err := m.Cancel(ctx, "a")
	assert.ErrorIs(t, err, flamingo.ErrMatcherNotStarted, "Cancel before Start")
	assert.False(t, ok, "Cancel before Start")

	require.NoError(t, m.Start(func(flamingo.Pair) {}))
	require.NoError(t, m.Enqueue(ctx, tk), "the ticket refused before Start was not kept")
	require.NoError(t, m.Stop(ctx))
	assert.Zero(t, m.Len(), "Stop drops waiting tickets")

	assert.ErrorIs(t, m.Enqueue(ctx, memoryTicket("b", flamingo.GenderMale, flamingo.PreferAny)),
		flamingo.ErrMatcherNotStarted, "Enqueue after Stop")
	ok, err = m.Cancel(ctx, "a")
	assert.ErrorIs(t, err, flamingo.ErrMatcherNotStarted, "Cancel after Stop")
	assert.False(t, ok, "Cancel after Stop")
	assert.Zero(t, m.Len())
}

func TestMemoryMatcher_Start(t *testing.T) {
	ctx := t.Context()
	m := flamingo.NewMemoryMatcher()
	assert.Error(t, m.Start(nil), "nil report")
	var first []flamingo.Pair
	require.NoError(t, m.Start(func(p flamingo.Pair) { first = append(first, p) }))
	err := m.Start(func(flamingo.Pair) { t.Error("the second Start's report was installed") })
	require.Error(t, err, "second Start")
	assert.NotErrorIs(t, err, flamingo.ErrMatcherStopped, "second Start on a running matcher")

	// The first report function is still the one in use.
	require.NoError(t, m.Enqueue(ctx, memoryTicket("a", flamingo.GenderMale, flamingo.PreferAny)))
	require.NoError(t, m.Enqueue(ctx, memoryTicket("b", flamingo.GenderMale, flamingo.PreferAny)))
	assert.Len(t, first, 1)

	require.NoError(t, m.Stop(ctx))
	assert.ErrorIs(t, m.Start(func(flamingo.Pair) {}), flamingo.ErrMatcherStopped, "Start after Stop")
	require.NoError(t, m.Stop(ctx), "second Stop")
	assert.ErrorIs(t, m.Start(func(flamingo.Pair) {}), flamingo.ErrMatcherStopped, "Start after a second Stop")
}

// A matcher stopped before it was ever started is stopped too: Stop is final.
func TestMemoryMatcher_StopBeforeStart(t *testing.T) {
	m := flamingo.NewMemoryMatcher()
	require.NoError(t, m.Stop(t.Context()))
	assert.ErrorIs(t, m.Start(func(flamingo.Pair) {}), flamingo.ErrMatcherStopped)
}

// Defect 6 of issue 10: a matcher that an Engine's Shutdown stopped, given to a second
// New, is refused with an error that says it was stopped.
func TestNew_StoppedMatcher(t *testing.T) {
	m := flamingo.NewMemoryMatcher()
	e, err := flamingo.New(flamingo.Config{Matcher: m})
	require.NoError(t, err)
	require.NoError(t, e.Shutdown(t.Context()))

	e2, err := flamingo.New(flamingo.Config{Matcher: m})
	require.ErrorIs(t, err, flamingo.ErrMatcherStopped)
	assert.Nil(t, e2)
	assert.Contains(t, err.Error(), "stopped")
}

func TestMemoryMatcher_Len(t *testing.T) {
	ctx := t.Context()
	m := flamingo.NewMemoryMatcher()
	require.NoError(t, m.Start(func(flamingo.Pair) {}))
	t.Cleanup(func() { assert.NoError(t, m.Stop(context.Background())) })

	assert.Zero(t, m.Len())
	require.NoError(t, m.Enqueue(ctx, memoryTicket("a", flamingo.GenderFemale, flamingo.PreferMale)))
	require.NoError(t, m.Enqueue(ctx, memoryTicket("b", flamingo.GenderFemale, flamingo.PreferMale)))
	assert.Equal(t, 2, m.Len(), "two waiting")
	require.NoError(t, m.Enqueue(ctx, memoryTicket("c", flamingo.GenderMale, flamingo.PreferAny)))
	assert.Equal(t, 1, m.Len(), "c paired with a")
	_, err := m.Cancel(ctx, "b")
	require.NoError(t, err)
	assert.Zero(t, m.Len(), "b cancelled")
}

// The in-memory matcher documents that every pair is reported before Enqueue returns.
func TestMemoryMatcher_ReportsBeforeEnqueueReturns(t *testing.T) {
	ctx := t.Context()
	m := flamingo.NewMemoryMatcher()
	var pairs []flamingo.Pair
	require.NoError(t, m.Start(func(p flamingo.Pair) { pairs = append(pairs, p) }))
	t.Cleanup(func() { assert.NoError(t, m.Stop(context.Background())) })

	require.NoError(t, m.Enqueue(ctx, memoryTicket("a", flamingo.GenderMale, flamingo.PreferAny)))
	assert.Empty(t, pairs)
	require.NoError(t, m.Enqueue(ctx, memoryTicket("b", flamingo.GenderOther, flamingo.PreferAny)))
	require.Len(t, pairs, 1)
	assert.Equal(t, "a", pairs[0].A.User)
	assert.Equal(t, "b", pairs[0].B.User)
}

// BenchmarkMemoryMatcher_Enqueue measures one Enqueue against a queue of a given size
// with mixed genders and preferences. Every other Enqueue pairs the newcomer with the
// longest-waiting compatible ticket; the one in between puts a fresh ticket in the place
// of the one that left, so the queue keeps its size. The cost should not grow with it.
func BenchmarkMemoryMatcher_Enqueue(b *testing.B) {
	for _, waiting := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("waiting=%d", waiting), func(b *testing.B) {
			benchmarkMemoryMatcherEnqueue(b, waiting)
		})
	}
}

func benchmarkMemoryMatcherEnqueue(b *testing.B, waiting int) {
	type kind struct {
		g flamingo.Gender
		p flamingo.Preference
	}
	// No two of these waiting kinds accept each other, so they stay queued together.
	waitKinds := []kind{
		{flamingo.GenderFemale, flamingo.PreferMale},
		{flamingo.GenderOther, flamingo.PreferMale},
		{flamingo.GenderFemale, flamingo.PreferOther},
	}
	// Each of these newcomers accepts, and is accepted by, at least one waiting kind.
	joinKinds := []kind{
		{flamingo.GenderMale, flamingo.PreferAny},
		{flamingo.GenderOther, flamingo.PreferFemale},
		{flamingo.GenderMale, flamingo.PreferFemale},
	}
	ctx := context.Background()
	var (
		left    flamingo.Ticket // the waiter taken by the last pair
		matches int
	)
	m := flamingo.NewMemoryMatcher()
	if err := m.Start(func(p flamingo.Pair) { left, matches = p.A, matches+1 }); err != nil {
		b.Fatal(err)
	}
	defer m.Stop(ctx)

	base := time.Now()
	clock := 0
	next := func() time.Time {
		clock++
		return base.Add(time.Duration(clock) * time.Microsecond)
	}
	for i := range waiting {
		k := waitKinds[i%len(waitKinds)]
		tk := flamingo.Ticket{User: fmt.Sprintf("w%d", i), Gender: k.g, Preference: k.p, JoinedAt: next()}
		if err := m.Enqueue(ctx, tk); err != nil {
			b.Fatal(err)
		}
	}
	if m.Len() != waiting || matches != 0 {
		b.Fatalf("%d waiting and %d pairs after filling, want %d and 0", m.Len(), matches, waiting)
	}
	joiners := make([]flamingo.Ticket, len(joinKinds))
	for i, k := range joinKinds {
		joiners[i] = flamingo.Ticket{User: fmt.Sprintf("j%d", i), Gender: k.g, Preference: k.p}
	}

	b.ReportAllocs()
	n := 0 // enqueues measured
	for ; b.Loop(); n++ {
		var tk flamingo.Ticket
		if n%2 == 0 { // a newcomer, paired at once
			tk = joiners[(n/2)%len(joiners)]
		} else { // a fresh ticket in place of the waiter that left
			tk = left
		}
		tk.JoinedAt = next()
		if err := m.Enqueue(ctx, tk); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if want := n/2 + n%2; matches != want {
		b.Fatalf("%d pairs in %d enqueues, want %d", matches, n, want)
	}
	if l := m.Len(); l < waiting-1 || l > waiting {
		b.Fatalf("%d waiting at the end, want about %d", l, waiting)
	}
	b.ReportMetric(float64(matches)/b.Elapsed().Seconds(), "matches/s")
}

// The timer relaxes each waiter at its RelaxAt, the earliest first, also when a later
// Enqueue brings an earlier RelaxAt than the one it was set for; nothing is paired
// before. synctest's clock makes the waits exact.
func TestMemoryMatcher_RelaxTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		m := flamingo.NewMemoryMatcher()
		var (
			mu    sync.Mutex
			pairs []flamingo.Pair
			at    []time.Duration
		)
		start := time.Now()
		require.NoError(t, m.Start(func(p flamingo.Pair) {
			mu.Lock()
			defer mu.Unlock()
			pairs = append(pairs, p)
			at = append(at, time.Since(start))
		}))
		reported := func() ([]flamingo.Pair, []time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(pairs), slices.Clone(at)
		}
		tk := func(user string, g flamingo.Gender, p flamingo.Preference, joined int, relaxIn time.Duration, likes ...string) flamingo.Ticket {
			return flamingo.Ticket{User: user, Gender: g, Preference: p, Interests: likes,
				JoinedAt: start.Add(time.Duration(joined) * time.Millisecond), RelaxAt: start.Add(relaxIn)}
		}
		// Two relaxed women wait; two men who like what they do not arrive, the
		// second relaxing first.
		require.NoError(t, m.Enqueue(ctx, tk("w1", flamingo.GenderFemale, flamingo.PreferMale, 1, 0)))
		require.NoError(t, m.Enqueue(ctx, tk("w2", flamingo.GenderFemale, flamingo.PreferMale, 2, -time.Second, "art")))
		require.NoError(t, m.Enqueue(ctx, tk("m1", flamingo.GenderMale, flamingo.PreferFemale, 3, 10*time.Second, "chess")))
		require.NoError(t, m.Enqueue(ctx, tk("m2", flamingo.GenderMale, flamingo.PreferFemale, 4, 5*time.Second, "golf")))
		synctest.Wait()
		got, _ := reported()
		require.Empty(t, got, "paired before any RelaxAt")

		time.Sleep(5 * time.Second)
		synctest.Wait()
		got, gotAt := reported()
		require.Len(t, got, 1)
		assert.Equal(t, []string{"w1", "m2"}, []string{got[0].A.User, got[0].B.User}, "m2 relaxes first and meets the oldest")
		assert.Equal(t, 5*time.Second, gotAt[0])

		time.Sleep(5 * time.Second)
		synctest.Wait()
		got, gotAt = reported()
		require.Len(t, got, 2)
		assert.Equal(t, []string{"w2", "m1"}, []string{got[1].A.User, got[1].B.User})
		assert.Equal(t, 10*time.Second, gotAt[1])
		assert.Zero(t, m.Len())

		// A waiter whose RelaxAt is to come, then Stop: the timer goes with it.
		require.NoError(t, m.Enqueue(ctx, tk("m3", flamingo.GenderMale, flamingo.PreferFemale, 5, time.Minute, "chess")))
		require.NoError(t, m.Stop(ctx))
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		got, _ = reported()
		assert.Len(t, got, 2)
	})
}

// Stop waits for the pairs the timer has made to be reported, so that no report
// call outlives it.
func TestMemoryMatcher_StopWaitsForTimerReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		m := flamingo.NewMemoryMatcher()
		entered, release := make(chan struct{}), make(chan struct{})
		require.NoError(t, m.Start(func(flamingo.Pair) {
			close(entered)
			<-release
		}))
		now := time.Now()
		require.NoError(t, m.Enqueue(ctx, flamingo.Ticket{User: "a", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, JoinedAt: now}))
		require.NoError(t, m.Enqueue(ctx, flamingo.Ticket{User: "b", Gender: flamingo.GenderFemale, Preference: flamingo.PreferAny,
			JoinedAt: now, Interests: []string{"art"}, RelaxAt: now.Add(time.Second)}))
		<-entered // the timer's report call is under way

		stopped := make(chan error, 1)
		go func() { stopped <- m.Stop(ctx) }()
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("Stop returned while a report call was under way")
		default:
		}
		close(release)
		require.NoError(t, <-stopped)
	})
}
