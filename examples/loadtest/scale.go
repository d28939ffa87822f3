package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The scale run (-scale) measures the baseline and flamingo at several connection
// counts, one count after the other, each with fresh child servers and the same
// phases as the default run, and reports how the cost of a connection and of a
// message changes with the count.

// growthTarget is the bound on how much flamingo's cost per connection may
// grow from the first size to the last: 10%.
const growthTarget = 0.10

// portsPerSrcAddr is how many connections the scale run puts on one source address
// at most: an address has about 28k ephemeral ports (32768–60999), and the
// connections of the previous server still hold theirs in TIME_WAIT.
const portsPerSrcAddr = 14000

// checkScale checks the flags of a scale run.
func (cfg *config) checkScale(sweep, scale string) error {
	switch {
	case sweep != "":
		return errors.New("-scale cannot be combined with -sweep")
	case cfg.redis != "":
		return errors.New("-scale cannot be combined with -redis")
	case cfg.scaleLoad < 0:
		return errors.New("-scaleload must be ≥ 0")
	}
	if err := cfg.checkCommon(); err != nil {
		return err
	}
	cfg.scale = nil
	for _, f := range strings.Split(scale, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			return fmt.Errorf("-scale: bad connection count %q", f)
		}
		n &^= 1
		if most := cfg.socketBudget() / cfg.endsPerServer(); n > most {
			return fmt.Errorf("-scale: %d connections: at most %d with these flags (one process holds about %d sockets; raise the hard open files limit, ulimit -Hn, for more)",
				n, most, cfg.socketBudget())
		}
		if cfg.srcAddrsSet && (cfg.srcAddrs < 1 || cfg.srcAddrs > 254) {
			return errors.New("-srcaddrs must be between 1 and 254 with -scale")
		}
		if a := cfg.srcAddrsFor(n); n > a*portsPerSrcAddr {
			return fmt.Errorf("-scale: %d connections need at least %d source addresses (-srcaddrs)", n, (n+portsPerSrcAddr-1)/portsPerSrcAddr)
		}
		cfg.scale = append(cfg.scale, n)
	}
	if len(cfg.scale) == 0 || len(cfg.scale) > 10 {
		return errors.New("-scale takes 1 to 10 connection counts")
	}
	cfg.matchWait = 3 * time.Second
	return nil
}

// srcAddrsFor is how many source addresses the scale run spreads n connections over:
// -srcaddrs if given, else one per 4000 connections, as in the default run.
func (cfg *config) srcAddrsFor(n int) int {
	if cfg.srcAddrsSet {
		return cfg.srcAddrs
	}
	return min(1+n/4000, 254)
}

// sizeConfig is the configuration of the scale run's measurement at n connections:
// both servers up at once and taking turns when the tool can hold both sets of
// sockets, otherwise one after the other; the paced phase offers -scaleload msgs/s in
// total, whatever n is.
func (cfg config) sizeConfig(n int) config {
	c := cfg
	c.conns = n
	c.interleave = cfg.interleave && 2*n*cfg.endsPerServer() <= cfg.socketBudget()
	c.srcAddrs = cfg.srcAddrsFor(n)
	c.rate, c.sweep, c.svg = 0, nil, ""
	c.pacedLoad = cfg.scaleLoad
	return c
}

// runScale runs the scale run and returns the exit code.
func runScale(cfg config) int {
	start := time.Now()
	var limit time.Duration
	for range cfg.scale {
		limit += 2*cfg.duration + 3*time.Minute
	}
	time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "loadtest: scale run exceeded %v, giving up\n", limit)
		os.Exit(3)
	})
	var points []scalePoint
	for i, n := range cfg.scale {
		c := cfg.sizeConfig(n)
		how := "one server after the other"
		if c.interleave {
			how = "both servers up, interleaved"
		}
		fmt.Fprintf(os.Stderr, "loadtest: scale %d/%d: %d connections, source addresses %d, %s\n",
			i+1, len(cfg.scale), n, c.srcAddrs, how)
		t0 := time.Now()
		res, err := measure(c, []string{kindBaseline, kindFlamingo})
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadtest: scale at %d connections: %v\n", n, err)
			return 1
		}
		points = append(points, makeScalePoint(c, res[1], res[0], time.Since(t0)))
	}
	rep := makeScaleReport(cfg, points, time.Since(start))
	if cfg.svg != "" {
		if err := writeScaleSVG(cfg.svg, rep); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest: svg:", err)
			return 1
		}
	}
	if cfg.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printScaleTable(cfg, rep)
	}
	return 0
}

// scaleReport is the summary of a scale run: one point per connection count, and
// the growth of the costs from the first count to the last.
type scaleReport struct {
	ServerMode string  `json:"server_mode"`
	Duration   float64 `json:"duration_sec"` // chat time per server and size
	// PacedLoad is the total load of each size's paced phase (0: none ran).
	PacedLoad float64      `json:"paced_offered_msgs_per_sec"`
	Sizes     []scalePoint `json:"sizes"`
	Growth    *scaleGrowth `json:"growth,omitempty"` // with two sizes or more
	Seconds   float64      `json:"run_sec"`          // wall time of the whole run
}

// scalePoint is what the scale run measured at one connection count. The keys of
// the figures are those of the default run's report.
type scalePoint struct {
	Conns       int     `json:"conns"` // flamingo's connections that opened
	Pairs       int     `json:"pairs"`
	Interleaved bool    `json:"interleaved"`
	SrcAddrs    int     `json:"source_addrs"`
	Seconds     float64 `json:"run_sec"` // wall time of this size, both servers

	// Idle: every connection open and quiet, after a GC; busy: mid flat phase.
	KiBPerConn                 float64 `json:"kib_per_conn"` // idle RSS
	BaselineKiBPerConn         float64 `json:"baseline_kib_per_conn"`
	HeapKiBPerConn             float64 `json:"heap_kib_per_conn"` // idle heap + stacks
	BaselineHeapKiBPerConn     float64 `json:"baseline_heap_kib_per_conn"`
	BusyKiBPerConn             float64 `json:"busy_kib_per_conn"`
	BaselineBusyKiBPerConn     float64 `json:"baseline_busy_kib_per_conn"`
	BusyHeapKiBPerConn         float64 `json:"busy_heap_kib_per_conn"`
	BaselineBusyHeapKiBPerConn float64 `json:"baseline_busy_heap_kib_per_conn"`

	// The flat phase (closed loop).
	MsgsPerSec         float64 `json:"msgs_per_sec"`
	BaselineMsgsPerSec float64 `json:"baseline_msgs_per_sec"`
	MsgsPerCPU         float64 `json:"msgs_per_server_cpu_sec"`
	BaselineMsgsPerCPU float64 `json:"baseline_msgs_per_server_cpu_sec"`
	// RelayRatio compares relayed messages per server CPU-second.
	RelayRatio           float64 `json:"relay_ratio"`
	CPUPerMsg            float64 `json:"server_cpu_us_per_msg"`
	BaselineCPUPerMsg    float64 `json:"baseline_server_cpu_us_per_msg"`
	AllocsPerMsg         float64 `json:"allocs_per_msg"`
	BaselineAllocsPerMsg float64 `json:"baseline_allocs_per_msg"`
	// Write system calls per message, flat phase: how many frames one write carries.
	WritesPerMsg         float64 `json:"writes_per_msg,omitempty"`
	BaselineWritesPerMsg float64 `json:"baseline_writes_per_msg,omitempty"`

	// The paced phase, when one ran. Its relay ratio (messages per server CPU-second
	// against the baseline's) tells apart what the flat phase's ratio mixes in: how
	// well a server batches when every sender keeps a window full.
	PacedOffered            float64 `json:"paced_offered_msgs_per_sec,omitempty"`
	PacedMsgsPerSec         float64 `json:"paced_msgs_per_sec,omitempty"` // delivered
	BaselinePacedMsgsPerSec float64 `json:"baseline_paced_msgs_per_sec,omitempty"`
	PacedMsgsPerCPU         float64 `json:"paced_msgs_per_server_cpu_sec,omitempty"`
	BaselinePacedMsgsPerCPU float64 `json:"baseline_paced_msgs_per_server_cpu_sec,omitempty"`
	PacedRelayRatio         float64 `json:"paced_relay_ratio,omitempty"`
	P50                     float64 `json:"p50_ms,omitempty"`
	P99                     float64 `json:"p99_ms,omitempty"`
	Max                     float64 `json:"max_ms,omitempty"`
	BaselineP50             float64 `json:"baseline_p50_ms,omitempty"`
	BaselineP99             float64 `json:"baseline_p99_ms,omitempty"`
	BaselineMax             float64 `json:"baseline_max_ms,omitempty"`

	Flamingo *result `json:"flamingo"`
	Baseline *result `json:"baseline"`
}

// growthFigures is how much each cost grew from the first size to the last, as
// last/first − 1 (0.10: 10% more; 0 when the first figure is not positive).
type growthFigures struct {
	IdleRSS   float64 `json:"idle_rss_per_conn"`
	IdleHeap  float64 `json:"idle_heap_per_conn"`
	BusyRSS   float64 `json:"busy_rss_per_conn"`
	BusyHeap  float64 `json:"busy_heap_per_conn"`
	CPUPerMsg float64 `json:"cpu_per_msg"`
}

// scaleGrowth compares the last size with the first.
type scaleGrowth struct {
	From     int           `json:"from_conns"`
	To       int           `json:"to_conns"`
	Flamingo growthFigures `json:"flamingo"`
	Baseline growthFigures `json:"baseline"`
	// ToBaseline is the growth of flamingo's figures divided by the baseline's:
	// what flamingo adds to what the machine and the kernel do at more connections.
	ToBaseline growthFigures `json:"flamingo_to_baseline"`
	// RelayRatioChange is the relay ratio at the last size over the first, less 1.
	RelayRatioChange float64 `json:"relay_ratio_change"`

	Target float64 `json:"target"` // growthTarget
	// MaxMemory is the largest of flamingo's four memory growths; MemoryFlat says it
	// is within the target, CPUFlat that the CPU per message is.
	MaxMemory  float64 `json:"flamingo_max_memory_growth"`
	MemoryFlat bool    `json:"memory_flat"`
	CPUFlat    bool    `json:"cpu_flat"`
}

// makeScalePoint summarises the measurement at one size: f is flamingo's result, b
// the baseline's.
func makeScalePoint(c config, f, b *result, took time.Duration) scalePoint {
	p := scalePoint{
		Conns: f.Conns, Pairs: f.Pairs, Interleaved: c.interleave, SrcAddrs: c.srcAddrs, Seconds: took.Seconds(),

		KiBPerConn: f.Idle.RSSKiB, BaselineKiBPerConn: b.Idle.RSSKiB,
		HeapKiBPerConn: f.Idle.HeapKiB, BaselineHeapKiBPerConn: b.Idle.HeapKiB,
		BusyKiBPerConn: f.Busy.RSSKiB, BaselineBusyKiBPerConn: b.Busy.RSSKiB,
		BusyHeapKiBPerConn: f.Busy.HeapKiB, BaselineBusyHeapKiBPerConn: b.Busy.HeapKiB,

		MsgsPerSec: f.Flat.MsgsPerSec, BaselineMsgsPerSec: b.Flat.MsgsPerSec,
		MsgsPerCPU: f.Flat.MsgsPerCPUSec, BaselineMsgsPerCPU: b.Flat.MsgsPerCPUSec,
		RelayRatio:   ratio(f.Flat.MsgsPerCPUSec, b.Flat.MsgsPerCPUSec),
		CPUPerMsg:    1e6 * ratio(1, f.Flat.MsgsPerCPUSec),
		AllocsPerMsg: f.Flat.AllocsPerMsg, BaselineAllocsPerMsg: b.Flat.AllocsPerMsg,
		WritesPerMsg: f.Flat.WritesPerMsg, BaselineWritesPerMsg: b.Flat.WritesPerMsg,
		BaselineCPUPerMsg: 1e6 * ratio(1, b.Flat.MsgsPerCPUSec),

		Flamingo: f, Baseline: b,
	}
	if len(f.Paced) > 0 && len(b.Paced) > 0 {
		fl, bl := f.Paced[0].Latency, b.Paced[0].Latency
		p.PacedOffered = f.Paced[0].Offered
		p.PacedMsgsPerSec, p.BaselinePacedMsgsPerSec = f.Paced[0].MsgsPerSec, b.Paced[0].MsgsPerSec
		p.PacedMsgsPerCPU, p.BaselinePacedMsgsPerCPU = f.Paced[0].MsgsPerCPUSec, b.Paced[0].MsgsPerCPUSec
		p.PacedRelayRatio = ratio(p.PacedMsgsPerCPU, p.BaselinePacedMsgsPerCPU)
		p.P50, p.P99, p.Max = fl.P50, fl.P99, fl.Max
		p.BaselineP50, p.BaselineP99, p.BaselineMax = bl.P50, bl.P99, bl.Max
	}
	return p
}

// growth is last/first − 1, or 0 when first is not positive.
func growth(first, last float64) float64 {
	if first <= 0 {
		return 0
	}
	return last/first - 1
}

// makeScaleReport summarises a scale run; the growth compares the last point with
// the first.
func makeScaleReport(cfg config, points []scalePoint, took time.Duration) scaleReport {
	mode := "child process (server CPU and memory measured in the server process alone)"
	if cfg.inProcess {
		mode = "in process (server CPU and memory include the load clients)"
	}
	rep := scaleReport{ServerMode: mode, Duration: cfg.duration.Seconds(), PacedLoad: cfg.scaleLoad, Sizes: points, Seconds: took.Seconds()}
	if len(points) < 2 {
		return rep
	}
	a, z := points[0], points[len(points)-1]
	g := &scaleGrowth{From: a.Conns, To: z.Conns, Target: growthTarget}
	g.Flamingo = growthFigures{
		IdleRSS:   growth(a.KiBPerConn, z.KiBPerConn),
		IdleHeap:  growth(a.HeapKiBPerConn, z.HeapKiBPerConn),
		BusyRSS:   growth(a.BusyKiBPerConn, z.BusyKiBPerConn),
		BusyHeap:  growth(a.BusyHeapKiBPerConn, z.BusyHeapKiBPerConn),
		CPUPerMsg: growth(a.CPUPerMsg, z.CPUPerMsg),
	}
	g.Baseline = growthFigures{
		IdleRSS:   growth(a.BaselineKiBPerConn, z.BaselineKiBPerConn),
		IdleHeap:  growth(a.BaselineHeapKiBPerConn, z.BaselineHeapKiBPerConn),
		BusyRSS:   growth(a.BaselineBusyKiBPerConn, z.BaselineBusyKiBPerConn),
		BusyHeap:  growth(a.BaselineBusyHeapKiBPerConn, z.BaselineBusyHeapKiBPerConn),
		CPUPerMsg: growth(a.BaselineCPUPerMsg, z.BaselineCPUPerMsg),
	}
	rel := func(f, b float64) float64 { return growth(1+b, 1+f) }
	g.ToBaseline = growthFigures{
		IdleRSS:   rel(g.Flamingo.IdleRSS, g.Baseline.IdleRSS),
		IdleHeap:  rel(g.Flamingo.IdleHeap, g.Baseline.IdleHeap),
		BusyRSS:   rel(g.Flamingo.BusyRSS, g.Baseline.BusyRSS),
		BusyHeap:  rel(g.Flamingo.BusyHeap, g.Baseline.BusyHeap),
		CPUPerMsg: rel(g.Flamingo.CPUPerMsg, g.Baseline.CPUPerMsg),
	}
	g.RelayRatioChange = growth(a.RelayRatio, z.RelayRatio)
	g.MaxMemory = max(g.Flamingo.IdleRSS, g.Flamingo.IdleHeap, g.Flamingo.BusyRSS, g.Flamingo.BusyHeap)
	g.MemoryFlat = g.MaxMemory <= growthTarget
	g.CPUFlat = g.Flamingo.CPUPerMsg <= growthTarget
	rep.Growth = g
	return rep
}

// printScaleTable prints the scale run: one column per size, each cell flamingo's
// figure, the baseline's and their ratio.
func printScaleTable(cfg config, rep scaleReport) {
	fmt.Printf("flamingo scale run: %d sizes, %v chat per server and size, servers in %s\n",
		len(rep.Sizes), cfg.duration, rep.ServerMode)
	if rep.PacedLoad > 0 {
		fmt.Printf("flat phase: closed loop, %d messages in flight per sender; paced phase: %.0f msgs/s in total at every size\n", cfg.window, rep.PacedLoad)
	} else {
		fmt.Printf("flat phase only: closed loop, %d messages in flight per sender\n", cfg.window)
	}
	fmt.Println("each cell: flamingo / baseline (ratio)")
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "metric\t"
	for _, p := range rep.Sizes {
		head += fmt.Sprintf("%d conns\t", p.Conns)
	}
	if rep.Growth != nil {
		head += "growth\t"
	}
	fmt.Fprintln(w, head)
	row := func(name, format string, get func(scalePoint) (float64, float64), grow *float64) {
		line := name + "\t"
		for _, p := range rep.Sizes {
			f, b := get(p)
			line += fmt.Sprintf(format+" / "+format+" (%.2f×)\t", f, b, ratio(f, b))
		}
		if rep.Growth != nil {
			if grow != nil {
				line += fmt.Sprintf("%+.1f%%\t", 100**grow)
			} else {
				line += "\t"
			}
		}
		fmt.Fprintln(w, line)
	}
	var g growthFigures
	if rep.Growth != nil {
		g = rep.Growth.Flamingo
	}
	row("idle RSS KiB/conn", "%.1f", func(p scalePoint) (float64, float64) { return p.KiBPerConn, p.BaselineKiBPerConn }, &g.IdleRSS)
	row("idle heap+stack KiB/conn", "%.1f", func(p scalePoint) (float64, float64) { return p.HeapKiBPerConn, p.BaselineHeapKiBPerConn }, &g.IdleHeap)
	row("busy RSS KiB/conn", "%.1f", func(p scalePoint) (float64, float64) { return p.BusyKiBPerConn, p.BaselineBusyKiBPerConn }, &g.BusyRSS)
	row("busy heap+stack KiB/conn", "%.1f", func(p scalePoint) (float64, float64) { return p.BusyHeapKiBPerConn, p.BaselineBusyHeapKiBPerConn }, &g.BusyHeap)
	row("flat msgs/s", "%.0f", func(p scalePoint) (float64, float64) { return p.MsgsPerSec, p.BaselineMsgsPerSec }, nil)
	row("flat msgs per server CPU-s", "%.0f", func(p scalePoint) (float64, float64) { return p.MsgsPerCPU, p.BaselineMsgsPerCPU }, nil)
	row("server CPU µs per msg", "%.1f", func(p scalePoint) (float64, float64) { return p.CPUPerMsg, p.BaselineCPUPerMsg }, &g.CPUPerMsg)
	row("server allocs per msg", "%.2f", func(p scalePoint) (float64, float64) { return p.AllocsPerMsg, p.BaselineAllocsPerMsg }, nil)
	row("server write calls per msg", "%.2f", func(p scalePoint) (float64, float64) { return p.WritesPerMsg, p.BaselineWritesPerMsg }, nil)
	if rep.PacedLoad > 0 {
		row("paced delivered msgs/s", "%.0f", func(p scalePoint) (float64, float64) { return p.PacedMsgsPerSec, p.BaselinePacedMsgsPerSec }, nil)
		row("paced msgs per server CPU-s", "%.0f", func(p scalePoint) (float64, float64) { return p.PacedMsgsPerCPU, p.BaselinePacedMsgsPerCPU }, nil)
		row("paced p50 latency ms", "%.3f", func(p scalePoint) (float64, float64) { return p.P50, p.BaselineP50 }, nil)
		row("paced p99 latency ms", "%.3f", func(p scalePoint) (float64, float64) { return p.P99, p.BaselineP99 }, nil)
		row("paced max latency ms", "%.3f", func(p scalePoint) (float64, float64) { return p.Max, p.BaselineMax }, nil)
	}
	_ = w.Flush()
	fmt.Println()
	for _, p := range rep.Sizes {
		how := "one server after the other"
		if p.Interleaved {
			how = "interleaved"
		}
		fmt.Printf("%d conns: relay ratio %.2f×, %d pairs, source addresses %d, %s, %.0f s; error events %d, dropped %d\n",
			p.Conns, p.RelayRatio, p.Pairs, p.SrcAddrs, how, p.Seconds, p.Flamingo.Errors, p.Flamingo.Dropped)
	}
	if gr := rep.Growth; gr != nil {
		verdict := func(ok bool) string {
			if ok {
				return "flat"
			}
			return "NOT flat"
		}
		fmt.Printf("from %d to %d conns: flamingo's memory per connection grew at most %+.1f%% (%s, target ≤ %+.0f%%), CPU per message %+.1f%% (%s); the baseline's %+.1f%% idle RSS, %+.1f%% CPU per message; relay ratio %+.1f%%\n",
			gr.From, gr.To, 100*gr.MaxMemory, verdict(gr.MemoryFlat), 100*gr.Target, 100*gr.Flamingo.CPUPerMsg, verdict(gr.CPUFlat),
			100*gr.Baseline.IdleRSS, 100*gr.Baseline.CPUPerMsg, 100*gr.RelayRatioChange)
	}
	fmt.Printf("whole run: %.0f s\n", rep.Seconds)
}

// writeScaleSVG plots the scale run: memory per connection of both servers, idle and
// busy, against connections in the upper panel, and the relay ratio in the lower.
func writeScaleSVG(path string, rep scaleReport) error {
	b, err := scaleSVG(rep)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// niceTicks returns the ticks of an axis from 0 that covers hi: 0, step, 2·step...
// up to the first at or above hi, with step 1, 2 or 5 times a power of ten and at
// most about 6 ticks.
func niceTicks(hi float64) []float64 {
	if hi <= 0 || math.IsInf(hi, 0) || math.IsNaN(hi) {
		return []float64{0, 1}
	}
	raw := hi / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	ticks := []float64{0}
	for i := 1; ; i++ {
		v := float64(i) * step
		ticks = append(ticks, v)
		if v >= hi*(1-1e-9) {
			return ticks
		}
	}
}

// tickLabel prints tick v of an axis whose ticks are step apart, with as many
// decimals as step needs.
func tickLabel(v, step float64) string {
	decimals := 0
	if step > 0 && step < 1 {
		decimals = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// scaleSVG draws the scale run's plot.
func scaleSVG(rep scaleReport) ([]byte, error) {
	if len(rep.Sizes) == 0 {
		return nil, errors.New("no sizes")
	}
	const (
		width             = 700.0
		left, right, top  = 80.0, 190.0, 40.0
		panelH, gap, bott = 240.0, 60.0, 50.0
		height            = top + 2*panelH + gap + bott
	)
	pw := width - left - right
	maxX, maxKiB, maxRatio := 0.0, 0.0, 1.0
	for _, p := range rep.Sizes {
		maxX = math.Max(maxX, float64(p.Conns))
		maxKiB = math.Max(maxKiB, math.Max(math.Max(p.KiBPerConn, p.BusyKiBPerConn), math.Max(p.BaselineKiBPerConn, p.BaselineBusyKiBPerConn)))
		maxRatio = math.Max(maxRatio, p.RelayRatio)
	}
	xt := niceTicks(maxX)
	x := func(v float64) float64 { return left + pw*v/xt[len(xt)-1] }
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&s, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&s, `<text x="%.0f" y="20" font-size="14">Cost per connection and relay ratio against connections</text>`+"\n", left)

	// panel draws the axes of a panel whose top is at py and returns its y mapping.
	panel := func(py float64, yt []float64, unit, label string) func(float64) float64 {
		hi := yt[len(yt)-1]
		y := func(v float64) float64 { return py + panelH*(1-math.Max(v, 0)/hi) }
		for _, v := range yt {
			fmt.Fprintf(&s, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), left+pw, y(v))
			fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" text-anchor="end">%s%s</text>`+"\n", left-6, y(v)+4, tickLabel(v, yt[1]), unit)
		}
		for _, v := range xt {
			fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(v), py+panelH+16, tickLabel(v, xt[1]))
		}
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, py+panelH, left+pw, py+panelH)
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, py, left, py+panelH)
		fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
			16.0, py+panelH/2, 16.0, py+panelH/2, label)
		return y
	}
	type series struct {
		name, color, dash string
		get               func(scalePoint) float64
	}
	legendY := top + 10
	plot := func(y func(float64) float64, ss []series) {
		for _, se := range ss {
			var pts []string
			for _, p := range rep.Sizes {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(p.Conns)), y(se.get(p))))
			}
			fmt.Fprintf(&s, `<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="%s"/>`+"\n", se.color, se.dash, strings.Join(pts, " "))
			for _, pt := range pts {
				xy := strings.Split(pt, ",")
				fmt.Fprintf(&s, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], se.color)
			}
			fmt.Fprintf(&s, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", left+pw+15, legendY, left+pw+45, legendY, se.color, se.dash)
			fmt.Fprintf(&s, `<text x="%.1f" y="%.1f">%s</text>`+"\n", left+pw+52, legendY+4, se.name)
			legendY += 20
		}
	}

	yMem := panel(top, niceTicks(maxKiB), "", "RSS KiB per connection")
	plot(yMem, []series{
		{"flamingo busy", "#d6336c", "6,4", func(p scalePoint) float64 { return p.BusyKiBPerConn }},
		{"flamingo idle", "#d6336c", "", func(p scalePoint) float64 { return p.KiBPerConn }},
		{"baseline busy", "#1c7ed6", "6,4", func(p scalePoint) float64 { return p.BaselineBusyKiBPerConn }},
		{"baseline idle", "#1c7ed6", "", func(p scalePoint) float64 { return p.BaselineKiBPerConn }},
	})

	ry := top + panelH + gap
	yRatio := panel(ry, niceTicks(maxRatio), "×", "relay ratio (msgs per CPU-s)")
	fmt.Fprintf(&s, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#2b8a3e" stroke-dasharray="2,3"/>`+"\n", left, yRatio(0.85), left+pw, yRatio(0.85))
	fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" fill="#2b8a3e">target 0.85×</text>`+"\n", left+pw+15, yRatio(0.85)+4)
	legendY = ry + 10
	plot(yRatio, []series{
		{"flamingo / baseline", "#d6336c", "", func(p scalePoint) float64 { return p.RelayRatio }},
	})
	fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" text-anchor="middle">connections</text>`+"\n", left+pw/2, height-10)
	s.WriteString("</svg>\n")
	return []byte(s.String()), nil
}
