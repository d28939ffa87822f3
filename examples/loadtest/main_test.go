package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// parse parses a command line as the tool does and checks it, on a machine whose
// processes hold 19000 sockets.
func parse(t *testing.T, argv ...string) (config, error) {
	t.Helper()
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a, err := parseArgs(fs, argv)
	if err != nil {
		t.Fatalf("parsing %q: %v", argv, err)
	}
	a.cfg.sockets = 19000
	err = a.cfg.check(a.sweep, a.scale)
	return a.cfg, err
}

func TestCheckDefaultRun(t *testing.T) {
	cfg, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.conns != 200 || cfg.rate != 100 || !cfg.interleave || cfg.srcAddrs != 1 || len(cfg.scale) != 0 || cfg.pacedLoad != 0 {
		t.Fatalf("defaults: %+v", cfg)
	}
	// The hidden check's command line.
	cfg, err = parse(t, "-conns", "2000", "-duration", "20s", "-rate", "10", "-json")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.conns != 2000 || cfg.duration != 20*time.Second || cfg.rate != 10 || !cfg.json {
		t.Fatalf("-conns 2000 -duration 20s -rate 10 -json: %+v", cfg)
	}
}

func TestCheckSocketBudget(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		ok   bool
	}{
		{[]string{"-conns", "9500"}, true},                                    // both servers: 19000 sockets
		{[]string{"-conns", "9502"}, false},                                   // one pair too many
		{[]string{"-conns", "19000", "-interleave=false"}, true},              // one server at a time
		{[]string{"-conns", "9500", "-interleave=false", "-inprocess"}, true}, // both ends
		{[]string{"-conns", "9502", "-interleave=false", "-inprocess"}, false},
		{[]string{"-conns", "6332", "-redis", "auto"}, true}, // three servers
		{[]string{"-conns", "6400", "-redis", "auto"}, false},
		{[]string{"-conns", "1"}, false},
	} {
		if _, err := parse(t, tc.argv...); (err == nil) != tc.ok {
			t.Errorf("%q: error %v, want ok=%v", tc.argv, err, tc.ok)
		}
	}
}

func TestCheckSVG(t *testing.T) {
	if _, err := parse(t, "-svg", "x.svg"); err == nil {
		t.Error("-svg without -sweep or -scale accepted")
	}
	for _, argv := range [][]string{
		{"-svg", "x.svg", "-sweep", "1000,2000"},
		{"-svg", "x.svg", "-scale", "2000,8000"},
	} {
		if _, err := parse(t, argv...); err != nil {
			t.Errorf("%q: %v", argv, err)
		}
	}
}

func TestCheckScale(t *testing.T) {
	cfg, err := parse(t, "-scale", "2000, 8000,18001", "-duration", "20s")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{2000, 8000, 18000}; !slices.Equal(cfg.scale, want) {
		t.Fatalf("sizes %v, want %v (rounded down to even)", cfg.scale, want)
	}
	if cfg.scaleLoad != 10000 {
		t.Fatalf("-scaleload defaults to %v, want 10000", cfg.scaleLoad)
	}
	for _, tc := range []struct {
		argv []string
		want string // in the error
	}{
		{[]string{"-scale", "2000,19002"}, "at most 19000"},
		{[]string{"-scale", "2000,18000", "-inprocess"}, "at most 9500"},
		{[]string{"-scale", "2000", "-redis", "auto"}, "-redis"},
		{[]string{"-scale", "2000", "-sweep", "1000"}, "-sweep"},
		{[]string{"-scale", "1"}, "bad connection count"},
		{[]string{"-scale", "2k"}, "bad connection count"},
		{[]string{"-scale", ","}, "1 to 10"},
		{[]string{"-scale", "2,4,6,8,10,12,14,16,18,20,22"}, "1 to 10"},
		{[]string{"-scale", "18000", "-srcaddrs", "1"}, "at least 2 source addresses"},
		{[]string{"-scale", "2000", "-scaleload", "-1"}, "-scaleload"},
		{[]string{"-scale", "2000", "-duration", "0s"}, "-duration"},
		{[]string{"-scale", "2000", "-pprof", "0.0.0.0:6060"}, "loopback"},
	} {
		_, err := parse(t, tc.argv...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one that says %q", tc.argv, err, tc.want)
		}
	}
}

func TestSizeConfig(t *testing.T) {
	cfg, err := parse(t, "-scale", "2000,8000,18000", "-scaleload", "5000")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n, srcAddrs int
		interleave  bool
	}{
		{2000, 1, true},
		{8000, 3, true},   // 16000 sockets for both servers
		{9500, 3, true},   // 19000
		{18000, 5, false}, // 36000: one server at a time
	} {
		c := cfg.sizeConfig(tc.n)
		if c.conns != tc.n || c.srcAddrs != tc.srcAddrs || c.interleave != tc.interleave {
			t.Errorf("size %d: conns %d, source addresses %d, interleave %v; want %d, %d, %v",
				tc.n, c.conns, c.srcAddrs, c.interleave, tc.n, tc.srcAddrs, tc.interleave)
		}
		if c.pacedLoad != 5000 || c.rate != 0 || c.sweep != nil || c.svg != "" {
			t.Errorf("size %d: paced load %v, rate %v, sweep %v, svg %q; want the -scaleload alone", tc.n, c.pacedLoad, c.rate, c.sweep, c.svg)
		}
	}
	cfg, err = parse(t, "-scale", "2000", "-interleave=false", "-srcaddrs", "7")
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.sizeConfig(2000); c.interleave || c.srcAddrs != 7 {
		t.Errorf("-interleave=false -srcaddrs 7: interleave %v, source addresses %d", c.interleave, c.srcAddrs)
	}
}

func TestPprofAddrFor(t *testing.T) {
	for _, tc := range []struct {
		base, kind string
		node       int
		want       string
	}{
		{"127.0.0.1:6060", kindFlamingo, 0, "127.0.0.1:6060"},
		{"127.0.0.1:6060", kindBaseline, 0, "127.0.0.1:6061"},
		{"127.0.0.1:6060", kindCluster, 0, "127.0.0.1:6062"},
		{"127.0.0.1:6060", kindCluster, 3, "127.0.0.1:6065"},
		{"localhost:7000", kindBaseline, 0, "localhost:7001"},
		{"[::1]:7000", kindBaseline, 0, "[::1]:7001"},
		{"127.0.0.1:0", kindCluster, 1, "127.0.0.1:0"}, // every child picks a port
	} {
		got, err := pprofAddrFor(tc.base, tc.kind, tc.node)
		if err != nil || got != tc.want {
			t.Errorf("pprofAddrFor(%q, %s, %d) = %q, %v; want %q", tc.base, tc.kind, tc.node, got, err, tc.want)
		}
	}
	for _, base := range []string{"10.0.0.1:6060", ":6060", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:65535"} {
		if got, err := pprofAddrFor(base, kindBaseline, 0); err == nil {
			t.Errorf("pprofAddrFor(%q, baseline) = %q, want an error", base, got)
		}
	}
	if _, err := parse(t, "-pprof", "127.0.0.1:65533", "-redis", "auto", "-nodes", "2"); err == nil {
		t.Error("-pprof accepted a port whose cluster nodes would pass 65535")
	}
	if _, err := parse(t, "-pprof", "127.0.0.1:65532", "-redis", "auto", "-nodes", "2"); err != nil {
		t.Errorf("-pprof with room for two nodes: %v", err)
	}
}

// sized returns the results of one size of a scale run: flamingo's and the
// baseline's, with the figures the report reads.
func sized(conns int, fIdle, fBusy, bIdle, bBusy, fPerCPU, bPerCPU float64) (f, b *result) {
	f = &result{Kind: kindFlamingo, Conns: conns, Pairs: conns / 2,
		Idle: memFigures{RSSKiB: fIdle, HeapKiB: fIdle - 4}, Busy: memFigures{RSSKiB: fBusy, HeapKiB: fBusy - 4},
		Flat:  phaseResult{MsgsPerSec: 30000, MsgsPerCPUSec: fPerCPU, AllocsPerMsg: 2.2, WritesPerMsg: 0.25},
		Paced: []phaseResult{{Offered: 10000, MsgsPerSec: 9000, MsgsPerCPUSec: 15000, Latency: latency{P50: 0.5, P99: 4, Max: 9}}}}
	b = &result{Kind: kindBaseline, Conns: conns, Pairs: conns / 2,
		Idle: memFigures{RSSKiB: bIdle, HeapKiB: bIdle - 4}, Busy: memFigures{RSSKiB: bBusy, HeapKiB: bBusy - 4},
		Flat:  phaseResult{MsgsPerSec: 32000, MsgsPerCPUSec: bPerCPU, AllocsPerMsg: 0.01, WritesPerMsg: 1},
		Paced: []phaseResult{{Offered: 10000, MsgsPerSec: 9900, MsgsPerCPUSec: 20000, Latency: latency{P50: 0.4, P99: 2, Max: 5}}}}
	return f, b
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestScaleReport(t *testing.T) {
	cfg, err := parse(t, "-scale", "2000,8000,18000", "-duration", "20s")
	if err != nil {
		t.Fatal(err)
	}
	var points []scalePoint
	for _, s := range []struct {
		n                    int
		fI, fB, bI, bB, f, b float64
	}{
		{2000, 28, 48, 24, 24, 20000, 25000},
		{8000, 29, 50, 24, 25, 18000, 25000},
		{18000, 30.8, 50.4, 24, 26.4, 16000, 25000},
	} {
		f, b := sized(s.n, s.fI, s.fB, s.bI, s.bB, s.f, s.b)
		points = append(points, makeScalePoint(cfg.sizeConfig(s.n), f, b, 10*time.Second))
	}
	p := points[0]
	if !near(p.RelayRatio, 0.8) || !near(p.CPUPerMsg, 50) || !near(p.BaselineCPUPerMsg, 40) || !p.Interleaved ||
		p.P99 != 4 || p.BaselineP99 != 2 || p.PacedOffered != 10000 || p.KiBPerConn != 28 || p.BaselineBusyHeapKiBPerConn != 20 ||
		p.PacedMsgsPerSec != 9000 || p.BaselinePacedMsgsPerSec != 9900 || !near(p.PacedRelayRatio, 0.75) ||
		p.WritesPerMsg != 0.25 || p.BaselineWritesPerMsg != 1 {
		t.Fatalf("first point: %+v", p)
	}
	if points[2].Interleaved {
		t.Fatal("18000 connections reported interleaved")
	}

	rep := makeScaleReport(cfg, points, time.Minute)
	g := rep.Growth
	if g == nil || g.From != 2000 || g.To != 18000 || g.Target != 0.10 {
		t.Fatalf("growth %+v", g)
	}
	// Idle RSS 28 → 30.8 (+10%), busy 48 → 50.4 (+5%), heap (4 KiB less) 24 → 26.8
	// (+11.67%) and 44 → 46.4; CPU per message 50 → 62.5 µs (+25%).
	if !near(g.Flamingo.IdleRSS, 0.10) || !near(g.Flamingo.BusyRSS, 0.05) || !near(g.Flamingo.IdleHeap, 2.8/24) ||
		!near(g.Flamingo.BusyHeap, 2.4/44) || !near(g.Flamingo.CPUPerMsg, 0.25) {
		t.Fatalf("flamingo growth %+v", g.Flamingo)
	}
	if !near(g.Baseline.IdleRSS, 0) || !near(g.Baseline.BusyRSS, 0.10) || !near(g.Baseline.CPUPerMsg, 0) {
		t.Fatalf("baseline growth %+v", g.Baseline)
	}
	if !near(g.ToBaseline.BusyRSS, 1.05/1.10-1) || !near(g.ToBaseline.CPUPerMsg, 0.25) {
		t.Fatalf("growth against the baseline %+v", g.ToBaseline)
	}
	if !near(g.RelayRatioChange, -0.2) || !near(g.MaxMemory, 2.8/24) || g.MemoryFlat || g.CPUFlat {
		t.Fatalf("relay ratio change %v, max memory growth %v, flat %v/%v", g.RelayRatioChange, g.MaxMemory, g.MemoryFlat, g.CPUFlat)
	}

	if one := makeScaleReport(cfg, points[:1], time.Minute); one.Growth != nil {
		t.Fatal("growth reported for a single size")
	}
	if growth(0, 5) != 0 {
		t.Fatal("growth from 0 is not 0")
	}
}

func TestCrossAllocs(t *testing.T) {
	extra, total := crossAllocs(12.2, 2.2, 0.25)
	if !near(extra, 40) || !near(total, 42.2) {
		t.Fatalf("crossAllocs(12.2, 2.2, 0.25) = %v, %v; want 40, 42.2", extra, total)
	}
	if extra, total := crossAllocs(3, 2.2, 0); extra != 0 || total != 0 {
		t.Fatalf("no crossing messages: %v, %v", extra, total)
	}
	c := phaseResult{Msgs: 20000, CrossMsgs: 5000, AllocsPerMsg: 12.2, RedisCPUSec: 0.1, Seconds: 1, MsgsPerCPUSec: 1}
	f := phaseResult{AllocsPerMsg: 2.2, MsgsPerCPUSec: 1}
	cp := makeClusterPhase(2, c, f, phaseResult{MsgsPerCPUSec: 1})
	if !near(cp.RedisCPUPerCrossMsg, 20) || !near(cp.AllocsPerCrossMsg, 42.2) || !near(cp.ExtraAllocsPerCrossMsg, 40) {
		t.Fatalf("Redis µs per crossing msg %v, allocs %v (extra %v); want 20, 42.2, 40", cp.RedisCPUPerCrossMsg, cp.AllocsPerCrossMsg, cp.ExtraAllocsPerCrossMsg)
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		hi   float64
		want []float64
	}{
		{18000, []float64{0, 5000, 10000, 15000, 20000}},
		{52, []float64{0, 20, 40, 60}},
		{1, []float64{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}},
		{0, []float64{0, 1}},
	} {
		if got := niceTicks(tc.hi); !slices.Equal(got, tc.want) {
			t.Errorf("niceTicks(%v) = %v, want %v", tc.hi, got, tc.want)
		}
	}
	for _, tc := range []struct {
		v, step float64
		want    string
	}{
		{0.6000000000000001, 0.2, "0.6"}, {15000, 5000, "15000"}, {0.05, 0.05, "0.05"}, {40, 20, "40"},
	} {
		if got := tickLabel(tc.v, tc.step); got != tc.want {
			t.Errorf("tickLabel(%v, %v) = %q, want %q", tc.v, tc.step, got, tc.want)
		}
	}
}

func TestScaleSVG(t *testing.T) {
	cfg, err := parse(t, "-scale", "2000,8000,18000")
	if err != nil {
		t.Fatal(err)
	}
	var points []scalePoint
	for _, n := range cfg.scale {
		f, b := sized(n, 28, 48, 24, 24, 20000, 25000)
		points = append(points, makeScalePoint(cfg.sizeConfig(n), f, b, time.Second))
	}
	svg, err := scaleSVG(makeScaleReport(cfg, points, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(svg, []byte("NaN")) || bytes.Contains(svg, []byte("Inf")) {
		t.Fatalf("SVG holds a NaN or Inf:\n%s", svg)
	}
	// Well formed: every element closes, and the root is an svg element.
	d := xml.NewDecoder(bytes.NewReader(svg))
	counts := map[string]int{}
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if depth == 0 && el.Name.Local != "svg" {
				t.Fatalf("root element %q", el.Name.Local)
			}
			depth++
			counts[el.Name.Local]++
		case xml.EndElement:
			depth--
		}
	}
	// Four memory series and the ratio, each a polyline with a dot per size.
	if counts["svg"] != 1 || counts["polyline"] != 5 || counts["circle"] != 5*3 {
		t.Fatalf("elements %v, want 1 svg, 5 polylines and 15 circles", counts)
	}
	for _, label := range []string{"flamingo idle", "flamingo busy", "baseline idle", "baseline busy", "target 0.85×", "connections"} {
		if !bytes.Contains(svg, []byte(label)) {
			t.Errorf("SVG lacks %q", label)
		}
	}
	if _, err := scaleSVG(scaleReport{}); err == nil {
		t.Error("scaleSVG drew a run without sizes")
	}
}

func TestReportConnectInit(t *testing.T) {
	cfg, err := parse(t, "-conns", "2000")
	if err != nil {
		t.Fatal(err)
	}
	f, b := sized(2000, 24, 27, 24, 24, 30000, 25000)
	f.ConnectInitPerSec, f.ConnectInitServerCPUUs = 3000, 250
	b.ConnectInitPerSec, b.ConnectInitServerCPUUs = 4000, 200
	rep := makeReport(cfg, f, b, nil)
	if !near(rep.ConnectInitRatio, 0.75) || !near(rep.ConnectInitCPURatio, 0.8) ||
		rep.ConnectInitServerCPUUs != 250 || rep.BaselineHandshakeServerCPUUs != 200 {
		t.Fatalf("connect + init: ratio %v, per CPU %v, µs %v against %v", rep.ConnectInitRatio,
			rep.ConnectInitCPURatio, rep.ConnectInitServerCPUUs, rep.BaselineHandshakeServerCPUUs)
	}
}
