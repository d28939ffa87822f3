package property

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flamingochat/flamingo"
)

// SeedEnv names the environment variable that fixes the seed of
// [CheckMatcherConcurrent], to replay a failure. (The state machine is replayed with
// rapid's own flags, -rapid.seed or -rapid.failfile.)
const SeedEnv = "PROPERTY_SEED"

// CheckMatcherConcurrent runs workers goroutines that each make opsPerWorker calls on
// one matcher made by newMatcher: new users join, users who left (or were paired)
// join again, random users are cancelled, sometimes by two goroutines at once, and
// every fifth reported pair has its A ticket put back from within the report call,
// as the Engine does when a partner vanished. When all have returned, it audits the
// end state: every pair is compatible both ways and made of tickets that were queued;
// every accepted ticket was paired once, cancelled once, or is still waiting (which
// Cancel must confirm, and Len if the matcher has it); no two compatible tickets are
// left waiting.
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
	if len(res.problems) > 0 {
		p := res.problems
		if len(p) > 20 {
			p = append(p[:20:20], fmt.Sprintf("and %d more", len(res.problems)-20))
		}
		t.Errorf("the matcher broke its contract (seed %d):\n\t%s", seed, strings.Join(p, "\n\t"))
	}
}

type kind struct {
	g flamingo.Gender
	p flamingo.Preference
}

// ticketKey names one ticket of a user: a user may queue several over time, and a
// ticket put back keeps its JoinedAt, so the same key may be accepted twice.
type ticketKey struct {
	user string
	at   int64 // JoinedAt, Unix nanoseconds
}

func keyOf(tk flamingo.Ticket) ticketKey {
	return ticketKey{tk.User, tk.JoinedAt.UnixNano()}
}

// ledger records every call's outcome, from all goroutines.
type ledger struct {
	mu       sync.Mutex
	kinds    map[string]kind    // a user's gender and preference never change here
	accepted map[ticketKey]int  // Enqueue calls that returned nil
	enq      map[string]int     // the same, per user
	canc     map[string]int     // Cancel calls that returned true, per user
	roster   []string           // every user queued so far
	putBacks int                // accepted put-backs made from report
	problems []string           // wrong errors seen during the run
	calls    map[string]float64 // calls per operation, for the summary
}

func (l *ledger) problem(format string, args ...any) {
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

func (l *ledger) enqueued(tk flamingo.Ticket, err error, op string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[op]++
	switch {
	case err == nil:
		l.accepted[keyOf(tk)]++
		l.enq[tk.User]++
		if op == "put back" {
			l.putBacks++
		}
	case op != "join" && errors.Is(err, flamingo.ErrAlreadyQueued):
		// The user had joined again in the meantime.
	default:
		l.problem("%s: Enqueue(%s) = %v", op, describe(tk), err)
	}
}

func (l *ledger) cancelled(u string, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls["cancel"]++
	if err != nil {
		l.problem("Cancel(%s) = %v", u, err)
	}
	if ok {
		l.canc[u]++
	}
}

func (l *ledger) pick(r *rand.Rand) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.roster[r.IntN(len(l.roster))]
}

type concurrentResult struct {
	problems []string
	summary  string
}

// runConcurrent is CheckMatcherConcurrent's run and audit; it reports what went wrong
// instead of failing a test, so that the checks can be checked on broken matchers.
func runConcurrent(m flamingo.Matcher, workers, ops int, seed uint64, opts Options) concurrentResult {
	ctx := context.Background()
	led := &ledger{
		kinds:    make(map[string]kind),
		accepted: make(map[ticketKey]int),
		enq:      make(map[string]int),
		canc:     make(map[string]int),
		calls:    make(map[string]float64),
	}
	var reported atomic.Int64
	log := newPairLog(func(p flamingo.Pair) {
		// Every fifth pair, A's partner "vanished": A goes back with its ticket.
		if reported.Add(1)%5 == 0 {
			led.enqueued(p.A, m.Enqueue(ctx, p.A), "put back")
		}
	})
	if err := m.Start(log.report); err != nil {
		return concurrentResult{problems: []string{"Start: " + err.Error()}}
	}
	defer func() { _ = stop(m) }()

	var wg sync.WaitGroup
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
					led.mu.Lock()
					led.kinds[tk.User] = kind{tk.Gender, tk.Preference}
					led.mu.Unlock()
					led.enqueued(tk, m.Enqueue(ctx, tk), "join")
					led.mu.Lock()
					led.roster = append(led.roster, tk.User)
					led.mu.Unlock()
					mine = append(mine, tk)
				case x < 60: // one of them joins again (they may be waiting still)
					tk := mine[rnd.IntN(len(mine))]
					tk.JoinedAt = time.Now()
					led.enqueued(tk, m.Enqueue(ctx, tk), "join again")
				case x < 90: // anyone leaves
					u := led.pick(rnd)
					ok, err := m.Cancel(ctx, u)
					led.cancelled(u, ok, err)
				default: // two goroutines race to cancel the same user
					u := led.pick(rnd)
					var both sync.WaitGroup
					for range 2 {
						both.Go(func() {
							ok, err := m.Cancel(ctx, u)
							led.cancelled(u, ok, err)
						})
					}
					both.Wait()
				}
			}
		})
	}
	wg.Wait()

	// A matcher that reports pairs after Enqueue returns may still owe some (and put
	// backs from report may still be under way): wait while pairs keep coming.
	log.waitFor(opts.pairWait(), func() bool {
		led.mu.Lock()
		defer led.mu.Unlock()
		_, _, clash := led.leftovers(log.snapshot())
		return clash == ""
	})

	led.mu.Lock()
	problems := led.problems
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	pairs := log.snapshot()
	balance, waiting, clash := led.leftovers(pairs)
	if clash != "" {
		problem("no compatible pair left waiting: %s still wait", clash)
	}

	inPairs := make(map[ticketKey]int)
	for _, p := range pairs {
		for _, tk := range []flamingo.Ticket{p.A, p.B} {
			k := keyOf(tk)
			inPairs[k]++
			if led.accepted[k] == 0 {
				problem("nobody twice: pair %s holds %s, a ticket that was never queued", describePair(p), describe(tk))
			} else if led.kinds[tk.User] != (kind{tk.Gender, tk.Preference}) {
				problem("pair %s carries %s, queued as %s→%s", describePair(p), describe(tk), led.kinds[tk.User].g, led.kinds[tk.User].p)
			}
		}
		if !compatible(p.A, p.B) {
			problem("preferences both ways: pair %s is not compatible", describePair(p))
		}
		if p.A.JoinedAt.After(p.B.JoinedAt) {
			problem("oldest first: pair %s has A joining after B", describePair(p))
		}
	}
	for k, n := range inPairs {
		if n > led.accepted[k] {
			problem("nobody twice: ticket %s@%d is in %d pairs but was queued %d time(s)", k.user, k.at, n, led.accepted[k])
		}
	}
	users := make([]string, 0, len(led.kinds))
	for u := range led.kinds {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		switch b := balance[u]; {
		case b < 0:
			problem("nobody twice: %s was queued %d time(s) but paired or cancelled %d time(s)", u, led.enq[u], led.enq[u]-b)
		case b > 1:
			problem("nobody lost: %s was queued %d time(s), and %d ticket(s) are neither paired nor cancelled", u, led.enq[u], b)
		}
	}

	summary := fmt.Sprintf("%d workers × %d ops: %v joins, %v joins again, %v cancels; %d tickets accepted "+
		"(%d put back from report), %d pairs, %d still waiting at the end",
		workers, ops, led.calls["join"], led.calls["join again"], led.calls["cancel"],
		sum(led.enq), led.putBacks, len(pairs), len(waiting))
	led.mu.Unlock() // not held across calls to the matcher

	// Whoever the ledger says waits must still wait, and nobody else.
	ln, hasLen := m.(lenner)
	if hasLen {
		switch n := ln.Len(); {
		case n < len(waiting):
			problem("nobody lost: Len() = %d, but %d users are neither paired nor cancelled", n, len(waiting))
		case n > len(waiting):
			problem("nobody twice: Len() = %d, but only %d users are neither paired nor cancelled", n, len(waiting))
		}
	}
	for _, u := range users {
		ok, err := m.Cancel(ctx, u)
		switch {
		case err != nil:
			problem("Cancel(%s) at the end = %v", u, err)
		case ok && balance[u] != 1:
			problem("nobody twice: Cancel(%s) at the end = true, but all its tickets were paired or cancelled", u)
		case !ok && balance[u] == 1:
			problem("nobody lost: Cancel(%s) at the end = false, but its ticket was neither paired nor cancelled", u)
		}
	}
	if hasLen {
		if n := ln.Len(); n != 0 {
			problem("nobody twice: Len() = %d after every user was cancelled", n)
		}
	}

	return concurrentResult{problems: problems, summary: summary}
}

// leftovers returns each user's balance (tickets accepted, less those paired or
// cancelled: 0 or 1 in a sound matcher), the users that still wait, and two compatible
// ones among them. The caller holds l.mu.
func (l *ledger) leftovers(pairs []flamingo.Pair) (balance map[string]int, waiting []string, clash string) {
	balance = make(map[string]int, len(l.enq))
	for u, n := range l.enq {
		balance[u] = n - l.canc[u]
	}
	for _, p := range pairs {
		balance[p.A.User]--
		balance[p.B.User]--
	}
	byKind := make(map[kind][]string)
	for u, b := range balance {
		if b == 1 {
			waiting = append(waiting, u)
			byKind[l.kinds[u]] = append(byKind[l.kinds[u]], u)
		}
	}
	sort.Strings(waiting)
	ticket := func(u string, k kind) flamingo.Ticket {
		return flamingo.Ticket{User: u, Gender: k.g, Preference: k.p}
	}
	// Users of one kind are alike: comparing the kinds is enough.
	for ka, as := range byKind {
		for kb, bs := range byKind {
			a, b := as[0], bs[0]
			if ka == kb {
				if len(as) < 2 {
					continue
				}
				b = as[1]
			}
			if compatible(ticket(a, ka), ticket(b, kb)) {
				return balance, waiting, a + " and " + b
			}
		}
	}
	return balance, waiting, ""
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
