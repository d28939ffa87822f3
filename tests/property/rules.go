package property

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"pgregory.net/rapid"

	"github.com/flamingochat/flamingo"
)

// The rules of matching v2, as the state machine of [CheckMatcherRules] holds a matcher
// to them. Each failure starts with one of these names.
const (
	ruleInterest = "shared interest or both relaxed" // no pair of strangers sharing nothing before both relax
	rulePool     = "same pool"
	ruleAvoid    = "no avoid" // neither ticket of a pair avoids the other
	ruleMutual   = "preferences both ways"
	ruleOrder    = "oldest first" // Pair.A joined no later than Pair.B
	ruleFair     = "fair"         // a shared interest first, then the oldest
	ruleComplete = "no acceptable pair left waiting"
	ruleTwice    = "nobody twice"
	ruleLost     = "nobody lost"
)

// relaxSoon is how far ahead of now the state machine sets a RelaxAt that it waits for.
const relaxSoon = 15 * time.Millisecond

// Small, so that tickets share interests and pools often, and miss them often too.
var (
	interestWords = []string{"art", "chess", "golf"}
	pools         = []string{"", "", "", "fr"} // most users in the default pool
)

// relaxedAt is the model's own reading of [flamingo.Ticket.Relaxed].
func relaxedAt(tk flamingo.Ticket, now time.Time) bool {
	return len(tk.Interests) == 0 || tk.RelaxAt.IsZero() || !now.Before(tk.RelaxAt)
}

func shareInterest(a, b flamingo.Ticket) bool {
	for _, x := range a.Interests {
		if slices.Contains(b.Interests, x) {
			return true
		}
	}
	return false
}

// refusal returns the rule that forbids pairing a and b at now, or "" if they are
// acceptable to each other.
func refusal(a, b flamingo.Ticket, now time.Time) string {
	switch {
	case a.User == b.User || !accepts(a.Preference, b.Gender) || !accepts(b.Preference, a.Gender):
		return ruleMutual
	case a.Pool != b.Pool:
		return rulePool
	case slices.Contains(a.Avoid, b.User) || slices.Contains(b.Avoid, a.User):
		return ruleAvoid
	case !shareInterest(a, b) && !(relaxedAt(a, now) && relaxedAt(b, now)):
		return ruleInterest
	}
	return ""
}

// better reports whether, for me, x goes before y: a shared interest first, then the
// earlier JoinedAt.
func better(me, x, y flamingo.Ticket) bool {
	if sx, sy := shareInterest(me, x), shareInterest(me, y); sx != sy {
		return sx
	}
	return x.JoinedAt.Before(y.JoinedAt)
}

// sameFull reports whether b is a, every field alike (a nil and an empty list or map
// alike, instants compared as instants).
func sameFull(a, b flamingo.Ticket) bool {
	return sameTicket(a, b) && a.Node == b.Node && a.Pool == b.Pool && a.RelaxAt.Equal(b.RelaxAt) &&
		slices.Equal(a.Interests, b.Interests) && slices.Equal(a.Avoid, b.Avoid) && maps.Equal(a.Labels, b.Labels)
}

// CheckMatcherRules runs a rapid state machine that holds matchers made by newMatcher
// to the rules of matching v2, step by step against a model: users with interests or
// none, in one of two pools, avoiding others (blocks, and the last partner, as the
// Engine sets them), relaxed or not, join, are put back, leave, and some relax while
// they wait. After each step the check holds the matcher to these invariants:
//   - a pair is acceptable: preferences both ways, the same pool, no avoid either way,
//     and a shared interest or both relaxed when the pair is reported (a matcher that
//     relaxes a ticket early is caught reporting its pair before its RelaxAt);
//   - fair: the newcomer (or the waiter that has just relaxed) gets the acceptable
//     waiter sharing an interest with it that joined first, else the oldest acceptable
//     one; Pair.A joined no later than Pair.B;
//   - no acceptable pair left waiting, and a waiter whose RelaxAt comes is paired
//     without a new arrival (within [PairWait]);
//   - nobody twice, nobody lost, and every field of a ticket carried into its Pair.
//
// RelaxAt values are either far from now (an hour before or after) or, for a ticket
// the check then waits for, 15 ms ahead: newMatcher's matchers are judged by the wall
// clock, and have [Options.RelaxTick] to pair a waiter once its RelaxAt has come. As
// for [CheckMatcher], newMatcher is called once per sequence.
func CheckMatcherRules(t rapid.TB, newMatcher func() flamingo.Matcher, opts Options) {
	t.Helper()
	rapid.Check(t, func(t *rapid.T) {
		log := newPairLog(nil)
		m := startForCheck(t, newMatcher, log.report)
		sm := &rulesMachine{
			m:       m,
			wait:    opts.pairWait(),
			relax:   opts.relaxWait(),
			log:     log,
			waiting: make(map[string]flamingo.Ticket),
			last:    make(map[string]flamingo.Ticket),
			partner: make(map[string]string),
			balance: make(map[string]int),
		}
		sm.lenner, _ = m.(lenner)
		t.Repeat(rapid.StateMachineActions(sm))
		for _, u := range users {
			if _, ok := sm.waiting[u]; ok {
				sm.Cancel1(t, u)
			}
		}
		sm.Check(t)
	})
}

// rulesMachine is the state machine of CheckMatcherRules.
type rulesMachine struct {
	m      flamingo.Matcher
	lenner lenner
	wait   time.Duration // for a pair reported after Enqueue returned
	relax  time.Duration // for a pair made once a RelaxAt has come
	log    *pairLog
	seen   int
	clock  int64
	ops    []string

	waiting map[string]flamingo.Ticket
	last    map[string]flamingo.Ticket // each user's last accepted ticket
	partner map[string]string          // each user's last partner
	balance map[string]int             // accepted enqueues - pairs - cancels, per user
}

func describeV2(tk flamingo.Ticket) string {
	var b strings.Builder
	b.WriteString(describe(tk))
	if tk.Pool != "" {
		fmt.Fprintf(&b, " pool=%s", tk.Pool)
	}
	if len(tk.Interests) > 0 {
		fmt.Fprintf(&b, " likes=%v", tk.Interests)
		switch d := time.Until(tk.RelaxAt); {
		case tk.RelaxAt.IsZero():
		case d < -time.Minute:
			b.WriteString(" relaxed")
		case d > time.Minute:
			b.WriteString(" strict")
		default:
			fmt.Fprintf(&b, " relaxAt=%s", tk.RelaxAt.Format("15:04:05.000"))
		}
	}
	if len(tk.Avoid) > 0 {
		fmt.Fprintf(&b, " avoids=%v", tk.Avoid)
	}
	return b.String()
}

func describePairV2(p flamingo.Pair) string {
	return "{A:" + describeV2(p.A) + " B:" + describeV2(p.B) + "}"
}

func (sm *rulesMachine) history() string {
	var w []string
	for _, tk := range sm.waiting {
		w = append(w, describeV2(tk))
	}
	sort.Strings(w)
	return fmt.Sprintf("\nwaiting per the model: %v\noperations so far:\n\t%s", w, strings.Join(sm.ops, "\n\t"))
}

func (sm *rulesMachine) idleUser(t *rapid.T) string {
	var idle []string
	for _, u := range users {
		if _, ok := sm.waiting[u]; !ok {
			idle = append(idle, u)
		}
	}
	if len(idle) == 0 {
		t.Skip("everybody is waiting")
	}
	return rapid.SampledFrom(idle).Draw(t, "user")
}

// draw makes a ticket for u: a random kind, pool, interests and Avoid list (which
// holds u's last partner half the time, as the Engine's RepeatWindow does), relaxed,
// strict for the whole sequence, or without interests.
func (sm *rulesMachine) draw(t *rapid.T, u string, at int64) flamingo.Ticket {
	g, p := drawKind(t)
	tk := flamingo.Ticket{User: u, Gender: g, Preference: p, JoinedAt: modelBase.Add(time.Duration(at) * time.Millisecond)}
	tk.Pool = rapid.SampledFrom(pools).Draw(t, "pool")
	for _, w := range interestWords {
		if rapid.IntRange(0, 2).Draw(t, "likes "+w) == 0 {
			tk.Interests = append(tk.Interests, w)
		}
	}
	now := time.Now()
	switch rapid.IntRange(0, 2).Draw(t, "relax") {
	case 0:
		tk.RelaxAt = now.Add(-time.Hour).Truncate(time.Millisecond)
	case 1:
		tk.RelaxAt = now.Add(time.Hour).Truncate(time.Millisecond)
	}
	if p, ok := sm.partner[u]; ok && rapid.Bool().Draw(t, "avoid last partner") {
		tk.Avoid = append(tk.Avoid, p)
	}
	if rapid.IntRange(0, 3).Draw(t, "block") == 0 {
		if b := rapid.SampledFrom(users).Draw(t, "blocked"); b != u && !slices.Contains(tk.Avoid, b) {
			tk.Avoid = append(tk.Avoid, b)
		}
	}
	return tk
}

// Join queues an idle user as the newest ticket (or tied with the newest).
func (sm *rulesMachine) Join(t *rapid.T) {
	u := sm.idleUser(t)
	sm.clock += int64(rapid.IntRange(0, 2).Draw(t, "later by (ms)"))
	sm.enqueue(t, sm.draw(t, u, sm.clock))
}

// JoinEarlier queues an idle user with a JoinedAt anywhere in the past.
func (sm *rulesMachine) JoinEarlier(t *rapid.T) {
	u := sm.idleUser(t)
	sm.enqueue(t, sm.draw(t, u, rapid.Int64Range(0, sm.clock).Draw(t, "joined at (ms)")))
}

// PutBack queues a user's last ticket again, unchanged, as the Engine does.
func (sm *rulesMachine) PutBack(t *rapid.T) {
	var us []string
	for u := range sm.last {
		if _, ok := sm.waiting[u]; !ok {
			us = append(us, u)
		}
	}
	if len(us) == 0 {
		t.Skip("nobody to put back")
	}
	sort.Strings(us)
	sm.enqueue(t, sm.last[rapid.SampledFrom(us).Draw(t, "user")])
}

// RelaxSoon queues an idle user with interests whose RelaxAt is 15 ms ahead, and
// waits for that RelaxAt: whatever pair the relaxation makes must come, and not
// before it.
func (sm *rulesMachine) RelaxSoon(t *rapid.T) {
	u := sm.idleUser(t)
	sm.clock += int64(rapid.IntRange(0, 2).Draw(t, "later by (ms)"))
	tk := sm.draw(t, u, sm.clock)
	if len(tk.Interests) == 0 {
		tk.Interests = []string{interestWords[0]}
	}
	tk.RelaxAt = time.Now().Add(relaxSoon).Truncate(time.Millisecond)
	sm.ops = append(sm.ops, fmt.Sprintf("Enqueue(%s), then wait for its RelaxAt", describeV2(tk)))
	if err := sm.m.Enqueue(context.Background(), tk); err != nil {
		t.Fatalf("Enqueue(%s) = %v%s", describeV2(tk), err, sm.history())
	}
	sm.accept(tk)
	// A pair sharing an interest may come at once. If none does, the ticket relaxes
	// (a slow machine may have let it relax before Enqueue looked: the pair is the
	// same) and then meets the oldest acceptable waiter, if any.
	// Either way the step ends after RelaxAt, so that the ticket, if it is put back,
	// is relaxed beyond doubt.
	defer untilPast(tk.RelaxAt)
	strict := tk
	strict.RelaxAt = tk.RelaxAt.Add(time.Hour)
	if sm.expect(strict, false) != nil {
		sm.checkPairs(t, 1, tk, sm.wait)
		return
	}
	untilPast(tk.RelaxAt)
	sm.ops = append(sm.ops, fmt.Sprintf("(%s relaxed)", u))
	n := 0
	if sm.expect(tk, true) != nil {
		n = 1
	}
	// Even a matcher that pairs within Enqueue relaxes on a timer of its own.
	sm.checkPairs(t, n, tk, sm.relax)
}

// untilPast returns once the clock has passed at: the passing of time is what the
// state machine tests there, not a stand-in for a signal.
func untilPast(at time.Time) {
	if d := time.Until(at); d > 0 {
		<-time.After(d)
	}
}

// Cancel takes a user (waiting or not, or one never seen) out of the queue.
func (sm *rulesMachine) Cancel(t *rapid.T) {
	sm.Cancel1(t, rapid.SampledFrom(append(slices.Clone(users), "stranger")).Draw(t, "user"))
}

// Cancel1 cancels u: true exactly when the model says u waits.
func (sm *rulesMachine) Cancel1(t *rapid.T, u string) {
	_, want := sm.waiting[u]
	sm.ops = append(sm.ops, fmt.Sprintf("Cancel(%s) want %v", u, want))
	got, err := sm.m.Cancel(context.Background(), u)
	if err != nil {
		t.Fatalf("Cancel(%s): %v%s", u, err, sm.history())
	}
	if got != want {
		if want {
			t.Fatalf("%s: Cancel(%s) = false, but the ticket %s was waiting and never paired%s",
				ruleLost, u, describeV2(sm.waiting[u]), sm.history())
		}
		t.Fatalf("%s: Cancel(%s) = true, but the user had no waiting ticket%s", ruleTwice, u, sm.history())
	}
	if got {
		delete(sm.waiting, u)
		sm.balance[u]--
	}
	sm.checkPairs(t, 0, flamingo.Ticket{}, sm.wait)
}

func (sm *rulesMachine) accept(tk flamingo.Ticket) {
	sm.waiting[tk.User] = tk
	sm.last[tk.User] = tk
	sm.balance[tk.User]++
}

// enqueue queues tk, which the model says is not waiting, and checks the pair it
// makes, if any.
func (sm *rulesMachine) enqueue(t *rapid.T, tk flamingo.Ticket) {
	want := sm.expect(tk, false)
	n := 0
	if want != nil {
		n = 1
	}
	sm.ops = append(sm.ops, fmt.Sprintf("Enqueue(%s) want %d pair(s)", describeV2(tk), n))
	if err := sm.m.Enqueue(context.Background(), tk); err != nil {
		t.Fatalf("Enqueue(%s) = %v%s", describeV2(tk), err, sm.history())
	}
	sm.accept(tk)
	sm.checkPairs(t, n, tk, sm.wait)
}

// expect returns a waiter that the model would pair me with now (me is in the model
// already), or nil; relaxing says me is a waiter whose RelaxAt has just come.
func (sm *rulesMachine) expect(me flamingo.Ticket, relaxing bool) *flamingo.Ticket {
	now := time.Now()
	var best *flamingo.Ticket
	for _, w := range sm.waiting {
		if w.User == me.User || refusal(me, w, now) != "" {
			continue
		}
		if relaxing && shareInterest(me, w) {
			continue // it would have been paired already
		}
		if best == nil || better(me, w, *best) {
			best = &w
		}
	}
	return best
}

// checkPairs waits up to wait for expect new pairs (each holding me), then checks
// every pair not yet checked.
func (sm *rulesMachine) checkPairs(t *rapid.T, expect int, me flamingo.Ticket, wait time.Duration) {
	want := sm.seen + expect
	if !sm.log.waitFor(wait, func() bool { return sm.log.count() >= want }) {
		t.Fatalf("%s: %d pair(s) expected, %d reported%s", ruleComplete, want, sm.log.count(), sm.history())
	}
	pairs, times := sm.log.snapshotTimes()
	for i := sm.seen; i < len(pairs); i++ {
		sm.seen++
		p := pairs[i]
		sm.ops = append(sm.ops, "→ pair "+describePairV2(p))
		sm.checkPair(t, p, times[i], me)
	}
}

func (sm *rulesMachine) checkPair(t *rapid.T, p flamingo.Pair, at time.Time, me flamingo.Ticket) {
	for _, tk := range []flamingo.Ticket{p.A, p.B} {
		w, ok := sm.waiting[tk.User]
		if !ok || !sameFull(w, tk) {
			t.Fatalf("%s: pair %s holds %s, which is not a waiting ticket as queued (paired, cancelled, never queued, or changed)%s",
				ruleTwice, describePairV2(p), describeV2(tk), sm.history())
		}
	}
	if rule := refusal(p.A, p.B, at); rule != "" {
		t.Fatalf("%s: pair %s reported at %s is not acceptable%s",
			rule, describePairV2(p), at.Format("15:04:05.000"), sm.history())
	}
	if p.A.JoinedAt.After(p.B.JoinedAt) {
		t.Fatalf("%s: pair %s has A joining after B%s", ruleOrder, describePairV2(p), sm.history())
	}
	if me.User == "" || (p.A.User != me.User && p.B.User != me.User) {
		t.Fatalf("unexpected pair: %s, made though neither ticket had just arrived or relaxed%s", describePairV2(p), sm.history())
	}
	got := p.A
	if got.User == me.User {
		got = p.B
	}
	for _, w := range sm.waiting {
		if w.User != got.User && w.User != me.User && refusal(me, w, at) == "" && better(me, w, got) {
			t.Fatalf("%s: %s was paired with %s while %s, acceptable and before it (a shared interest, then the oldest), waited; pair %s%s",
				ruleFair, describeV2(me), describeV2(got), describeV2(w), describePairV2(p), sm.history())
		}
	}
	delete(sm.waiting, p.A.User)
	delete(sm.waiting, p.B.User)
	sm.balance[p.A.User]--
	sm.balance[p.B.User]--
	sm.partner[p.A.User], sm.partner[p.B.User] = p.B.User, p.A.User
}

// Check runs after every action.
func (sm *rulesMachine) Check(t *rapid.T) {
	sm.checkPairs(t, 0, flamingo.Ticket{}, sm.wait)
	now := time.Now()
	var w []flamingo.Ticket
	for _, tk := range sm.waiting {
		w = append(w, tk)
	}
	for i := range w {
		for j := i + 1; j < len(w); j++ {
			if refusal(w[i], w[j], now) == "" {
				t.Fatalf("%s: %s and %s%s", ruleComplete, describeV2(w[i]), describeV2(w[j]), sm.history())
			}
		}
	}
	if sm.lenner != nil {
		if n := sm.lenner.Len(); n != len(sm.waiting) {
			rule := ruleLost
			if n > len(sm.waiting) {
				rule = ruleTwice
			}
			t.Fatalf("%s: Len() = %d, the model has %d waiting%s", rule, n, len(sm.waiting), sm.history())
		}
	}
	for _, u := range users {
		_, waits := sm.waiting[u]
		if b := sm.balance[u]; (waits && b != 1) || (!waits && b != 0) {
			t.Fatalf("%s: %s has %d ticket(s) neither paired nor cancelled, and waits: %v%s", ruleLost, u, b, waits, sm.history())
		}
	}
}
