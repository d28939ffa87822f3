package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/flamingochat/flamingo"
)

// The two servers a run compares.
const (
	kindFlamingo = "flamingo"
	kindBaseline = "baseline"
)

// serverStats is what a server process reports about itself.
type serverStats struct {
	CPUNanos   int64  `json:"cpu_ns"` // user + system CPU time of the process
	Mallocs    uint64 `json:"mallocs"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	RSS        uint64 `json:"rss"`
	Goroutines int    `json:"goroutines"`
}

// readStats measures this process. With gc set it collects garbage first, so that
// heap figures count live memory only.
func readStats(gc bool) serverStats {
	if gc {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return serverStats{
		CPUNanos:   processCPU(),
		Mallocs:    ms.Mallocs,
		HeapInuse:  ms.HeapInuse,
		StackInuse: ms.StackInuse,
		RSS:        rss(),
		Goroutines: runtime.NumGoroutine(),
	}
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() int64 {
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

// newHandler returns the WebSocket handler of a server kind and a function that stops
// what it started.
func newHandler(kind string) (http.Handler, func(), error) {
	switch kind {
	case kindFlamingo:
		// The load is many times what people type, from a few addresses: the limits
		// are raised out of its way but stay in the path, so their cost is measured.
		high := flamingo.RateLimit{Rate: 1e9, Burst: 1e9}
		e, err := flamingo.New(flamingo.Config{
			EventRate: high, MessageRate: high, JoinRate: high, InitRate: high,
		})
		if err != nil {
			return nil, nil, err
		}
		stop := func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = e.Shutdown(ctx)
		}
		return flamingo.NewWebSocketHandler(e, &flamingo.WebSocketOptions{MaxConns: -1, MaxConnsPerIP: -1}), stop, nil
	case kindBaseline:
		r := &relay{}
		return r, r.closeAll, nil
	}
	return nil, nil, fmt.Errorf("unknown server kind %q", kind)
}

// relay is the baseline: a bare coder/websocket relay with no engine. It pairs
// connections in arrival order and copies each frame to the partner, with the same
// choices as flamingo's transport (no compression, a 32 KiB read limit, a background
// context on the hot path, one reused read buffer, the read loop on the handler's
// goroutine).
type relay struct {
	mu      sync.Mutex
	waiting *relayPeer
	conns   map[*websocket.Conn]struct{}
}

type relayPeer struct {
	c       *websocket.Conn
	partner chan *websocket.Conn // receives the partner; capacity 1
}

func (r *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	c, err := websocket.Accept(w, req, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	c.SetReadLimit(32 << 10)
	r.mu.Lock()
	if r.conns == nil {
		r.conns = make(map[*websocket.Conn]struct{})
	}
	r.conns[c] = struct{}{}
	var partner *websocket.Conn
	if w := r.waiting; w != nil {
		r.waiting = nil
		r.mu.Unlock()
		w.partner <- c
		partner = w.c
	} else {
		p := &relayPeer{c: c, partner: make(chan *websocket.Conn, 1)}
		r.waiting = p
		r.mu.Unlock()
		partner = <-p.partner
	}
	defer func() {
		_ = c.CloseNow()
		if partner != nil {
			_ = partner.CloseNow()
		}
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
	}()
	if partner == nil { // closeAll
		return
	}
	ctx := context.Background()
	var buf []byte
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return
		}
		buf, err = readAll(rd, buf[:0])
		if err != nil {
			return
		}
		if err := partner.Write(ctx, typ, buf); err != nil {
			return
		}
	}
}

// closeAll closes every connection, and releases a connection still waiting for a
// partner.
func (r *relay) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.waiting; w != nil {
		r.waiting = nil
		w.partner <- nil
	}
	for c := range r.conns {
		_ = c.CloseNow()
	}
}

// readAll appends everything r yields to b, growing it only when full.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// listen starts an HTTP server for kind on a free loopback port.
func listen(kind string) (addr string, stop func(), err error) {
	h, stopHandler, err := newHandler(kind)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stopHandler()
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() {
		_ = srv.Close()
		stopHandler()
	}, nil
}

// serveChild is the -serve mode: it runs one server, prints "addr HOST:PORT" on
// stdout, then answers each "stats" or "stats gc" line on stdin with one JSON line,
// and exits when stdin ends (so it never outlives the tool).
// cpuProfile is the -cpuprofile flag: where child servers write their CPU profiles.
var cpuProfile string

func serveChild(kind string) error {
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile + "." + kind)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	addr, stop, err := listen(kind)
	if err != nil {
		return err
	}
	defer stop()
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "addr %s\n", addr)
	if err := out.Flush(); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "stats":
			err = json.NewEncoder(out).Encode(readStats(false))
		case "stats gc":
			err = json.NewEncoder(out).Encode(readStats(true))
		default:
			err = errors.New("unknown command")
		}
		if err == nil {
			err = out.Flush()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// server is a running server under test, in this process or in a child.
type server struct {
	kind  string
	addr  string
	child bool

	mu    sync.Mutex // serialises stats requests to the child
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	stopF func()
}

// startServer starts a server of kind, in a child process unless inProcess is set.
func startServer(kind string, inProcess bool) (*server, error) {
	if inProcess {
		addr, stop, err := listen(kind)
		if err != nil {
			return nil, err
		}
		return &server{kind: kind, addr: addr, stopF: stop}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-serve", kind}
	if cpuProfile != "" {
		args = append(args, "-cpuprofile", cpuProfile)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{kind: kind, child: true, cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	line, err := s.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "addr ") {
		s.stop()
		return nil, fmt.Errorf("child server did not start: %q %v", line, err)
	}
	s.addr = strings.TrimSpace(strings.TrimPrefix(line, "addr "))
	return s, nil
}

// stats measures the server; with gc set, after a garbage collection. In process, the
// figures include the load clients.
func (s *server) stats(gc bool) serverStats {
	if !s.child {
		return readStats(gc)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := "stats\n"
	if gc {
		cmd = "stats gc\n"
	}
	var st serverStats
	if _, err := io.WriteString(s.in, cmd); err != nil {
		return st
	}
	line, err := s.out.ReadBytes('\n')
	if err == nil {
		_ = json.Unmarshal(line, &st)
	}
	return st
}

// stop ends the server and, for a child, waits for it to exit (killing it after 5 s).
func (s *server) stop() {
	if !s.child {
		s.stopF()
		return
	}
	_ = s.in.Close()
	done := make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}
