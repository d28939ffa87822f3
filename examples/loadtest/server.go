package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync"

	"github.com/coder/websocket"
	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/internal/loadserve"
)

// The servers a run compares: always the baseline and flamingo, and with -redis a
// cluster of flamingo nodes on Redis.
const (
	kindFlamingo = "flamingo"
	kindBaseline = "baseline"
	kindCluster  = "cluster"
)

// newHandler returns the WebSocket handler of a server kind and a function that stops
// what it started.
func newHandler(kind string) (http.Handler, func(), error) {
	switch kind {
	case kindFlamingo:
		// The load is many times what people type, from a few addresses: the limits
		// are raised out of its way but stay in the path, so their cost is measured.
		e, err := flamingo.New(loadserve.EngineConfig())
		if err != nil {
			return nil, nil, err
		}
		return loadserve.Handler(e), func() { _ = loadserve.Shutdown(e) }, nil
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
	addr, stopHTTP, err := loadserve.Listen(h)
	if err != nil {
		stopHandler()
		return "", nil, err
	}
	return addr, func() {
		stopHTTP()
		stopHandler()
	}, nil
}

// cpuProfile is the -cpuprofile flag: where child servers write their CPU profiles.
var cpuProfile string

// serveChild is the -serve mode: it runs one server and speaks the child protocol of
// internal/loadserve on stdin and stdout: it prints "addr HOST:PORT", then answers
// each "stats" or "stats gc" line with one JSON line, and exits when stdin ends (so
// it never outlives the tool).
//
// With pprofAddr set, it also serves net/http/pprof there, with the mutex and block
// profiles on.
func serveChild(kind, pprofAddr string) error {
	profile := ""
	if cpuProfile != "" {
		profile = cpuProfile + "." + kind
	}
	stopProfile, err := loadserve.StartCPUProfile(profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if pprofAddr != "" {
		stopPprof, err := startPprof(pprofAddr, fmt.Sprintf("%s (pid %d)", kind, os.Getpid()))
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	h, stopHandler, err := newHandler(kind)
	if err != nil {
		return err
	}
	defer stopHandler()
	return loadserve.Serve(h, os.Stdin, os.Stdout)
}

// server is a running server under test: in this process, in a child process, or
// (the cluster) in one child process per node.
type server struct {
	kind     string
	addrs    []string           // where clients connect: one address per node
	children []*loadserve.Child // nil in process
	stopF    func()             // in process
	redis    *redisInfo         // the cluster's Redis, for its CPU time; nil otherwise
}

// startServer starts a server of kind, in a child process unless cfg.inProcess is
// set; the cluster's nodes are always child processes.
func startServer(cfg config, kind string) (*server, error) {
	if kind == kindCluster {
		return startCluster(cfg)
	}
	if cfg.inProcess {
		addr, stop, err := listen(kind)
		if err != nil {
			return nil, err
		}
		return &server{kind: kind, addrs: []string{addr}, stopF: stop}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-serve", kind}
	if cpuProfile != "" {
		args = append(args, "-cpuprofile", cpuProfile)
	}
	if cfg.pprof != "" {
		addr, err := pprofAddrFor(cfg.pprof, kind, 0)
		if err != nil {
			return nil, err
		}
		args = append(args, "-pprof", addr)
	}
	ch, err := loadserve.Start(exec.Command(exe, args...))
	if err != nil {
		return nil, err
	}
	return &server{kind: kind, addrs: []string{ch.Addr}, children: []*loadserve.Child{ch}}, nil
}

// nodeStats measures each process of the server (all at once); with gc set, after a
// garbage collection. In process, the figures include the load clients.
func (s *server) nodeStats(gc bool) []loadserve.Stats {
	if s.children == nil {
		return []loadserve.Stats{loadserve.ReadStats(gc)}
	}
	out := make([]loadserve.Stats, len(s.children))
	if len(s.children) == 1 {
		out[0] = s.children[0].Stats(gc)
		return out
	}
	var wg sync.WaitGroup
	for i, ch := range s.children {
		wg.Go(func() { out[i] = ch.Stats(gc) })
	}
	wg.Wait()
	return out
}

// stats measures the server, summed over its processes.
func (s *server) stats(gc bool) loadserve.Stats {
	return sumStats(s.nodeStats(gc))
}

func sumStats(sts []loadserve.Stats) loadserve.Stats {
	var sum loadserve.Stats
	for _, st := range sts {
		sum = sum.Add(st)
	}
	return sum
}

// redisCPU returns the CPU time of the cluster's Redis in seconds, or false when it
// cannot be read (or the server has no Redis).
func (s *server) redisCPU() (float64, bool) {
	if s.redis == nil {
		return 0, false
	}
	return s.redis.cpu()
}

// stop ends the server and waits for its processes to exit (each killed after 5 s).
func (s *server) stop() {
	if s.children == nil {
		s.stopF()
		return
	}
	var wg sync.WaitGroup
	for _, ch := range s.children {
		wg.Go(ch.Stop)
	}
	wg.Wait()
	if s.redis != nil {
		s.redis.close()
	}
}
