// Package loadserve is the protocol between the load tool (examples/loadtest) and the
// servers it measures, each of which runs in a child process so that its CPU time and
// memory are its own.
//
// A child listens on a free loopback port, writes one line "addr HOST:PORT" to its
// stdout, then answers each line "stats" or "stats gc" it reads on its stdin with one
// line of JSON (a [Stats]; with "gc", measured after a garbage collection), and stops
// when its stdin ends, so that it never outlives the tool. [Serve] is the child's
// side, [Start] the tool's.
//
// The package also holds what the load tool and its cluster node
// (examples/cluster/loadnode) must configure alike: [EngineConfig] and [Handler], and
// the profiling hooks both offer: [StartCPUProfile] and [ServePprof].
package loadserve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flamingochat/flamingo"
)

// Stats is what a server process reports about itself.
type Stats struct {
	CPUNanos   int64  `json:"cpu_ns"`      // user + system CPU time of the process
	Mallocs    uint64 `json:"mallocs"`     // heap objects allocated so far
	AllocBytes uint64 `json:"alloc_bytes"` // heap bytes allocated so far
	HeapInuse  uint64 `json:"heap_inuse"`  // bytes in in-use heap spans
	StackInuse uint64 `json:"stack_inuse"` // bytes of goroutine stacks
	RSS        uint64 `json:"rss"`         // resident set size; 0 where /proc is missing
	Goroutines int    `json:"goroutines"`
	WriteCalls uint64 `json:"write_calls"` // write system calls so far; 0 where /proc is missing
}

// Add returns the sum of s and o, field by field: the figures of two processes taken
// together.
func (s Stats) Add(o Stats) Stats {
	return Stats{
		CPUNanos:   s.CPUNanos + o.CPUNanos,
		Mallocs:    s.Mallocs + o.Mallocs,
		AllocBytes: s.AllocBytes + o.AllocBytes,
		HeapInuse:  s.HeapInuse + o.HeapInuse,
		StackInuse: s.StackInuse + o.StackInuse,
		RSS:        s.RSS + o.RSS,
		Goroutines: s.Goroutines + o.Goroutines,
		WriteCalls: s.WriteCalls + o.WriteCalls,
	}
}

// ReadStats measures this process. With gc set it collects garbage first, so that
// heap figures count live memory only.
func ReadStats(gc bool) Stats {
	if gc {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Stats{
		CPUNanos:   ProcessCPU(),
		Mallocs:    ms.Mallocs,
		AllocBytes: ms.TotalAlloc,
		HeapInuse:  ms.HeapInuse,
		StackInuse: ms.StackInuse,
		RSS:        rss(),
		Goroutines: runtime.NumGoroutine(),
		WriteCalls: writeCalls(),
	}
}

// writeCalls returns how many write system calls this process has made (syscw in
// /proc/self/io: a socket write counts one, however many frames it carries), or 0
// where there is no such file.
func writeCalls() uint64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscw:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// ProcessCPU returns the user and system CPU time this process has used, in
// nanoseconds.
func ProcessCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// rss returns the resident set size from /proc/self/statm, or 0 where there is none.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// EngineConfig returns the engine configuration the load tool measures: the
// defaults, with every rate limit raised out of the way. The load is many times what
// people type, from a few addresses; the limits stay in the path, so their cost is
// measured. The caller may set more fields (a cluster node sets Matcher and Broker).
func EngineConfig() flamingo.Config {
	high := flamingo.RateLimit{Rate: 1e9, Burst: 1e9}
	return flamingo.Config{EventRate: high, MessageRate: high, JoinRate: high, InitRate: high}
}

// Handler returns the WebSocket handler the load tool measures for e: no limit on
// connections, in total or per address.
func Handler(e *flamingo.Engine) http.Handler {
	return flamingo.NewWebSocketHandler(e, &flamingo.WebSocketOptions{MaxConns: -1, MaxConnsPerIP: -1})
}

// Shutdown shuts e down, waiting at most 5 s for its connections to close.
func Shutdown(e *flamingo.Engine) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return e.Shutdown(ctx)
}

// Listen serves h over HTTP on a free loopback port. It returns the address and a
// function that closes the server and every connection it holds.
func Listen(h http.Handler) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// Serve is the child's side of the protocol: it serves h on a free loopback port
// (see [Listen]), writes "addr HOST:PORT" to out, answers each "stats" or "stats gc"
// line from in with one JSON line, and returns when in ends, after closing the HTTP
// server. Stopping what stands behind h is the caller's.
func Serve(h http.Handler, in io.Reader, out io.Writer) error {
	addr, stop, err := Listen(h)
	if err != nil {
		return err
	}
	defer stop()
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "addr %s\n", addr)
	if err := w.Flush(); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "stats":
			err = json.NewEncoder(w).Encode(ReadStats(false))
		case "stats gc":
			err = json.NewEncoder(w).Encode(ReadStats(true))
		default:
			err = fmt.Errorf("unknown command %q", sc.Text())
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			return err
		}
	}
	return sc.Err()
}

// StartCPUProfile writes this process's CPU profile to path until the returned
// function is called. An empty path profiles nothing.
func StartCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// The sampling rates [ServePprof] turns on. A mutex contention event is recorded one
// time in MutexProfileFraction; a blocking event (channel, select, sync.Cond, a
// mutex's waiter) is recorded with a probability of its duration over
// BlockProfileRate nanoseconds, so every stall of 100 µs or more is in the profile
// and short waits cost little.
const (
	MutexProfileFraction = 10
	BlockProfileRate     = 100_000
)

// ServePprof serves net/http/pprof under /debug/pprof/ on addr, which must be a
// loopback address (port 0 picks a free port), and turns the runtime's mutex and
// block profiles on. It returns the address it listens on and a function that stops
// the server, waits for it and turns the two profiles off again.
//
// With it, during a load run: go tool pprof http://ADDR/debug/pprof/mutex (or block,
// profile, heap, goroutine), and curl -o trace.out
// 'http://ADDR/debug/pprof/trace?seconds=5' for go tool trace.
func ServePprof(addr string) (string, func(), error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", nil, fmt.Errorf("pprof address %q is not on loopback", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	runtime.SetMutexProfileFraction(MutexProfileFraction)
	runtime.SetBlockProfileRate(BlockProfileRate)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return ln.Addr().String(), func() {
		_ = srv.Close()
		<-done
		runtime.SetMutexProfileFraction(0)
		runtime.SetBlockProfileRate(0)
	}, nil
}

// DescribePprof is the line a process prints to say where who serves pprof (see
// [ServePprof]) and how to take the profiles and a trace from it.
func DescribePprof(who, addr string) string {
	u := "http://" + addr + "/debug/pprof"
	return fmt.Sprintf("pprof of %s on %s/ (mutex 1/%d, block %d ns): go tool pprof %s/mutex | %s/block; curl -o trace.out '%s/trace?seconds=5' && go tool trace trace.out",
		who, u, MutexProfileFraction, BlockProfileRate, u, u, u)
}

// Child is a server running in a child process, as the tool sees it.
type Child struct {
	// Addr is the HOST:PORT the child listens on.
	Addr string

	mu  sync.Mutex // serialises stats requests
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// Start starts cmd, which must run [Serve], and waits for the address it listens
// on. It takes cmd's stdin and stdout; cmd's stderr goes to this process's unless
// set.
func Start(cmd *exec.Cmd) (*Child, error) {
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Child{cmd: cmd, in: in, out: bufio.NewReader(out)}
	line, err := c.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "addr ") {
		c.Stop()
		return nil, fmt.Errorf("child server did not start: %q %v", line, err)
	}
	c.Addr = strings.TrimSpace(strings.TrimPrefix(line, "addr "))
	return c, nil
}

// Stats measures the child; with gc set, after a garbage collection. It returns zero
// figures if the child does not answer.
func (c *Child) Stats(gc bool) Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := "stats\n"
	if gc {
		cmd = "stats gc\n"
	}
	var st Stats
	if _, err := io.WriteString(c.in, cmd); err != nil {
		return st
	}
	line, err := c.out.ReadBytes('\n')
	if err == nil {
		_ = json.Unmarshal(line, &st)
	}
	return st
}

// Pid returns the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Stop closes the child's stdin, which tells it to stop, and waits for it to exit,
// killing it after 5 s.
func (c *Child) Stop() {
	_ = c.in.Close()
	done := make(chan struct{})
	go func() {
		_ = c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
