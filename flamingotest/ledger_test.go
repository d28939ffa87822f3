package flamingotest_test

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
	"github.com/flamingochat/flamingo/flamingotest"
)

// queue is the state that scripted matchers share: the tickets waiting, and an error
// to return for some users. It never pairs on its own: the test script does.
type queue struct {
	mu      sync.Mutex
	waiting []flamingo.Ticket
	errs    map[string]error // Enqueue of these users returns the error
	sticky  bool             // Cancel says true but keeps the ticket
}

// scripted is one node's matcher over a queue.
type scripted struct {
	q      *queue
	report func(flamingo.Pair)
}

func (s *scripted) Start(report func(flamingo.Pair)) error { s.report = report; return nil }
func (s *scripted) Stop(context.Context) error             { return nil }

func (s *scripted) Enqueue(_ context.Context, t flamingo.Ticket) error {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	if err := s.q.errs[t.User]; err != nil {
		return err
	}
	s.q.waiting = append(s.q.waiting, t)
	return nil
}

func (s *scripted) Cancel(_ context.Context, user string) (bool, error) {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	i := slices.IndexFunc(s.q.waiting, func(t flamingo.Ticket) bool { return t.User == user })
	if i < 0 {
		return false, nil
	}
	if !s.q.sticky {
		s.q.waiting = slices.Delete(s.q.waiting, i, i+1)
	}
	return true, nil
}

// take removes user's ticket from the queue, if it waits, and returns it.
func (q *queue) take(user string) flamingo.Ticket {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.IndexFunc(q.waiting, func(t flamingo.Ticket) bool { return t.User == user })
	if i < 0 {
		return flamingo.Ticket{}
	}
	t := q.waiting[i]
	q.waiting = slices.Delete(q.waiting, i, i+1)
	return t
}

// ledgerRun is one scripted run: two nodes, x and y, over one queue, and the tickets
// the script uses.
type ledgerRun struct {
	t     *testing.T
	q     *queue
	led   *flamingotest.Ledger
	nodes map[string]flamingo.Matcher
	impl  map[string]*scripted
	tk    map[string]flamingo.Ticket
}

func newLedgerRun(t *testing.T) *ledgerRun {
	r := &ledgerRun{t: t, q: &queue{errs: map[string]error{}}, led: flamingotest.NewLedger(),
		nodes: map[string]flamingo.Matcher{}, impl: map[string]*scripted{}, tk: map[string]flamingo.Ticket{}}
	for _, n := range []string{"x", "y"} {
		r.impl[n] = &scripted{q: r.q}
		r.nodes[n] = r.led.Matcher(n, r.impl[n])
		require.NoError(t, r.nodes[n].Start(func(flamingo.Pair) {}))
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	kinds := map[string][2]string{ // user: gender, preference
		"w1": {"female", "male"}, "w2": {"female", "male"}, "w3": {"female", "male"},
		"m1": {"male", "female"}, "m2": {"male", "female"}, "o1": {"other", "other"},
	}
	for i, u := range []string{"w1", "w2", "w3", "m1", "m2", "o1"} {
		k := kinds[u]
		r.tk[u] = flamingo.Ticket{User: u, Gender: flamingo.Gender(k[0]), Preference: flamingo.Preference(k[1]),
			JoinedAt: base.Add(time.Duration(i) * time.Second)}
	}
	return r
}

// enqueue enqueues the named users' tickets through node x.
func (r *ledgerRun) enqueue(users ...string) {
	for _, u := range users {
		_ = r.nodes["x"].Enqueue(r.t.Context(), r.tk[u])
	}
}

// pair takes two waiting tickets out of the queue and reports them, as given, on the
// nodes named.
func (r *ledgerRun) pair(a, b string, on ...string) {
	p := flamingo.Pair{A: r.q.take(a), B: r.q.take(b)}
	if p.A.User == "" {
		p.A = r.tk[a]
	}
	if p.B.User == "" {
		p.B = r.tk[b]
	}
	if len(on) == 0 {
		on = []string{"x"}
	}
	for _, n := range on {
		r.impl[n].report(p)
	}
}

// TestLedger checks each rule of Ledger.Check on a scripted run that breaks it, one
// at a time, and on one that breaks none.
func TestLedger(t *testing.T) {
	tests := []struct {
		name   string
		script func(r *ledgerRun)
		want   string // the rule the problem names; "" for none
	}{
		{"clean", func(r *ledgerRun) {
			r.enqueue("w1", "w2", "m1") // m1 meets w1, the oldest
			r.pair("w1", "m1")
			r.enqueue("o1")
			_, _ = r.nodes["y"].Cancel(r.t.Context(), "w2")
			r.enqueue("w2") // w2 queues again
			r.q.errs["w2"] = flamingo.ErrAlreadyQueued
			r.enqueue("w2") // and again, while waiting: refused rightly
		}, ""},
		{"paired twice", func(r *ledgerRun) {
			r.enqueue("w1", "m1", "m2")
			r.pair("w1", "m1")
			r.pair("w1", "m2")
		}, "nobody twice"},
		{"paired and cancelled", func(r *ledgerRun) {
			r.enqueue("w1", "m1")
			_, _ = r.nodes["x"].Cancel(r.t.Context(), "w1")
			r.pair("w1", "m1")
		}, "nobody twice"},
		{"cancel keeps the ticket", func(r *ledgerRun) {
			r.q.sticky = true
			r.enqueue("w1")
			_, _ = r.nodes["x"].Cancel(r.t.Context(), "w1")
		}, "nobody twice"},
		{"ticket lost", func(r *ledgerRun) {
			r.enqueue("w1", "o1")
			r.q.take("w1")
		}, "nobody lost"},
		{"one way only", func(r *ledgerRun) {
			r.enqueue("w1", "w2")
			r.pair("w1", "w2")
		}, "preferences both ways"},
		{"A younger than B", func(r *ledgerRun) {
			r.enqueue("w1", "m1")
			r.pair("m1", "w1")
		}, "oldest first"},
		{"newest waiter first", func(r *ledgerRun) {
			r.enqueue("w1", "w2", "m1")
			r.pair("w2", "m1") // w1 waited longer
		}, "oldest compatible first"},
		{"compatible left waiting", func(r *ledgerRun) {
			r.enqueue("w1", "m1")
		}, "no compatible pair left waiting"},
		{"ticket changed", func(r *ledgerRun) {
			r.enqueue("w1", "m1")
			r.q.take("m1")
			p := flamingo.Pair{A: r.q.take("w1"), B: r.tk["m1"]}
			p.B.Preference = flamingo.PreferAny
			r.impl["x"].report(p)
		}, "as queued"},
		{"reported on the wrong node", func(r *ledgerRun) {
			r.enqueue("w1", "m1") // both through x
			r.pair("w1", "m1", "y")
		}, "reported to owners"},
		{"reported once of twice", func(r *ledgerRun) {
			r.enqueue("w1")
			_ = r.nodes["y"].Enqueue(r.t.Context(), r.tk["m1"])
			r.pair("w1", "m1", "x") // y owns m1 but is not told
		}, "reported to owners"},
		{"already queued, never queued", func(r *ledgerRun) {
			r.q.errs["w1"] = flamingo.ErrAlreadyQueued
			r.enqueue("w1")
		}, "right errors"},
		{"already queued after leaving", func(r *ledgerRun) {
			r.enqueue("w1")
			_, _ = r.nodes["x"].Cancel(r.t.Context(), "w1")
			r.q.errs["w1"] = flamingo.ErrAlreadyQueued
			r.enqueue("w1")
		}, "right errors"},
		{"valid ticket refused", func(r *ledgerRun) {
			r.q.errs["w1"] = flamingo.ErrInvalidTicket
			r.enqueue("w1")
		}, "right errors"},
		{"not started", func(r *ledgerRun) {
			r.q.errs["w1"] = flamingo.ErrMatcherNotStarted
			r.enqueue("w1")
		}, "right errors"},
		{"invalid ticket accepted", func(r *ledgerRun) {
			bad := r.tk["w1"]
			bad.Gender = "robot"
			_ = r.nodes["x"].Enqueue(r.t.Context(), bad)
		}, "right errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newLedgerRun(t)
			tt.script(r)
			err := r.led.Check(0)
			t.Log(r.led)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			t.Log(err)
			// Every problem found is of the rule broken, and of no other.
			lines := strings.Split(err.Error(), "\n\t")[1:]
			require.NotEmpty(t, lines)
			for _, l := range lines {
				assert.True(t, strings.HasPrefix(l, tt.want+": "), "problem of another rule than %q: %s", tt.want, l)
			}
		})
	}
}

func TestLedger_CheckTwice(t *testing.T) {
	led := flamingotest.NewLedger()
	m := led.Matcher("", flamingo.NewMemoryMatcher())
	require.NoError(t, m.Start(func(flamingo.Pair) {}))
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	require.NoError(t, led.Check(0))
	assert.Error(t, led.Check(0))
}
