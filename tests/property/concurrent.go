package property

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// SeedEnv names the environment variable that fixes the seed of
// [CheckMatcherConcurrent], to replay a failure. (The state machine is replayed with
// rapid's own flags, -rapid.seed or -rapid.failfile.)
const SeedEnv = "PROPERTY_SEED"

// CheckMatcherConcurrent runs workers goroutines that each make opsPerWorker calls on
// one matcher made by newMatcher: new users join, users who left (or were paired)
// join again, random users are cancelled, sometimes by two goroutines at once, and
// every fifth reported pair has its A ticket put back from within the report call,
// as the Engine does when a partner vanished. A [flamingotest.Ledger] records every
// call and pair, and audits the run when all have returned: see [flamingotest.Ledger.Check]
// for its rules, which include all of this package's invariants.
//
// The seed is logged; set the environment variable named by [SeedEnv] to replay it.
// Goroutine scheduling still differs from run to run.
func CheckMatcherConcurrent(t testing.TB, newMatcher func() flamingo.Matcher, workers, opsPerWorker int, opts Options) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(SeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", SeedEnv, err)
		}
		seed = v
	}
	t.Logf("seed %d (set %s=%d to replay)", seed, SeedEnv, seed)
	m := newMatcher()
	if m == nil {
		t.Fatalf("newMatcher returned nil")
	}
	res := runConcurrent(m, workers, opsPerWorker, seed, opts)
	t.Log(res.summary)
	if res.err != nil {
		t.Errorf("seed %d: %v", seed, res.err)
	}
}

type concurrentResult struct {
	err     error // the ledger's verdict
	summary string
}

// runConcurrent is CheckMatcherConcurrent's run and audit; it returns what went wrong
// instead of failing a test, so that the check can be checked on broken matchers.
func runConcurrent(m flamingo.Matcher, workers, ops int, seed uint64, opts Options) concurrentResult {
	ctx := context.Background()
	led := flamingotest.NewLedger()
	lm := led.Matcher("", m)
	var reported, putBacks atomic.Int64
	report := func(p flamingo.Pair) {
		// Every fifth pair, A's partner "vanished": A goes back with its ticket.
		if reported.Add(1)%5 == 0 && lm.Enqueue(ctx, p.A) == nil {
			putBacks.Add(1)
		}
	}
	if err := lm.Start(report); err != nil {
		return concurrentResult{err: fmt.Errorf("start: %w", err)}
	}
	defer func() { _ = stop(m) }()

	var (
		mu     sync.Mutex
		roster []string // every user queued so far
		wg     sync.WaitGroup
	)
	pick := func(r *rand.Rand) string {
		mu.Lock()
		defer mu.Unlock()
		return roster[r.IntN(len(roster))]
	}
	for w := range workers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(seed, uint64(w)))
			var mine []flamingo.Ticket // the first ticket of each of this worker's users
			for i := range ops {
				switch x := rnd.IntN(100); {
				case x < 45 || len(mine) == 0: // a new user joins
					tk := flamingo.Ticket{
						User:       fmt.Sprintf("w%02d-%03d", w, i),
						Gender:     genders[rnd.IntN(len(genders))],
						Preference: preferences[rnd.IntN(len(preferences))],
						JoinedAt:   time.Now(),
					}
					_ = lm.Enqueue(ctx, tk)
					mu.Lock()
					roster = append(roster, tk.User)
					mu.Unlock()
					mine = append(mine, tk)
				case x < 60: // one of them joins again (they may be waiting still)
					tk := mine[rnd.IntN(len(mine))]
					tk.JoinedAt = time.Now()
					_ = lm.Enqueue(ctx, tk)
				case x < 90: // anyone leaves
					_, _ = lm.Cancel(ctx, pick(rnd))
				default: // two goroutines race to cancel the same user
					u := pick(rnd)
					var both sync.WaitGroup
					for range 2 {
						both.Go(func() { _, _ = lm.Cancel(ctx, u) })
					}
					both.Wait()
				}
			}
		})
	}
	wg.Wait()

	// A matcher that reports pairs after Enqueue returns may still owe some (and put
	// backs from report may still be under way): the ledger waits while pairs come.
	err := led.Check(opts.pairWait())
	summary := fmt.Sprintf("%d workers × %d ops, %d tickets put back from report: %v", workers, ops, putBacks.Load(), led)
	return concurrentResult{err: err, summary: summary}
}
