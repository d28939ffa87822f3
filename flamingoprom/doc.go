// Package flamingoprom exports the metrics of a [flamingo.Engine] to Prometheus.
//
// It lives in its own module, so that importers of package flamingo never download
// the Prometheus client.
//
// # Use
//
// Register a [Collector] of the Engine and serve the registry beside the WebSocket:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(flamingoprom.NewCollector(engine, flamingoprom.Options{}))
//	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//	mux.Handle("/ws", flamingo.NewWebSocketHandler(engine, nil))
//
// # Cost
//
// The engine keeps its counters whether or not anything reads them (see
// [flamingo.Metrics]). The Collector reads them once per scrape, with
// [flamingo.Engine.Metrics], and builds constant metrics from that snapshot: no
// metric is updated while the engine relays messages, so the hot path pays nothing
// for the export. A scrape holds the engine's lock for as long as it takes to copy
// the counters.
//
// # Metrics
//
// Every name starts with flamingo_. The gauges are flamingo_connections,
// flamingo_online, flamingo_in_queue and flamingo_in_chat; the counters are
// flamingo_matches_total, flamingo_messages_total, flamingo_errors_total{code},
// flamingo_closes_total{code}, flamingo_rate_limited_total{event},
// flamingo_slow_consumers_total, flamingo_resumes_total{result} and
// flamingo_hook_panics_total{hook}; the histograms are flamingo_match_wait_seconds,
// flamingo_chat_duration_seconds and flamingo_hook_duration_seconds{hook}. On a
// cluster there are also flamingo_cross_node_messages_total,
// flamingo_broker_ops_total{op} and flamingo_broker_round_trip_seconds. The help
// text of each says what it counts, and README.md in the module's folder has them in
// a table.
//
// A node counts its own work, also on a cluster: sum the nodes' series for the
// cluster's, e.g. sum(flamingo_online).
package flamingoprom
