package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"text/tabwriter"
)

// report is the summary of a run: each flamingo figure, the baseline's, and ratios.
type report struct {
	ServerMode string  `json:"server_mode"`
	Conns      int     `json:"conns"`
	Pairs      int     `json:"pairs"`
	Duration   float64 `json:"duration_sec"`

	MsgsPerSec         float64 `json:"msgs_per_sec"`
	BaselineMsgsPerSec float64 `json:"baseline_msgs_per_sec"`
	ThroughputRatio    float64 `json:"throughput_ratio"`
	MsgsPerCPU         float64 `json:"msgs_per_server_cpu_sec"`
	BaselineMsgsPerCPU float64 `json:"baseline_msgs_per_server_cpu_sec"`
	// RelayRatio compares relayed messages per server CPU-second.
	RelayRatio float64 `json:"relay_ratio"`

	// Latency of the paced phase (or of the flat phase with -rate 0).
	LatencyPhase   string  `json:"latency_phase"`
	LatencyOffered float64 `json:"latency_offered_msgs_per_sec"`
	P50            float64 `json:"p50_ms"`
	P90            float64 `json:"p90_ms"`
	P99            float64 `json:"p99_ms"`
	Max            float64 `json:"max_ms"`
	BaselineP50    float64 `json:"baseline_p50_ms"`
	BaselineP90    float64 `json:"baseline_p90_ms"`
	BaselineP99    float64 `json:"baseline_p99_ms"`
	BaselineMax    float64 `json:"baseline_max_ms"`
	FlatP50        float64 `json:"flat_p50_ms"`
	FlatP99        float64 `json:"flat_p99_ms"`
	BaselineFlatP5 float64 `json:"baseline_flat_p50_ms"`
	BaselineFlatP9 float64 `json:"baseline_flat_p99_ms"`

	KiBPerConn              float64 `json:"kib_per_conn"` // idle RSS
	BaselineKiBPerConn      float64 `json:"baseline_kib_per_conn"`
	HeapKiBPerConn          float64 `json:"heap_kib_per_conn"`
	BaselineHeapKiBPerConn  float64 `json:"baseline_heap_kib_per_conn"`
	GoroutinesPerConn       float64 `json:"goroutines_per_conn"`
	BaselineGoroutinesPer   float64 `json:"baseline_goroutines_per_conn"`
	BusyKiBPerConn          float64 `json:"busy_kib_per_conn"`
	BaselineBusyKiBPerConn  float64 `json:"baseline_busy_kib_per_conn"`
	BusyGoroutinesPerConn   float64 `json:"busy_goroutines_per_conn"`
	BaselineBusyGoroutinesP float64 `json:"baseline_busy_goroutines_per_conn"`

	ConnsPerSec         float64 `json:"conns_per_sec"`
	BaselineConnsPerSec float64 `json:"baseline_conns_per_sec"`
	// Connect + init per second against the baseline's bare handshakes (the
	// handshakes phase), and their ratio.
	ConnectInitPerSec        float64 `json:"connect_init_per_sec"`
	BaselineHandshakesPerSec float64 `json:"baseline_handshakes_per_sec"`
	ConnectInitRatio         float64 `json:"connect_init_ratio"`
	// The server's CPU µs per connection in that phase, and connections per server
	// CPU-second against the baseline's (the relay ratio's measure, for connecting).
	ConnectInitServerCPUUs       float64 `json:"connect_init_server_cpu_us"`
	BaselineHandshakeServerCPUUs float64 `json:"baseline_handshake_server_cpu_us"`
	ConnectInitCPURatio          float64 `json:"connect_init_cpu_ratio"`
	MatchesPerSec                float64 `json:"matches_per_sec"`
	MatchP50                     float64 `json:"match_p50_ms"`
	MatchP99                     float64 `json:"match_p99_ms"`
	RematchesPerSec              float64 `json:"rematches_per_sec"`
	RematchP50                   float64 `json:"rematch_p50_ms"`

	AllocsPerMsg         float64 `json:"allocs_per_msg"`
	BaselineAllocsPerMsg float64 `json:"baseline_allocs_per_msg"`
	// Heap bytes the server allocated per relayed message (flat phase).
	BytesPerMsg          float64 `json:"alloc_bytes_per_msg"`
	BaselineBytesPerMsg  float64 `json:"baseline_alloc_bytes_per_msg"`
	ClientCPUPerKMsg     float64 `json:"client_cpu_ms_per_1k_msgs"`
	BaselineClientCPUPer float64 `json:"baseline_client_cpu_ms_per_1k_msgs"`

	Sweep    []sweepPoint `json:"sweep,omitempty"`
	Flamingo *result      `json:"flamingo"`
	Baseline *result      `json:"baseline"`

	// Cluster compares the cluster with flamingo and the baseline (with -redis).
	Cluster *clusterReport `json:"cluster,omitempty"`
}

// clusterReport is the cluster's side of the summary: its figures and their ratios to
// flamingo on one node ("Ratio") and to the baseline ("BaselineRatio"). CPU and
// memory are summed over the nodes; "per node" figures divide by the nodes.
type clusterReport struct {
	Redis          string  `json:"redis"`
	Nodes          int     `json:"nodes"`
	Pairs          int     `json:"pairs"`
	SteeredCross   float64 `json:"steered_cross_share"` // -cross
	CrossNodePairs int     `json:"cross_node_pairs"`

	// Flat is the closed-loop phase; Paced the first paced phase, if any.
	Flat  clusterPhase  `json:"flat"`
	Paced *clusterPhase `json:"paced,omitempty"`

	// Latency of the same phase as the report's.
	P50              float64  `json:"p50_ms"`
	P90              float64  `json:"p90_ms"`
	P99              float64  `json:"p99_ms"`
	Max              float64  `json:"max_ms"`
	P50Delta         float64  `json:"p50_delta_ms"`          // cluster − flamingo
	P50BaselineDelta float64  `json:"p50_baseline_delta_ms"` // cluster − baseline
	P99Ratio         float64  `json:"p99_ratio"`
	P99BaselineRatio float64  `json:"p99_baseline_ratio"`
	SameNodeLatency  *latency `json:"same_node_latency,omitempty"`
	CrossNodeLatency *latency `json:"cross_node_latency,omitempty"`
	FlatP50          float64  `json:"flat_p50_ms"`
	FlatP99          float64  `json:"flat_p99_ms"`

	KiBPerConn        float64 `json:"kib_per_conn"` // idle RSS of the nodes, summed
	HeapKiBPerConn    float64 `json:"heap_kib_per_conn"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	IdleRSSMiBPerNode float64 `json:"idle_rss_mib_per_node"` // growth from before the first connection

	ConnsPerSec     float64 `json:"conns_per_sec"`
	MatchesPerSec   float64 `json:"matches_per_sec"`
	MatchP50        float64 `json:"match_p50_ms"`
	MatchP99        float64 `json:"match_p99_ms"`
	RematchesPerSec float64 `json:"rematches_per_sec"`
	RematchP50      float64 `json:"rematch_p50_ms"`

	Undelivered uint64 `json:"undelivered"` // all phases
	Errors      uint64 `json:"error_events"`
	Dropped     uint64 `json:"dropped_events"`

	Result *result `json:"result"`
}

// clusterPhase is the cluster's throughput and CPU in one chat phase, beside
// flamingo's and the baseline's.
type clusterPhase struct {
	CrossMsgShare float64 `json:"cross_node_msg_share"`

	MsgsPerSec              float64 `json:"msgs_per_sec"`
	MsgsPerSecPerNode       float64 `json:"msgs_per_sec_per_node"`
	ThroughputRatio         float64 `json:"throughput_ratio"`
	BaselineThroughputRatio float64 `json:"baseline_throughput_ratio"`

	// Messages per CPU-second of the nodes, summed.
	MsgsPerCPU         float64 `json:"msgs_per_server_cpu_sec"`
	RelayRatio         float64 `json:"relay_ratio"`
	BaselineRelayRatio float64 `json:"baseline_relay_ratio"`
	// Per node: the messages a node's clients received per CPU-second of that node,
	// each node's figure and their mean.
	NodeMsgsPerCPU            []float64 `json:"node_msgs_per_server_cpu_sec"`
	PerNodeMsgsPerCPU         float64   `json:"per_node_msgs_per_server_cpu_sec"`
	PerNodeRelayRatio         float64   `json:"per_node_relay_ratio"`
	PerNodeBaselineRelayRatio float64   `json:"per_node_baseline_relay_ratio"`
	// The whole cluster: the nodes and Redis (when Redis's CPU time could be read).
	WholeMsgsPerCPU         float64 `json:"whole_msgs_per_cpu_sec,omitempty"`
	WholeRelayRatio         float64 `json:"whole_relay_ratio,omitempty"`
	WholeBaselineRelayRatio float64 `json:"whole_baseline_relay_ratio,omitempty"`

	ServerCPUCores        float64 `json:"server_cpu_cores"` // the nodes, summed
	ServerCPUCoresPerNode float64 `json:"server_cpu_cores_per_node"`
	RedisCPUCores         float64 `json:"redis_cpu_cores,omitempty"`
	RedisCPUPerKMsg       float64 `json:"redis_cpu_ms_per_1k_msgs,omitempty"`
	// RedisCPUPerCrossMsg is Redis's CPU time in the phase divided by the messages
	// that crossed nodes, in µs: a message between partners on one node never
	// touches Redis, so all of it is put on the crossing ones (the nodes' heartbeats
	// and idle stream reads are counted in too, a small share under load).
	RedisCPUPerCrossMsg float64 `json:"redis_cpu_us_per_cross_msg,omitempty"`
	AllocsPerMsg        float64 `json:"allocs_per_msg"`
	// The allocations of a message that crosses nodes, as well as the process
	// counters allow: every relayed message is taken to cost the cluster's nodes what
	// a message costs flamingo on one node in the same phase (its allocs_per_msg),
	// and the rest of the cluster's allocations to come from the crossing messages.
	// ExtraAllocsPerCrossMsg = (cluster allocs/msg − flamingo allocs/msg) ÷ the share
	// of messages that crossed; AllocsPerCrossMsg = flamingo allocs/msg +
	// ExtraAllocsPerCrossMsg, what a crossing message costs both nodes together.
	// Allocations of the nodes' own background work fall on the crossing messages
	// too. Zero when no message crossed.
	ExtraAllocsPerCrossMsg float64 `json:"extra_allocs_per_cross_msg,omitempty"`
	AllocsPerCrossMsg      float64 `json:"allocs_per_cross_msg,omitempty"`
}

// sweepPoint is the latency of both servers at one offered load.
type sweepPoint struct {
	Offered  float64 `json:"offered_msgs_per_sec"`
	Flamingo latency `json:"flamingo"`
	Baseline latency `json:"baseline"`
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// makeReport summarises a run; c, the cluster, may be nil.
func makeReport(cfg config, f, b, c *result) report {
	mode := "child process (server CPU and memory measured in the server process alone)"
	if cfg.inProcess {
		mode = "in process (server CPU and memory include the load clients)"
	}
	rep := report{
		ServerMode: mode, Conns: f.Conns, Pairs: f.Pairs, Duration: cfg.duration.Seconds(),

		MsgsPerSec: f.Flat.MsgsPerSec, BaselineMsgsPerSec: b.Flat.MsgsPerSec,
		ThroughputRatio: ratio(f.Flat.MsgsPerSec, b.Flat.MsgsPerSec),
		MsgsPerCPU:      f.Flat.MsgsPerCPUSec, BaselineMsgsPerCPU: b.Flat.MsgsPerCPUSec,
		RelayRatio: ratio(f.Flat.MsgsPerCPUSec, b.Flat.MsgsPerCPUSec),

		FlatP50: f.Flat.Latency.P50, FlatP99: f.Flat.Latency.P99,
		BaselineFlatP5: b.Flat.Latency.P50, BaselineFlatP9: b.Flat.Latency.P99,

		KiBPerConn: f.Idle.RSSKiB, BaselineKiBPerConn: b.Idle.RSSKiB,
		HeapKiBPerConn: f.Idle.HeapKiB, BaselineHeapKiBPerConn: b.Idle.HeapKiB,
		GoroutinesPerConn: f.Idle.Goroutines, BaselineGoroutinesPer: b.Idle.Goroutines,
		BusyKiBPerConn: f.Busy.RSSKiB, BaselineBusyKiBPerConn: b.Busy.RSSKiB,
		BusyGoroutinesPerConn: f.Busy.Goroutines, BaselineBusyGoroutinesP: b.Busy.Goroutines,

		ConnsPerSec: f.ConnsPerSec, BaselineConnsPerSec: b.ConnsPerSec,
		ConnectInitPerSec: f.ConnectInitPerSec, BaselineHandshakesPerSec: b.ConnectInitPerSec,
		ConnectInitRatio:       ratio(f.ConnectInitPerSec, b.ConnectInitPerSec),
		ConnectInitServerCPUUs: f.ConnectInitServerCPUUs, BaselineHandshakeServerCPUUs: b.ConnectInitServerCPUUs,
		ConnectInitCPURatio: ratio(b.ConnectInitServerCPUUs, f.ConnectInitServerCPUUs),
		MatchesPerSec:       f.MatchesPerSec, MatchP50: f.MatchLatency.P50, MatchP99: f.MatchLatency.P99,
		RematchesPerSec: f.RematchPerSec, RematchP50: f.RematchLatency.P50,

		AllocsPerMsg: f.Flat.AllocsPerMsg, BaselineAllocsPerMsg: b.Flat.AllocsPerMsg,
		BytesPerMsg: f.Flat.BytesPerMsg, BaselineBytesPerMsg: b.Flat.BytesPerMsg,
		ClientCPUPerKMsg:     1e6 * ratio(f.Flat.ClientCPUSec, float64(f.Flat.Msgs)),
		BaselineClientCPUPer: 1e6 * ratio(b.Flat.ClientCPUSec, float64(b.Flat.Msgs)),

		Flamingo: f, Baseline: b,
	}
	fl, bl, phase, offered := f.Flat.Latency, b.Flat.Latency, "flat (closed loop)", 0.0
	if len(f.Paced) > 0 && len(b.Paced) > 0 {
		fl, bl, phase, offered = f.Paced[0].Latency, b.Paced[0].Latency, "paced (open loop)", f.Paced[0].Offered
	}
	rep.LatencyPhase, rep.LatencyOffered = phase, offered
	rep.P50, rep.P90, rep.P99, rep.Max = fl.P50, fl.P90, fl.P99, fl.Max
	rep.BaselineP50, rep.BaselineP90, rep.BaselineP99, rep.BaselineMax = bl.P50, bl.P90, bl.P99, bl.Max
	if len(cfg.sweep) > 0 {
		for i := range f.Paced {
			if i < len(b.Paced) {
				rep.Sweep = append(rep.Sweep, sweepPoint{Offered: f.Paced[i].Offered, Flamingo: f.Paced[i].Latency, Baseline: b.Paced[i].Latency})
			}
		}
	}
	if c != nil {
		rep.Cluster = makeClusterReport(cfg, f, b, c)
	}
	return rep
}

// latencyPhase returns the phase whose latency the report gives: the first paced
// phase if there is one, else the flat phase.
func latencyPhase(r *result) phaseResult {
	if len(r.Paced) > 0 {
		return r.Paced[0]
	}
	return r.Flat
}

func makeClusterPhase(nodes int, c, f, b phaseResult) clusterPhase {
	n := float64(nodes)
	cp := clusterPhase{
		CrossMsgShare: ratio(float64(c.CrossMsgs), float64(c.Msgs)),

		MsgsPerSec: c.MsgsPerSec, MsgsPerSecPerNode: c.MsgsPerSec / n,
		ThroughputRatio:         ratio(c.MsgsPerSec, f.MsgsPerSec),
		BaselineThroughputRatio: ratio(c.MsgsPerSec, b.MsgsPerSec),

		MsgsPerCPU:         c.MsgsPerCPUSec,
		RelayRatio:         ratio(c.MsgsPerCPUSec, f.MsgsPerCPUSec),
		BaselineRelayRatio: ratio(c.MsgsPerCPUSec, b.MsgsPerCPUSec),
		NodeMsgsPerCPU:     c.NodeMsgsPerCPUSec,

		ServerCPUCores: c.ServerCPUShare, ServerCPUCoresPerNode: c.ServerCPUShare / n,
		AllocsPerMsg: c.AllocsPerMsg,
	}
	for _, v := range c.NodeMsgsPerCPUSec {
		cp.PerNodeMsgsPerCPU += v / float64(len(c.NodeMsgsPerCPUSec))
	}
	cp.PerNodeRelayRatio = ratio(cp.PerNodeMsgsPerCPU, f.MsgsPerCPUSec)
	cp.PerNodeBaselineRelayRatio = ratio(cp.PerNodeMsgsPerCPU, b.MsgsPerCPUSec)
	if c.RedisCPUSec > 0 {
		cp.WholeMsgsPerCPU = ratio(float64(c.Msgs), c.ServerCPUSec+c.RedisCPUSec)
		cp.WholeRelayRatio = ratio(cp.WholeMsgsPerCPU, f.MsgsPerCPUSec)
		cp.WholeBaselineRelayRatio = ratio(cp.WholeMsgsPerCPU, b.MsgsPerCPUSec)
		cp.RedisCPUCores = ratio(c.RedisCPUSec, c.Seconds)
		cp.RedisCPUPerKMsg = 1e6 * ratio(c.RedisCPUSec, float64(c.Msgs))
		cp.RedisCPUPerCrossMsg = 1e6 * ratio(c.RedisCPUSec, float64(c.CrossMsgs))
	}
	cp.ExtraAllocsPerCrossMsg, cp.AllocsPerCrossMsg = crossAllocs(c.AllocsPerMsg, f.AllocsPerMsg, cp.CrossMsgShare)
	return cp
}

// crossAllocs attributes the cluster's allocations per message (cluster) to the
// messages that crossed nodes, a share of all, given flamingo's per message on one
// node (single): see clusterPhase.ExtraAllocsPerCrossMsg. Both are 0 when share is.
func crossAllocs(cluster, single, share float64) (extra, total float64) {
	if share <= 0 {
		return 0, 0
	}
	extra = (cluster - single) / share
	return extra, single + extra
}

func makeClusterReport(cfg config, f, b, c *result) *clusterReport {
	cr := &clusterReport{
		Redis: cfg.cluster.describe(), Nodes: c.Nodes, Pairs: c.Pairs, CrossNodePairs: c.CrossPairs, SteeredCross: cfg.cross,

		Flat: makeClusterPhase(c.Nodes, c.Flat, f.Flat, b.Flat),

		FlatP50: c.Flat.Latency.P50, FlatP99: c.Flat.Latency.P99,

		KiBPerConn: c.Idle.RSSKiB, HeapKiBPerConn: c.Idle.HeapKiB, GoroutinesPerConn: c.Idle.Goroutines,
		IdleRSSMiBPerNode: c.Idle.RSSKiB * float64(c.Conns) / float64(c.Nodes) / 1024,

		ConnsPerSec: c.ConnsPerSec, MatchesPerSec: c.MatchesPerSec,
		MatchP50: c.MatchLatency.P50, MatchP99: c.MatchLatency.P99,
		RematchesPerSec: c.RematchPerSec, RematchP50: c.RematchLatency.P50,

		Errors: c.Errors, Dropped: c.Dropped,
		Result: c,
	}
	if len(c.Paced) > 0 && len(f.Paced) > 0 && len(b.Paced) > 0 {
		p := makeClusterPhase(c.Nodes, c.Paced[0], f.Paced[0], b.Paced[0])
		cr.Paced = &p
	}
	cl, fl, bl := latencyPhase(c), latencyPhase(f), latencyPhase(b)
	cr.P50, cr.P90, cr.P99, cr.Max = cl.Latency.P50, cl.Latency.P90, cl.Latency.P99, cl.Latency.Max
	cr.P50Delta, cr.P50BaselineDelta = cl.Latency.P50-fl.Latency.P50, cl.Latency.P50-bl.Latency.P50
	cr.P99Ratio, cr.P99BaselineRatio = ratio(cl.Latency.P99, fl.Latency.P99), ratio(cl.Latency.P99, bl.Latency.P99)
	cr.SameNodeLatency, cr.CrossNodeLatency = cl.SameNodeLatency, cl.CrossNodeLatency
	cr.Undelivered = c.Flat.Undelivered
	for _, p := range c.Paced {
		cr.Undelivered += p.Undelivered
	}
	return cr
}

func printJSON(rep report) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

func printTable(cfg config, rep report) {
	f, b := rep.Flamingo, rep.Baseline
	fmt.Printf("flamingo load test: %d connections (%d pairs), %v chat per server, servers in %s\n",
		rep.Conns, rep.Pairs, cfg.duration, rep.ServerMode)
	fmt.Printf("flat phase: closed loop, %d messages in flight per sender, %d-byte content\n", cfg.window, cfg.size)
	if rep.LatencyOffered > 0 {
		fmt.Printf("latency: paced phase, open loop at %.0f msgs/s offered in total\n", rep.LatencyOffered)
	}
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "metric\tflamingo\tbaseline\tratio\ttarget\t")
	row := func(name string, fv, bv float64, format, target string) {
		bs, rs := fmt.Sprintf(format, bv), fmt.Sprintf("%.2f×", ratio(fv, bv))
		if math.IsNaN(bv) {
			bs, rs = "n/a", ""
		}
		fmt.Fprintf(w, "%s\t"+format+"\t%s\t%s\t%s\t\n", name, fv, bs, rs, target)
	}
	na := math.NaN()
	row("connections/s", rep.ConnsPerSec, rep.BaselineConnsPerSec, "%.0f", "")
	row("connect + init/s (handshakes)", rep.ConnectInitPerSec, rep.BaselineHandshakesPerSec, "%.0f", "≥0.9×")
	row("  server CPU µs per connection", rep.ConnectInitServerCPUUs, rep.BaselineHandshakeServerCPUUs, "%.0f", "")
	row("relayed msgs/s (flat)", rep.MsgsPerSec, rep.BaselineMsgsPerSec, "%.0f", "")
	row("msgs per server CPU-s", rep.MsgsPerCPU, rep.BaselineMsgsPerCPU, "%.0f", "≥0.85× (must 0.70×)")
	row("server CPU cores used", f.Flat.ServerCPUShare, b.Flat.ServerCPUShare, "%.2f", "")
	row("client CPU cores used", f.Flat.ClientCPUShare, b.Flat.ClientCPUShare, "%.2f", "")
	row("client CPU ms per 1k msgs", rep.ClientCPUPerKMsg, rep.BaselineClientCPUPer, "%.1f", "")
	row("server allocs per msg", rep.AllocsPerMsg, rep.BaselineAllocsPerMsg, "%.2f", "≤2")
	row("server bytes allocated per msg", rep.BytesPerMsg, rep.BaselineBytesPerMsg, "%.0f", "≤256")
	row("flat p50 latency ms", rep.FlatP50, rep.BaselineFlatP5, "%.3f", "")
	row("flat p99 latency ms", rep.FlatP99, rep.BaselineFlatP9, "%.3f", "")
	for i := range f.Paced {
		if i >= len(b.Paced) {
			break
		}
		fp, bp := f.Paced[i], b.Paced[i]
		tag := fmt.Sprintf("@%.0f/s ", fp.Offered)
		row(tag+"delivered msgs/s", fp.MsgsPerSec, bp.MsgsPerSec, "%.0f", "")
		row(tag+"p50 latency ms", fp.Latency.P50, bp.Latency.P50, "%.3f", fmt.Sprintf("≤ base+0.05 (%+.3f)", fp.Latency.P50-bp.Latency.P50))
		row(tag+"p90 latency ms", fp.Latency.P90, bp.Latency.P90, "%.3f", "")
		row(tag+"p99 latency ms", fp.Latency.P99, bp.Latency.P99, "%.3f", "≤1.2×")
		row(tag+"max latency ms", fp.Latency.Max, bp.Latency.Max, "%.3f", "")
		row(tag+"msgs per server CPU-s", fp.MsgsPerCPUSec, bp.MsgsPerCPUSec, "%.0f", "")
	}
	row("idle RSS KiB/conn", rep.KiBPerConn, rep.BaselineKiBPerConn, "%.1f", "≤1.0×")
	row("idle heap+stack KiB/conn", rep.HeapKiBPerConn, rep.BaselineHeapKiBPerConn, "%.1f", "")
	row("idle goroutines/conn", rep.GoroutinesPerConn, rep.BaselineGoroutinesPer, "%.2f", "1")
	row("busy RSS KiB/conn", rep.BusyKiBPerConn, rep.BaselineBusyKiBPerConn, "%.1f", "")
	row("busy heap+stack KiB/conn", f.Busy.HeapKiB, b.Busy.HeapKiB, "%.1f", "")
	row("busy goroutines/conn", rep.BusyGoroutinesPerConn, rep.BaselineBusyGoroutinesP, "%.2f", "")
	row("inits/s", f.InitsPerSec, na, "%.0f", "")
	row("matches/s", rep.MatchesPerSec, na, "%.0f", "")
	row("match latency p50 ms", rep.MatchP50, na, "%.2f", "")
	row("match latency p99 ms", rep.MatchP99, na, "%.2f", "")
	row("re-matches/s (churn)", rep.RematchesPerSec, na, "%.0f", "")
	row("re-match latency p50 ms", rep.RematchP50, na, "%.2f", "")
	_ = w.Flush()
	fmt.Printf("\npairs %d, relaxed matches %d, re-matched pairs %d, error events %d (baseline %d), dropped events %d\n",
		f.Pairs, f.Relaxed, f.Rematches, f.Errors, b.Errors, f.Dropped)
	fmt.Println("allocs per msg count every allocation in the server process (websocket, net/http, runtime) divided by relayed messages.")
	if rep.Cluster != nil {
		printCluster(rep)
	}
}

// printCluster prints the cluster beside flamingo and the baseline.
func printCluster(rep report) {
	cr, c, f, b := rep.Cluster, rep.Cluster.Result, rep.Flamingo, rep.Baseline
	fmt.Printf("\ncluster: %d flamingo nodes on Redis at %s; clients alternate between the nodes\n", cr.Nodes, cr.Redis)
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "metric\tcluster\tflamingo\tbaseline\t×flamingo\t×baseline\t")
	row := func(name string, cv, fv, bv float64, format string) {
		cell := func(v float64) string {
			if math.IsNaN(v) {
				return "n/a"
			}
			return fmt.Sprintf(format, v)
		}
		rcell := func(v float64) string {
			if math.IsNaN(v) || math.IsNaN(cv) {
				return ""
			}
			return fmt.Sprintf("%.2f×", ratio(cv, v))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t\n", name, cell(cv), cell(fv), cell(bv), rcell(fv), rcell(bv))
	}
	na := math.NaN()
	phase := func(tag string, cp *clusterPhase, fp, bp phaseResult) {
		row(tag+"relayed msgs/s", cp.MsgsPerSec, fp.MsgsPerSec, bp.MsgsPerSec, "%.0f")
		row(tag+"msgs per server CPU-s (nodes)", cp.MsgsPerCPU, fp.MsgsPerCPUSec, bp.MsgsPerCPUSec, "%.0f")
		row(tag+"  per node (mean)", cp.PerNodeMsgsPerCPU, fp.MsgsPerCPUSec, bp.MsgsPerCPUSec, "%.0f")
		for i, v := range cp.NodeMsgsPerCPU {
			row(fmt.Sprintf("%s  node %d", tag, i), v, fp.MsgsPerCPUSec, bp.MsgsPerCPUSec, "%.0f")
		}
		if cp.WholeMsgsPerCPU > 0 {
			row(tag+"  whole (nodes + Redis)", cp.WholeMsgsPerCPU, fp.MsgsPerCPUSec, bp.MsgsPerCPUSec, "%.0f")
		}
		row(tag+"server CPU cores used", cp.ServerCPUCores, fp.ServerCPUShare, bp.ServerCPUShare, "%.2f")
		row(tag+"  per node", cp.ServerCPUCoresPerNode, fp.ServerCPUShare, bp.ServerCPUShare, "%.2f")
		if cp.RedisCPUCores > 0 {
			row(tag+"Redis CPU cores used", cp.RedisCPUCores, na, na, "%.2f")
			row(tag+"Redis CPU ms per 1k msgs", cp.RedisCPUPerKMsg, na, na, "%.2f")
			row(tag+"Redis CPU µs per crossing msg", cp.RedisCPUPerCrossMsg, na, na, "%.1f")
		}
		if cp.AllocsPerCrossMsg != 0 {
			row(tag+"allocs per crossing msg", cp.AllocsPerCrossMsg, fp.AllocsPerMsg, bp.AllocsPerMsg, "%.1f")
			row(tag+"  beyond a one-node msg", cp.ExtraAllocsPerCrossMsg, na, na, "%.1f")
		}
		row(tag+"msgs across nodes %", 100*cp.CrossMsgShare, na, na, "%.0f")
	}
	phase("flat ", &cr.Flat, f.Flat, b.Flat)
	if cr.Paced != nil {
		phase(fmt.Sprintf("@%.0f/s ", c.Paced[0].Offered), cr.Paced, f.Paced[0], b.Paced[0])
	}
	row("server allocs per msg (flat)", cr.Flat.AllocsPerMsg, f.Flat.AllocsPerMsg, b.Flat.AllocsPerMsg, "%.2f")
	row("flat p50 latency ms", cr.FlatP50, f.Flat.Latency.P50, b.Flat.Latency.P50, "%.3f")
	row("flat p99 latency ms", cr.FlatP99, f.Flat.Latency.P99, b.Flat.Latency.P99, "%.3f")
	fl, bl := latencyPhase(f).Latency, latencyPhase(b).Latency
	tag := "flat "
	if len(c.Paced) > 0 {
		tag = fmt.Sprintf("@%.0f/s ", c.Paced[0].Offered)
	}
	row(tag+"p50 latency ms", cr.P50, fl.P50, bl.P50, "%.3f")
	row(tag+"p90 latency ms", cr.P90, fl.P90, bl.P90, "%.3f")
	row(tag+"p99 latency ms", cr.P99, fl.P99, bl.P99, "%.3f")
	row(tag+"max latency ms", cr.Max, fl.Max, bl.Max, "%.3f")
	if s, x := cr.SameNodeLatency, cr.CrossNodeLatency; s != nil && x != nil {
		row(tag+"p50 ms, same node", s.P50, fl.P50, bl.P50, "%.3f")
		row(tag+"p50 ms, across nodes", x.P50, fl.P50, bl.P50, "%.3f")
		row(tag+"p99 ms, same node", s.P99, fl.P99, bl.P99, "%.3f")
		row(tag+"p99 ms, across nodes", x.P99, fl.P99, bl.P99, "%.3f")
	}
	row("idle RSS KiB/conn (nodes)", cr.KiBPerConn, f.Idle.RSSKiB, b.Idle.RSSKiB, "%.1f")
	row("idle heap+stack KiB/conn", cr.HeapKiBPerConn, f.Idle.HeapKiB, b.Idle.HeapKiB, "%.1f")
	row("idle goroutines/conn", cr.GoroutinesPerConn, f.Idle.Goroutines, b.Idle.Goroutines, "%.2f")
	row("connections/s", cr.ConnsPerSec, f.ConnsPerSec, b.ConnsPerSec, "%.0f")
	row("matches/s", cr.MatchesPerSec, f.MatchesPerSec, na, "%.0f")
	row("match latency p50 ms", cr.MatchP50, f.MatchLatency.P50, na, "%.2f")
	row("match latency p99 ms", cr.MatchP99, f.MatchLatency.P99, na, "%.2f")
	row("re-matches/s (churn)", cr.RematchesPerSec, f.RematchPerSec, na, "%.0f")
	row("re-match latency p50 ms", cr.RematchP50, f.RematchLatency.P50, na, "%.2f")
	_ = w.Flush()
	fmt.Printf("\npairs %d, across nodes %d (%.0f%%; %.0f%% steered), relaxed matches %d, re-matched pairs %d\n",
		cr.Pairs, cr.CrossNodePairs, 100*ratio(float64(cr.CrossNodePairs), float64(cr.Pairs)), 100*cr.SteeredCross, c.Relaxed, c.Rematches)
	fmt.Printf("error events %d, dropped events %d, messages not delivered within 5 s of a slice's end %d\n",
		cr.Errors, cr.Dropped, cr.Undelivered)
	fmt.Println("cluster CPU and memory are summed over its nodes; a node's msgs per CPU-s counts the messages its clients received.")
	fmt.Println("in the closed loop, pairs across nodes relay fewer messages (a longer round trip): the paced phase weighs them by their share of pairs.")
}

// writeSVG plots p50 and p99 latency of both servers against offered load, with a
// logarithmic latency axis.
func writeSVG(path string, rep report) error {
	if len(rep.Sweep) == 0 {
		return fmt.Errorf("no sweep points")
	}
	const (
		width, height          = 640.0, 400.0
		left, right, top, bott = 70.0, 160.0, 40.0, 50.0
	)
	pw, ph := width-left-right, height-top-bott
	maxX := 0.0
	minY, maxY := math.Inf(1), math.Inf(-1)
	for _, p := range rep.Sweep {
		maxX = math.Max(maxX, p.Offered)
		for _, v := range []float64{p.Flamingo.P50, p.Flamingo.P99, p.Baseline.P50, p.Baseline.P99} {
			if v > 0 {
				minY, maxY = math.Min(minY, v), math.Max(maxY, v)
			}
		}
	}
	if math.IsInf(minY, 1) {
		return fmt.Errorf("no latency samples")
	}
	lo, hi := math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
	if hi == lo {
		hi++
	}
	x := func(v float64) float64 { return left + pw*v/maxX }
	y := func(v float64) float64 {
		if v <= 0 {
			v = minY
		}
		return top + ph*(1-(math.Log10(v)-lo)/(hi-lo))
	}
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&s, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&s, `<text x="%.0f" y="20" font-size="14">Message latency against offered load (%d connections)</text>`+"\n", left, rep.Conns)
	// Axes and grid.
	fmt.Fprintf(&s, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, top+ph, left+pw, top+ph)
	fmt.Fprintf(&s, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, top, left, top+ph)
	for e := lo; e <= hi; e++ {
		v := math.Pow(10, e)
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), left+pw, y(v))
		fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" text-anchor="end">%g ms</text>`+"\n", left-6, y(v)+4, v)
	}
	for i := 0; i <= 4; i++ {
		v := maxX * float64(i) / 4
		fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0f</text>`+"\n", x(v), top+ph+18, v)
	}
	fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" text-anchor="middle">offered load (messages/s, all pairs)</text>`+"\n", left+pw/2, height-10)
	series := []struct {
		name, color, dash string
		get               func(sweepPoint) float64
	}{
		{"flamingo p50", "#d6336c", "", func(p sweepPoint) float64 { return p.Flamingo.P50 }},
		{"flamingo p99", "#d6336c", "6,4", func(p sweepPoint) float64 { return p.Flamingo.P99 }},
		{"baseline p50", "#1c7ed6", "", func(p sweepPoint) float64 { return p.Baseline.P50 }},
		{"baseline p99", "#1c7ed6", "6,4", func(p sweepPoint) float64 { return p.Baseline.P99 }},
	}
	for i, se := range series {
		var pts []string
		for _, p := range rep.Sweep {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.Offered), y(se.get(p))))
		}
		fmt.Fprintf(&s, `<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="%s"/>`+"\n", se.color, se.dash, strings.Join(pts, " "))
		for _, pt := range pts {
			xy := strings.Split(pt, ",")
			fmt.Fprintf(&s, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], se.color)
		}
		ly := top + 10 + float64(i)*20
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", left+pw+15, ly, left+pw+45, ly, se.color, se.dash)
		fmt.Fprintf(&s, `<text x="%.1f" y="%.1f">%s</text>`+"\n", left+pw+52, ly+4, se.name)
	}
	s.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(s.String()), 0o644)
}
