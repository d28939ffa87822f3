package flamingo

import (
	"context"
	"errors"
	"sync"
	"time"
)

var _ Matcher = (*MemoryMatcher)(nil)

// MemoryMatcher is the default in-memory [Matcher], used by an [Engine] whose
// [Config.Matcher] is nil. A ticket is paired inside Enqueue, before it returns, if an
// acceptable waiter is there; a waiter that becomes relaxed (its RelaxAt comes) is
// paired by the matcher's timer, from the timer's goroutine.
//
// Waiting tickets are indexed by Pool, then by (gender, preference), then once per
// interest and once more if relaxed, each list ordered by JoinedAt. Enqueue looks at
// the heads of the lists its ticket could take from (at most twelve per interest, and
// twelve relaxed), so its cost grows with the number of interests it gives, not with
// the number of waiting users. Tickets still waiting for their RelaxAt sit in a heap by
// RelaxAt; one timer, set for the earliest, relaxes them in that order, each in
// O(log n). A ticket without interests touches neither the interest lists nor the
// heap: it costs what it did before interests existed.
type MemoryMatcher struct {
	mu      sync.Mutex
	report  func(Pair) // set by Start; nil before it and after Stop
	stopped bool
	waiting map[string]*waiter
	pools   map[string]*memPool // pools other than "", present while they hold waiters
	pool0   memPool             // the pool "", kept for good: most tickets are in it
	seq     uint64              // breaks ties between equal JoinedAt values: first come, first served

	relax   relaxHeap   // waiting tickets not yet relaxed, earliest RelaxAt first
	timer   *time.Timer // calls relaxDue at relax[0]'s RelaxAt; made when first needed
	timerAt time.Time   // when timer fires; zero when it is not set

	// inflight counts timer calls that have taken pairs out of the queue and not yet
	// finished reporting them; Stop waits for them, through drained.
	inflight int
	drained  chan struct{}
}

// waiter is a waiting ticket and its places in the indexes.
type waiter struct {
	t    Ticket
	seq  uint64
	pool *memPool
	// relaxed is w's place in its pool's relaxed list, if w is relaxed (list != nil).
	relaxed wnode
	// interests are w's places in its pool's interest lists, one per interest.
	interests []wnode
	heapAt    int // index in MemoryMatcher.relax, or -1
}

// wnode is a waiter's place in one list.
type wnode struct {
	w          *waiter
	l          *wlist
	prev, next *wnode
}

// wlist is a doubly linked list of waiters ordered by (JoinedAt, seq).
type wlist struct {
	head, tail *wnode
}

// memPool indexes the waiters of one Pool. Relaxed waiters are listed by (gender,
// preference); every waiter with interests is listed under each of them, relaxed or
// not: sharing an interest is enough to be paired.
type memPool struct {
	n         int
	relaxed   [len(allGenders)][len(allPreferences)]wlist
	interests map[string]*interestLists
}

type interestLists struct {
	n     int
	lists [len(allGenders)][len(allPreferences)]wlist
}

func (w *waiter) before(o *waiter) bool {
	if !w.t.JoinedAt.Equal(o.t.JoinedAt) {
		return w.t.JoinedAt.Before(o.t.JoinedAt)
	}
	return w.seq < o.seq
}

// insert places n in order. A ticket usually joins last, so the scan runs from the
// tail and stops at once; only a ticket put back with an older JoinedAt walks further.
func (l *wlist) insert(n *wnode) {
	n.l = l
	at := l.tail
	for at != nil && n.w.before(at.w) {
		at = at.prev
	}
	n.prev = at
	if at == nil {
		n.next = l.head
		l.head = n
	} else {
		n.next = at.next
		at.next = n
	}
	if n.next == nil {
		l.tail = n
	} else {
		n.next.prev = n
	}
}

func (l *wlist) remove(n *wnode) {
	if n.prev == nil {
		l.head = n.next
	} else {
		n.prev.next = n.next
	}
	if n.next == nil {
		l.tail = n.prev
	} else {
		n.next.prev = n.prev
	}
	n.prev, n.next, n.l = nil, nil, nil
}

// first returns the oldest waiter of l that w may meet, if it is older than bound (or
// bound is nil). Waiters that w avoids, or that avoid w, are passed over; Avoid lists
// are short, so the walk is too.
func (l *wlist) first(w, bound *waiter) *waiter {
	for n := l.head; n != nil; n = n.next {
		if bound != nil && !n.w.before(bound) {
			return nil
		}
		if !w.t.avoids(n.w.t.User) && !n.w.t.avoids(w.t.User) {
			return n.w
		}
	}
	return nil
}

// NewMemoryMatcher returns an empty in-memory matcher.
func NewMemoryMatcher() *MemoryMatcher {
	return &MemoryMatcher{waiting: make(map[string]*waiter), pools: make(map[string]*memPool)}
}

// Start implements [Matcher]. It returns [ErrMatcherStopped] after Stop.
func (m *MemoryMatcher) Start(report func(Pair)) error {
	if report == nil {
		return errors.New("flamingo: Matcher.Start needs a report function")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.stopped:
		return ErrMatcherStopped
	case m.report != nil:
		return errMatcherStarted
	}
	m.report = report
	return nil
}

// errMatcherStarted is returned by a second Start. It is not exported: only a program
// that gives one matcher to two Engines at once meets it, and it cannot recover.
var errMatcherStarted = errors.New("flamingo: matcher already started; a matcher serves one Engine")

// Enqueue implements [Matcher]. Waiters whose RelaxAt has come are relaxed first (the
// timer may be late), so a newcomer meets the queue as it stands now.
func (m *MemoryMatcher) Enqueue(_ context.Context, t Ticket) error {
	if !t.valid() {
		return ErrInvalidTicket
	}
	m.mu.Lock()
	if m.report == nil {
		m.mu.Unlock()
		return ErrMatcherNotStarted
	}
	if _, ok := m.waiting[t.User]; ok {
		m.mu.Unlock()
		return ErrAlreadyQueued
	}
	now := time.Now()
	var pairs []Pair
	if len(m.relax) > 0 && !now.Before(m.relax[0].t.RelaxAt) {
		pairs = m.relaxDueLocked(now, nil)
	}
	m.seq++
	w := waiter{t: t, seq: m.seq, heapAt: -1} // escapes to the heap only if t has to wait
	relaxed := t.Relaxed(now)
	best := m.partnerLocked(&w, relaxed, true)
	if best == nil {
		m.addLocked(&waiter{t: t, seq: w.seq, heapAt: -1}, relaxed)
		m.armLocked(now)
		report := m.report
		m.mu.Unlock()
		for _, p := range pairs {
			report(p)
		}
		return nil
	}
	m.removeLocked(best)
	m.armLocked(now)
	report := m.report
	m.mu.Unlock()

	for _, p := range pairs {
		report(p)
	}
	report(pairOf(best, &w))
	return nil
}

// pairOf returns the Pair of x and y, the one that waited longer first.
func pairOf(x, y *waiter) Pair {
	if y.before(x) {
		x, y = y, x
	}
	return Pair{A: x.t, B: y.t}
}

// partnerLocked returns the waiter w is to be paired with, or nil: the oldest
// acceptable waiter sharing an interest with w (if byInterest), else, if w is relaxed,
// the oldest relaxed acceptable waiter.
func (m *MemoryMatcher) partnerLocked(w *waiter, relaxed, byInterest bool) *waiter {
	p := m.poolOf(w.t.Pool)
	if p == nil {
		return nil
	}
	var best *waiter
	if byInterest && p.interests != nil {
		for _, in := range w.t.Interests {
			if il := p.interests[in]; il != nil {
				best = w.oldestIn(&il.lists, best)
			}
		}
	}
	if best == nil && relaxed {
		best = w.oldestIn(&p.relaxed, nil)
	}
	return best
}

// oldestIn returns the oldest waiter in the lists of ls that w accepts and that
// accept w, if it is older than bound; otherwise bound.
func (w *waiter) oldestIn(ls *[len(allGenders)][len(allPreferences)]wlist, bound *waiter) *waiter {
	for gi, g := range allGenders {
		if !w.t.Preference.Accepts(g) {
			continue
		}
		for pi, p := range allPreferences {
			if !p.Accepts(w.t.Gender) {
				continue
			}
			if c := ls[gi][pi].first(w, bound); c != nil {
				bound = c
			}
		}
	}
	return bound
}

func (m *MemoryMatcher) poolOf(name string) *memPool {
	if name == "" {
		return &m.pool0
	}
	return m.pools[name]
}

// addLocked puts w in the queue: in its pool's lists, and in the relax heap if it is
// not relaxed yet.
func (m *MemoryMatcher) addLocked(w *waiter, relaxed bool) {
	p := m.poolOf(w.t.Pool)
	if p == nil {
		p = &memPool{}
		m.pools[w.t.Pool] = p
	}
	w.pool = p
	p.n++
	m.waiting[w.t.User] = w
	gi, pi := w.t.Gender.index(), w.t.Preference.index()
	if len(w.t.Interests) > 0 {
		if p.interests == nil {
			p.interests = make(map[string]*interestLists)
		}
		w.interests = make([]wnode, len(w.t.Interests))
		for i, in := range w.t.Interests {
			il := p.interests[in]
			if il == nil {
				il = &interestLists{}
				p.interests[in] = il
			}
			il.n++
			w.interests[i].w = w
			il.lists[gi][pi].insert(&w.interests[i])
		}
	}
	if relaxed {
		w.relaxed.w = w
		p.relaxed[gi][pi].insert(&w.relaxed)
	} else {
		m.relax.push(w)
	}
}

// removeLocked takes w out of the queue and out of every index.
func (m *MemoryMatcher) removeLocked(w *waiter) {
	delete(m.waiting, w.t.User)
	p := w.pool
	if w.relaxed.l != nil {
		w.relaxed.l.remove(&w.relaxed)
	}
	for i := range w.interests {
		n := &w.interests[i]
		n.l.remove(n)
		in := w.t.Interests[i]
		if il := p.interests[in]; il != nil {
			if il.n--; il.n == 0 {
				delete(p.interests, in) // interests are the users' words: keep no empty entry
			}
		}
	}
	if w.heapAt >= 0 {
		m.relax.remove(w.heapAt)
	}
	if p.n--; p.n == 0 && p != &m.pool0 {
		delete(m.pools, w.t.Pool)
	}
	w.pool = nil
}

// relaxDueLocked relaxes, in order of RelaxAt, the waiters whose RelaxAt has come by
// now, and appends to pairs the pairs that this makes. Each one, relaxed at its
// RelaxAt, meets the oldest acceptable waiter that was relaxed by then; a waiter that
// shares an interest with it would have been paired with it already.
func (m *MemoryMatcher) relaxDueLocked(now time.Time, pairs []Pair) []Pair {
	for len(m.relax) > 0 && !now.Before(m.relax[0].t.RelaxAt) {
		w := m.relax.pop()
		if best := m.partnerLocked(w, true, false); best != nil {
			m.removeLocked(best)
			m.removeLocked(w)
			pairs = append(pairs, pairOf(best, w))
			continue
		}
		gi, pi := w.t.Gender.index(), w.t.Preference.index()
		w.relaxed.w = w
		w.pool.relaxed[gi][pi].insert(&w.relaxed)
	}
	return pairs
}

// armLocked sets the timer for the earliest RelaxAt still to come, or stops it if
// there is none.
func (m *MemoryMatcher) armLocked(now time.Time) {
	if len(m.relax) == 0 {
		if !m.timerAt.IsZero() {
			m.timer.Stop()
			m.timerAt = time.Time{}
		}
		return
	}
	at := m.relax[0].t.RelaxAt
	if at.Equal(m.timerAt) {
		return
	}
	m.timerAt = at
	if m.timer == nil {
		m.timer = time.AfterFunc(at.Sub(now), m.relaxDue)
		return
	}
	m.timer.Reset(at.Sub(now))
}

// relaxDue runs on the timer's goroutine: it relaxes the waiters whose RelaxAt has
// come and reports the pairs this makes.
func (m *MemoryMatcher) relaxDue() {
	m.mu.Lock()
	report := m.report
	if report == nil { // stopped
		m.mu.Unlock()
		return
	}
	now := time.Now()
	m.timerAt = time.Time{} // it fired
	pairs := m.relaxDueLocked(now, nil)
	m.armLocked(now)
	if len(pairs) == 0 {
		m.mu.Unlock()
		return
	}
	m.inflight++
	m.mu.Unlock()

	for _, p := range pairs {
		report(p)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inflight--; m.inflight == 0 && m.drained != nil {
		close(m.drained)
		m.drained = nil
	}
}

// Cancel implements [Matcher]. It returns [ErrMatcherNotStarted] before Start and
// after Stop.
func (m *MemoryMatcher) Cancel(_ context.Context, user string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.report == nil {
		return false, ErrMatcherNotStarted
	}
	w, ok := m.waiting[user]
	if !ok {
		return false, nil
	}
	m.removeLocked(w)
	if len(m.relax) == 0 && !m.timerAt.IsZero() {
		m.armLocked(time.Now()) // stops the timer
	}
	return true, nil
}

// Stop implements [Matcher]. Waiting tickets are dropped and the timer is stopped;
// later calls to Enqueue and Cancel return [ErrMatcherNotStarted], and to Start
// [ErrMatcherStopped]. Stop waits, until ctx ends, for the pairs that the timer has
// made to be reported, so it must not be called from the report function. A second
// Stop, or a Stop before Start, does nothing more.
func (m *MemoryMatcher) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.stopped = true
	m.report = nil
	m.waiting = make(map[string]*waiter)
	m.pools = make(map[string]*memPool)
	m.pool0 = memPool{}
	m.relax = nil
	if m.timer != nil {
		m.timer.Stop()
		m.timerAt = time.Time{}
	}
	var drained chan struct{}
	if m.inflight > 0 {
		if m.drained == nil {
			m.drained = make(chan struct{})
		}
		drained = m.drained
	}
	m.mu.Unlock()
	if drained == nil {
		return nil
	}
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Len returns the number of waiting tickets.
func (m *MemoryMatcher) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.waiting)
}

// relaxHeap is a binary min-heap of waiters by (RelaxAt, JoinedAt, seq); each waiter
// knows its index, so that a cancelled or paired one leaves in O(log n).
type relaxHeap []*waiter

func (h relaxHeap) less(i, j int) bool {
	a, b := h[i], h[j]
	if !a.t.RelaxAt.Equal(b.t.RelaxAt) {
		return a.t.RelaxAt.Before(b.t.RelaxAt)
	}
	return a.before(b)
}

func (h relaxHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapAt = i
	h[j].heapAt = j
}

func (h *relaxHeap) push(w *waiter) {
	w.heapAt = len(*h)
	*h = append(*h, w)
	h.up(w.heapAt)
}

func (h *relaxHeap) pop() *waiter {
	w := (*h)[0]
	h.remove(0)
	return w
}

func (h *relaxHeap) remove(i int) {
	s := *h
	last := len(s) - 1
	w := s[i]
	if i != last {
		s.swap(i, last)
	}
	s[last] = nil
	*h = s[:last]
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
	w.heapAt = -1
}

func (h relaxHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

// down moves the element at i down to its place and reports whether it moved.
func (h relaxHeap) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			c = r
		}
		if !h.less(c, i) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}
