package flamingoprom

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flamingochat/flamingo"
)

// Options configures a [Collector]. A zero Options is the default: no constant labels.
type Options struct {
	// ConstLabels are added to every metric, for example {"engine": "public"} when one
	// process serves several Engines. Nil adds none. Prometheus already tells the
	// processes it scrapes apart by their "instance" label, so a node of a cluster needs
	// none; avoid a value that changes on every start (such as a random node ID), which
	// makes new series each time.
	ConstLabels prometheus.Labels
}

// Collector is a [prometheus.Collector] that exports an Engine's [flamingo.Metrics].
// Each scrape calls [flamingo.Engine.Metrics] once and turns the snapshot into constant
// metrics, so between scrapes the Collector costs the engine nothing: the engine keeps
// its counters anyway. Register one per Engine.
//
// Label values appear from their first occurrence: flamingo_errors_total{code="x"}
// is exported once the engine has sent an error with code x. A hook's metrics appear
// once the hook has run.
type Collector struct {
	engine *flamingo.Engine

	connections, online, inQueue, inChat *prometheus.Desc
	matches, messages, errors, closes    *prometheus.Desc
	rateLimited, slowConsumers, resumes  *prometheus.Desc
	matchWait, chatDuration              *prometheus.Desc
	hookDuration, hookPanics             *prometheus.Desc
	crossNode, brokerOps, brokerRTT      *prometheus.Desc
	descs                                []*prometheus.Desc // all of the above, for Describe
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of e's metrics, to register with a
// [prometheus.Registerer]. Registering it fails if opts.ConstLabels holds an invalid
// label name or a name the metrics use already ("code", "event", "result", "hook").
func NewCollector(e *flamingo.Engine, opts Options) *Collector {
	c := &Collector{engine: e}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		d := prometheus.NewDesc(name, help, labels, opts.ConstLabels)
		c.descs = append(c.descs, d)
		return d
	}
	c.connections = desc("flamingo_connections",
		"Connections being served, initialised or not.")
	c.online = desc("flamingo_online",
		"Users with a live connection.")
	c.inQueue = desc("flamingo_in_queue",
		"Users waiting to be matched.")
	c.inChat = desc("flamingo_in_chat",
		"Users in a chat, including those within their resume grace.")
	c.matches = desc("flamingo_matches_total",
		"Chats started (on a cluster, counted on the node of the user who waited longer).")
	c.messages = desc("flamingo_messages_total",
		"Messages relayed to a partner.")
	c.errors = desc("flamingo_errors_total",
		"Error events sent, by error code.", "code")
	c.closes = desc("flamingo_closes_total",
		"Connections the engine closed, by WebSocket close code.", "code")
	c.rateLimited = desc("flamingo_rate_limited_total",
		`Events refused by a rate limit, by event type ("unparsed" when refused before parsing).`, "event")
	c.slowConsumers = desc("flamingo_slow_consumers_total",
		"Connections dropped because they did not read their events fast enough.")
	c.resumes = desc("flamingo_resumes_total",
		`Sessions taken up again by a new connection (result="resumed") or ended because their user did not come back within the resume grace (result="expired").`, "result")
	c.matchWait = desc("flamingo_match_wait_seconds",
		"Time from join_queue to match_found, one observation per user paired.")
	c.chatDuration = desc("flamingo_chat_duration_seconds",
		"How long chats lasted, observed when they end.")
	c.hookDuration = desc("flamingo_hook_duration_seconds",
		"How long calls of a hook took, by hook.", "hook")
	c.hookPanics = desc("flamingo_hook_panics_total",
		"Calls of a hook that panicked, by hook.", "hook")
	c.crossNode = desc("flamingo_cross_node_messages_total",
		"Messages relayed to a partner on another node of a cluster.")
	c.brokerOps = desc("flamingo_broker_ops_total",
		"Operations the cluster's broker applied to its store (Redis), by kind.", "op")
	c.brokerRTT = desc("flamingo_broker_round_trip_seconds",
		"How long the broker's round trips to its store (Redis pipelines) took.")
	return c
}

// Describe implements [prometheus.Collector].
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements [prometheus.Collector]. It takes one snapshot of the engine's
// metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m := c.engine.Metrics()

	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	gauge(c.connections, m.Connections)
	gauge(c.online, m.Online)
	gauge(c.inQueue, m.InQueue)
	gauge(c.inChat, m.InChat)

	counter := func(d *prometheus.Desc, v uint64, label ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label...)
	}
	counter(c.matches, m.Matches)
	counter(c.messages, m.Messages)
	counter(c.slowConsumers, m.SlowConsumers)
	counter(c.resumes, m.Resumed, "resumed")
	counter(c.resumes, m.Expired, "expired")

	for code, n := range byLabel(m.Errors, "") {
		counter(c.errors, n, code)
	}
	for code, n := range m.Closes {
		counter(c.closes, n, strconv.Itoa(int(code)))
	}
	for event, n := range byLabel(m.RateLimited, "unparsed") {
		counter(c.rateLimited, n, event)
	}

	ch <- histogram(c.matchWait, m.MatchWait)
	ch <- histogram(c.chatDuration, m.ChatDuration)
	for name, h := range m.HookDuration {
		ch <- histogram(c.hookDuration, h, name)
	}
	for name, n := range m.HookPanics {
		counter(c.hookPanics, n, name)
	}
	if m.BrokerOps != nil { // on a cluster
		counter(c.crossNode, m.CrossNodeMessages)
		for op, n := range byLabel(m.BrokerOps, "") {
			counter(c.brokerOps, n, op)
		}
		ch <- histogram(c.brokerRTT, m.BrokerRoundTrip)
	}
}

// histogram converts h to a constant Prometheus histogram. The engine counts each
// observation in one bucket; Prometheus wants, for each upper bound, the observations
// at most that bound, so the counts are summed up. The observations above the last
// bound are in h.Count alone, which Prometheus exports as the +Inf bucket.
func histogram(d *prometheus.Desc, h flamingo.Histogram, label ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, bound := range h.Bounds {
		cum += h.Counts[i]
		buckets[bound] = cum
	}
	// A histogram whose +Inf bucket is below another bucket is invalid; a snapshot
	// taken while observations are being made must not produce one.
	count := max(h.Count, cum)
	return prometheus.MustNewConstHistogram(d, count, h.Sum, buckets, label...)
}

// byLabel returns the counts of m by label value: its keys made valid UTF-8, which
// Prometheus requires of a label value (error codes come from hooks too), with the
// empty key renamed empty. Keys that differ only in invalid bytes are counted together, since a label
// value must not appear twice.
func byLabel[K ~string](m map[K]uint64, empty string) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, n := range m {
		v := strings.ToValidUTF8(string(k), "\uFFFD")
		if v == "" {
			v = empty
		}
		out[v] += n
	}
	return out
}
