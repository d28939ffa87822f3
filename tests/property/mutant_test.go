package property

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// This file checks the checks: each is run on matchers broken on purpose, one flaw
// at a time, and must catch every one of them, and must pass the same matcher with
// no flaw.

// flaw names one way in which listMatcher breaks the contract.
type flaw string

const (
	flawNone      flaw = ""           // a correct, if slow, matcher
	flawLIFO      flaw = "lifo"       // pairs with the newest compatible waiter
	flawOneWay    flaw = "one-way"    // checks only the newcomer's preference
	flawHeadOnly  flaw = "head-only"  // looks at the oldest waiter only
	flawReuse     flaw = "reuse"      // leaves a paired waiter in the queue
	flawLosePut   flaw = "lose-older" // drops a ticket older than the newest seen, if it must wait
	flawFakeLeave flaw = "fake-leave" // Cancel says true but keeps the ticket
)

// listMatcher is a plain matcher over one slice, with an optional flaw.
type listMatcher struct {
	flaw   flaw
	mu     sync.Mutex
	report func(flamingo.Pair)
	queue  []flamingo.Ticket // in arrival order
	newest time.Time
}

var _ flamingo.Matcher = (*listMatcher)(nil)

func (m *listMatcher) Start(report func(flamingo.Pair)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.report = report
	return nil
}

func (m *listMatcher) Stop(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queue = nil
	return nil
}

func (m *listMatcher) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}

func (m *listMatcher) Enqueue(_ context.Context, t flamingo.Ticket) error {
	if t.User == "" || !t.Gender.Valid() || !t.Preference.Valid() {
		return flamingo.ErrInvalidTicket
	}
	m.mu.Lock()
	if slices.ContainsFunc(m.queue, func(w flamingo.Ticket) bool { return w.User == t.User }) {
		m.mu.Unlock()
		return flamingo.ErrAlreadyQueued
	}
	older := t.JoinedAt.Before(m.newest)
	if !older {
		m.newest = t.JoinedAt
	}
	best := -1
	if m.flaw == flawHeadOnly {
		head := -1
		for i, w := range m.queue {
			if head < 0 || w.JoinedAt.Before(m.queue[head].JoinedAt) {
				head = i
			}
		}
		if head >= 0 && t.Compatible(m.queue[head]) {
			best = head
		}
	} else {
		for i, w := range m.queue {
			ok := t.Compatible(w)
			if m.flaw == flawOneWay {
				ok = t.User != w.User && t.Preference.Accepts(w.Gender)
			}
			switch {
			case !ok:
			case best < 0,
				m.flaw == flawLIFO && w.JoinedAt.After(m.queue[best].JoinedAt),
				m.flaw != flawLIFO && w.JoinedAt.Before(m.queue[best].JoinedAt):
				best = i
			}
		}
	}
	if best < 0 {
		if m.flaw != flawLosePut || !older {
			m.queue = append(m.queue, t)
		}
		m.mu.Unlock()
		return nil
	}
	w := m.queue[best]
	if m.flaw != flawReuse {
		m.queue = slices.Delete(m.queue, best, best+1)
	}
	report := m.report
	m.mu.Unlock()
	p := flamingo.Pair{A: w, B: t}
	if t.JoinedAt.Before(w.JoinedAt) {
		p = flamingo.Pair{A: t, B: w}
	}
	report(p)
	return nil
}

func (m *listMatcher) Cancel(_ context.Context, user string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.queue, func(w flamingo.Ticket) bool { return w.User == user })
	if i < 0 {
		return false, nil
	}
	if m.flaw != flawFakeLeave {
		m.queue = slices.Delete(m.queue, i, i+1)
	}
	return true, nil
}

// recordingTB is a rapid.TB that records a failure instead of failing the test, so
// that a property can be expected to fail.
type recordingTB struct {
	name   string
	mu     sync.Mutex
	failed bool
	out    []string
}

func (r *recordingTB) Helper()      {}
func (r *recordingTB) Name() string { return r.name }
func (r *recordingTB) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out = append(r.out, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Log(args ...any)                  { r.Logf("%s", fmt.Sprint(args...)) }
func (r *recordingTB) Skipf(format string, args ...any) { r.Logf("skip: "+format, args...) }
func (r *recordingTB) Skip(args ...any)                 { r.Log(args...) }
func (r *recordingTB) SkipNow()                         {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.Fail()
	r.Logf(format, args...)
}
func (r *recordingTB) Error(args ...any) { r.Fail(); r.Log(args...) }
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
}
func (r *recordingTB) Fatal(args ...any) { r.Error(args...) }
func (r *recordingTB) FailNow()          { r.Fail() }
func (r *recordingTB) Fail() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
}
func (r *recordingTB) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// verdict returns the first line of the failure that names an invariant.
func (r *recordingTB) verdict() string {
	for _, s := range r.out {
		for line := range strings.SplitSeq(s, "\n") {
			for _, name := range []string{"nobody twice", "nobody lost", "preferences both ways", "oldest", "no compatible pair"} {
				if strings.Contains(line, name+":") || strings.Contains(line, name+" ") {
					return strings.TrimSpace(line)
				}
			}
		}
	}
	return strings.Join(r.out, "\n")
}

// setRapidFlag sets one of rapid's flags for the rest of the test.
func setRapidFlag(t *testing.T, name, value string) {
	f := flag.Lookup(name)
	require.NotNil(t, f, "rapid's flag %s", name)
	old := f.Value.String()
	require.NoError(t, f.Value.Set(value))
	t.Cleanup(func() { _ = f.Value.Set(old) })
}

func TestCheckMatcher_PassesCorrectListMatcher(t *testing.T) {
	newMatcher := func() flamingo.Matcher { return &listMatcher{} }
	CheckMatcher(t, newMatcher, Options{Synchronous: true})
	CheckMatcherConcurrent(t, newMatcher, 8, 200, Options{Synchronous: true})
}

func TestCheckMatcher_CatchesMutants(t *testing.T) {
	// rapid writes a fail file for each failure it finds, and shrinks it for up to
	// 30 s: keep the files out of the tree, and the shrinking short.
	t.Chdir(t.TempDir())
	setRapidFlag(t, "rapid.shrinktime", "1s")
	tests := []struct {
		flaw flaw
		want string // the invariant that must catch it
	}{
		{flawLIFO, "oldest compatible first"},
		{flawOneWay, "preferences both ways"},
		{flawHeadOnly, "no compatible pair left waiting"},
		{flawReuse, "nobody twice"},
		{flawLosePut, "nobody lost"},
		{flawFakeLeave, "nobody"}, // twice (paired after leaving) or lost (Len)
	}
	for _, tt := range tests {
		t.Run(string(tt.flaw), func(t *testing.T) {
			rec := &recordingTB{name: t.Name()}
			CheckMatcher(rec, func() flamingo.Matcher { return &listMatcher{flaw: tt.flaw} }, Options{Synchronous: true})
			require.True(t, rec.Failed(), "the state machine passed a matcher with flaw %q", tt.flaw)
			got := rec.verdict()
			t.Logf("caught: %s", got)
			assert.Contains(t, got, tt.want)
		})
	}
}

func TestCheckMatcherConcurrent_CatchesMutants(t *testing.T) {
	tests := []struct {
		flaw flaw
		want string // a rule of flamingotest.Ledger.Check
	}{
		{flawLIFO, "oldest compatible first"},
		{flawOneWay, "preferences both ways"},
		{flawHeadOnly, "no compatible pair left waiting"},
		{flawReuse, "nobody twice"},
		{flawLosePut, "nobody lost"},
		{flawFakeLeave, "nobody"},
	}
	for _, tt := range tests {
		t.Run(string(tt.flaw), func(t *testing.T) {
			res := runConcurrent(&listMatcher{flaw: tt.flaw}, 16, 200, uint64(time.Now().UnixNano()), Options{Synchronous: true})
			require.Error(t, res.err, "the concurrent check passed a matcher with flaw %q", tt.flaw)
			t.Logf("caught: %v", res.err)
			assert.Contains(t, res.err.Error(), "\n\t"+tt.want, "no problem of the rule %q", tt.want)
		})
	}
}
