package flamingotest

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// The subtests of matching v2: interests, relaxation, pools, Avoid and the fields a
// matcher carries. A matcher may relax waiters on a coarse tick (a shared one looks
// every few hundred milliseconds): the waits below are bounded by matcherWait, and a
// RelaxAt to wait for is relaxSoon ahead, so that no Enqueue of a subtest comes after
// it on a slow machine.

// relaxSoon is how far ahead of now a subtest sets a RelaxAt that it waits for.
const relaxSoon = 400 * time.Millisecond

// relaxLater is a RelaxAt that no subtest reaches.
const relaxLater = time.Hour

// v2 returns tk with interests, RelaxAt (relative to now; 0 leaves it zero, which means
// relaxed), pool and avoid set.
func v2(tk flamingo.Ticket, interests []string, relaxIn time.Duration) flamingo.Ticket {
	tk.Interests = interests
	if relaxIn != 0 {
		// Whole milliseconds, as a matcher that stores milliseconds gives it back.
		tk.RelaxAt = time.Now().Add(relaxIn).Truncate(time.Millisecond)
	}
	return tk
}

func inPool(tk flamingo.Ticket, pool string) flamingo.Ticket {
	tk.Pool = pool
	return tk
}

func avoiding(tk flamingo.Ticket, users ...string) flamingo.Ticket {
	tk.Avoid = users
	return tk
}

// testMatcherInterestOverAge checks the order of v2: a newcomer meets the oldest
// acceptable waiter that shares an interest with it, before any older waiter that
// shares none; with no interest shared, the oldest acceptable waiter.
func testMatcherInterestOverAge(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	const (
		f = flamingo.GenderFemale
		m = flamingo.GenderMale
	)
	r := startMatcher(t, newMatcher, nil)
	// Women waiting for men never meet each other; all are relaxed but w2 and w3.
	w1 := r.ticket("w1", f, flamingo.PreferMale, 1)                                             // no interests
	w2 := v2(r.ticket("w2", f, flamingo.PreferMale, 2), []string{"chess", "music"}, relaxLater) // not relaxed
	w3 := v2(r.ticket("w3", f, flamingo.PreferMale, 3), []string{"music"}, relaxLater)          // not relaxed
	w4 := v2(r.ticket("w4", f, flamingo.PreferMale, 4), []string{"golf"}, -time.Minute)         // relaxed
	for _, w := range []flamingo.Ticket{w1, w2, w3, w4} {
		r.enqueue(w)
	}
	// A relaxed newcomer who likes music meets the oldest music lover, w2, not w1.
	j1 := v2(r.ticket("j1", m, flamingo.PreferFemale, 10), []string{"art", "music"}, -time.Minute)
	// One who is not relaxed yet meets the one left who shares an interest, w3.
	j2 := v2(r.ticket("j2", m, flamingo.PreferFemale, 11), []string{"music", "zen"}, relaxLater)
	// One who shares nothing with anyone, relaxed, meets the oldest relaxed: w1.
	j3 := v2(r.ticket("j3", m, flamingo.PreferFemale, 12), []string{"poker"}, -time.Minute)
	// One without interests meets the oldest relaxed left, w4, whose golf it does
	// not share.
	j4 := r.ticket("j4", m, flamingo.PreferFemale, 13)
	r.matchInTurn([]flamingo.Ticket{j1, j2, j3, j4}, []flamingo.Ticket{w2, w3, w1, w4})

	// Put back with an older JoinedAt, a waiter sharing an interest is still chosen
	// over an older relaxed one; it is Pair.A, having waited longer.
	old := r.ticket("old", f, flamingo.PreferMale, 5)
	back := v2(r.ticket("back", f, flamingo.PreferMale, 7), []string{"chess"}, relaxLater)
	r.enqueue(old)
	r.enqueue(back)
	j5 := v2(r.ticket("j5", m, flamingo.PreferFemale, 6), []string{"chess"}, -time.Minute)
	r.enqueue(j5)
	assertPair(t, r.waitPairs(5)[4], j5, back)
	r.cancelWaiting("old")
}

// testMatcherNoPairBeforeRelaxAt checks that two compatible tickets that share no
// interest wait while either is not relaxed.
func testMatcherNoPairBeforeRelaxAt(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	tests := []struct {
		name         string
		giveA, giveB time.Duration // RelaxAt from now; 0 for none
		giveBNone    bool          // b gives no interests at all
	}{
		{"neither relaxed", relaxLater, relaxLater, false},
		{"only the waiter relaxed", -time.Minute, relaxLater, false},
		{"only the newcomer relaxed", relaxLater, -time.Minute, false},
		{"newcomer without interests", relaxLater, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startMatcher(t, newMatcher, nil)
			a := v2(r.ticket("a", flamingo.GenderMale, flamingo.PreferAny, 1), []string{"chess"}, tt.giveA)
			var bi []string
			if !tt.giveBNone {
				bi = []string{"golf"}
			}
			b := v2(r.ticket("b", flamingo.GenderFemale, flamingo.PreferAny, 2), bi, tt.giveB)
			r.enqueue(a)
			r.enqueue(b)
			r.cancelWaiting("a", "b")
			assert.Zero(t, r.rec.count(), "pairs reported: %s", describePairs(r.rec.snapshot()))
		})
	}
}

// testMatcherRelaxWithoutArrival checks that a waiter whose RelaxAt comes is paired
// with a relaxed waiter it shares nothing with, without a new arrival, and not before
// that RelaxAt.
func testMatcherRelaxWithoutArrival(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	r := startMatcher(t, newMatcher, nil)
	// b and c are relaxed and never meet each other; b avoids a.
	b := avoiding(v2(r.ticket("b", flamingo.GenderFemale, flamingo.PreferMale, 1), []string{"golf"}, -time.Minute), "a")
	c := r.ticket("c", flamingo.GenderFemale, flamingo.PreferMale, 2)
	r.enqueue(b)
	r.enqueue(c)
	a := v2(r.ticket("a", flamingo.GenderMale, flamingo.PreferFemale, 3), []string{"chess"}, relaxSoon)
	r.enqueue(a)
	require.Zero(t, r.rec.count(), "a was paired before its RelaxAt: %s", describePairs(r.rec.snapshot()))

	// Once a relaxes it meets the oldest relaxed waiter that does not avoid it: c.
	got := r.waitPairs(1)[0]
	assertPair(t, got, c, a)
	at := r.rec.times()[0]
	assert.False(t, at.Before(a.RelaxAt), "pair reported at %s, before a's RelaxAt %s",
		at.Format(time.StampMilli), a.RelaxAt.Format(time.StampMilli))
	r.cancelWaiting("b")
}

// testMatcherPoolsNeverCross checks that tickets of different Pools are never paired,
// and tickets of the same one are.
func testMatcherPoolsNeverCross(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	r := startMatcher(t, newMatcher, nil)
	fr := inPool(r.ticket("fr", flamingo.GenderMale, flamingo.PreferAny, 1), "fr")
	none := r.ticket("none", flamingo.GenderMale, flamingo.PreferAny, 2)
	de := inPool(r.ticket("de", flamingo.GenderFemale, flamingo.PreferAny, 3), "de")
	// "fr" and "FR" are two pools: a matcher does not fold them.
	upper := inPool(v2(r.ticket("upper", flamingo.GenderOther, flamingo.PreferAny, 4), []string{"chess"}, 0), "FR")
	for _, tk := range []flamingo.Ticket{fr, none, de, upper} {
		r.enqueue(tk)
	}
	require.Zero(t, r.rec.count(), "pairs across pools: %s", describePairs(r.rec.snapshot()))

	de2 := inPool(r.ticket("de2", flamingo.GenderMale, flamingo.PreferAny, 10), "de")
	fr2 := inPool(v2(r.ticket("fr2", flamingo.GenderOther, flamingo.PreferAny, 11), []string{"chess"}, 0), "fr")
	none2 := r.ticket("none2", flamingo.GenderFemale, flamingo.PreferAny, 12)
	r.matchInTurn([]flamingo.Ticket{de2, fr2, none2}, []flamingo.Ticket{de, fr, none})
	r.cancelWaiting("upper")
}

// testMatcherAvoidBothWays checks that a pair is refused when either ticket avoids the
// other, whichever joined first, and that each still meets someone else.
func testMatcherAvoidBothWays(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	tests := []struct {
		name                   string
		waiterAvoids, newAvoid bool
	}{
		{"waiter avoids newcomer", true, false},
		{"newcomer avoids waiter", false, true},
		{"both", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startMatcher(t, newMatcher, nil)
			w := v2(r.ticket("w", flamingo.GenderFemale, flamingo.PreferMale, 1), []string{"chess"}, 0)
			n := v2(r.ticket("n", flamingo.GenderMale, flamingo.PreferFemale, 2), []string{"chess"}, 0)
			if tt.waiterAvoids {
				w = avoiding(w, "someone", "n")
			}
			if tt.newAvoid {
				n = avoiding(n, "w")
			}
			r.enqueue(w)
			r.enqueue(n)
			require.Zero(t, r.rec.count(), "pairs reported: %s", describePairs(r.rec.snapshot()))

			// A younger woman who shares nothing with n still meets it, and a man w.
			w2 := r.ticket("w2", flamingo.GenderFemale, flamingo.PreferMale, 3)
			n2 := r.ticket("n2", flamingo.GenderMale, flamingo.PreferFemale, 4)
			r.matchInTurn([]flamingo.Ticket{w2, n2}, []flamingo.Ticket{n, w})
		})
	}
}

// testMatcherCarriesFields checks that a Pair carries every field of both tickets
// unchanged: Node, Interests, RelaxAt, Pool, Labels and Avoid, as well as the v1 ones.
func testMatcherCarriesFields(t *testing.T, newMatcher func(*testing.T) flamingo.Matcher) {
	r := startMatcher(t, newMatcher, nil)
	a := r.ticket("a", flamingo.GenderFemale, flamingo.PreferMale, 1)
	a.Interests = []string{"chess", "music"}
	a.RelaxAt = r.base.Add(10 * time.Second) // long past: relaxed
	a.Pool = "fr"
	a.Labels = map[string]string{"region": "eu-west", "tier": "gold"}
	a.Avoid = []string{"x", "y"}
	b := r.ticket("b", flamingo.GenderMale, flamingo.PreferFemale, 2)
	b.Interests = []string{"golf"}
	b.RelaxAt = r.base.Add(20 * time.Second)
	b.Pool = "fr"
	b.Labels = map[string]string{"verified": "yes"}
	b.Avoid = []string{"z"}
	r.enqueue(a)
	r.enqueue(b)
	got := r.waitPairs(1)[0]
	assert.Equal(t, fullView(a), fullView(got.A), "Pair.A")
	assert.Equal(t, fullView(b), fullView(got.B), "Pair.B")
}

// ticketFull is every field of a ticket, in a form that compares equal for equal
// instants and treats a nil and an empty list or map alike.
type ticketFull struct {
	ticketView
	Node      string
	Interests []string
	RelaxAt   string
	Pool      string
	Labels    map[string]string
	Avoid     []string
}

func fullView(tk flamingo.Ticket) ticketFull {
	v := ticketFull{ticketView: viewTicket(tk), Node: tk.Node, Pool: tk.Pool}
	if !tk.RelaxAt.IsZero() {
		v.RelaxAt = tk.RelaxAt.UTC().Format(time.RFC3339Nano)
	}
	if len(tk.Interests) > 0 {
		v.Interests = slices.Clone(tk.Interests)
	}
	if len(tk.Labels) > 0 {
		v.Labels = maps.Clone(tk.Labels)
	}
	if len(tk.Avoid) > 0 {
		v.Avoid = slices.Clone(tk.Avoid)
	}
	return v
}
