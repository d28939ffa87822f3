package flamingotest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flamingochat/flamingo"
)

// Ledger records what many goroutines ask of a [flamingo.Matcher], or of several
// matchers sharing one queue (the nodes of a cluster), and every pair each of them
// reports; [Ledger.Check] then audits the whole run against the Matcher contract. The
// Concurrent subtest of [TestMatcher] uses it, and so can an implementation's own
// stress tests:
//
//	led := flamingotest.NewLedger()
//	a := led.Matcher("a", newNode("a")) // use a and b instead of the nodes
//	b := led.Matcher("b", newNode("b"))
//	// Start a and b, call Enqueue and Cancel from many goroutines, wait for them.
//	if err := led.Check(5 * time.Second); err != nil {
//		t.Error(err)
//	}
//	t.Log(led)
//
// A Ledger is safe for use by any number of goroutines. It orders the calls it sees by
// when they began and ended, which lets Check find unfair pairs in a concurrent run
// where that order proves them (see Check).
type Ledger struct {
	mu       sync.Mutex
	clock    int64            // ticks of the ledger's clock: each call's start and end, each report
	more     chan struct{}    // signalled after each report and call; capacity 1 so nobody blocks
	inflight int              // calls begun and not ended
	matchers []*ledgerMatcher // in the order Matcher made them
	enqueues []ledgerEnqueue  // returned calls
	cancels  []ledgerCancel   // returned calls
	reports  []ledgerReport   // in the order they were made
	final    map[string]bool  // Check's own Cancel of every user: its result
	waiting  int              // tickets Check found waiting at the end
	finalErr map[string]error // Check's own Cancel calls that failed
	checked  bool             // Check has run
}

type ledgerEnqueue struct {
	node       string
	t          flamingo.Ticket
	err        error
	begin, end int64
}

type ledgerCancel struct {
	node       string
	user       string
	ok         bool
	err        error
	begin, end int64
}

type ledgerReport struct {
	node string
	p    flamingo.Pair
	at   int64
}

// NewLedger returns an empty Ledger.
func NewLedger() *Ledger {
	return &Ledger{more: make(chan struct{}, 1)}
}

// Matcher returns m wrapped so that the ledger records each Enqueue and Cancel made
// through it, with its result, and each pair it reports, as made on node: a name that
// tells the matchers sharing one queue apart ("" will do for a single matcher). Use
// the returned Matcher in place of m for everything, report functions that call back
// into it included; Start installs a report function that records each pair before it
// calls the one given. The Len method of m, if it has one, stays reachable to Check.
func (l *Ledger) Matcher(node string, m flamingo.Matcher) flamingo.Matcher {
	w := &ledgerMatcher{l: l, node: node, m: m}
	l.mu.Lock()
	l.matchers = append(l.matchers, w)
	l.mu.Unlock()
	return w
}

// ledgerMatcher is a matcher whose calls and reports a Ledger records.
type ledgerMatcher struct {
	l    *Ledger
	node string
	m    flamingo.Matcher
}

var _ flamingo.Matcher = (*ledgerMatcher)(nil)

func (w *ledgerMatcher) Start(report func(flamingo.Pair)) error {
	if report == nil {
		return w.m.Start(nil) // let the matcher refuse it
	}
	return w.m.Start(func(p flamingo.Pair) {
		w.l.reported(w.node, p)
		report(p)
	})
}

func (w *ledgerMatcher) Enqueue(ctx context.Context, t flamingo.Ticket) error {
	begin := w.l.begin()
	err := w.m.Enqueue(ctx, t)
	w.l.mu.Lock()
	w.l.enqueues = append(w.l.enqueues, ledgerEnqueue{w.node, t, err, begin, w.l.endLocked()})
	w.l.mu.Unlock()
	w.l.signal()
	return err
}

func (w *ledgerMatcher) Cancel(ctx context.Context, user string) (bool, error) {
	begin := w.l.begin()
	ok, err := w.m.Cancel(ctx, user)
	w.l.mu.Lock()
	w.l.cancels = append(w.l.cancels, ledgerCancel{w.node, user, ok, err, begin, w.l.endLocked()})
	w.l.mu.Unlock()
	w.l.signal()
	return ok, err
}

func (w *ledgerMatcher) Stop(ctx context.Context) error { return w.m.Stop(ctx) }

// begin starts a call: it returns the call's start on the ledger's clock.
func (l *Ledger) begin() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight++
	l.clock++
	return l.clock
}

// endLocked ends a call: it returns the call's end on the ledger's clock.
func (l *Ledger) endLocked() int64 {
	l.inflight--
	l.clock++
	return l.clock
}

func (l *Ledger) reported(node string, p flamingo.Pair) {
	l.mu.Lock()
	l.clock++
	l.reports = append(l.reports, ledgerReport{node, p, l.clock})
	l.mu.Unlock()
	l.signal()
}

func (l *Ledger) signal() {
	select {
	case l.more <- struct{}{}:
	default:
	}
}

// await waits for the next report or call, up to wait, and reports whether one came.
func (l *Ledger) await(wait time.Duration) bool {
	if wait <= 0 {
		return false
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-l.more:
		return true
	case <-timer.C:
		return false
	}
}

// waitUntil waits until cond holds, for as long as reports and calls keep coming,
// and gives up once wait passes without any. It reports whether cond held.
func (l *Ledger) waitUntil(wait time.Duration, cond func(*ledgerAudit) bool) bool {
	for {
		if cond(l.snapshot()) {
			return true
		}
		if !l.await(wait) {
			return cond(l.snapshot())
		}
	}
}

// Check audits the run once every goroutine using the ledger's matchers has returned,
// before the matchers are stopped. It returns nil if the run kept the contract, and
// otherwise an error that lists the problems by rule:
//
//   - nobody twice: no ticket is in two pairs, or in a pair and cancelled (Cancel
//     returned true), and no user has more tickets waiting than were queued;
//   - nobody lost: every ticket that Enqueue accepted is paired, cancelled, or still
//     waiting, which Check's own Cancel must confirm (and Len, when there is one
//     matcher and it has a Len method);
//   - preferences both ways: both tickets of a pair accept each other, and belong to
//     two users;
//   - oldest first: Pair.A joined no later than Pair.B;
//   - oldest compatible first: no side of a pair was given a partner younger than a
//     compatible ticket that provably waited all through the pairing (its Enqueue
//     returned before either ticket's Enqueue began, and it left the queue only after
//     the pair was first reported); only tickets of users queued once are looked at;
//   - no compatible pair left waiting: no two tickets left waiting at the end accept
//     each other;
//   - as queued: a pair carries its tickets as they were enqueued;
//   - reported to owners: each pair is reported once on every node through which one
//     of its tickets was enqueued, and on no other node;
//   - right errors: Enqueue and Cancel return no errors but ErrAlreadyQueued (only
//     when a ticket of the user may have been waiting) and ErrInvalidTicket (only, and
//     always, for a ticket without a user or with an unknown gender or preference).
//
// A matcher may report pairs after Enqueue returns: Check waits while reports keep
// coming, and gives up once wait passes without one (at once if wait is zero, which
// holds a matcher to reporting every pair before Enqueue returns). To tell a waiting ticket
// from a lost one, Check cancels every user's ticket, so it runs once, at the end.
func (l *Ledger) Check(wait time.Duration) error {
	l.mu.Lock()
	if l.checked {
		l.mu.Unlock()
		return errors.New("flamingotest: Ledger.Check called twice")
	}
	l.checked = true
	l.mu.Unlock()

	// Pairs still owed arrive: no two compatible tickets seem to wait, every pair has
	// reached all its nodes, and no call is under way (a report may call Enqueue).
	l.waitUntil(wait, func(a *ledgerAudit) bool { return a.settled() })

	a := l.snapshot()
	var lenProblems []string
	ln, hasLen := l.lenner()
	if hasLen {
		if n, want := ln.Len(), len(a.waiting); n != want {
			rule := ruleLost
			if n > want {
				rule = ruleTwice
			}
			lenProblems = append(lenProblems, rule+fmt.Sprintf(": Len() = %d, but %d ticket(s) are neither paired nor cancelled", n, want))
		}
	}
	// Check's own Cancel of every user proves who waits. One that says false for a
	// waiting ticket must be paired already: its pair is owed.
	final, finalErr := l.cancelAll(a)
	var owed []string
	for _, u := range a.users {
		if !final[u] && finalErr[u] == nil && a.balance[u] == 1 {
			owed = append(owed, u)
		}
	}
	if len(owed) > 0 {
		l.waitUntil(wait, func(a *ledgerAudit) bool {
			return !slices.ContainsFunc(owed, func(u string) bool { return a.balance[u] == 1 })
		})
	}
	if hasLen {
		if n := ln.Len(); n != 0 {
			lenProblems = append(lenProblems, ruleTwice+fmt.Sprintf(": Len() = %d after every user was cancelled", n))
		}
	}

	l.mu.Lock()
	l.final, l.finalErr, l.waiting = final, finalErr, len(a.waiting)
	l.mu.Unlock()
	a = l.snapshot()
	a.check()
	for _, p := range lenProblems {
		a.problem(p)
	}
	return a.err()
}

// cancelAll cancels every user's ticket, through the node of the user's last accepted
// one, from a few goroutines: a matcher over the network answers each call in a round
// trip. It returns the results, and the errors by user.
func (l *Ledger) cancelAll(a *ledgerAudit) (map[string]bool, map[string]error) {
	const workers = 8
	var (
		mu      sync.Mutex
		results = make(map[string]bool, len(a.users))
		errs    = make(map[string]error)
		wg      sync.WaitGroup
		next    = make(chan string)
	)
	for range workers {
		wg.Go(func() {
			for u := range next {
				ok, err := l.matcherFor(a.latest[u].node).Cancel(context.Background(), u)
				mu.Lock()
				results[u] = ok
				if err != nil {
					errs[u] = err
				}
				mu.Unlock()
			}
		})
	}
	for _, u := range a.users {
		next <- u
	}
	close(next)
	wg.Wait()
	return results, errs
}

// lenner returns the single matcher's Len method, if the ledger has one matcher and
// it has such a method.
func (l *Ledger) lenner() (interface{ Len() int }, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.matchers) != 1 {
		return nil, false
	}
	ln, ok := l.matchers[0].m.(interface{ Len() int })
	return ln, ok
}

// matcherFor returns the unwrapped matcher of node, or the first one if there is no
// such node.
func (l *Ledger) matcherFor(node string) flamingo.Matcher {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.matchers {
		if w.node == node {
			return w.m
		}
	}
	return l.matchers[0].m
}

// String summarises the run: calls, pairs, and the tickets Check found waiting.
func (l *Ledger) String() string {
	a := l.snapshot()
	accepted, trues := 0, 0
	for _, e := range a.enqueues {
		if e.err == nil {
			accepted++
		}
	}
	for _, c := range a.cancels {
		if c.ok {
			trues++
		}
	}
	s := fmt.Sprintf("%d Enqueue calls (%d accepted), %d Cancel calls (%d true), %d pairs",
		len(a.enqueues), accepted, len(a.cancels), trues, len(a.pairs))
	if a.nodes > 1 {
		s += fmt.Sprintf(" (%d across nodes)", a.across)
	}
	if a.checked {
		s += fmt.Sprintf(", %d tickets waiting at the end", a.waitingAtEnd)
	}
	return s
}

// The rules Check holds a run to; each problem it finds starts with one.
const (
	ruleTwice    = "nobody twice"
	ruleLost     = "nobody lost"
	ruleMutual   = "preferences both ways"
	ruleOrder    = "oldest first"
	ruleFair     = "oldest compatible first"
	ruleComplete = "no compatible pair left waiting"
	ruleAsQueued = "as queued"
	ruleOwners   = "reported to owners"
	ruleErrors   = "right errors"
)

// ledgerExamples is how many problems of each rule Check's error shows.
const ledgerExamples = 10

var ledgerRules = []string{ruleTwice, ruleLost, ruleMutual, ruleOrder, ruleFair, ruleComplete, ruleAsQueued, ruleOwners, ruleErrors}

// ticketKey names one ticket: a user may queue several over time, and a ticket put
// back keeps its JoinedAt, so the same key may be accepted more than once.
type ticketKey struct {
	user string
	at   string // JoinedAt, as RFC 3339 in UTC: equal for equal instants
}

func keyOf(t flamingo.Ticket) ticketKey {
	return ticketKey{t.User, t.JoinedAt.UTC().Format(time.RFC3339Nano)}
}

// ledgerPair is one pair as made, however many nodes reported it.
type ledgerPair struct {
	p      flamingo.Pair
	a, b   ticketKey
	made   int            // times made: the most reports of it on one node
	on     map[string]int // reports per node
	first  int64          // the first report, anywhere
	at     []int64        // the reports on the node with the most, in order
	owners []string       // the nodes that must report it; nil if unknown
}

// ledgerAudit is one consistent look at a ledger, and the problems found in it.
type ledgerAudit struct {
	enqueues []ledgerEnqueue
	cancels  []ledgerCancel
	inflight int
	nodes    int
	checked  bool
	final    map[string]bool
	finalErr map[string]error

	accepted  map[ticketKey][]ledgerEnqueue // accepted Enqueue calls, by ticket
	perUser   map[string][]ledgerEnqueue    // the same, by user
	latest    map[string]ledgerEnqueue      // each user's last accepted ticket
	cancelled map[string][]ledgerCancel     // Cancel calls that returned true, by user
	pairs     []*ledgerPair
	pairsOf   map[string][]*ledgerPair // pairs, by user
	paired    map[string]int           // pairs made, by user
	balance   map[string]int           // accepted, less paired and cancelled: 0 or 1 if sound
	users     []string                 // every user with an accepted ticket, sorted
	waiting   []string                 // users with balance 1, sorted
	clash     string                   // two of them that are compatible, if any
	across    int                      // pairs owned by two nodes

	waitingAtEnd int
	problems     map[string][]string
}

func (a *ledgerAudit) problem(s string) {
	rule, _, _ := strings.Cut(s, ":")
	a.problems[rule] = append(a.problems[rule], s)
}

func (a *ledgerAudit) problemf(rule, format string, args ...any) {
	a.problem(rule + ": " + fmt.Sprintf(format, args...))
}

// settled reports whether the run looks finished: no call under way, every pair
// reported on all its nodes, and no two compatible tickets waiting.
func (a *ledgerAudit) settled() bool {
	if a.inflight > 0 || a.clash != "" {
		return false
	}
	for _, p := range a.pairs {
		for _, n := range p.owners {
			if p.on[n] < p.made {
				return false
			}
		}
	}
	return true
}

// snapshot takes a consistent copy of the ledger and indexes it; check then audits it.
func (l *Ledger) snapshot() *ledgerAudit {
	l.mu.Lock()
	a := &ledgerAudit{
		enqueues:     slices.Clone(l.enqueues),
		cancels:      slices.Clone(l.cancels),
		inflight:     l.inflight,
		checked:      l.checked && l.final != nil,
		final:        l.final,
		finalErr:     l.finalErr,
		waitingAtEnd: l.waiting,
		problems:     make(map[string][]string),
	}
	reports := slices.Clone(l.reports)
	nodes := make(map[string]bool)
	for _, w := range l.matchers {
		nodes[w.node] = true
	}
	a.nodes = len(nodes)
	l.mu.Unlock()

	a.index(reports)
	return a
}

// check runs every check, collecting the problems.
func (a *ledgerAudit) check() {
	a.checkCalls()
	a.checkPairs()
	a.checkBalances()
	a.checkFair()
}

// index sorts the calls and reports by ticket and user, and works out each user's
// balance and the tickets left waiting.
func (a *ledgerAudit) index(reports []ledgerReport) {
	a.accepted = make(map[ticketKey][]ledgerEnqueue)
	a.perUser = make(map[string][]ledgerEnqueue)
	a.latest = make(map[string]ledgerEnqueue)
	for _, e := range a.enqueues {
		if e.err != nil {
			continue
		}
		k := keyOf(e.t)
		a.accepted[k] = append(a.accepted[k], e)
		a.perUser[e.t.User] = append(a.perUser[e.t.User], e)
		if last, ok := a.latest[e.t.User]; !ok || e.end > last.end {
			a.latest[e.t.User] = e
		}
	}
	a.cancelled = make(map[string][]ledgerCancel)
	for _, c := range a.cancels {
		if c.ok && c.err == nil {
			a.cancelled[c.user] = append(a.cancelled[c.user], c)
		}
	}

	type pairID struct{ a, b ticketKey }
	byID := make(map[pairID]*ledgerPair)
	perNode := make(map[pairID]map[string][]int64)
	for _, r := range reports {
		id := pairID{keyOf(r.p.A), keyOf(r.p.B)}
		lp := byID[id]
		if lp == nil {
			lp = &ledgerPair{p: r.p, a: id.a, b: id.b, on: make(map[string]int), first: r.at}
			byID[id] = lp
			perNode[id] = make(map[string][]int64)
			a.pairs = append(a.pairs, lp)
		}
		lp.on[r.node]++
		perNode[id][r.node] = append(perNode[id][r.node], r.at)
	}
	a.paired = make(map[string]int)
	a.pairsOf = make(map[string][]*ledgerPair)
	for _, lp := range a.pairs {
		a.pairsOf[lp.p.A.User] = append(a.pairsOf[lp.p.A.User], lp)
		if lp.p.B.User != lp.p.A.User {
			a.pairsOf[lp.p.B.User] = append(a.pairsOf[lp.p.B.User], lp)
		}
		id := pairID{lp.a, lp.b}
		for _, ats := range perNode[id] {
			if len(ats) > lp.made {
				lp.made, lp.at = len(ats), ats
			}
		}
		a.paired[lp.p.A.User] += lp.made
		a.paired[lp.p.B.User] += lp.made
		lp.owners = a.owners(lp)
		if len(lp.owners) > 1 {
			a.across++
		}
	}

	a.balance = make(map[string]int, len(a.perUser))
	for u, es := range a.perUser {
		a.users = append(a.users, u)
		a.balance[u] = len(es) - len(a.cancelled[u]) - a.paired[u]
		if a.balance[u] == 1 {
			a.waiting = append(a.waiting, u)
		}
	}
	for u, n := range a.paired { // users in pairs but never accepted
		if _, ok := a.balance[u]; !ok {
			a.balance[u] = -n
		}
	}
	slices.Sort(a.users)
	slices.Sort(a.waiting)
	// Tickets that wait are their users' latest; any two compatible ones clash.
	for i, u := range a.waiting {
		for _, v := range a.waiting[i+1:] {
			if wantCompatible(a.latest[u].t, a.latest[v].t) {
				a.clash = describeTicket(a.latest[u].t) + " and " + describeTicket(a.latest[v].t)
				return
			}
		}
	}
}

// owners returns the nodes that must report lp: those through which its tickets were
// enqueued. It returns nil if a ticket was accepted through more than one node.
func (a *ledgerAudit) owners(lp *ledgerPair) []string {
	var nodes []string
	for _, k := range []ticketKey{lp.a, lp.b} {
		es := a.accepted[k]
		if len(es) == 0 {
			return nil
		}
		for _, e := range es[1:] {
			if e.node != es[0].node {
				return nil
			}
		}
		if !slices.Contains(nodes, es[0].node) {
			nodes = append(nodes, es[0].node)
		}
	}
	slices.Sort(nodes)
	return nodes
}

// checkCalls checks the errors the calls returned.
func (a *ledgerAudit) checkCalls() {
	for _, e := range a.enqueues {
		valid := e.t.User != "" && slices.Contains(matcherGenders, e.t.Gender) && slices.Contains(matcherPreferences, e.t.Preference)
		switch {
		case !valid && !errors.Is(e.err, flamingo.ErrInvalidTicket):
			a.problemf(ruleErrors, "Enqueue(%s) = %v, want ErrInvalidTicket", describeTicket(e.t), e.err)
		case !valid, e.err == nil:
		case errors.Is(e.err, flamingo.ErrAlreadyQueued):
			if !a.mayWait(e) {
				a.problemf(ruleErrors, "Enqueue(%s) = ErrAlreadyQueued, but no ticket of %s can have been waiting then", describeTicket(e.t), e.t.User)
			}
		default:
			a.problemf(ruleErrors, "Enqueue(%s) through node %q = %v", describeTicket(e.t), e.node, e.err)
		}
	}
	for _, c := range a.cancels {
		if c.err != nil {
			a.problemf(ruleErrors, "Cancel(%q) through node %q = %v", c.user, c.node, c.err)
		}
	}
	for _, u := range slices.Sorted(maps.Keys(a.finalErr)) {
		a.problemf(ruleErrors, "Cancel(%q) at the end = %v", u, a.finalErr[u])
	}
}

// mayWait reports whether a ticket of e's user may have been waiting during e: some
// accepted Enqueue of the user began before e ended, and not all of those tickets had
// provably left the queue (by a Cancel or a reported pair) before e began.
func (a *ledgerAudit) mayWait(e ledgerEnqueue) bool {
	u := e.t.User
	in := 0
	for _, o := range a.perUser[u] {
		if o.begin < e.end {
			in++
		}
	}
	out := 0
	for _, c := range a.cancelled[u] {
		if c.end < e.begin {
			out++
		}
	}
	for _, lp := range a.pairsOf[u] {
		for _, at := range lp.at {
			if at < e.begin {
				out++
			}
		}
	}
	return in > out
}

// checkPairs checks each pair against the tickets queued and the nodes that own them.
func (a *ledgerAudit) checkPairs() {
	inPairs := make(map[ticketKey]int)
	for _, lp := range a.pairs {
		p := lp.p
		for _, side := range []struct {
			t flamingo.Ticket
			k ticketKey
		}{{p.A, lp.a}, {p.B, lp.b}} {
			inPairs[side.k] += lp.made
			es := a.accepted[side.k]
			if len(es) == 0 {
				a.problemf(ruleTwice, "pair %s holds %s, a ticket that was never queued (or not accepted)", describePair(p), describeTicket(side.t))
				continue
			}
			if q := es[0].t; q.Gender != side.t.Gender || q.Preference != side.t.Preference {
				a.problemf(ruleAsQueued, "pair %s carries %s, queued as %s", describePair(p), describeTicket(side.t), describeTicket(q))
			}
		}
		if !wantCompatible(p.A, p.B) {
			a.problemf(ruleMutual, "pair %s is not compatible", describePair(p))
		}
		if p.A.JoinedAt.After(p.B.JoinedAt) {
			a.problemf(ruleOrder, "pair %s has A joining after B", describePair(p))
		}
		if lp.owners == nil {
			continue
		}
		for _, n := range slices.Sorted(maps.Keys(lp.on)) {
			if !slices.Contains(lp.owners, n) {
				a.problemf(ruleOwners, "pair %s reported %d time(s) on node %q, which owns neither ticket", describePair(p), lp.on[n], n)
			}
		}
		for _, n := range lp.owners {
			if lp.on[n] != lp.made {
				a.problemf(ruleOwners, "pair %s reported %d time(s) on node %q and %d on another", describePair(p), lp.on[n], n, lp.made)
			}
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(inPairs), compareKeys) {
		if n, q := inPairs[k], len(a.accepted[k]); q > 0 && n > q {
			a.problemf(ruleTwice, "ticket %s@%s is in %d pairs but was queued %d time(s)", k.user, k.at, n, q)
		}
	}
}

// checkBalances checks that every ticket left the queue once at most, and that those
// that did not were still waiting at the end.
func (a *ledgerAudit) checkBalances() {
	users := slices.Sorted(maps.Keys(a.balance))
	for _, u := range users {
		queued, paired, cancelled := len(a.perUser[u]), a.paired[u], len(a.cancelled[u])
		switch b := a.balance[u]; {
		case b < 0 && queued > 0:
			a.problemf(ruleTwice, "%s was queued %d time(s) but paired %d and cancelled %d time(s)", u, queued, paired, cancelled)
		case b > 1:
			a.problemf(ruleLost, "%s was queued %d time(s), and %d ticket(s) are neither paired nor cancelled", u, queued, b)
		}
		if !a.checked || a.finalErr[u] != nil {
			continue
		}
		switch ok := a.final[u]; {
		case ok && a.balance[u] < 1:
			a.problemf(ruleTwice, "Cancel(%q) at the end = true, but every ticket of %s was paired or cancelled", u, u)
		case !ok && a.balance[u] == 1:
			a.problemf(ruleLost, "Cancel(%q) at the end = false, but %s was neither paired nor cancelled", u, describeTicket(a.latest[u].t))
		}
	}
	if a.clash != "" {
		a.problemf(ruleComplete, "%s still wait", a.clash)
	}
}

// checkFair looks for a side of a pair that was given a younger partner while an
// older compatible ticket waited all through the pairing. The pair was made after
// both its tickets' Enqueue calls began and before its first report; a ticket W
// waited all through if its Enqueue returned before that span began and it left the
// queue after the span ended. Only users queued once are looked at as W: for them,
// a Cancel or a pair surely took that ticket.
func (a *ledgerAudit) checkFair() {
	type candidate struct {
		t    flamingo.Ticket
		in   int64 // its Enqueue returned
		gone int64 // it left no earlier than this
	}
	// began returns the earliest start of an accepted Enqueue of k: no pair holding
	// k can have been made before it.
	began := func(k ticketKey) int64 {
		b := int64(math.MaxInt64)
		for _, e := range a.accepted[k] {
			b = min(b, e.begin)
		}
		return b
	}
	var cands []candidate
	for u, es := range a.perUser {
		if len(es) != 1 || a.checked && a.balance[u] == 1 && !a.final[u] {
			continue // queued more than once, or lost: when it left is not known
		}
		c := candidate{t: es[0].t, in: es[0].end, gone: math.MaxInt64}
		for _, x := range a.cancelled[u] {
			c.gone = min(c.gone, x.begin)
		}
		for _, lp := range a.pairsOf[u] {
			c.gone = min(c.gone, max(began(lp.a), began(lp.b)))
		}
		cands = append(cands, c)
	}
	slices.SortFunc(cands, func(x, y candidate) int { return cmp.Compare(x.in, y.in) })

	for _, lp := range a.pairs {
		from, to := max(began(lp.a), began(lp.b)), lp.first
		for _, side := range [][2]flamingo.Ticket{{lp.p.A, lp.p.B}, {lp.p.B, lp.p.A}} {
			me, got := side[0], side[1]
			for _, c := range cands {
				if c.in >= from {
					break
				}
				if c.gone > to && c.t.User != me.User && c.t.User != got.User &&
					c.t.JoinedAt.Before(got.JoinedAt) && wantCompatible(me, c.t) {
					a.problemf(ruleFair, "%s was paired with %s while %s, compatible and older, waited; pair %s",
						describeTicket(me), describeTicket(got), describeTicket(c.t), describePair(lp.p))
					break
				}
			}
		}
	}
}

// err returns the problems found, by rule, or nil.
func (a *ledgerAudit) err() error {
	total := 0
	for _, ps := range a.problems {
		total += len(ps)
	}
	if total == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the matcher broke its contract (%d problems):", total)
	for _, rule := range ledgerRules {
		ps := a.problems[rule]
		if len(ps) == 0 {
			continue
		}
		for _, p := range ps[:min(len(ps), ledgerExamples)] {
			b.WriteString("\n\t" + p)
		}
		if len(ps) > ledgerExamples {
			fmt.Fprintf(&b, "\n\t%s: and %d more", rule, len(ps)-ledgerExamples)
		}
	}
	return errors.New(b.String())
}

func compareKeys(x, y ticketKey) int {
	if c := strings.Compare(x.user, y.user); c != 0 {
		return c
	}
	return strings.Compare(x.at, y.at)
}
