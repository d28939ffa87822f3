package property

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// This file checks CheckMatcherRules: it must pass the memory matcher, and catch the
// memory matcher bent, one rule at a time, by a wrapper that changes the tickets it
// is given (and gives the originals back in the pairs).

// bend names one way in which bentMatcher breaks the rules of matching v2.
type bend string

const (
	bendNone            bend = ""
	bendIgnoreInterests bend = "ignores-interests" // sees no interests: everyone is relaxed
	bendRelaxEarly      bend = "relaxes-early"     // relaxes 10 ms before RelaxAt
	bendNeverRelax      bend = "never-relaxes"     // a ticket with interests never relaxes
	bendRepeatPartner   bend = "repeats-partner"   // forgets the last partner in Avoid
	bendBlockOneWay     bend = "block-one-way"     // a newcomer's Avoid spares those already waiting
	bendCrossPools      bend = "crosses-pools"     // sees one pool
	bendPreferYounger   bend = "prefers-younger"   // sees JoinedAt mirrored: the youngest goes first
)

// bentMatcher is a MemoryMatcher that sees each ticket changed by its bend.
type bentMatcher struct {
	bend  bend
	inner *flamingo.MemoryMatcher

	mu      sync.Mutex
	report  func(flamingo.Pair)
	orig    map[string]flamingo.Ticket // each user's ticket as given
	waiting map[string]bool
	partner map[string]string // each user's last partner
}

var _ flamingo.Matcher = (*bentMatcher)(nil)

func newBent(b bend) *bentMatcher {
	return &bentMatcher{
		bend:    b,
		inner:   flamingo.NewMemoryMatcher(),
		orig:    make(map[string]flamingo.Ticket),
		waiting: make(map[string]bool),
		partner: make(map[string]string),
	}
}

func (m *bentMatcher) Start(report func(flamingo.Pair)) error {
	m.mu.Lock()
	m.report = report
	m.mu.Unlock()
	return m.inner.Start(m.forward)
}

// forward gives back the tickets as they were given, the older one first.
func (m *bentMatcher) forward(p flamingo.Pair) {
	m.mu.Lock()
	a, b := m.orig[p.A.User], m.orig[p.B.User]
	delete(m.waiting, a.User)
	delete(m.waiting, b.User)
	m.partner[a.User], m.partner[b.User] = b.User, a.User
	report := m.report
	m.mu.Unlock()
	if b.JoinedAt.Before(a.JoinedAt) {
		a, b = b, a
	}
	report(flamingo.Pair{A: a, B: b, ChatID: p.ChatID})
}

func (m *bentMatcher) Enqueue(ctx context.Context, t flamingo.Ticket) error {
	m.mu.Lock()
	if m.waiting[t.User] { // ErrAlreadyQueued, from the inner matcher
		m.mu.Unlock()
		return m.inner.Enqueue(ctx, t)
	}
	bt := t
	switch m.bend {
	case bendIgnoreInterests:
		bt.Interests = nil
	case bendRelaxEarly:
		if !bt.RelaxAt.IsZero() {
			bt.RelaxAt = bt.RelaxAt.Add(-10 * time.Millisecond)
		}
	case bendNeverRelax:
		bt.RelaxAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	case bendRepeatPartner:
		last := m.partner[t.User]
		bt.Avoid = slices.DeleteFunc(slices.Clone(t.Avoid), func(u string) bool { return u == last })
	case bendBlockOneWay:
		bt.Avoid = slices.DeleteFunc(slices.Clone(t.Avoid), func(u string) bool { return m.waiting[u] })
	case bendCrossPools:
		bt.Pool = ""
	case bendPreferYounger:
		bt.JoinedAt = modelBase.Add(modelBase.Sub(t.JoinedAt))
	}
	prev, had := m.orig[t.User]
	m.orig[t.User] = t
	m.waiting[t.User] = true
	m.mu.Unlock()

	err := m.inner.Enqueue(ctx, bt)
	if err != nil {
		m.mu.Lock()
		delete(m.waiting, t.User)
		if had {
			m.orig[t.User] = prev
		} else {
			delete(m.orig, t.User)
		}
		m.mu.Unlock()
	}
	return err
}

func (m *bentMatcher) Cancel(ctx context.Context, user string) (bool, error) {
	ok, err := m.inner.Cancel(ctx, user)
	if ok {
		m.mu.Lock()
		delete(m.waiting, user)
		m.mu.Unlock()
	}
	return ok, err
}

func (m *bentMatcher) Stop(ctx context.Context) error { return m.inner.Stop(ctx) }

// Len reports the inner matcher's count, so that the checks compare it too.
func (m *bentMatcher) Len() int { return m.inner.Len() }

// ruleVerdict returns the first line of the failure that starts with a rule's name.
func (r *recordingTB) ruleVerdict() string {
	rules := []string{ruleInterest, rulePool, ruleAvoid, ruleMutual, ruleOrder, ruleFair, ruleComplete, ruleTwice, ruleLost, "unexpected pair"}
	for _, s := range r.out {
		for line := range strings.SplitSeq(s, "\n") {
			// A failure that rapid could not reproduce while shrinking (the
			// relaxation timings of a loaded machine) is reported as "flaky", with
			// the original verdict after "Traceback (". Otherwise the verdict may
			// come only in rapid's own line, "[rapid] failed after N tests: ...".
			line = strings.TrimPrefix(strings.TrimSpace(line), "Traceback (")
			if rest, ok := strings.CutPrefix(line, "[rapid] failed"); ok {
				if _, verdict, ok := strings.Cut(rest, ": "); ok {
					line = verdict
				}
			}
			for _, name := range rules {
				if strings.HasPrefix(line, name+":") {
					return line
				}
			}
		}
	}
	return strings.Join(r.out, "\n")
}

func TestMemoryMatcher_Rules(t *testing.T) {
	newMatcher := func() flamingo.Matcher { return flamingo.NewMemoryMatcher() }
	CheckMatcherRules(t, newMatcher, Options{Synchronous: true})
}

// The wrapper that bends the tickets, with no bend, passes: what the mutants fail is
// their bend's doing.
func TestCheckMatcherRules_PassesUnbentWrapper(t *testing.T) {
	CheckMatcherRules(t, func() flamingo.Matcher { return newBent(bendNone) }, Options{Synchronous: true})
}

func TestCheckMatcherRules_CatchesMutants(t *testing.T) {
	t.Chdir(t.TempDir()) // rapid's fail files
	setRapidFlag(t, "rapid.shrinktime", "1s")
	// Each mutant must be caught by a rule it breaks. A matcher that ignores
	// interests, or relaxes early, pairs strangers who share nothing too soon, and
	// so also passes over a waiter who shares an interest: which of the two rules
	// sees it first depends on the sequence drawn.
	tests := []struct {
		give bend
		want []string // the rules that may catch it
	}{
		{bendIgnoreInterests, []string{ruleInterest, ruleFair}},
		{bendRelaxEarly, []string{ruleInterest, ruleFair}},
		{bendNeverRelax, []string{ruleComplete}},
		{bendRepeatPartner, []string{ruleAvoid}},
		{bendBlockOneWay, []string{ruleAvoid}},
		{bendCrossPools, []string{rulePool}},
		{bendPreferYounger, []string{ruleFair}},
	}
	for _, tt := range tests {
		t.Run(string(tt.give), func(t *testing.T) {
			rec := &recordingTB{name: t.Name()}
			// A pair owed after a RelaxAt is waited for a quarter second, not five.
			opts := Options{Synchronous: true, RelaxTick: 250 * time.Millisecond}
			CheckMatcherRules(rec, func() flamingo.Matcher { return newBent(tt.give) }, opts)
			require.True(t, rec.Failed(), "the rules passed a matcher that %s", tt.give)
			got := rec.ruleVerdict()
			t.Logf("caught: %s", got)
			assert.True(t, slices.ContainsFunc(tt.want, func(rule string) bool { return strings.HasPrefix(got, rule+":") }),
				"caught by %q, want one of %q", got, tt.want)
		})
	}
}
