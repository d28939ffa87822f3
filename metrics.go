package flamingo

import (
	"maps"
	"sync/atomic"
	"time"
)

// This file holds the engine's own counters and [Engine.Metrics], the snapshot that
// monitoring reads (package flamingoprom exports it to Prometheus). The counters are
// kept where the engine already is: under e.mu in the functions that decide, or in
// atomics where no lock is held (hooks), so that counting costs the hot path an
// increment.

// Metrics is a snapshot of an Engine's counters, for monitoring. Counters count from
// [New]; gauges are the values now. Only this node's work is counted, also on a
// cluster: sum the nodes' metrics for the cluster's.
type Metrics struct {
	// Stats holds the gauges: users online, waiting and in a chat on this node.
	Stats
	// Connections counts the connections being served, initialised or not.
	Connections int
	// Matches counts the chats started. On a cluster, a chat across nodes counts on
	// the node of the user who waited longer.
	Matches uint64
	// Messages counts the messages relayed to a partner.
	Messages uint64
	// Errors counts the error events sent, by code (a hook's own codes included).
	Errors map[ErrorCode]uint64
	// Closes counts the connections the engine closed, by close code. Connections
	// closed by their peers are not counted.
	Closes map[CloseCode]uint64
	// RateLimited counts the events refused by a rate limit, by the type of the
	// event ("" for events refused by Config.EventRate before they were parsed).
	RateLimited map[EventType]uint64
	// SlowConsumers counts the connections dropped because they did not read their
	// events fast enough.
	SlowConsumers uint64
	// Resumed counts the sessions taken up again by a new connection (a resume or a
	// takeover, on this node or claimed from another); Expired counts those whose
	// users did not come back within the resume grace.
	Resumed, Expired uint64
	// MatchWait is the time from join_queue to match_found, one observation per
	// user of this node paired.
	MatchWait Histogram
	// ChatDuration is how long chats lasted, observed when they end on this node.
	ChatDuration Histogram
	// CrossNodeMessages counts the messages relayed to a partner on another node of
	// a cluster (they are in Messages too).
	CrossNodeMessages uint64
	// BrokerOps counts the operations the [Broker] applied to the cluster's store,
	// by kind, and BrokerRoundTrip is how long its round trips to the store took,
	// when the Broker can tell (one with a BrokerMetrics() (map[string]uint64,
	// Histogram) method, as flamingoredis's Cluster has); nil and zero otherwise.
	BrokerOps       map[string]uint64
	BrokerRoundTrip Histogram
	// HookDuration is how long the calls of each hook that has run took, by name
	// ("OnMatch", "OnMessage", "OnChatEnd"); HookPanics counts the calls that
	// panicked, by the same names.
	HookDuration map[string]Histogram
	HookPanics   map[string]uint64
}

// Histogram is a distribution of durations in seconds: Counts[i] counts the
// observations above Bounds[i-1] and at most Bounds[i] (not cumulative, unlike
// Prometheus buckets), and the ones above the last bound are in Count alone.
type Histogram struct {
	Bounds []float64 // upper bounds in seconds, increasing
	Counts []uint64  // not cumulative: Counts[i] is for (Bounds[i-1], Bounds[i]]
	Count  uint64
	Sum    float64 // seconds
}

// Buckets of the engine's histograms, in seconds.
var (
	matchWaitBounds    = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	chatDurationBounds = []float64{5, 15, 30, 60, 120, 300, 600, 1800, 3600}
	hookBounds         = []float64{0.0001, 0.001, 0.01, 0.1, 1}
)

// counters are the engine's counters guarded by e.mu.
type counters struct {
	matches, messages, slowConsumers, resumed, expired uint64
	crossNode                                          uint64
	errors                                             map[ErrorCode]uint64
	closes                                             map[CloseCode]uint64
	rateLimited                                        map[EventType]uint64
	matchWait, chatDuration                            histogram
}

func newCounters() counters {
	return counters{
		errors:       make(map[ErrorCode]uint64),
		closes:       make(map[CloseCode]uint64),
		rateLimited:  make(map[EventType]uint64),
		matchWait:    histogram{bounds: matchWaitBounds, counts: make([]uint64, len(matchWaitBounds))},
		chatDuration: histogram{bounds: chatDurationBounds, counts: make([]uint64, len(chatDurationBounds))},
	}
}

// histogram is a Histogram being filled, under e.mu.
type histogram struct {
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	for i, b := range h.bounds {
		if s <= b {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += s
}

func (h *histogram) snapshot() Histogram {
	return Histogram{Bounds: h.bounds, Counts: append([]uint64(nil), h.counts...), Count: h.count, Sum: h.sum}
}

// hookCounters are one hook's counters: atomics, since hooks run with no lock held.
type hookCounters struct {
	counts [6]atomic.Uint64 // by bucket of hookBounds, and one beyond
	count  atomic.Uint64
	nanos  atomic.Uint64
	panics atomic.Uint64
}

// observe counts an observation in count before its bucket, and snapshot reads the
// buckets before count, so that a snapshot taken while hooks run never has more
// observations in its buckets than in Count (a histogram whose total is below one of
// its buckets is invalid in Prometheus); one in flight is at most in Count alone.
func (h *hookCounters) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(hookBounds) && s > hookBounds[i] {
		i++
	}
	h.count.Add(1)
	h.counts[i].Add(1)
	h.nanos.Add(uint64(max(d, 0)))
}

func (h *hookCounters) snapshot() Histogram {
	hist := Histogram{Bounds: hookBounds, Counts: make([]uint64, len(hookBounds))}
	for i := range hist.Counts {
		hist.Counts[i] = h.counts[i].Load()
	}
	hist.Count = h.count.Load()
	hist.Sum = time.Duration(h.nanos.Load()).Seconds()
	return hist
}

// hookNames are the hooks, in the order of Engine.hooks.
var hookNames = [...]string{"OnMatch", "OnMessage", "OnChatEnd", "OnJoin", "OnReport", "ICEServers"}

const (
	hookOnMatch = iota
	hookOnMessage
	hookOnChatEnd
	hookOnJoin
	hookOnReport
	hookICEServers
)

// Metrics returns a snapshot of e's counters.
func (e *Engine) Metrics() Metrics {
	m := Metrics{HookDuration: make(map[string]Histogram), HookPanics: make(map[string]uint64)}
	for i, name := range hookNames {
		if h := &e.hooks[i]; h.count.Load() > 0 {
			m.HookDuration[name] = h.snapshot()
			m.HookPanics[name] = h.panics.Load()
		}
	}
	if b, ok := e.broker.(interface {
		BrokerMetrics() (map[string]uint64, Histogram)
	}); ok {
		m.BrokerOps, m.BrokerRoundTrip = b.BrokerMetrics()
	}
	e.mu.Lock()
	defer e.unlock()
	n := &e.counters
	m.CrossNodeMessages = n.crossNode
	m.Stats = e.statsLocked(Stats{})
	m.Connections = len(e.conns)
	m.Matches, m.Messages, m.SlowConsumers = n.matches, n.messages+e.fastMessages.Load(), n.slowConsumers
	m.Resumed, m.Expired = n.resumed, n.expired
	m.Errors, m.Closes, m.RateLimited = maps.Clone(n.errors), maps.Clone(n.closes), maps.Clone(n.rateLimited)
	m.MatchWait, m.ChatDuration = n.matchWait.snapshot(), n.chatDuration.snapshot()
	return m
}
