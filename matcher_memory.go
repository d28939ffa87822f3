package flamingo

import (
	"context"
	"errors"
	"sync"
)

var _ Matcher = (*MemoryMatcher)(nil)

// MemoryMatcher is the default in-memory [Matcher], used by an [Engine] whose
// [Config.Matcher] is nil. Pairing happens inside Enqueue, so every pair is reported
// before Enqueue returns.
//
// Waiting tickets are kept in one queue per (gender, preference) combination, ordered by
// JoinedAt, so Enqueue looks at no more than the twelve queue heads and its cost does
// not grow with the number of waiting users.
type MemoryMatcher struct {
	mu      sync.Mutex
	report  func(Pair) // set by Start; nil before it and after Stop
	stopped bool
	buckets [len(allGenders)][len(allPreferences)]bucket
	waiting map[string]*waiter
	seq     uint64 // breaks ties between equal JoinedAt values: first come, first served
}

type waiter struct {
	t          Ticket
	seq        uint64
	b          *bucket
	prev, next *waiter
}

// bucket is a doubly linked list of waiters ordered by (JoinedAt, seq).
type bucket struct {
	head, tail *waiter
}

func (w *waiter) before(o *waiter) bool {
	if !w.t.JoinedAt.Equal(o.t.JoinedAt) {
		return w.t.JoinedAt.Before(o.t.JoinedAt)
	}
	return w.seq < o.seq
}

// insert places w in order. A ticket usually joins last, so the scan runs from the tail
// and stops at once; only a ticket put back with an older JoinedAt walks further.
func (b *bucket) insert(w *waiter) {
	w.b = b
	at := b.tail
	for at != nil && w.before(at) {
		at = at.prev
	}
	// w goes right after at (or first if at is nil).
	w.prev = at
	if at == nil {
		w.next = b.head
		b.head = w
	} else {
		w.next = at.next
		at.next = w
	}
	if w.next == nil {
		b.tail = w
	} else {
		w.next.prev = w
	}
}

func (b *bucket) remove(w *waiter) {
	if w.prev == nil {
		b.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		b.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.b = nil, nil, nil
}

// NewMemoryMatcher returns an empty in-memory matcher.
func NewMemoryMatcher() *MemoryMatcher {
	return &MemoryMatcher{waiting: make(map[string]*waiter)}
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

// Enqueue implements [Matcher].
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
	m.seq++
	w := waiter{t: t, seq: m.seq} // escapes to the heap only if t has to wait
	var best *waiter
	for gi, g := range allGenders {
		if !t.Preference.Accepts(g) {
			continue
		}
		for pi, p := range allPreferences {
			if !p.Accepts(t.Gender) {
				continue
			}
			if h := m.buckets[gi][pi].head; h != nil && (best == nil || h.before(best)) {
				best = h
			}
		}
	}
	if best == nil {
		wp := &waiter{t: w.t, seq: w.seq}
		m.buckets[t.Gender.index()][t.Preference.index()].insert(wp)
		m.waiting[t.User] = wp
		m.mu.Unlock()
		return nil
	}
	best.b.remove(best)
	delete(m.waiting, best.t.User)
	report := m.report
	m.mu.Unlock()

	p := Pair{A: best.t, B: t}
	if (&w).before(best) { // t was put back with an older JoinedAt
		p.A, p.B = p.B, p.A
	}
	report(p)
	return nil
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
	w.b.remove(w)
	delete(m.waiting, user)
	return true, nil
}

// Stop implements [Matcher]. Waiting tickets are dropped; later calls to Enqueue and
// Cancel return [ErrMatcherNotStarted], and to Start [ErrMatcherStopped]. A second
// Stop, or a Stop before Start, does nothing more.
func (m *MemoryMatcher) Stop(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	m.report = nil
	m.waiting = make(map[string]*waiter)
	m.buckets = [len(allGenders)][len(allPreferences)]bucket{}
	return nil
}

// Len returns the number of waiting tickets.
func (m *MemoryMatcher) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.waiting)
}
