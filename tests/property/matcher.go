// Package property checks a [flamingo.Matcher] with property-based tests: a
// pgregory.net/rapid state machine that compares every step with a model of the queue,
// and a concurrent run of thousands of joins and leaves whose end state is audited.
//
// It lives in a module of its own so that importers of flamingo never pull in rapid.
// Any Matcher can be checked; an implementation outside this module calls
// [CheckMatcher] and [CheckMatcherConcurrent] from its own tests:
//
//	func TestRedisMatcher_Properties(t *testing.T) {
//		newMatcher := func() flamingo.Matcher { return newTestRedisMatcher(t) }
//		property.CheckMatcher(t, newMatcher, property.Options{})
//		property.CheckMatcherRules(t, newMatcher, property.Options{})
//		property.CheckMatcherConcurrent(t, newMatcher, 32, 300, property.Options{})
//	}
//
// [CheckMatcherRules] holds a matcher to the rules of matching v2 (interests and
// their relaxation, pools, Avoid) with a state machine of its own; the invariants
// below are those of the other two checks, which use tickets without interests.
//
// Both checks hold a matcher to the invariants its contract states:
//   - nobody is matched twice: a Pair only holds tickets that are waiting, and a
//     ticket leaves the queue in exactly one way (paired once, or cancelled);
//   - preferences hold both ways: each side's preference accepts the other's gender,
//     and nobody is paired with themselves;
//   - the oldest compatible waiter goes first, and Pair.A is the one that waited longer
//     (checked step by step by the state machine, and by the concurrent check where
//     the order of the calls proves who waited);
//   - no compatible pair is left waiting;
//   - nobody is lost: every accepted ticket is waiting, paired exactly once or
//     cancelled, which Cancel (and Len, if the matcher has it) must confirm.
package property

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"pgregory.net/rapid"

	"github.com/flamingochat/flamingo"
)

// PairWait bounds each wait for a pair that a matcher reports from another goroutine
// after Enqueue has returned. It is only reached by a check that is about to fail.
const PairWait = 5 * time.Second

var (
	genders     = []flamingo.Gender{flamingo.GenderMale, flamingo.GenderFemale, flamingo.GenderOther}
	preferences = []flamingo.Preference{flamingo.PreferAny, flamingo.PreferMale, flamingo.PreferFemale, flamingo.PreferOther}
)

// accepts is the model's own reading of the matching rule, written apart from
// flamingo.Preference.Accepts so that a bug there cannot hide itself.
func accepts(p flamingo.Preference, g flamingo.Gender) bool {
	return p == flamingo.PreferAny || string(p) == string(g)
}

// compatible reports whether a and b may be paired: two users, each accepted by the
// other's preference.
func compatible(a, b flamingo.Ticket) bool {
	return a.User != b.User && accepts(a.Preference, b.Gender) && accepts(b.Preference, a.Gender)
}

func sameTicket(a, b flamingo.Ticket) bool {
	return a.User == b.User && a.Gender == b.Gender && a.Preference == b.Preference && a.JoinedAt.Equal(b.JoinedAt)
}

// lenner is the optional way for a matcher to say how many tickets wait
// ([flamingo.MemoryMatcher] has it); when present, it is compared with the model.
type lenner interface{ Len() int }

// pairLog collects the pairs a matcher reports, from any goroutine.
type pairLog struct {
	mu    sync.Mutex
	pairs []flamingo.Pair
	at    []time.Time   // when each pair was reported
	more  chan struct{} // signalled after each pair; capacity 1 so report never blocks
	hook  func(flamingo.Pair)
}

func newPairLog(hook func(flamingo.Pair)) *pairLog {
	return &pairLog{more: make(chan struct{}, 1), hook: hook}
}

func (l *pairLog) report(p flamingo.Pair) {
	now := time.Now()
	l.mu.Lock()
	l.pairs = append(l.pairs, p)
	l.at = append(l.at, now)
	l.mu.Unlock()
	select {
	case l.more <- struct{}{}:
	default:
	}
	if l.hook != nil {
		l.hook(p)
	}
}

func (l *pairLog) snapshot() []flamingo.Pair {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pairs)
}

// snapshotTimes returns the pairs and when each was reported.
func (l *pairLog) snapshotTimes() ([]flamingo.Pair, []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pairs), slices.Clone(l.at)
}

func (l *pairLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pairs)
}

// waitFor waits until cond holds, re-checking it after every reported pair, and
// reports false once wait passes without a new pair (at once if wait is zero).
func (l *pairLog) waitFor(wait time.Duration, cond func() bool) bool {
	if wait <= 0 {
		return cond()
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for !cond() {
		select {
		case <-l.more:
			if !timer.Stop() {
				<-timer.C
			}
			timer.Reset(wait)
		case <-timer.C:
			return cond()
		}
	}
	return true
}

// Options tune the checks. The zero value suits any matcher.
type Options struct {
	// Synchronous says that the matcher reports every pair before Enqueue returns,
	// as [flamingo.MemoryMatcher] does. The checks then hold it to that: a pair that
	// has not been reported when Enqueue returns is missing. Otherwise each expected
	// pair is waited for, up to [PairWait].
	Synchronous bool
	// RelaxTick is the longest the matcher may take, once a waiter's RelaxAt has come,
	// to pair it with a relaxed waiter (see [CheckMatcherRules]). Zero means [PairWait].
	RelaxTick time.Duration
}

func (o Options) relaxWait() time.Duration {
	if o.RelaxTick > 0 {
		return o.RelaxTick
	}
	return PairWait
}

func (o Options) pairWait() time.Duration {
	if o.Synchronous {
		return 0
	}
	return PairWait
}

func stop(m flamingo.Matcher) error {
	ctx, cancel := context.WithTimeout(context.Background(), PairWait)
	defer cancel()
	return m.Stop(ctx)
}

// describe shows a ticket with its JoinedAt in ms after modelBase for the state
// machine's tickets, and as a time of day for the others.
func describe(tk flamingo.Ticket) string {
	at := tk.JoinedAt.Format("15:04:05.000000000")
	if d := tk.JoinedAt.Sub(modelBase); d >= 0 && d < 24*time.Hour {
		at = fmt.Sprint(d.Milliseconds())
	}
	return fmt.Sprintf("%s(%s→%s @%s)", tk.User, tk.Gender, tk.Preference, at)
}

func describePair(p flamingo.Pair) string {
	return "{A:" + describe(p.A) + " B:" + describe(p.B) + "}"
}

// CheckMatcher runs a rapid state machine over matchers made by newMatcher: random
// sequences of joins (new users, users put back with their original JoinedAt or an
// older one, users who are already waiting, invalid tickets) and cancels, each
// followed by a comparison with a model of the queue. newMatcher is called once per
// sequence and must return a matcher that has not been started; the check starts it
// and stops it. Pairs may be reported after Enqueue returns: each expected pair is
// waited for, up to [PairWait].
//
// Ties in JoinedAt are allowed: any of the tied oldest waiters may be chosen.
func CheckMatcher(t rapid.TB, newMatcher func() flamingo.Matcher, opts Options) {
	t.Helper()
	rapid.Check(t, matcherProperty(newMatcher, opts))
}

func matcherProperty(newMatcher func() flamingo.Matcher, opts Options) func(*rapid.T) {
	return func(t *rapid.T) {
		log := newPairLog(nil)
		m := startForCheck(t, newMatcher, log.report)
		sm := &matcherMachine{
			m:         m,
			wait:      opts.pairWait(),
			log:       log,
			waiting:   make(map[string]flamingo.Ticket),
			last:      make(map[string]flamingo.Ticket),
			enqueued:  make(map[string]int),
			paired:    make(map[string]int),
			cancelled: make(map[string]int),
		}
		sm.lenner, _ = m.(lenner)
		t.Repeat(rapid.StateMachineActions(sm))
		sm.drain(t)
	}
}

// modelBase is the zero of the model's clock; JoinedAt values are whole milliseconds
// after it, so that a matcher storing milliseconds gives them back unchanged.
var modelBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// users is the pool the state machine draws from: small, so that users leave and
// come back, and try to join twice.
var users = []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"}

// matcherMachine is the rapid state machine: the matcher under test and the model of
// what it must hold.
type matcherMachine struct {
	m      flamingo.Matcher
	lenner lenner
	wait   time.Duration // for a pair reported after Enqueue returned
	log    *pairLog
	seen   int   // pairs of log already checked
	clock  int64 // the newest JoinedAt handed out, in ms after modelBase
	ops    []string

	waiting   map[string]flamingo.Ticket // the model: who waits, with which ticket
	last      map[string]flamingo.Ticket // each user's last accepted ticket
	enqueued  map[string]int             // accepted Enqueue calls per user
	paired    map[string]int             // reported pairs per user
	cancelled map[string]int             // Cancel calls that returned true per user
}

func (sm *matcherMachine) history() string {
	var w []string
	for _, tk := range sm.waiting {
		w = append(w, describe(tk))
	}
	sort.Strings(w)
	return fmt.Sprintf("\nwaiting per the model: %v\noperations so far:\n\t%s", w, strings.Join(sm.ops, "\n\t"))
}

func (sm *matcherMachine) at(ms int64) time.Time {
	return modelBase.Add(time.Duration(ms) * time.Millisecond)
}

func (sm *matcherMachine) idle() []string {
	var us []string
	for _, u := range users {
		if _, ok := sm.waiting[u]; !ok {
			us = append(us, u)
		}
	}
	return us
}

func (sm *matcherMachine) drawIdle(t *rapid.T) string {
	idle := sm.idle()
	if len(idle) == 0 {
		t.Skip("everybody is waiting")
	}
	return rapid.SampledFrom(idle).Draw(t, "user")
}

func drawKind(t *rapid.T) (flamingo.Gender, flamingo.Preference) {
	return rapid.SampledFrom(genders).Draw(t, "gender"), rapid.SampledFrom(preferences).Draw(t, "preference")
}

// Join queues an idle user as the newest ticket (or tied with the newest).
func (sm *matcherMachine) Join(t *rapid.T) {
	u := sm.drawIdle(t)
	g, p := drawKind(t)
	sm.clock += int64(rapid.IntRange(0, 2).Draw(t, "later by (ms)"))
	sm.enqueue(t, flamingo.Ticket{User: u, Gender: g, Preference: p, JoinedAt: sm.at(sm.clock)}, nil)
}

// PutBack queues a user's last ticket again, unchanged, as the Engine does for a user
// whose partner vanished before the pair arrived: an older JoinedAt than the newest.
func (sm *matcherMachine) PutBack(t *rapid.T) {
	var us []string
	for _, u := range sm.idle() {
		if _, ok := sm.last[u]; ok {
			us = append(us, u)
		}
	}
	if len(us) == 0 {
		t.Skip("nobody to put back")
	}
	u := rapid.SampledFrom(us).Draw(t, "user")
	sm.enqueue(t, sm.last[u], nil)
}

// JoinEarlier queues an idle user with a JoinedAt anywhere in the past.
func (sm *matcherMachine) JoinEarlier(t *rapid.T) {
	u := sm.drawIdle(t)
	g, p := drawKind(t)
	at := rapid.Int64Range(0, sm.clock).Draw(t, "joined at (ms)")
	sm.enqueue(t, flamingo.Ticket{User: u, Gender: g, Preference: p, JoinedAt: sm.at(at)}, nil)
}

// JoinTwice queues a user who is already waiting: ErrAlreadyQueued, and nothing
// changes.
func (sm *matcherMachine) JoinTwice(t *rapid.T) {
	var us []string
	for _, u := range users {
		if _, ok := sm.waiting[u]; ok {
			us = append(us, u)
		}
	}
	if len(us) == 0 {
		t.Skip("nobody waits")
	}
	u := rapid.SampledFrom(us).Draw(t, "user")
	g, p := drawKind(t)
	at := rapid.Int64Range(0, sm.clock+2).Draw(t, "joined at (ms)")
	sm.enqueue(t, flamingo.Ticket{User: u, Gender: g, Preference: p, JoinedAt: sm.at(at)}, flamingo.ErrAlreadyQueued)
}

// JoinInvalid queues a ticket without a user or with an unknown gender or preference:
// ErrInvalidTicket, and nothing changes.
func (sm *matcherMachine) JoinInvalid(t *rapid.T) {
	g, p := drawKind(t)
	tk := flamingo.Ticket{User: "", Gender: g, Preference: p, JoinedAt: sm.at(sm.clock)}
	switch rapid.IntRange(0, 2).Draw(t, "flaw") {
	case 0:
	case 1:
		tk.User = sm.drawIdle(t)
		tk.Gender = "robot"
	default:
		tk.User = sm.drawIdle(t)
		tk.Preference = "everyone"
	}
	sm.enqueue(t, tk, flamingo.ErrInvalidTicket)
}

// Cancel takes a user (waiting or not, or one never seen) out of the queue: true
// exactly when the model says the user waits.
func (sm *matcherMachine) Cancel(t *rapid.T) {
	u := rapid.SampledFrom(append(slices.Clone(users), "stranger")).Draw(t, "user")
	sm.cancel(t, u)
}

func (sm *matcherMachine) cancel(t *rapid.T, u string) {
	_, want := sm.waiting[u]
	sm.ops = append(sm.ops, fmt.Sprintf("Cancel(%s) want %v", u, want))
	got, err := sm.m.Cancel(context.Background(), u)
	if err != nil {
		t.Fatalf("Cancel(%s): %v%s", u, err, sm.history())
	}
	if got != want {
		if want {
			t.Fatalf("nobody lost: Cancel(%s) = false, but the ticket %s was waiting and never paired%s",
				u, describe(sm.waiting[u]), sm.history())
		}
		t.Fatalf("nobody twice: Cancel(%s) = true, but the user had no waiting ticket (paired, cancelled or never queued)%s",
			u, sm.history())
	}
	if got {
		delete(sm.waiting, u)
		sm.cancelled[u]++
	}
	// A Cancel never makes a pair.
	sm.checkPairs(t, 0)
}

// enqueue calls Enqueue and checks its error and the pairs it causes. A ticket that
// is accepted must be paired at once (in Enqueue, or later up to PairWait) if and
// only if a compatible ticket waits.
func (sm *matcherMachine) enqueue(t *rapid.T, tk flamingo.Ticket, wantErr error) {
	expect := 0
	if wantErr == nil {
		for _, w := range sm.waiting {
			if compatible(w, tk) {
				expect = 1
				break
			}
		}
	}
	sm.ops = append(sm.ops, fmt.Sprintf("Enqueue(%s) want err %v, %d pair(s)", describe(tk), wantErr, expect))
	err := sm.m.Enqueue(context.Background(), tk)
	if !errors.Is(err, wantErr) {
		t.Fatalf("Enqueue(%s) = %v, want %v%s", describe(tk), err, wantErr, sm.history())
	}
	if err == nil {
		sm.waiting[tk.User] = tk
		sm.last[tk.User] = tk
		sm.enqueued[tk.User]++
	}
	sm.checkPairs(t, expect)
}

// checkPairs waits for expect new pairs, then checks every pair not yet checked
// against the model and takes its tickets out of it.
func (sm *matcherMachine) checkPairs(t *rapid.T, expect int) {
	want := sm.seen + expect
	if !sm.log.waitFor(sm.wait, func() bool { return sm.log.count() >= want }) {
		t.Fatalf("no compatible pair left waiting: %d pair(s) expected, %d reported (the newest ticket has a compatible waiter)%s",
			want, sm.log.count(), sm.history())
	}
	pairs := sm.log.snapshot()
	if len(pairs) > want {
		// A second pair, or a pair of tickets that were already waiting together.
		sm.ops = append(sm.ops, fmt.Sprintf("(unexpected pair %s)", describePair(pairs[want])))
	}
	for _, p := range pairs[sm.seen:] {
		sm.seen++
		sm.ops = append(sm.ops, "→ pair "+describePair(p))
		sm.checkPair(t, p)
	}
}

func (sm *matcherMachine) checkPair(t *rapid.T, p flamingo.Pair) {
	for _, tk := range []flamingo.Ticket{p.A, p.B} {
		w, ok := sm.waiting[tk.User]
		if !ok || !sameTicket(w, tk) {
			t.Fatalf("nobody twice: pair %s holds %s, which is not a waiting ticket (already paired, cancelled, or never queued)%s",
				describePair(p), describe(tk), sm.history())
		}
	}
	if !compatible(p.A, p.B) {
		t.Fatalf("preferences both ways: pair %s is not compatible%s", describePair(p), sm.history())
	}
	if p.A.JoinedAt.After(p.B.JoinedAt) {
		t.Fatalf("oldest first: pair %s has A joining after B%s", describePair(p), sm.history())
	}
	// Each side gets the oldest compatible waiter. (The newer side, for the older
	// one, is usually its only compatible waiter: otherwise they would have been
	// paired before.)
	for _, side := range [][2]flamingo.Ticket{{p.A, p.B}, {p.B, p.A}} {
		me, got := side[0], side[1]
		for _, w := range sm.waiting {
			if w.User != got.User && compatible(me, w) && w.JoinedAt.Before(got.JoinedAt) {
				t.Fatalf("oldest compatible first: %s was paired with %s while %s, compatible and older, waited; pair %s%s",
					describe(me), describe(got), describe(w), describePair(p), sm.history())
			}
		}
	}
	delete(sm.waiting, p.A.User)
	delete(sm.waiting, p.B.User)
	sm.paired[p.A.User]++
	sm.paired[p.B.User]++
}

// Check runs after every action.
func (sm *matcherMachine) Check(t *rapid.T) {
	sm.checkPairs(t, 0)
	var w []flamingo.Ticket
	for _, tk := range sm.waiting {
		w = append(w, tk)
	}
	for i := range w {
		for j := i + 1; j < len(w); j++ {
			if compatible(w[i], w[j]) {
				t.Fatalf("no compatible pair left waiting: %s and %s%s", describe(w[i]), describe(w[j]), sm.history())
			}
		}
	}
	if sm.lenner != nil {
		switch n := sm.lenner.Len(); {
		case n < len(sm.waiting):
			t.Fatalf("nobody lost: Len() = %d, the model has %d waiting%s", n, len(sm.waiting), sm.history())
		case n > len(sm.waiting):
			t.Fatalf("nobody twice: Len() = %d, the model has %d waiting: the matcher keeps tickets that were paired or cancelled%s",
				n, len(sm.waiting), sm.history())
		}
	}
	for _, u := range users {
		_, waits := sm.waiting[u]
		left := sm.enqueued[u] - sm.paired[u] - sm.cancelled[u]
		if (waits && left != 1) || (!waits && left != 0) {
			t.Fatalf("nobody lost: %s was accepted %d times, paired %d, cancelled %d, and waits: %v%s",
				u, sm.enqueued[u], sm.paired[u], sm.cancelled[u], waits, sm.history())
		}
	}
}

// drain ends a sequence: whoever the model says waits must still wait, and then
// nobody does.
func (sm *matcherMachine) drain(t *rapid.T) {
	for _, u := range users {
		if _, ok := sm.waiting[u]; ok {
			sm.cancel(t, u)
		}
	}
	sm.Check(t)
	if sm.lenner != nil && sm.lenner.Len() != 0 {
		t.Fatalf("nobody twice: Len() = %d after every waiting ticket was cancelled%s", sm.lenner.Len(), sm.history())
	}
}

// startForCheck makes a matcher with newMatcher, starts it with report, and stops it
// when t ends.
func startForCheck(t *rapid.T, newMatcher func() flamingo.Matcher, report func(flamingo.Pair)) flamingo.Matcher {
	m := newMatcher()
	if m == nil {
		t.Fatalf("newMatcher returned nil")
	}
	if err := m.Start(report); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := stop(m); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return m
}
