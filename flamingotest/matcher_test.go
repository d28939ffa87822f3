package flamingotest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// mutantEnv names the environment variable that makes TestMatcher_CatchesMutants run
// the suite, in a child process, over the mutant it names.
const mutantEnv = "FLAMINGOTEST_MUTANT"

// flaw names one way in which mutantMatcher gets the life cycle wrong.
type flaw string

const (
	flawNone          flaw = "none"               // a correct matcher
	flawEarlyEnqueue  flaw = "early-enqueue"      // queues tickets before Start
	flawLateEnqueue   flaw = "late-enqueue"       // keeps working after Stop
	flawQuietCancel   flaw = "quiet-cancel"       // Cancel out of turn: false and no error
	flawVagueRestart  flaw = "vague-restart"      // Start after Stop: "already started" (issue 10, defect 6)
	flawRestartOnStop flaw = "restart-after-stop" // Start after Stop succeeds
)

// mutantMatcher is a MemoryMatcher with one flaw in its life cycle; its pairing is
// the memory matcher's own.
type mutantMatcher struct {
	flaw flaw

	mu     sync.Mutex
	inner  *flamingo.MemoryMatcher // always running, for the flaws that need it
	report func(flamingo.Pair)
	state  string // "new", "running" or "stopped"
}

func newMutant(f flaw) *mutantMatcher {
	m := &mutantMatcher{flaw: f, inner: flamingo.NewMemoryMatcher(), state: "new"}
	if err := m.inner.Start(m.forward); err != nil {
		panic(err)
	}
	return m
}

// forward passes a pair of the inner matcher on to the installed report function;
// before Start there is none, and the pair is lost.
func (m *mutantMatcher) forward(p flamingo.Pair) {
	m.mu.Lock()
	report := m.report
	m.mu.Unlock()
	if report != nil {
		report(p)
	}
}

// running reports whether a call may go through: the matcher is running, or its
// flaw lets the call through anyway.
func (m *mutantMatcher) running(early, late flaw) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case "new":
		return m.flaw == early
	case "stopped":
		return m.flaw == late
	}
	return true
}

func (m *mutantMatcher) Start(report func(flamingo.Pair)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.state == "running":
		return errors.New("mutant: already started")
	case m.state == "stopped" && m.flaw == flawVagueRestart:
		return errors.New("mutant: matcher already started")
	case m.state == "stopped" && m.flaw != flawRestartOnStop:
		return flamingo.ErrMatcherStopped
	}
	if m.state == "stopped" { // a fresh queue for the restarted matcher
		m.inner = flamingo.NewMemoryMatcher()
		if err := m.inner.Start(m.forward); err != nil {
			return err
		}
	}
	m.state, m.report = "running", report
	return nil
}

func (m *mutantMatcher) Enqueue(ctx context.Context, t flamingo.Ticket) error {
	if !m.running(flawEarlyEnqueue, flawLateEnqueue) {
		return flamingo.ErrMatcherNotStarted
	}
	return m.matcher().Enqueue(ctx, t)
}

func (m *mutantMatcher) Cancel(ctx context.Context, user string) (bool, error) {
	if !m.running(flawEarlyEnqueue, flawLateEnqueue) {
		if m.flaw == flawQuietCancel {
			return false, nil
		}
		return false, flamingo.ErrMatcherNotStarted
	}
	return m.matcher().Cancel(ctx, user)
}

func (m *mutantMatcher) matcher() *flamingo.MemoryMatcher {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inner
}

func (m *mutantMatcher) Stop(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == "stopped" {
		return nil
	}
	m.state = "stopped"
	// Waiting tickets are dropped; a flaw that keeps working after Stop goes on
	// with an empty queue.
	m.inner = flamingo.NewMemoryMatcher()
	return m.inner.Start(m.forward)
}

// TestMatcher_CatchesMutants runs the whole conformance suite over each mutant in a
// child process (TestMatcher fails the test it is given, so it cannot be run on a
// broken matcher in this one), and checks that it fails, in the subtests that check
// the flaw and in no other.
func TestMatcher_CatchesMutants(t *testing.T) {
	if f := os.Getenv(mutantEnv); f != "" {
		flamingotest.TestMatcher(t, func(*testing.T) flamingo.Matcher { return newMutant(flaw(f)) })
		return
	}
	tests := []struct {
		give flaw
		want []string // the subtests that must fail, and only they
	}{
		{flawNone, nil},
		{flawEarlyEnqueue, []string{"BeforeStart"}},
		{flawLateEnqueue, []string{"AfterStop"}},
		{flawQuietCancel, []string{"AfterStop", "BeforeStart"}},
		{flawVagueRestart, []string{"AfterStop"}},
		{flawRestartOnStop, []string{"AfterStop"}},
	}
	failed := regexp.MustCompile(`--- FAIL: TestMatcher_CatchesMutants/(\w+) `)
	for _, tt := range tests {
		t.Run(string(tt.give), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMatcher_CatchesMutants$", "-test.count=1")
			cmd.Env = append(os.Environ(), mutantEnv+"="+string(tt.give))
			out, err := cmd.CombinedOutput()
			var got []string
			for _, m := range failed.FindAllSubmatch(out, -1) {
				got = append(got, string(m[1]))
			}
			slices.Sort(got)
			if tt.want == nil {
				require.NoError(t, err, "the suite failed a correct matcher:\n%s", out)
				return
			}
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the suite passed a matcher with flaw %q:\n%s", tt.give, out)
			assert.Equal(t, tt.want, got, "failing subtests; output:\n%s", out)
		})
	}
}
