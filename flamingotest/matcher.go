package flamingotest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

const (
	// matcherWait bounds each wait for a pair that a matcher may report from another
	// goroutine, after Enqueue has returned. It is only reached by a test about to fail.
	matcherWait = 5 * time.Second
	matcherTick = time.Millisecond

	// matcherSeedEnv names the environment variable that fixes the seed of the
	// randomized subtests, to replay a failure.
	matcherSeedEnv = "FLAMINGOTEST_SEED"
)

var (
	matcherGenders     = []flamingo.Gender{flamingo.GenderMale, flamingo.GenderFemale, flamingo.GenderOther}
	matcherPreferences = []flamingo.Preference{flamingo.PreferAny, flamingo.PreferMale, flamingo.PreferFemale, flamingo.PreferOther}
)

// TestMatcher checks that the [flamingo.Matcher] made by newMatcher keeps the contract
// documented on that interface: pairs are mutual, fair by JoinedAt and atomic, no two
// compatible tickets are left waiting, and Start, Enqueue and Cancel return what the
// contract says, also under concurrent use and out of turn (before Start, after Stop).
// The rules of matching v2 have a subtest each: a shared interest goes before age, no
// pair of strangers sharing no interest before both are relaxed, a waiter paired when
// its RelaxAt comes without a new arrival (and not before), Pools never crossed, Avoid
// honoured both ways, and every field of a ticket carried unchanged into its Pair.
// An implementation runs it from its own tests:
//
//	func TestRedisMatcher_Conformance(t *testing.T) {
//		flamingotest.TestMatcher(t, func(t *testing.T) flamingo.Matcher {
//			return newTestRedisMatcher(t)
//		})
//	}
//
// newMatcher is called once per subtest, several hundred times in all, and must return
// a matcher that has not been started and shares no tickets with any other it returned.
// Each subtest calls Start once and Stop once, from its cleanup, except those that check
// the life cycle: BeforeStart calls Enqueue and Cancel before Start, and AfterStop calls
// Enqueue, Cancel and Start after Stop.
//
// Pairs may be reported from any goroutine and after Enqueue returns: the suite waits
// for each pair it expects, and fails after five seconds without one. A matcher may
// relax waiters on a tick of its own: RelaxWithoutArrival sets a RelaxAt 400 ms ahead
// and waits up to five seconds past it. It tells a
// waiting ticket from a paired one by calling Cancel, which must return true only for a
// ticket that was still waiting.
//
// The randomized subtests log their seed, and the model-based ones carry it in their
// names; set the environment variable FLAMINGOTEST_SEED to that number to replay them.
func TestMatcher(t *testing.T, newMatcher func(t *testing.T) flamingo.Matcher) {
	t.Helper()
	t.Run("StartTwice", func(t *testing.T) { testMatcherStartTwice(t, newMatcher) })
	t.Run("BeforeStart", func(t *testing.T) { testMatcherBeforeStart(t, newMatcher) })
	t.Run("AfterStop", func(t *testing.T) { testMatcherAfterStop(t, newMatcher) })
	t.Run("MutualPreferences", func(t *testing.T) { testMatcherMutualPreferences(t, newMatcher) })
	t.Run("AllCombinations", func(t *testing.T) { testMatcherAllCombinations(t, newMatcher) })
	t.Run("FairEarliestJoinedAt", func(t *testing.T) { testMatcherFairEarliestJoinedAt(t, newMatcher) })
	t.Run("FairReenqueuedOlderFirst", func(t *testing.T) { testMatcherFairReenqueued(t, newMatcher) })
	t.Run("PairAWaitedLonger", func(t *testing.T) { testMatcherPairOrder(t, newMatcher) })
	t.Run("NoSelfMatch", func(t *testing.T) { testMatcherNoSelfMatch(t, newMatcher) })
	t.Run("DuplicateEnqueue", func(t *testing.T) { testMatcherDuplicate(t, newMatcher) })
	t.Run("InvalidTicket", func(t *testing.T) { testMatcherInvalid(t, newMatcher) })
	t.Run("CancelWaiting", func(t *testing.T) { testMatcherCancelWaiting(t, newMatcher) })
	t.Run("CancelUnknownOrPaired", func(t *testing.T) { testMatcherCancelNotWaiting(t, newMatcher) })
	t.Run("ReportMayEnqueue", func(t *testing.T) { testMatcherReportReentry(t, newMatcher) })
	t.Run("InterestOverAge", func(t *testing.T) { testMatcherInterestOverAge(t, newMatcher) })
	t.Run("NoPairBeforeRelaxAt", func(t *testing.T) { testMatcherNoPairBeforeRelaxAt(t, newMatcher) })
	t.Run("RelaxWithoutArrival", func(t *testing.T) { testMatcherRelaxWithoutArrival(t, newMatcher) })
	t.Run("PoolsNeverCross", func(t *testing.T) { testMatcherPoolsNeverCross(t, newMatcher) })
	t.Run("AvoidBothWays", func(t *testing.T) { testMatcherAvoidBothWays(t, newMatcher) })
	t.Run("CarriesFields", func(t *testing.T) { testMatcherCarriesFields(t, newMatcher) })
	t.Run("Concurrent", func(t *testing.T) { testMatcherConcurrent(t, newMatcher) })
	t.Run("Model", func(t *testing.T) { testMatcherModel(t, newMatcher) })
}

// matcherRecorder collects the pairs a matcher reports, from any goroutine.
type matcherRecorder struct {
	mu    sync.Mutex
	pairs []flamingo.Pair
	at    []time.Time // when each pair was reported

	// hook, if set before Start, is called after each pair is recorded, without mu.
	hook func(flamingo.Pair)
}

func (r *matcherRecorder) report(p flamingo.Pair) {
	now := time.Now()
	r.mu.Lock()
	r.pairs = append(r.pairs, p)
	r.at = append(r.at, now)
	r.mu.Unlock()
	if r.hook != nil {
		r.hook(p)
	}
}

func (r *matcherRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pairs)
}

func (r *matcherRecorder) snapshot() []flamingo.Pair {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pairs)
}

func (r *matcherRecorder) times() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.at)
}

// matcherRig is one started matcher under test, with its recorder.
type matcherRig struct {
	t    *testing.T
	m    flamingo.Matcher
	rec  *matcherRecorder
	base time.Time
}

// startMatcher makes a fresh matcher, starts it with a recorder (calling hook for each
// pair if hook is not nil) and stops it when the test ends.
func startMatcher(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher, hook func(flamingo.Pair)) *matcherRig {
	t.Helper()
	m := newMatcher(t)
	require.NotNil(t, m, "newMatcher returned nil")
	rec := &matcherRecorder{hook: hook}
	require.NoError(t, m.Start(rec.report), "Start")
	t.Cleanup(func() { stopMatcher(t, m) })
	return &matcherRig{
		t:   t,
		m:   m,
		rec: rec,
		// Whole milliseconds in the past, so that an implementation that stores
		// JoinedAt with millisecond precision gives it back unchanged.
		base: time.Now().Add(-time.Hour).Truncate(time.Millisecond),
	}
}

// stopMatcher calls Stop, failing instead of hanging if Stop never returns (a lock
// left held by a report call that deadlocked, say).
func stopMatcher(t *testing.T, m flamingo.Matcher) {
	ctx, cancel := context.WithTimeout(context.Background(), matcherWait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Stop(ctx) }()
	select {
	case err := <-done:
		assert.NoError(t, err, "Stop")
	case <-time.After(matcherWait + time.Second):
		t.Error("Stop did not return")
	}
}

// ticket returns a ticket that joined at the rig's base time plus at milliseconds.
func (r *matcherRig) ticket(user string, g flamingo.Gender, p flamingo.Preference, at int) flamingo.Ticket {
	return flamingo.Ticket{User: user, Gender: g, Preference: p, JoinedAt: r.base.Add(time.Duration(at) * time.Millisecond)}
}

func (r *matcherRig) enqueue(tk flamingo.Ticket) {
	r.t.Helper()
	require.NoError(r.t, r.m.Enqueue(r.t.Context(), tk), "Enqueue(%s)", describeTicket(tk))
}

func (r *matcherRig) cancel(user string) bool {
	r.t.Helper()
	ok, err := r.m.Cancel(r.t.Context(), user)
	require.NoError(r.t, err, "Cancel(%q)", user)
	return ok
}

// cancelWaiting cancels each user's ticket and fails unless Cancel returns true, which
// proves that the ticket was still waiting and had never been paired.
func (r *matcherRig) cancelWaiting(users ...string) {
	r.t.Helper()
	for _, u := range users {
		require.True(r.t, r.cancel(u), "Cancel(%q) = false: the ticket should still be waiting", u)
	}
}

// waitPairs waits until n pairs have been reported and returns them, failing if more
// have been.
func (r *matcherRig) waitPairs(n int) []flamingo.Pair {
	r.t.Helper()
	if r.rec.count() < n {
		require.Eventually(r.t, func() bool { return r.rec.count() >= n }, matcherWait, matcherTick,
			"waiting for %d reported pairs", n)
	}
	pairs := r.rec.snapshot()
	require.Len(r.t, pairs, n, "reported pairs: %s", describePairs(pairs))
	return pairs
}

// assertNeverPaired checks that no reported pair holds any of users.
func (r *matcherRig) assertNeverPaired(users ...string) {
	r.t.Helper()
	for _, p := range r.rec.snapshot() {
		for _, u := range users {
			assert.False(r.t, p.A.User == u || p.B.User == u, "%s was paired after its Cancel returned true: %s", u, describePair(p))
		}
	}
}

// ticketView is the part of a ticket the suite compares, in a form that compares equal
// for equal instants.
type ticketView struct {
	User       string
	Gender     flamingo.Gender
	Preference flamingo.Preference
	JoinedAt   string
}

func viewTicket(tk flamingo.Ticket) ticketView {
	return ticketView{tk.User, tk.Gender, tk.Preference, tk.JoinedAt.UTC().Format(time.RFC3339Nano)}
}

type pairView struct{ A, B ticketView }

func viewPair(p flamingo.Pair) pairView { return pairView{viewTicket(p.A), viewTicket(p.B)} }

func viewPairs(ps []flamingo.Pair) []pairView {
	vs := make([]pairView, len(ps))
	for i, p := range ps {
		vs[i] = viewPair(p)
	}
	return vs
}

func assertPair(t *testing.T, got flamingo.Pair, wantA, wantB flamingo.Ticket) {
	t.Helper()
	assert.Equal(t, viewPair(flamingo.Pair{A: wantA, B: wantB}), viewPair(got), "pair")
}

func describeTicket(tk flamingo.Ticket) string {
	return fmt.Sprintf("%s(%s/%s@%s)", tk.User, tk.Gender, tk.Preference, tk.JoinedAt.Format("15:04:05.000000"))
}

func describePair(p flamingo.Pair) string {
	return "{A:" + describeTicket(p.A) + " B:" + describeTicket(p.B) + "}"
}

func describePairs(ps []flamingo.Pair) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = describePair(p)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// wantAccepts is the suite's own statement of whom a preference accepts, written apart
// from [flamingo.Preference.Accepts] so that a mistake there cannot hide here.
func wantAccepts(p flamingo.Preference, g flamingo.Gender) bool {
	switch p {
	case flamingo.PreferAny:
		return true
	case flamingo.PreferMale:
		return g == flamingo.GenderMale
	case flamingo.PreferFemale:
		return g == flamingo.GenderFemale
	case flamingo.PreferOther:
		return g == flamingo.GenderOther
	}
	return false
}

// wantCompatible reports whether two tickets may be paired: different users, each
// accepting the other's gender.
func wantCompatible(a, b flamingo.Ticket) bool {
	return a.User != b.User && wantAccepts(a.Preference, b.Gender) && wantAccepts(b.Preference, a.Gender)
}

// testMatcherStartTwice checks that a second Start fails, and does not replace the
// first report function.
func testMatcherStartTwice(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	r := startMatcher(t, newMatcher, nil)
	err := r.m.Start(func(p flamingo.Pair) { t.Errorf("the second Start's report function got %s", describePair(p)) })
	require.Error(t, err, "second Start")
	assert.NotErrorIs(t, err, flamingo.ErrMatcherStopped, "second Start on a matcher that was never stopped")

	a := r.ticket("a", flamingo.GenderFemale, flamingo.PreferMale, 1)
	b := r.ticket("b", flamingo.GenderMale, flamingo.PreferFemale, 2)
	r.enqueue(a)
	r.enqueue(b)
	assertPair(t, r.waitPairs(1)[0], a, b)
}

// testMatcherBeforeStart checks that Enqueue and Cancel before Start return
// ErrMatcherNotStarted, and that the ticket refused is not kept for later.
func testMatcherBeforeStart(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	m := newMatcher(t)
	require.NotNil(t, m, "newMatcher returned nil")
	ctx := t.Context()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	early := flamingo.Ticket{User: "early", Gender: flamingo.GenderFemale, Preference: flamingo.PreferMale, JoinedAt: base}
	assert.ErrorIs(t, m.Enqueue(ctx, early), flamingo.ErrMatcherNotStarted, "Enqueue before Start")
	ok, err := m.Cancel(ctx, "early")
	assert.ErrorIs(t, err, flamingo.ErrMatcherNotStarted, "Cancel before Start")
	assert.False(t, ok, "Cancel before Start")

	rec := &matcherRecorder{}
	require.NoError(t, m.Start(rec.report), "Start")
	t.Cleanup(func() { stopMatcher(t, m) })
	r := &matcherRig{t: t, m: m, rec: rec, base: base}
	// A man who would meet the woman refused before Start finds nobody.
	r.enqueue(r.ticket("late", flamingo.GenderMale, flamingo.PreferAny, 1))
	r.cancelWaiting("late")
	assert.False(t, r.cancel("early"), "the ticket refused before Start is waiting")
	assert.Zero(t, rec.count(), "pairs reported: %s", describePairs(rec.snapshot()))
}

// testMatcherAfterStop checks that Enqueue and Cancel after Stop return
// ErrMatcherNotStarted, and Start ErrMatcherStopped.
func testMatcherAfterStop(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	m := newMatcher(t)
	require.NotNil(t, m, "newMatcher returned nil")
	ctx := t.Context()
	rec := &matcherRecorder{}
	require.NoError(t, m.Start(rec.report), "Start")
	r := &matcherRig{t: t, m: m, rec: rec, base: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	r.enqueue(r.ticket("waiting", flamingo.GenderFemale, flamingo.PreferMale, 1))
	stopMatcher(t, m)

	late := r.ticket("late", flamingo.GenderMale, flamingo.PreferAny, 2)
	assert.ErrorIs(t, m.Enqueue(ctx, late), flamingo.ErrMatcherNotStarted, "Enqueue after Stop")
	ok, err := m.Cancel(ctx, "waiting")
	assert.ErrorIs(t, err, flamingo.ErrMatcherNotStarted, "Cancel after Stop")
	assert.False(t, ok, "Cancel after Stop")
	err = m.Start(func(p flamingo.Pair) { t.Errorf("a restarted matcher reported %s", describePair(p)) })
	if !assert.ErrorIs(t, err, flamingo.ErrMatcherStopped, "Start after Stop") && err == nil {
		stopMatcher(t, m) // it started again: release what it holds
	}
	assert.Zero(t, rec.count(), "pairs reported: %s", describePairs(rec.snapshot()))
}

func testMatcherMutualPreferences(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	type side struct {
		g flamingo.Gender
		p flamingo.Preference
	}
	const (
		male   = flamingo.GenderMale
		female = flamingo.GenderFemale
		other  = flamingo.GenderOther
	)
	tests := []struct {
		name         string
		giveA, giveB side // A joins first
		want         bool // paired; otherwise both stay waiting
	}{
		{"both any", side{male, flamingo.PreferAny}, side{female, flamingo.PreferAny}, true},
		{"same gender both any", side{male, flamingo.PreferAny}, side{male, flamingo.PreferAny}, true},
		{"each wants the other", side{male, flamingo.PreferFemale}, side{female, flamingo.PreferMale}, true},
		{"same gender each wants it", side{female, flamingo.PreferFemale}, side{female, flamingo.PreferFemale}, true},
		{"specific meets any", side{female, flamingo.PreferFemale}, side{female, flamingo.PreferAny}, true},
		{"other meets other", side{other, flamingo.PreferOther}, side{other, flamingo.PreferAny}, true},
		{"other and male", side{other, flamingo.PreferMale}, side{male, flamingo.PreferOther}, true},
		{"any meets specific", side{male, flamingo.PreferAny}, side{other, flamingo.PreferMale}, true},
		{"second refuses first", side{male, flamingo.PreferFemale}, side{female, flamingo.PreferFemale}, false},
		{"first refuses second", side{male, flamingo.PreferFemale}, side{male, flamingo.PreferAny}, false},
		{"any refused by specific", side{female, flamingo.PreferAny}, side{other, flamingo.PreferMale}, false},
		{"same wish, wrong gender", side{female, flamingo.PreferMale}, side{female, flamingo.PreferMale}, false},
		{"neither accepts", side{male, flamingo.PreferMale}, side{female, flamingo.PreferFemale}, false},
		{"other wants other", side{other, flamingo.PreferOther}, side{male, flamingo.PreferOther}, false},
		{"one way only", side{male, flamingo.PreferFemale}, side{female, flamingo.PreferOther}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startMatcher(t, newMatcher, nil)
			a := r.ticket("a", tt.giveA.g, tt.giveA.p, 1)
			b := r.ticket("b", tt.giveB.g, tt.giveB.p, 2)
			r.enqueue(a)
			r.enqueue(b)
			if tt.want {
				pairs := r.waitPairs(1)
				assertPair(t, pairs[0], a, b)
				assert.False(t, r.cancel("a"), "Cancel of a paired ticket")
				assert.False(t, r.cancel("b"), "Cancel of a paired ticket")
				return
			}
			r.cancelWaiting("a", "b")
			assert.Zero(t, r.rec.count(), "pairs reported: %s", describePairs(r.rec.snapshot()))
		})
	}
}

// testMatcherAllCombinations tries every ordered pair of (gender, preference) against
// the suite's own rule.
func testMatcherAllCombinations(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	for _, ga := range matcherGenders {
		for _, pa := range matcherPreferences {
			for _, gb := range matcherGenders {
				for _, pb := range matcherPreferences {
					name := fmt.Sprintf("%s-%s+%s-%s", ga, pa, gb, pb)
					t.Run(name, func(t *testing.T) {
						r := startMatcher(t, newMatcher, nil)
						a := r.ticket("a", ga, pa, 1)
						b := r.ticket("b", gb, pb, 2)
						r.enqueue(a)
						r.enqueue(b)
						if wantCompatible(a, b) {
							assertPair(t, r.waitPairs(1)[0], a, b)
							return
						}
						r.cancelWaiting("a", "b")
						assert.Zero(t, r.rec.count(), "pairs reported: %s", describePairs(r.rec.snapshot()))
					})
				}
			}
		}
	}
}

// matchInTurn enqueues each joiner in turn and checks that it is paired with the
// waiter at the same index, which waited longer and so is Pair.A.
func (r *matcherRig) matchInTurn(joiners, waiters []flamingo.Ticket) {
	r.t.Helper()
	n := r.rec.count()
	for i, j := range joiners {
		r.enqueue(j)
		pairs := r.waitPairs(n + i + 1)
		assertPair(r.t, pairs[n+i], waiters[i], j)
	}
}

func testMatcherFairEarliestJoinedAt(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	r := startMatcher(t, newMatcher, nil)
	// None of these accepts another; all but the first accept a man, and they join in
	// an order that differs from their JoinedAt.
	lone := r.ticket("lone", flamingo.GenderOther, flamingo.PreferFemale, 1) // oldest, but refuses men
	w1 := r.ticket("w1", flamingo.GenderFemale, flamingo.PreferMale, 30)
	w2 := r.ticket("w2", flamingo.GenderOther, flamingo.PreferMale, 10)
	w3 := r.ticket("w3", flamingo.GenderFemale, flamingo.PreferMale, 20)
	w4 := r.ticket("w4", flamingo.GenderOther, flamingo.PreferMale, 40)
	for _, w := range []flamingo.Ticket{lone, w1, w2, w3, w4} {
		r.enqueue(w)
	}
	var joiners []flamingo.Ticket
	for i := range 4 {
		joiners = append(joiners, r.ticket(fmt.Sprintf("j%d", i), flamingo.GenderMale, flamingo.PreferAny, 100+i))
	}
	r.matchInTurn(joiners, []flamingo.Ticket{w2, w3, w1, w4})
	r.cancelWaiting("lone")
}

func testMatcherFairReenqueued(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	r := startMatcher(t, newMatcher, nil)
	a := r.ticket("a", flamingo.GenderFemale, flamingo.PreferMale, 50)
	b := r.ticket("b", flamingo.GenderFemale, flamingo.PreferMale, 60)
	// Put back after a and b joined, keeping their original, older JoinedAt.
	c := r.ticket("c", flamingo.GenderFemale, flamingo.PreferMale, 10)
	d := r.ticket("d", flamingo.GenderOther, flamingo.PreferMale, 20)
	for _, w := range []flamingo.Ticket{a, b, c, d} {
		r.enqueue(w)
	}
	var joiners []flamingo.Ticket
	for i := range 4 {
		joiners = append(joiners, r.ticket(fmt.Sprintf("j%d", i), flamingo.GenderMale, flamingo.PreferAny, 100+i))
	}
	r.matchInTurn(joiners, []flamingo.Ticket{c, d, a, b})
}

func testMatcherPairOrder(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	tests := []struct {
		name           string
		giveWaiterAt   int // JoinedAt of the ticket that joins first, in ms
		giveArrivingAt int // JoinedAt of the ticket that pairs with it
		wantWaiterIsA  bool
	}{
		{"waiter joined earlier", 10, 20, true},
		{"arriving ticket put back with an older JoinedAt", 20, 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startMatcher(t, newMatcher, nil)
			w := r.ticket("waiter", flamingo.GenderFemale, flamingo.PreferMale, tt.giveWaiterAt)
			j := r.ticket("arriving", flamingo.GenderMale, flamingo.PreferFemale, tt.giveArrivingAt)
			r.enqueue(w)
			r.enqueue(j)
			got := r.waitPairs(1)[0]
			if tt.wantWaiterIsA {
				assertPair(t, got, w, j)
			} else {
				assertPair(t, got, j, w)
			}
		})
	}
}

func testMatcherNoSelfMatch(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	r := startMatcher(t, newMatcher, nil)
	// A man who accepts anyone would accept himself.
	u := r.ticket("u", flamingo.GenderMale, flamingo.PreferAny, 1)
	r.enqueue(u)
	assert.ErrorIs(t, r.m.Enqueue(t.Context(), u), flamingo.ErrAlreadyQueued, "the same ticket again")
	r.cancelWaiting("u")

	// A new ticket for the user does not meet the cancelled one.
	r.enqueue(r.ticket("u", flamingo.GenderMale, flamingo.PreferAny, 2))
	r.cancelWaiting("u")
	assert.Zero(t, r.rec.count(), "pairs reported: %s", describePairs(r.rec.snapshot()))
}

func testMatcherDuplicate(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	r := startMatcher(t, newMatcher, nil)
	u := r.ticket("u", flamingo.GenderFemale, flamingo.PreferMale, 1)
	r.enqueue(u)

	dup := r.ticket("u", flamingo.GenderMale, flamingo.PreferAny, 2)
	assert.ErrorIs(t, r.m.Enqueue(t.Context(), dup), flamingo.ErrAlreadyQueued)

	// The waiting ticket is still the first one: v accepts only women.
	v := r.ticket("v", flamingo.GenderMale, flamingo.PreferFemale, 3)
	r.enqueue(v)
	assertPair(t, r.waitPairs(1)[0], u, v)

	// Once paired, the user may queue again.
	r.enqueue(r.ticket("u", flamingo.GenderFemale, flamingo.PreferMale, 4))
	r.cancelWaiting("u")
}

func testMatcherInvalid(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	tests := []struct {
		name string
		give flamingo.Ticket
	}{
		{"no user", flamingo.Ticket{Gender: flamingo.GenderMale, Preference: flamingo.PreferAny}},
		{"no gender", flamingo.Ticket{User: "x", Preference: flamingo.PreferAny}},
		{"unknown gender", flamingo.Ticket{User: "x", Gender: "robot", Preference: flamingo.PreferAny}},
		{"gender any", flamingo.Ticket{User: "x", Gender: "any", Preference: flamingo.PreferAny}},
		{"gender in capitals", flamingo.Ticket{User: "x", Gender: "Male", Preference: flamingo.PreferAny}},
		{"no preference", flamingo.Ticket{User: "x", Gender: flamingo.GenderMale}},
		{"unknown preference", flamingo.Ticket{User: "x", Gender: flamingo.GenderMale, Preference: "everyone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startMatcher(t, newMatcher, nil)
			// This waiter would accept any gender, known or not.
			w := r.ticket("w", flamingo.GenderMale, flamingo.PreferAny, 1)
			r.enqueue(w)
			tt.give.JoinedAt = r.base.Add(2 * time.Millisecond)

			assert.ErrorIs(t, r.m.Enqueue(t.Context(), tt.give), flamingo.ErrInvalidTicket)

			if tt.give.User != "" {
				assert.False(t, r.cancel(tt.give.User), "an invalid ticket must not be queued")
			}
			r.cancelWaiting("w")
			assert.Zero(t, r.rec.count(), "pairs reported: %s", describePairs(r.rec.snapshot()))
		})
	}
}

func testMatcherCancelWaiting(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	r := startMatcher(t, newMatcher, nil)
	a := r.ticket("a", flamingo.GenderFemale, flamingo.PreferMale, 1)
	r.enqueue(a)
	assert.True(t, r.cancel("a"), "Cancel of a waiting ticket")
	assert.False(t, r.cancel("a"), "second Cancel")

	// b would have met a, the oldest; it meets c instead.
	b := r.ticket("b", flamingo.GenderMale, flamingo.PreferFemale, 2)
	c := r.ticket("c", flamingo.GenderFemale, flamingo.PreferMale, 3)
	r.enqueue(b)
	r.enqueue(c)
	assertPair(t, r.waitPairs(1)[0], b, c)
	r.assertNeverPaired("a")
}

func testMatcherCancelNotWaiting(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	r := startMatcher(t, newMatcher, nil)
	assert.False(t, r.cancel("nobody"), "Cancel of an unknown user")

	r.enqueue(r.ticket("a", flamingo.GenderMale, flamingo.PreferAny, 1))
	r.enqueue(r.ticket("b", flamingo.GenderOther, flamingo.PreferMale, 2))
	r.waitPairs(1)
	assert.False(t, r.cancel("a"), "Cancel of a paired ticket")
	assert.False(t, r.cancel("b"), "Cancel of a paired ticket")
}

// testMatcherReportReentry puts a ticket back from within report, as the Engine does
// when a partner disconnected before the pair arrived. A matcher that holds its lock
// while it calls report deadlocks here.
func testMatcherReportReentry(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	var (
		m        flamingo.Matcher
		putBack  = make(chan error, 1)
		once     sync.Once
		ctx      = t.Context()
		hookDone = make(chan struct{})
	)
	r := startMatcher(t, func(t *testing.T) flamingo.Matcher {
		m = newMatcher(t)
		return m
	}, func(p flamingo.Pair) {
		once.Do(func() { // on the first pair, which should be a's
			defer close(hookDone)
			tk := p.A
			if p.B.User == "a" {
				tk = p.B
			}
			_, err := m.Cancel(ctx, "nobody")
			if err == nil {
				err = m.Enqueue(ctx, tk)
			}
			putBack <- err
		})
	})
	a := r.ticket("a", flamingo.GenderFemale, flamingo.PreferMale, 2)
	b := r.ticket("b", flamingo.GenderMale, flamingo.PreferFemale, 3)
	r.enqueue(a)

	enqueued := make(chan error, 1)
	go func() { enqueued <- m.Enqueue(ctx, b) }()
	select {
	case <-hookDone:
	case <-time.After(matcherWait):
		require.FailNow(t, "report did not return: Cancel or Enqueue called from report blocked")
	}
	require.NoError(t, <-putBack, "Enqueue from report")
	select {
	case err := <-enqueued:
		require.NoError(t, err, "Enqueue(b)")
	case <-time.After(matcherWait):
		require.FailNow(t, "Enqueue(b) did not return")
	}
	assertPair(t, r.waitPairs(1)[0], a, b)

	// a waits again with its original JoinedAt, so it is Pair.A against a newer ticket.
	c := r.ticket("c", flamingo.GenderMale, flamingo.PreferFemale, 10)
	r.enqueue(c)
	assertPair(t, r.waitPairs(2)[1], a, c)
}

// matcherSeed returns the seed for a randomized subtest: FLAMINGOTEST_SEED if set,
// otherwise a new one, logged so that a failure can be replayed.
func matcherSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv(matcherSeedEnv); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "%s", matcherSeedEnv)
		t.Logf("seed %d (from %s)", seed, matcherSeedEnv)
		return seed
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (set %s=%d to replay)", seed, matcherSeedEnv, seed)
	return seed
}

func randomTicketKind(r *rand.Rand) (flamingo.Gender, flamingo.Preference) {
	return matcherGenders[r.IntN(len(matcherGenders))], matcherPreferences[r.IntN(len(matcherPreferences))]
}

// testMatcherConcurrent enqueues and cancels a few thousand tickets from many goroutines
// and has a [Ledger] audit the run: every ticket ended in exactly one pair, was
// cancelled, or still waits; pairs are mutual, ordered, and fair where the order of
// the calls proves it; and no two compatible tickets are left waiting.
func testMatcherConcurrent(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	const (
		workers   = 16
		perWorker = 250
	)
	seed := matcherSeed(t)
	led := NewLedger()
	r := startMatcher(t, func(t *testing.T) flamingo.Matcher { return led.Matcher("", newMatcher(t)) }, nil)
	ctx := t.Context()

	var (
		poolMu sync.Mutex
		pool   []string // enqueued users that no goroutine has cancelled yet
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range perWorker {
				g, p := randomTicketKind(rnd)
				tk := flamingo.Ticket{User: fmt.Sprintf("w%02d-%03d", w, i), Gender: g, Preference: p, JoinedAt: time.Now()}
				if r.m.Enqueue(ctx, tk) != nil {
					continue // the ledger has it
				}
				poolMu.Lock()
				pool = append(pool, tk.User)
				var victim string
				if rnd.IntN(3) == 0 {
					k := len(pool) - 1 // the newest ticket, the likeliest to be waiting
					if rnd.IntN(2) == 0 {
						k = rnd.IntN(len(pool))
					}
					victim = pool[k]
					pool[k] = pool[len(pool)-1]
					pool = pool[:len(pool)-1]
				}
				poolMu.Unlock()
				switch {
				case victim == "":
				case rnd.IntN(4) == 0: // two Cancels race for the same ticket
					var both sync.WaitGroup
					both.Go(func() { _, _ = r.m.Cancel(ctx, victim) })
					both.Go(func() { _, _ = r.m.Cancel(ctx, victim) })
					both.Wait()
				default:
					_, _ = r.m.Cancel(ctx, victim)
				}
			}
		})
	}
	wg.Wait()
	err := led.Check(matcherWait)
	t.Log(led)
	assert.NoError(t, err, "seed %d", seed)
}

// matcherModel is the reference matcher of the model-based test: a plain list, scanned
// in full on every call.
type matcherModel struct {
	waiting []flamingo.Ticket
	pairs   []flamingo.Pair
}

// enqueue applies an Enqueue. The test gives distinct JoinedAt values to all tickets
// that can wait at the same time, so the earliest compatible waiter is unique.
func (md *matcherModel) enqueue(tk flamingo.Ticket) error {
	if tk.User == "" || !slices.Contains(matcherGenders, tk.Gender) || !slices.Contains(matcherPreferences, tk.Preference) {
		return flamingo.ErrInvalidTicket
	}
	best := -1
	for i, w := range md.waiting {
		if w.User == tk.User {
			return flamingo.ErrAlreadyQueued
		}
		if wantCompatible(w, tk) && (best < 0 || w.JoinedAt.Before(md.waiting[best].JoinedAt)) {
			best = i
		}
	}
	if best < 0 {
		md.waiting = append(md.waiting, tk)
		return nil
	}
	w := md.waiting[best]
	md.waiting = slices.Delete(md.waiting, best, best+1)
	if tk.JoinedAt.Before(w.JoinedAt) {
		md.pairs = append(md.pairs, flamingo.Pair{A: tk, B: w})
	} else {
		md.pairs = append(md.pairs, flamingo.Pair{A: w, B: tk})
	}
	return nil
}

func (md *matcherModel) cancel(user string) bool {
	for i, w := range md.waiting {
		if w.User == user {
			md.waiting = slices.Delete(md.waiting, i, i+1)
			return true
		}
	}
	return false
}

func (md *matcherModel) isWaiting(user string) bool {
	return slices.ContainsFunc(md.waiting, func(w flamingo.Ticket) bool { return w.User == user })
}

// matcherOpLog is the history of one random sequence, rendered only when an assertion
// fails and formats its message.
type matcherOpLog struct {
	seed uint64
	ops  []string
}

func (l *matcherOpLog) String() string {
	return fmt.Sprintf("seed %d (replay: %s=%d, run the subtest seed=%d); operations:\n\t%s",
		l.seed, matcherSeedEnv, l.seed, l.seed, strings.Join(l.ops, "\n\t"))
}

// testMatcherModel runs hundreds of random sequences of Enqueue and Cancel against the
// matcher and against a reference model, and compares every result and every pair.
func testMatcherModel(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	const sequences = 300
	root := matcherSeed(t)
	for i := range uint64(sequences) {
		seed := root + i
		if !t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runMatcherModel(t, newMatcher, seed) }) {
			return // one failing sequence says enough
		}
	}
}

func runMatcherModel(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, ^seed))
	r := startMatcher(t, newMatcher, nil)
	ctx := t.Context()
	var (
		md      matcherModel
		log     = &matcherOpLog{seed: seed}
		known   []string             // every user queued so far
		last    = map[string]int64{} // each user's last JoinedAt, in ms after base
		used    = map[int64]bool{}   // JoinedAt values handed out
		clock   = int64(1000)        // the newest JoinedAt
		newUser = 0
	)
	at := func(ms int64) time.Time { return r.base.Add(time.Duration(ms) * time.Millisecond) }
	later := func() int64 {
		clock += 1 + rnd.Int64N(3)
		used[clock] = true
		return clock
	}
	earlier := func() int64 { // an unused JoinedAt older than the newest
		for {
			if v := rnd.Int64N(clock); !used[v] {
				used[v] = true
				return v
			}
		}
	}
	notWaiting := func() []string {
		var us []string
		for _, u := range known {
			if !md.isWaiting(u) {
				us = append(us, u)
			}
		}
		return us
	}
	check := func() {
		t.Helper()
		want := viewPairs(md.pairs)
		if r.rec.count() < len(want) {
			require.Eventually(t, func() bool { return r.rec.count() >= len(want) }, matcherWait, matcherTick,
				"expected pair not reported; %s", log)
		}
		require.Equal(t, want, viewPairs(r.rec.snapshot()), "reported pairs differ from the model; %s", log)
	}
	enqueue := func(tk flamingo.Ticket) {
		t.Helper()
		wantErr := md.enqueue(tk)
		log.ops = append(log.ops, fmt.Sprintf("Enqueue(%s) -> want %v", describeTicket(tk), wantErr))
		err := r.m.Enqueue(ctx, tk)
		if wantErr != nil {
			require.ErrorIs(t, err, wantErr, "%s", log)
		} else {
			require.NoError(t, err, "%s", log)
		}
		if wantErr == nil {
			if !slices.Contains(known, tk.User) {
				known = append(known, tk.User)
			}
			last[tk.User] = tk.JoinedAt.Sub(r.base).Milliseconds()
		}
		check()
	}
	cancel := func(user string) {
		t.Helper()
		want := md.cancel(user)
		log.ops = append(log.ops, fmt.Sprintf("Cancel(%q) -> want %v", user, want))
		got, err := r.m.Cancel(ctx, user)
		require.NoError(t, err, "%s", log)
		require.Equal(t, want, got, "Cancel(%q); %s", user, log)
		check()
	}
	fresh := func() flamingo.Ticket {
		newUser++
		g, p := randomTicketKind(rnd)
		return flamingo.Ticket{User: fmt.Sprintf("u%d", newUser), Gender: g, Preference: p, JoinedAt: at(later())}
	}

	steps := 20 + rnd.IntN(41)
	for range steps {
		switch x := rnd.IntN(100); {
		case x < 40: // a new user joins
			enqueue(fresh())
		case x < 55: // a user who is not waiting joins again, or is put back
			us := notWaiting()
			if len(us) == 0 {
				enqueue(fresh())
				break
			}
			u := us[rnd.IntN(len(us))]
			g, p := randomTicketKind(rnd)
			ms := last[u] // put back with its original JoinedAt
			if rnd.IntN(2) == 0 {
				ms = earlier()
			}
			enqueue(flamingo.Ticket{User: u, Gender: g, Preference: p, JoinedAt: at(ms)})
		case x < 63: // a waiting user joins twice
			if len(md.waiting) == 0 {
				cancel("nobody")
				break
			}
			u := md.waiting[rnd.IntN(len(md.waiting))].User
			g, p := randomTicketKind(rnd)
			enqueue(flamingo.Ticket{User: u, Gender: g, Preference: p, JoinedAt: at(later())})
		case x < 68: // an invalid ticket, from a user never seen
			tk := fresh()
			switch rnd.IntN(3) {
			case 0:
				tk.User = ""
			case 1:
				tk.Gender = "robot"
			default:
				tk.Preference = "everyone"
			}
			enqueue(tk)
		default: // someone leaves the queue
			us := notWaiting()
			switch y := rnd.IntN(100); {
			case y < 55 && len(md.waiting) > 0:
				cancel(md.waiting[rnd.IntN(len(md.waiting))].User)
			case y < 90 && len(us) > 0:
				cancel(us[rnd.IntN(len(us))])
			default:
				cancel(fmt.Sprintf("stranger%d", rnd.IntN(5)))
			}
		}
	}
	// Whoever the model says waits must still wait.
	for _, w := range slices.Clone(md.waiting) {
		cancel(w.User)
	}
}
