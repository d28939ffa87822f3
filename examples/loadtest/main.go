// Command loadtest measures a flamingo server over real WebSockets on loopback and
// compares every figure with a bare coder/websocket relay measured in the same run
// (and, with -redis, a cluster of flamingo nodes on Redis).
//
// It starts two servers, the baseline first: the baseline (a minimal relay that pairs
// connections in arrival order and copies frames between them, with no engine) and
// flamingo (an Engine behind NewWebSocketHandler). Each runs in a child process (this
// program re-run with -serve), so that the server's CPU time and memory are measured
// apart from the load clients'; -inprocess runs them in this process instead, and the
// output then says that CPU and memory include the clients. Both servers stay up and
// take turns: each chat phase is cut into -slices slices that alternate between them,
// so that the machine's changing load (it is shared) touches both alike.
//
// Against each server, the same clients:
//
//   - connect: open -conns WebSockets, spread over 127.0.0.1..127.0.0.N source
//     addresses (-srcaddrs), to measure connections/s;
//   - flamingo only: init, then join_queue with mixed genders and preferences (mostly
//     "any"), and wait for match_found, to measure matches/s and match latency (a
//     client whose preference finds nobody leaves the queue and joins again accepting
//     anyone);
//   - idle: measure server memory (RSS and heap after a GC) and goroutines per
//     connection with every connection open and quiet (flamingo: in a chat);
//   - flat: chat flat out in a closed loop, each client keeping at most -window
//     messages in flight, for throughput, messages per server CPU-second and
//     allocations per message; memory and goroutines are also measured mid-phase
//     ("busy");
//   - paced: chat in an open loop at -rate messages/s per pair, for latency (each
//     message carries its scheduled send time; the receiver takes the difference);
//   - flamingo only: churn: a -churn fraction of pairs leave their chat and queue
//     again, to measure re-matching.
//   - handshakes: min(-conns, 1000) new connections, dialled 64 at a time as in the
//     connect phase, each until it is ready to chat (flamingo: init answered by
//     ready; the baseline: its WebSocket handshake), for connect + init per second
//     against the bare handshake rate (connect_init_ratio), and the server's CPU
//     time per connection, whose ratio (connect_init_cpu_ratio: connections per
//     server CPU-second against the baseline's) leaves out the clients' share of
//     the machine. Like the chat phases it is cut into -slices slices that
//     alternate between the servers.
//
// With -redis, a third server takes its turn beside the other two: a cluster of
// -nodes flamingo nodes sharing one Redis (flamingoredis.Cluster as each engine's
// Matcher and Broker, the same raised limits), whose clients go through flamingo's
// phases. The tool builds the node (examples/cluster/loadnode, in the nested module
// that may depend on go-redis) once into a temporary directory, starts each node as a
// child process on one fresh random key prefix, and connects client i to node i mod
// N. Left to themselves, simultaneous joins would pair mostly users of one node (each
// node's joins reach Redis in bursts), so the genders and preferences of the
// cluster's clients steer a -cross fraction of the pairs across nodes (see
// clusterProfile); the report counts the pairs and the messages that crossed. A
// message between partners on the same node never touches Redis; one across nodes is
// one Redis script call from the sender's node (pipelined) and a stream read by the
// partner's node. The cluster's CPU and memory are the sums over its nodes (also
// given per node); each node's messages per CPU-second counts the messages its
// clients received; Redis's CPU time (INFO cpu) is reported apart, added in the
// "whole" figure, and divided by the messages that crossed nodes (Redis µs per
// crossing message). Allocations per crossing message are attributed from the
// process counters: the cluster's allocations per message less flamingo's on one
// node, divided by the share of messages that crossed, plus flamingo's (see
// clusterPhase in report.go). The report compares the cluster with flamingo on one node and with
// the baseline. -redis auto starts a redis-server (without persistence) on a free
// loopback port and stops it at the end; with an address, the run's keys are deleted
// at the end.
//
// With -scale, the tool runs the scale run instead: for each connection count in the
// list (say 2000,8000,18000), fresh baseline and flamingo servers go through the
// phases above, both up at once and taking turns when the tool can hold both sets of
// sockets (up to 9500 connections each), otherwise the baseline first and then
// flamingo. Each count's paced phase offers the same total load (-scaleload, 10k
// msgs/s by default), one a box of two cores can take at 18k connections. The report
// gives, per count, idle and busy memory per connection (RSS and heap) of both
// servers, messages per server CPU-second and their ratio (the relay ratio, flat
// phase), CPU time, allocations and write system calls per message (how many frames
// a write carries; where /proc/self/io counts them), and p50/p99 latency of the
// paced phase; then how much each of flamingo's costs grew from the first count to the
// last (the target: at most 10%), beside the baseline's growth.
//
// Connections need sockets: the tool raises its own open files limit (RLIMIT_NOFILE)
// to the hard limit at start, and its child servers inherit it. One process holds
// about the limit less 1000 sockets (19000 on a machine whose limit is 20000); a
// bigger run needs a higher hard limit (ulimit -Hn, or limits.conf). The clients
// spread over loopback source addresses 127.0.0.1, 127.0.0.2... (one per 4000
// connections unless -srcaddrs is given): each address has about 28k ephemeral ports,
// and the previous server's connections keep theirs in TIME_WAIT for a minute.
//
// With -pprof, every child server also serves net/http/pprof on loopback, with the
// runtime's mutex and block profiles on (see loadserve.ServePprof), so that a CPU,
// mutex or block profile or an execution trace (go tool trace) can be taken while a
// run is under way; each child says on stderr where it listens. The profiles cost
// some CPU: figures of a run with -pprof are not comparable with others.
//
// A progress line goes to stderr every second. Every phase is bounded in time, and the
// whole run stops by itself. The report prints each flamingo figure beside the
// baseline's and the ratio; -json prints one JSON object instead.
//
// Usage:
//
//	go run ./examples/loadtest [flags]
//
// The flags are:
//
//	-conns N       connections per server (default 200; rounded down to even; at
//	               most 9500 interleaved, 19000 not, halved again with -inprocess,
//	               with the open files limit of 20000)
//	-duration D    chat time per server, split between the flat and paced phases
//	               (default 10s)
//	-rate R        messages/s per pair in the paced phase; 0 runs only the flat
//	               phase, for the whole duration, and reports its latency (default
//	               100, so 10k messages/s at 200 connections)
//	-window W      messages in flight per sender in the flat phase (default 8)
//	-size B        message content size in bytes (default 64)
//	-churn F       fraction of pairs that leave and re-queue (default 0.25)
//	-srcaddrs K    loopback source addresses to spread clients over (0: one per
//	               4000 connections; with -scale, per count)
//	-inprocess     run the servers in this process instead of child processes
//	-interleave    keep both servers up and alternate their chat and handshake
//	               slices (default true; false runs the baseline to the end, then
//	               flamingo, which allows twice the connections)
//	-slices K      slices per chat phase and server, and of the handshakes phase
//	               (default 4)
//	-json          print one JSON object instead of the table
//	-sweep LIST    comma-separated total offered loads (messages/s) for the paced
//	               phase, one paced phase each, instead of -rate
//	-svg FILE      with -sweep, write a plot of p50 and p99 latency against load;
//	               with -scale, a plot of RSS per connection (both servers, idle
//	               and busy) and of the relay ratio against connections
//	-cpuprofile P  write each child server's CPU profile to P.flamingo and
//	               P.baseline (and each cluster node's to P.cluster0, P.cluster1...)
//	-pprof ADDR    serve net/http/pprof, with the mutex and block profiles on, from
//	               each child server on loopback: flamingo on ADDR, the baseline on
//	               the next port, cluster node i on the port 2+i after ADDR (port
//	               0: each picks a free port); with -inprocess, the tool's own
//	               process on ADDR
//	-scale LIST    comma-separated connection counts (each rounded down to even,
//	               at most 19000 with the open files limit of 20000): run the
//	               scale run, one measurement of both servers per count, instead
//	               of one run at -conns; -rate and -sweep do not apply, and
//	               -redis cannot be combined with it
//	-scaleload L   with -scale: total messages/s offered in each count's paced
//	               phase (default 10000; 0 runs only the flat phase)
//	-redis ADDR    also measure a cluster of flamingo nodes on the Redis at ADDR
//	               ("auto": start redis-server on a free port, and stop it at the
//	               end); at most 6333 connections interleaved; not with -inprocess
//	-nodes N       with -redis: cluster nodes (default 2)
//	-cross F       with -redis: fraction of the cluster's pairs steered across
//	               nodes by their genders and preferences (default 0.5); the
//	               others are "other" accepting anyone, so the cluster's matching
//	               figures use another mix of profiles than flamingo's
//	-serve KIND    internal: run one server ("flamingo" or "baseline") as a child
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/flamingochat/flamingo/internal/loadserve"
)

// config holds the flags.
type config struct {
	redis      string // -redis: "", an address, or "auto"
	nodes      int
	cross      float64     // fraction of the cluster's pairs steered across nodes
	cluster    *clusterEnv // with -redis
	conns      int
	duration   time.Duration
	rate       float64
	window     int
	size       int
	churn      float64
	srcAddrs   int
	inProcess  bool
	interleave bool
	slices     int
	json       bool
	sweep      []float64 // total offered msgs/s
	svg        string
	matchWait  time.Duration

	// The scale run (-scale): the sizes, and the total load of each size's paced phase.
	scale     []int
	scaleLoad float64
	// pacedLoad, when positive and there is no -sweep or -rate, is the total load
	// (msgs/s) of the paced phase: how the scale run offers each size the same load.
	pacedLoad float64
	// sockets is how many sockets one process may hold (the open files limit less
	// a margin); 0 means 19000.
	sockets int
	// srcAddrsSet says -srcaddrs was given, so the scale run keeps it for every size.
	srcAddrsSet bool
	// pprof is -pprof: where flamingo's child serves net/http/pprof ("": nowhere).
	pprof string
}

// args is the command line, parsed: the configuration and the flags that check
// turns into it or that select a mode.
type args struct {
	cfg                 config
	sweep, serve, scale string
}

// parseArgs defines the tool's flags on fs and parses argv with it. The flags are
// checked apart, by config.check.
func parseArgs(fs *flag.FlagSet, argv []string) (*args, error) {
	a := new(args)
	fs.IntVar(&a.cfg.conns, "conns", 200, "connections per server")
	fs.DurationVar(&a.cfg.duration, "duration", 10*time.Second, "chat time per server (flat + paced)")
	fs.Float64Var(&a.cfg.rate, "rate", 100, "messages/s per pair in the paced phase; 0 = closed loop only")
	fs.IntVar(&a.cfg.window, "window", 8, "messages in flight per sender in the flat phase")
	fs.IntVar(&a.cfg.size, "size", 64, "message content size in bytes")
	fs.Float64Var(&a.cfg.churn, "churn", 0.25, "fraction of pairs that leave their chat and re-queue")
	fs.IntVar(&a.cfg.srcAddrs, "srcaddrs", 0, "loopback source addresses (0: one per 4000 connections)")
	fs.BoolVar(&a.cfg.inProcess, "inprocess", false, "run the servers in this process, not in child processes")
	fs.BoolVar(&a.cfg.interleave, "interleave", true, "keep both servers up and alternate their chat and handshake slices")
	fs.IntVar(&a.cfg.slices, "slices", 4, "slices per chat phase and server, and of the handshakes phase")
	fs.BoolVar(&a.cfg.json, "json", false, "print one JSON object")
	fs.StringVar(&a.sweep, "sweep", "", "comma-separated total offered loads (msgs/s) for paced phases")
	fs.StringVar(&a.cfg.svg, "svg", "", "with -sweep: write a latency plot (SVG) to this file; with -scale: a plot of memory per connection and relay ratio")
	fs.StringVar(&a.serve, "serve", "", "internal: run one server as a child process")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write each child server's CPU profile to this path plus .flamingo, .baseline or .clusterN")
	fs.StringVar(&a.cfg.redis, "redis", "", "also measure a cluster of flamingo nodes on the Redis at this address (\"auto\": start one)")
	fs.IntVar(&a.cfg.nodes, "nodes", 2, "with -redis: cluster nodes")
	fs.Float64Var(&a.cfg.cross, "cross", 0.5, "with -redis: fraction of the cluster's pairs steered across nodes")
	fs.StringVar(&a.scale, "scale", "", "comma-separated connection counts: one measurement of both servers per count (the scale run)")
	fs.Float64Var(&a.cfg.scaleLoad, "scaleload", 10000, "with -scale: total msgs/s offered in each size's paced phase; 0 = flat phase only")
	fs.StringVar(&a.cfg.pprof, "pprof", "", "serve net/http/pprof from each child server: flamingo on this loopback HOST:PORT, the baseline on the next port, cluster nodes on the ports after")
	if err := fs.Parse(argv); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { a.cfg.srcAddrsSet = a.cfg.srcAddrsSet || f.Name == "srcaddrs" })
	return a, nil
}

func main() {
	a, err := parseArgs(flag.CommandLine, os.Args[1:])
	if err != nil { // not reached: the command line's flag set exits on errors
		os.Exit(2)
	}
	cfg, sweep, serve, scale := a.cfg, a.sweep, a.serve, a.scale

	// Raise the open files limit to its hard limit; the child servers inherit it.
	fileLimit, err := raiseFileLimit()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest: raising the open files limit:", err)
	}
	if fileLimit > 1000 {
		cfg.sockets = int(min(fileLimit-1000, 1<<20))
	}

	if serve != "" {
		if err := serveChild(serve, cfg.pprof); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest -serve:", err)
			os.Exit(1)
		}
		return
	}
	if err := cfg.check(sweep, scale); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		flag.Usage()
		os.Exit(2)
	}
	if cfg.pprof != "" && cfg.inProcess {
		stop, err := startPprof(cfg.pprof, "the tool (both servers and the clients)")
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest: -pprof:", err)
			os.Exit(1)
		}
		defer stop()
	}
	if len(cfg.scale) > 0 {
		fmt.Fprintf(os.Stderr, "loadtest: open files limit %d: one process holds about %d sockets\n", fileLimit, cfg.socketBudget())
		if code := runScale(cfg); code != 0 {
			os.Exit(code)
		}
		return
	}

	kinds := []string{kindBaseline, kindFlamingo}
	if cfg.redis != "" {
		env, err := setupCluster(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest: cluster:", err)
			os.Exit(1)
		}
		cfg.cluster = env
		defer env.close()
		kinds = append(kinds, kindCluster)
	}
	// exit stops what the run started outside its child servers (which stop when the
	// tool's end closes their stdin) and exits.
	exit := func(code int) {
		if cfg.cluster != nil {
			cfg.cluster.close()
		}
		os.Exit(code)
	}

	// Every phase has its own time bound; this is the backstop.
	limit := time.Duration(len(kinds))*cfg.duration + time.Duration(len(cfg.sweep))*cfg.duration + 3*time.Minute
	if cfg.cluster != nil {
		limit += time.Minute // building the node, starting Redis and the nodes
	}
	time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "loadtest: run exceeded %v, giving up\n", limit)
		exit(3)
	})

	results, err := measure(cfg, kinds)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v\n", err)
		exit(1)
	}
	var cl *result
	if len(results) > 2 {
		cl = results[2]
	}
	rep := makeReport(cfg, results[1], results[0], cl)
	if cfg.svg != "" {
		if err := writeSVG(cfg.svg, rep); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest: svg:", err)
			exit(1)
		}
	}
	if cfg.json {
		printJSON(rep)
	} else {
		printTable(cfg, rep)
	}
}

// measure runs every phase on the servers of kinds, all up at once and taking turns
// (cfg.interleave) or one after the other, and returns their results in the order of
// kinds. A server that fails to start or to set up ends the run with an error.
func measure(cfg config, kinds []string) ([]*result, error) {
	var results []*result
	if cfg.interleave {
		var rs []*runner
		for _, kind := range kinds {
			r, res, err := setup(cfg, kind)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", kind, err)
			}
			rs, results = append(rs, r), append(results, res)
		}
		runChats(cfg, rs, results)
		for i, r := range rs {
			r.churn(results[i])
		}
		runHandshakes(cfg, rs, results)
		for i, r := range rs {
			r.finish(results[i])
			r.shutdown()
		}
		return results, nil
	}
	for _, kind := range kinds {
		r, res, err := setup(cfg, kind)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		runChats(cfg, []*runner{r}, []*result{res})
		r.churn(res)
		runHandshakes(cfg, []*runner{r}, []*result{res})
		r.finish(res)
		r.shutdown()
		results = append(results, res)
	}
	return results, nil
}

// socketBudget is how many sockets one process may hold.
func (cfg *config) socketBudget() int {
	if cfg.sockets > 0 {
		return cfg.sockets
	}
	return 19000
}

// endsPerServer is how many sockets the tool holds per connection of one server:
// one end, or both with -inprocess.
func (cfg *config) endsPerServer() int {
	if cfg.inProcess {
		return 2
	}
	return 1
}

func (cfg *config) check(sweep, scale string) error {
	if scale != "" {
		return cfg.checkScale(sweep, scale)
	}
	return cfg.checkRun(sweep)
}

func (cfg *config) checkRun(sweep string) error {
	cfg.conns &^= 1
	if cfg.redis != "" {
		if cfg.inProcess {
			return errors.New("-redis cannot be combined with -inprocess (the cluster's nodes run in child processes)")
		}
		if cfg.nodes < 1 || cfg.nodes > 16 {
			return errors.New("-nodes must be between 1 and 16")
		}
		if cfg.cross < 0 || cfg.cross > 1 {
			return errors.New("-cross must be within [0, 1]")
		}
	}
	// One process holds about 19k sockets (the open files limit, 20000 here, less a
	// margin): the tool holds one end of each connection to each server that is up at
	// once, and -inprocess the other end too.
	ends := 1
	if cfg.interleave {
		ends *= 2
		if cfg.redis != "" {
			ends = 3
		}
	}
	ends *= cfg.endsPerServer()
	if budget := cfg.socketBudget(); cfg.conns < 2 || cfg.conns*ends > budget {
		return fmt.Errorf("-conns must be between 2 and %d with these flags (one process holds about %d sockets)", budget/ends, budget)
	}
	if err := cfg.checkCommon(); err != nil {
		return err
	}
	if cfg.srcAddrs <= 0 {
		cfg.srcAddrs = 1 + cfg.conns/4000
	}
	if cfg.srcAddrs > 254 {
		cfg.srcAddrs = 254
	}
	for _, f := range strings.Split(sweep, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("-sweep: bad load %q", f)
		}
		cfg.sweep = append(cfg.sweep, v)
	}
	if cfg.svg != "" && len(cfg.sweep) == 0 {
		return errors.New("-svg needs -sweep or -scale")
	}
	cfg.matchWait = 3 * time.Second
	return nil
}

// checkCommon checks the flags that every kind of run uses alike.
func (cfg *config) checkCommon() error {
	if cfg.slices < 1 || cfg.slices > 100 {
		return errors.New("-slices must be between 1 and 100")
	}
	if cfg.duration <= 0 || cfg.duration > 10*time.Minute {
		return errors.New("-duration must be positive and at most 10m")
	}
	if cfg.window < 1 || cfg.window > 128 {
		return errors.New("-window must be between 1 and 128 (flamingo queues at most 256 events)")
	}
	if cfg.size < 24 || cfg.size > 4096 {
		return errors.New("-size must be between 24 and 4096")
	}
	if cfg.rate < 0 || cfg.churn < 0 || cfg.churn > 1 {
		return errors.New("-rate must be ≥ 0 and -churn within [0, 1]")
	}
	if cfg.pprof != "" {
		last, node := kindBaseline, 0
		if cfg.redis != "" {
			last, node = kindCluster, cfg.nodes-1
		}
		if _, err := pprofAddrFor(cfg.pprof, last, node); err != nil {
			return fmt.Errorf("-pprof: %w", err)
		}
	}
	return nil
}

// phaseResult is what one chat phase measured.
type phaseResult struct {
	Offered       float64 `json:"offered_msgs_per_sec"` // 0: closed loop
	Msgs          uint64  `json:"msgs"`
	Seconds       float64 `json:"seconds"`
	MsgsPerSec    float64 `json:"msgs_per_sec"`
	ServerCPUSec  float64 `json:"server_cpu_sec"`
	MsgsPerCPUSec float64 `json:"msgs_per_server_cpu_sec"`
	ClientCPUSec  float64 `json:"client_cpu_sec"`
	AllocsPerMsg  float64 `json:"allocs_per_msg"`
	BytesPerMsg   float64 `json:"alloc_bytes_per_msg"`
	// WritesPerMsg is the server's write system calls per relayed message: 1 for
	// a server that writes each frame by itself, less when one write carries
	// several (0 where the system does not count them).
	WritesPerMsg    float64 `json:"writes_per_msg,omitempty"`
	Latency         latency `json:"latency"`
	ServerCPUShare  float64 `json:"server_cpu_cores"` // server CPU-seconds per second
	ClientCPUShare  float64 `json:"client_cpu_cores"`
	SendersFinished int     `json:"senders"`

	// Undelivered counts the messages sent in a slice and not received within 5 s of
	// its end.
	Undelivered uint64 `json:"undelivered,omitempty"`

	// The cluster only.
	RedisCPUSec       float64   `json:"redis_cpu_sec,omitempty"`
	NodeMsgs          []uint64  `json:"node_msgs,omitempty"` // received by each node's clients
	NodeCPUSec        []float64 `json:"node_cpu_sec,omitempty"`
	NodeMsgsPerCPUSec []float64 `json:"node_msgs_per_cpu_sec,omitempty"`
	CrossMsgs         uint64    `json:"cross_node_msgs,omitempty"` // between clients of different nodes
	SameNodeLatency   *latency  `json:"same_node_latency,omitempty"`
	CrossNodeLatency  *latency  `json:"cross_node_latency,omitempty"`
}

// memFigures are per-connection memory and goroutine figures.
type memFigures struct {
	RSSKiB     float64 `json:"rss_kib_per_conn"`
	HeapKiB    float64 `json:"heap_kib_per_conn"` // heap in use + goroutine stacks
	Goroutines float64 `json:"goroutines_per_conn"`
}

// result is what a run measured on one server.
type result struct {
	Kind        string  `json:"kind"`
	Conns       int     `json:"conns"`
	ConnsPerSec float64 `json:"conns_per_sec"`
	InitsPerSec float64 `json:"inits_per_sec,omitempty"`
	// ConnectInitPerSec is the handshakes phase: new connections dialled 64 at a
	// time, each ready to chat (flamingo: after init and ready; the baseline: once
	// its WebSocket handshake is done).
	ConnectInitPerSec float64 `json:"connect_init_per_sec"`
	// ConnectInitServerCPUUs is the server's CPU time per connection in that
	// phase, in µs: what connecting costs the server, without the clients' share
	// of the machine.
	ConnectInitServerCPUUs float64       `json:"connect_init_server_cpu_us"`
	Pairs                  int           `json:"pairs"`
	MatchesPerSec          float64       `json:"matches_per_sec,omitempty"`
	MatchLatency           latency       `json:"match_latency"`
	Relaxed                int           `json:"relaxed,omitempty"` // clients matched only after relaxing
	Rematches              int           `json:"rematches,omitempty"`
	RematchPerSec          float64       `json:"rematches_per_sec,omitempty"`
	RematchLatency         latency       `json:"rematch_latency"`
	Idle                   memFigures    `json:"idle"`
	Busy                   memFigures    `json:"busy"`
	Flat                   phaseResult   `json:"flat"`
	Paced                  []phaseResult `json:"paced"`
	Errors                 uint64        `json:"error_events"`
	Dropped                uint64        `json:"dropped_events"`

	// The cluster only.
	Nodes      int          `json:"nodes,omitempty"`
	CrossPairs int          `json:"cross_node_pairs,omitempty"` // pairs whose users are on different nodes
	NodeIdle   []memFigures `json:"node_idle,omitempty"`        // each node, per connection of that node
}

// runner drives the clients against one server.
type runner struct {
	cfg     config
	kind    string
	srv     *server
	base    loadserve.Stats // before the first connection
	clients []*client
	senders []*client // the clients in a chat, partners next to each other

	stopReport chan struct{}

	hist    atomic.Pointer[hist] // where received messages are timed; nil between phases
	recv    atomic.Uint64
	sent    atomic.Uint64
	errors  atomic.Uint64
	dropped atomic.Uint64

	phaseMu    sync.Mutex
	phase      string
	phaseStart time.Time
	progress   atomic.Uint64 // phase-specific count for the progress line

	// The cluster only: messages received by each node's clients, those that crossed
	// nodes, and their latencies split by path.
	nodeRecv  []paddedCounter
	crossRecv atomic.Uint64
	histSame  atomic.Pointer[hist]
	histCross atomic.Pointer[hist]
}

// paddedCounter is a counter on a cache line of its own.
type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

// engine reports whether the runner's server is a flamingo engine (one node or a
// cluster), which the clients must init and match.
func (r *runner) engine() bool { return r.kind != kindBaseline }

func (r *runner) setPhase(name string) {
	r.phaseMu.Lock()
	r.phase, r.phaseStart = name, time.Now()
	r.phaseMu.Unlock()
	r.progress.Store(0)
}

// report prints a progress line every second until stop is closed.
func (r *runner) report(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastRecv uint64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.phaseMu.Lock()
		phase, start := r.phase, r.phaseStart
		r.phaseMu.Unlock()
		recv := r.recv.Load()
		fmt.Fprintf(os.Stderr, "loadtest: [%s] %-8s %5.1fs  done=%d  msgs=%d (%d/s)  errors=%d\n",
			r.kind, phase, time.Since(start).Seconds(), r.progress.Load(), recv, recv-lastRecv, r.errors.Load())
		lastRecv = recv
	}
}

// setup starts a server of kind, connects the clients, matches them (flamingo) and
// measures the idle server. The caller must call shutdown.
func setup(cfg config, kind string) (*runner, *result, error) {
	srv, err := startServer(cfg, kind)
	if err != nil {
		return nil, nil, err
	}
	r := &runner{cfg: cfg, kind: kind, srv: srv, stopReport: make(chan struct{})}
	go r.report(r.stopReport)
	res := &result{Kind: kind}
	if kind == kindCluster {
		r.nodeRecv = make([]paddedCounter, len(srv.addrs))
		res.Nodes = len(srv.addrs)
	}
	nodeBase := srv.nodeStats(true)
	r.base = sumStats(nodeBase)

	r.setPhase("connect")
	hcs := dialers(cfg.srcAddrs)
	urls := make([]string, len(srv.addrs))
	for i, a := range srv.addrs {
		urls[i] = "ws://" + a + "/"
	}
	all := make([]*client, cfg.conns)
	var failed atomic.Int64
	t0 := time.Now()
	parallel(cfg.conns, 64, func(i int) {
		// Clients alternate between the nodes of a cluster.
		c := &client{id: i, run: r, node: i % len(urls)}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.dial(ctx, hcs[i%len(hcs)], urls[c.node]); err != nil {
			if failed.Add(1) == 1 {
				fmt.Fprintln(os.Stderr, "loadtest: dial:", err)
			}
			return
		}
		all[i] = c
		r.progress.Add(1)
	})
	res.ConnsPerSec = float64(r.progress.Load()) / time.Since(t0).Seconds()
	for _, c := range all {
		if c != nil {
			c.id = len(r.clients)
			r.clients = append(r.clients, c)
		}
	}
	res.Conns = len(r.clients)
	if res.Conns < 2 {
		return r, nil, fmt.Errorf("only %d connections opened", res.Conns)
	}

	r.senders = r.clients
	if r.engine() {
		r.senders, err = r.initAndMatch(res)
		if err != nil {
			return r, nil, err
		}
		for i := 0; i+1 < len(r.senders); i += 2 {
			if r.senders[i].node != r.senders[i+1].node {
				res.CrossPairs++
			}
		}
	} else {
		res.Pairs = res.Conns / 2
		r.senders = r.senders[:res.Pairs*2]
	}

	r.setPhase("idle")
	idle := r.settle()
	res.Idle = perConn(r.base, sumStats(idle), res.Conns)
	if kind == kindCluster {
		perNode := make([]int, len(idle))
		for _, c := range r.clients {
			perNode[c.node]++
		}
		for i := range idle {
			res.NodeIdle = append(res.NodeIdle, perConn(nodeBase[i], idle[i], max(perNode[i], 1)))
		}
	}
	return r, res, nil
}

// runChats runs the chat phases on every runner. Each phase is cut into cfg.slices
// slices, and the runners take turns slice by slice, so that a change in the
// machine's load between the start and the end of a run touches both servers alike.
func runChats(cfg config, rs []*runner, results []*result) {
	flatDur := cfg.duration
	loads := cfg.sweep
	if len(loads) == 0 && cfg.rate > 0 {
		loads = []float64{cfg.rate * float64(cfg.conns/2)}
	}
	if len(loads) == 0 && cfg.pacedLoad > 0 {
		loads = []float64{cfg.pacedLoad}
	}
	pacedDur := time.Duration(0)
	if len(loads) > 0 {
		flatDur = cfg.duration / 2
		pacedDur = (cfg.duration - flatDur) / time.Duration(len(loads))
		if len(cfg.sweep) > 0 {
			pacedDur = cfg.duration / 2
		}
	}
	type phase struct {
		load float64
		dur  time.Duration
	}
	phases := []phase{{0, flatDur}}
	for _, l := range loads {
		phases = append(phases, phase{l, pacedDur})
	}
	for pi, ph := range phases {
		accs := make([]*phaseAcc, len(rs))
		for i, r := range rs {
			accs[i] = &phaseAcc{load: ph.load, h: new(hist)}
			if n := len(r.nodeRecv); n > 0 {
				a := accs[i]
				a.hSame, a.hCross = new(hist), new(hist)
				a.nodeMsgs, a.nodeCPU = make([]uint64, n), make([]float64, n)
				a.redisOK = r.srv.redis != nil
			}
		}
		slice := ph.dur / time.Duration(cfg.slices)
		for s := range cfg.slices {
			for i, r := range rs {
				var mid func()
				if pi == 0 && s == 0 {
					res := results[i]
					mid = func() { res.Busy = perConn(r.base, r.srv.stats(false), res.Conns) }
				}
				r.chat(r.senders, ph.load, slice, mid, accs[i])
			}
		}
		for i := range rs {
			if pi == 0 {
				results[i].Flat = accs[i].result()
			} else {
				results[i].Paced = append(results[i].Paced, accs[i].result())
			}
		}
	}
}

// churn runs the churn phase (flamingo and the cluster).
func (r *runner) churn(res *result) {
	if r.engine() && r.cfg.churn > 0 {
		r.rematch(res, r.senders)
	}
}

// finish collects the error counts.
func (r *runner) finish(res *result) {
	res.Errors, res.Dropped = r.errors.Load(), r.dropped.Load()
}

// runHandshakes measures how fast new users become ready to chat on each runner:
// min(conns, 1000) new connections per server, dialled 64 at a time as in the connect
// phase, each sending init and waiting for ready (the baseline has no init: its
// WebSocket handshake is all). It runs last, beside the clients in their chats, in
// cfg.slices slices per server that take turns (the order reversed every other
// slice), so that the servers dial with the same sockets open and about as many in
// TIME_WAIT, and share the machine's noise as the chat phases do.
func runHandshakes(cfg config, rs []*runner, results []*result) {
	k := min(cfg.conns, 1000)
	n := cfg.slices
	ready := make([]int64, len(rs))
	took, cpu := make([]time.Duration, len(rs)), make([]time.Duration, len(rs))
	for _, r := range rs {
		r.setPhase("handshakes")
	}
	for s := range n {
		size := k / n
		if s < k%n {
			size++
		}
		for j := range rs {
			i := j
			if s%2 == 1 {
				i = len(rs) - 1 - j
			}
			got, d, c := rs[i].handshakes(size)
			ready[i] += got
			took[i] += d
			cpu[i] += c
		}
	}
	for i := range rs {
		if took[i] > 0 {
			results[i].ConnectInitPerSec = float64(ready[i]) / took[i].Seconds()
		}
		if ready[i] > 0 {
			results[i].ConnectInitServerCPUUs = float64(cpu[i].Microseconds()) / float64(ready[i])
		}
	}
}

// handshakes dials k new connections 64 at a time, each sending init and waiting
// for ready on an engine, then closes them all. It returns how many became ready, how
// long that took and the server's CPU time meanwhile (the closing not included).
func (r *runner) handshakes(k int) (int64, time.Duration, time.Duration) {
	hcs := dialers(r.cfg.srcAddrs)
	url := "ws://" + r.srv.addrs[0] + "/"
	conns := make([]*websocket.Conn, k)
	var ready atomic.Int64
	cpu0 := r.srv.stats(false).CPUNanos
	t0 := time.Now()
	parallel(k, 64, func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := dialWS(ctx, hcs[i%len(hcs)], url)
		if err != nil {
			return
		}
		conns[i] = c
		if r.engine() {
			if c.Write(ctx, websocket.MessageText, []byte(`{"type":"init"}`)) != nil {
				return
			}
			for {
				_, b, err := c.Read(ctx)
				if err != nil {
					return
				}
				if bytes.HasPrefix(b, []byte(`{"type":"ready"`)) {
					break
				}
			}
		}
		ready.Add(1)
		r.progress.Add(1)
	})
	took := time.Since(t0)
	cpu := time.Duration(r.srv.stats(false).CPUNanos - cpu0)
	for _, c := range conns {
		if c != nil {
			_ = c.CloseNow()
		}
	}
	return ready.Load(), took, cpu
}

// shutdown closes the clients and stops the server.
func (r *runner) shutdown() {
	close(r.stopReport)
	r.closeAll()
	r.srv.stop()
}

// perConn divides the growth from base to st among n connections.
func perConn(base, st loadserve.Stats, n int) memFigures {
	d := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) }
	return memFigures{
		RSSKiB:     d(base.RSS, st.RSS) / 1024,
		HeapKiB:    d(base.HeapInuse+base.StackInuse, st.HeapInuse+st.StackInuse) / 1024,
		Goroutines: (float64(st.Goroutines) - float64(base.Goroutines)) / float64(n),
	}
}

// settle waits (at most 3 s) until the server's goroutine count stops changing, as
// writers exit and handshakes finish, then measures each of its processes after a GC.
func (r *runner) settle() []loadserve.Stats {
	deadline := time.Now().Add(3 * time.Second)
	last := r.srv.stats(false).Goroutines
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		g := r.srv.stats(false).Goroutines
		if g == last {
			break
		}
		last = g
	}
	return r.srv.nodeStats(true)
}

// profile is a client's gender and preference: mostly "any", one in five asks for the
// opposite gender.
func profile(i int) (gender, pref string) {
	genders := [3]string{"male", "female", "other"}
	switch i % 10 {
	case 0:
		return "male", "female"
	case 1:
		return "female", "male"
	}
	return genders[i%3], "any"
}

// clusterProfile is the gender and preference of the cluster's client i. The two
// clients of a -cross fraction of the pair slots (clients 2k and 2k+1, which are on
// different nodes) are steered across nodes: the first is male and asks for a female,
// the second the reverse; with two nodes all the former are on node 0 and all the
// latter on node 1, so that they can only meet across nodes. Everyone else is "other"
// and accepts anyone, which the steered clients do not accept, and meets whoever
// comes first: mostly a user of the same node, as each node's joins reach Redis in
// bursts.
func clusterProfile(i int, cross float64) (gender, pref string) {
	k := float64(i / 2)
	if math.Floor((k+1)*cross) > math.Floor(k*cross) {
		if i%2 == 0 {
			return "male", "female"
		}
		return "female", "male"
	}
	return "other", "any"
}

// initAndMatch sends init on every connection, then queues everyone, and returns the
// clients that are in a chat with a partner among them.
func (r *runner) initAndMatch(res *result) ([]*client, error) {
	r.setPhase("init")
	var ok atomic.Int64
	t0 := time.Now()
	parallel(len(r.clients), 0, func(i int) {
		c := r.clients[i]
		if c.send(`{"type":"init"}`) != nil {
			return
		}
		if _, got := c.wait(time.Now().Add(10*time.Second), "ready"); got {
			ok.Add(1)
			r.progress.Add(1)
		}
	})
	res.InitsPerSec = float64(ok.Load()) / time.Since(t0).Seconds()
	if int(ok.Load()) != len(r.clients) {
		return nil, fmt.Errorf("init: %d of %d clients got ready", ok.Load(), len(r.clients))
	}

	r.setPhase("match")
	h := new(hist)
	var lastFirst atomic.Int64 // nanoseconds since t0 of the last first-round match
	var firstRound, relaxed atomic.Int64
	t0 = time.Now()
	parallel(len(r.clients), 0, func(i int) {
		c := r.clients[i]
		if r.kind == kindCluster {
			c.gender, c.pref = clusterProfile(i, r.cfg.cross)
		} else {
			c.gender, c.pref = profile(i)
		}
		start := time.Now()
		ev, first, ok := c.joinAndMatch(r.cfg.matchWait)
		if !ok {
			return
		}
		c.chatID = ev.chatID
		h.record(ev.at.Sub(start))
		r.progress.Add(1)
		if first {
			firstRound.Add(1)
			storeMax(&lastFirst, int64(ev.at.Sub(t0)))
		} else {
			relaxed.Add(1)
		}
	})
	res.MatchLatency = h.summary()
	res.Relaxed = int(relaxed.Load())
	if d := time.Duration(lastFirst.Load()); d > 0 {
		res.MatchesPerSec = float64(firstRound.Load()) / 2 / d.Seconds()
	}
	senders := r.chatting(r.clients)
	res.Pairs = len(senders) / 2
	if res.Pairs == 0 {
		return nil, errors.New("match: no pairs")
	}
	return senders, nil
}

// chatting returns the clients of cs whose chat's other user is also in cs, pairs
// next to each other.
func (r *runner) chatting(cs []*client) []*client {
	byChat := make(map[string][]*client)
	var order []string
	for _, c := range cs {
		if c.chatID == "" {
			continue
		}
		if _, seen := byChat[c.chatID]; !seen {
			order = append(order, c.chatID)
		}
		byChat[c.chatID] = append(byChat[c.chatID], c)
	}
	var out []*client
	for _, id := range order {
		if p := byChat[id]; len(p) == 2 {
			out = append(out, p...)
		}
	}
	return out
}

// phaseAcc adds up the slices of one chat phase on one server.
type phaseAcc struct {
	load     float64
	h        *hist
	msgs     uint64
	secs     float64
	srvCPU   float64
	cliCPU   float64
	mallocs  uint64
	alloced  uint64 // heap bytes
	writes   uint64 // the server's write system calls
	senders  int
	finished int

	undelivered uint64

	// The cluster only.
	hSame, hCross *hist
	nodeMsgs      []uint64
	nodeCPU       []float64
	cross         uint64
	redisCPU      float64
	redisOK       bool // Redis CPU could be read for every slice
}

func (a *phaseAcc) result() phaseResult {
	pr := phaseResult{
		Offered:         a.load,
		Msgs:            a.msgs,
		Seconds:         a.secs,
		MsgsPerSec:      ratio(float64(a.msgs), a.secs),
		ServerCPUSec:    a.srvCPU,
		ClientCPUSec:    a.cliCPU,
		MsgsPerCPUSec:   ratio(float64(a.msgs), a.srvCPU),
		AllocsPerMsg:    ratio(float64(a.mallocs), float64(a.msgs)),
		BytesPerMsg:     ratio(float64(a.alloced), float64(a.msgs)),
		WritesPerMsg:    ratio(float64(a.writes), float64(a.msgs)),
		Latency:         a.h.summary(),
		ServerCPUShare:  ratio(a.srvCPU, a.secs),
		ClientCPUShare:  ratio(a.cliCPU, a.secs),
		SendersFinished: a.finished,
		Undelivered:     a.undelivered,
	}
	if a.hCross != nil {
		same, cross := a.hSame.summary(), a.hCross.summary()
		pr.SameNodeLatency, pr.CrossNodeLatency = &same, &cross
		pr.NodeMsgs, pr.NodeCPUSec, pr.CrossMsgs = a.nodeMsgs, a.nodeCPU, a.cross
		for i := range a.nodeMsgs {
			pr.NodeMsgsPerCPUSec = append(pr.NodeMsgsPerCPUSec, ratio(float64(a.nodeMsgs[i]), a.nodeCPU[i]))
		}
		if a.redisOK {
			pr.RedisCPUSec = a.redisCPU
		}
	}
	return pr
}

// chat runs one slice of a chat phase and adds it to acc: closed loop when
// acc.load is 0, otherwise open loop at acc.load messages/s in total. mid, if set,
// runs halfway through.
func (r *runner) chat(senders []*client, load float64, dur time.Duration, mid func(), acc *phaseAcc) {
	name := "flat"
	if load > 0 {
		name = fmt.Sprintf("paced@%.0f", load)
	}
	r.setPhase(name)
	sent0, recv0 := r.sent.Load(), r.recv.Load()
	nodes0 := r.srv.nodeStats(false)
	st0 := sumStats(nodes0)
	nodeRecv0 := r.nodeCounts()
	cross0 := r.crossRecv.Load()
	redis0, redisOK0 := r.srv.redisCPU()
	cl0 := loadserve.ProcessCPU()
	t0 := time.Now()
	r.hist.Store(acc.h)
	if acc.hCross != nil {
		r.histSame.Store(acc.hSame)
		r.histCross.Store(acc.hCross)
	}
	stop := make(chan struct{})
	timer := time.AfterFunc(dur, func() { close(stop) })
	defer timer.Stop()
	if mid != nil {
		midTimer := time.AfterFunc(dur/2, mid)
		defer midTimer.Stop()
	}
	var finished atomic.Int64
	interval := time.Duration(0)
	if load > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(senders)) / load)
	}
	parallel(len(senders), 0, func(i int) {
		c := senders[i]
		if load == 0 {
			r.closedLoop(c, stop)
		} else {
			r.openLoop(c, interval, t0, stop)
		}
		finished.Add(1)
	})
	// Drain what is still in flight (at most 5 s).
	drain := time.Now().Add(5 * time.Second)
	for r.recv.Load()-recv0 < r.sent.Load()-sent0 && time.Now().Before(drain) {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(t0)
	nodes1 := r.srv.nodeStats(false)
	st1 := sumStats(nodes1)
	redis1, redisOK1 := r.srv.redisCPU()
	cl1 := loadserve.ProcessCPU()
	r.hist.Store(nil)
	r.histSame.Store(nil)
	r.histCross.Store(nil)
	sent, recv := r.sent.Load()-sent0, r.recv.Load()-recv0
	if sent > recv {
		acc.undelivered += sent - recv
	}
	if acc.hCross != nil {
		nodeRecv1 := r.nodeCounts()
		for i := range acc.nodeMsgs {
			acc.nodeMsgs[i] += nodeRecv1[i] - nodeRecv0[i]
			acc.nodeCPU[i] += float64(nodes1[i].CPUNanos-nodes0[i].CPUNanos) / 1e9
		}
		acc.cross += r.crossRecv.Load() - cross0
		acc.redisCPU += redis1 - redis0
		acc.redisOK = acc.redisOK && redisOK0 && redisOK1
	}
	for _, c := range senders { // empty the windows for the next slice
		for len(c.window) > 0 {
			<-c.window
		}
	}
	acc.msgs += recv
	acc.secs += elapsed.Seconds()
	acc.srvCPU += float64(st1.CPUNanos-st0.CPUNanos) / 1e9
	acc.cliCPU += float64(cl1-cl0) / 1e9
	acc.mallocs += st1.Mallocs - st0.Mallocs
	acc.alloced += st1.AllocBytes - st0.AllocBytes
	acc.writes += st1.WriteCalls - st0.WriteCalls
	acc.senders += len(senders)
	acc.finished += int(finished.Load())
}

// closedLoop sends as fast as the window allows until stop.
func (r *runner) closedLoop(c *client, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case c.window <- struct{}{}:
		}
		if c.sendMessage(now()) != nil {
			return
		}
		r.sent.Add(1)
	}
}

// openLoop sends one message every interval, each stamped with its scheduled time (so
// that a late send counts as latency), from a random offset until stop.
func (r *runner) openLoop(c *client, interval time.Duration, t0 time.Time, stop <-chan struct{}) {
	next := time.Duration(rand.Int64N(int64(interval)))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if wait := next - time.Since(t0); wait > 0 {
			timer.Reset(wait)
			select {
			case <-stop:
				return
			case <-timer.C:
			}
		} else {
			select {
			case <-stop:
				return
			default:
			}
		}
		if c.sendMessage(int64(t0.Sub(epoch)+next)) != nil {
			return
		}
		r.sent.Add(1)
		next += interval
	}
}

// rematch has a -churn fraction of pairs leave their chat and join the queue again.
func (r *runner) rematch(res *result, senders []*client) {
	r.setPhase("churn")
	pairs := len(senders) / 2
	n := int(float64(pairs)*r.cfg.churn + 0.5)
	if n == 0 {
		return
	}
	churned := senders[:2*n]
	parallel(n, 0, func(i int) {
		a, b := churned[2*i], churned[2*i+1]
		if a.send(`{"type":"leave_chat","payload":{"chat_id":"`+a.chatID+`"}}`) != nil {
			return
		}
		a.wait(time.Now().Add(5*time.Second), "chat_ended")
		b.wait(time.Now().Add(5*time.Second), "chat_ended")
	})
	h := new(hist)
	var last atomic.Int64
	var matched atomic.Int64
	t0 := time.Now()
	parallel(len(churned), 0, func(i int) {
		c := churned[i]
		start := time.Now()
		ev, first, ok := c.joinAndMatch(r.cfg.matchWait)
		if !ok {
			return
		}
		c.chatID = ev.chatID
		h.record(ev.at.Sub(start))
		r.progress.Add(1)
		if first {
			matched.Add(1)
			storeMax(&last, int64(ev.at.Sub(t0)))
		}
	})
	res.Rematches = int(matched.Load()) / 2
	res.RematchLatency = h.summary()
	if d := time.Duration(last.Load()); d > 0 {
		res.RematchPerSec = float64(matched.Load()) / 2 / d.Seconds()
	}
}

// closeAll closes every client connection and waits (at most 5 s) for their read
// loops.
func (r *runner) closeAll() {
	for _, c := range r.clients {
		_ = c.conn.CloseNow()
	}
	deadline := time.After(5 * time.Second)
	for _, c := range r.clients {
		select {
		case <-c.done:
		case <-deadline:
			return
		}
	}
}

// nodeCounts returns the messages received so far by each node's clients (the
// cluster only).
func (r *runner) nodeCounts() []uint64 {
	out := make([]uint64, len(r.nodeRecv))
	for i := range r.nodeRecv {
		out[i] = r.nodeRecv[i].Load()
	}
	return out
}
