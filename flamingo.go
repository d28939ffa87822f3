package flamingo

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Locking. One mutex, Engine.mu, guards the engine's state: the fields of Engine after
// it, and the fields of sessions, chats and conns that say so. The rule, which each
// call site can be checked against:
//
//   - A function that locks e.mu unlocks it before it returns, with a deferred unlock
//     right after the Lock (unlock also starts the writers decided meanwhile). No
//     function unlocks a lock that its caller took.
//   - A few paths take e.mu shared. relayFast (chat.go), a chat message in the common
//     case, changes nothing guarded by e.mu alone: it queues under the partner
//     connection's qmu, records under the chat's mu, and counts atomically; anything
//     else falls back to the exclusive path. The sweep (sweep.go) only reads while
//     it looks for connections with something due, and acts under the exclusive
//     lock; isClosed and isDraining only read.
//   - A function whose name ends in Locked is called with e.mu held and returns with it
//     held.
//   - With e.mu held the engine does no I/O (but for logging, whose handler must not
//     block, as Config.Logger says) and never calls the Matcher, the Broker or a
//     hook. A decision made under the lock leaves its follow-up work where it runs after
//     the unlock: frames in a connection's queue, written by that connection's writer
//     goroutine (conn.go); matcher calls in the session's matcher queue, made in order
//     by one goroutine per session (queue.go); broker calls in the broker outbox, made
//     in order by one goroutine (cluster.go); and hook calls returned to the handler,
//     which makes them once it has unlocked (hooks.go).

// Errors returned by the Engine.
var (
	// ErrEngineClosed is returned by [Engine.Serve] once [Engine.Shutdown] or
	// [Engine.Drain] has begun, and wrapped by [Engine.Ready]'s error then.
	ErrEngineClosed = errors.New("flamingo: engine closed")
)

// Engine runs stranger chat: it serves connections, keeps sessions and chats, asks its
// [Matcher] for pairs and enforces every protocol rule. Create one with [New]; its
// methods are safe for concurrent use.
type Engine struct {
	cfg     Config
	matcher Matcher
	broker  Broker // nil on a single node
	node    string // broker.NodeID()
	log     *slog.Logger
	// epoch is when the engine was made. clock is the time of the latest sweep since
	// then (monotonic), which readers stamp frames with (conn.heard) at the cost of a
	// load; written once a sweep, it sits apart from the counters written per message.
	epoch time.Time
	clock atomic.Int64

	// ctx bounds every Matcher call; it is cancelled when Shutdown's context ends, or
	// when Shutdown returns.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.RWMutex // guards everything below, and the state of sessions, chats and conns; released with unlock
	closed   bool
	draining bool                // Drain has begun
	drained  chan struct{}       // closed when a drain has nothing left to hand over
	sessions map[string]*session // by handle
	chats    map[*chat]struct{}
	typers   map[*chat]struct{} // chats in which a user of this node is shown typing
	claims   map[string]*claim  // by handle: sessions being claimed from another node
	conns    map[*conn]struct{}
	ips      map[netip.Addr]*ipLimits // buckets of remote addresses seen lately
	online   int
	inQueue  int
	inChat   int
	absent   []absence // users away, in order of their grace deadline
	lastJoin time.Time // the latest Ticket.JoinedAt given out
	sweeps   int       // sweeps so far
	// starts are the writers to start once mu is released (startWriterLocked).
	starts [8]*conn
	nstart int
	// fastMessages counts the messages relayFast relayed (counters.messages the
	// others).
	fastMessages atomic.Uint64
	// lastMsgID is the last message_id given out (see nextMessageID).
	lastMsgID atomic.Uint64
	// endedChats are the records of chats that ended within reportWindow, oldest
	// first; the sweep forgets their messages (moderation.go).
	endedChats []*chatRecord
	// outbox holds the Broker calls decided under the lock, in order (cluster.go);
	// outQueued counts the calls ever queued and outMade those made, and outProgress,
	// if not nil, is closed when outMade next grows.
	counters    counters
	outbox      []func()
	outQueued   uint64
	outMade     uint64
	outProgress chan struct{}

	hooks        [len(hookNames)]hookCounters // atomics: hooks run with no lock held
	wake         chan struct{}                // nudges the reaper; capacity 1
	flush        chan struct{}                // nudges the broker outbox's flusher; capacity 1
	flushStop    chan struct{}                // closed when the flusher is to empty the outbox and return
	stopped      chan struct{}                // closed when the shutdown sequence has run
	done         chan struct{}                // closed when Shutdown begins
	workers      sync.WaitGroup
	serving      sync.WaitGroup
	flusher      sync.WaitGroup
	shutdownOnce sync.Once
	stopErr      error // what stopping the broker and the matcher returned; set before stopped is closed
}

// New returns a running Engine configured by cfg, or an error naming each invalid
// field of cfg. It starts the matcher and the worker that expires sessions;
// [Engine.Shutdown] stops them.
func New(cfg Config) (*Engine, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		epoch:     time.Now(),
		cfg:       cfg,
		matcher:   cfg.Matcher,
		log:       cfg.Logger,
		sessions:  make(map[string]*session),
		chats:     make(map[*chat]struct{}),
		typers:    make(map[*chat]struct{}),
		claims:    make(map[string]*claim),
		conns:     make(map[*conn]struct{}),
		ips:       make(map[netip.Addr]*ipLimits),
		counters:  newCounters(),
		wake:      make(chan struct{}, 1),
		flush:     make(chan struct{}, 1),
		flushStop: make(chan struct{}),
		stopped:   make(chan struct{}),
		drained:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if b := cfg.Broker; b != nil {
		e.broker, e.node = b, b.NodeID()
		if err := b.Start(host{e}); err != nil {
			e.cancel()
			return nil, err
		}
	}
	if err := e.matcher.Start(e.onPair); err != nil {
		if e.broker != nil {
			_ = e.broker.Stop(context.Background())
		}
		e.cancel()
		return nil, err
	}
	e.workers.Add(2)
	go e.reaper()
	go e.sweeper()
	if e.broker != nil {
		e.flusher.Add(1)
		go e.flushOutbox()
	}
	return e, nil
}

// Stats returns the current counts of users on this engine; with a [Broker], of the
// whole cluster (the other nodes' counts as the broker last saw them).
func (e *Engine) Stats() Stats {
	others := e.otherStats()
	e.mu.Lock()
	defer e.unlock()
	return e.statsLocked(others)
}

// otherStats returns the counts of the cluster's other nodes, zero on a single node.
// It calls the Broker, so it is called before locking.
func (e *Engine) otherStats() Stats {
	if e.broker == nil {
		return Stats{}
	}
	return e.broker.Stats()
}

// statsLocked adds this node's counts to others, what otherStats returned.
func (e *Engine) statsLocked(others Stats) Stats {
	return Stats{Online: e.online + others.Online, InQueue: e.inQueue + others.InQueue, InChat: e.inChat + others.InChat}
}

// sinceEpoch is the time since the engine's start, never 0: a monotonic time for
// atomics, which a step of the wall clock does not move.
func (e *Engine) sinceEpoch() int64 {
	return max(int64(time.Since(e.epoch)), 1)
}

// unlock releases e.mu, then starts the writers that were decided while it was held.
func (e *Engine) unlock() {
	n := e.nstart
	if n == 0 {
		e.mu.Unlock()
		return
	}
	starts := e.starts
	e.starts, e.nstart = [len(e.starts)]*conn{}, 0
	e.mu.Unlock()
	for _, c := range starts[:n] {
		go c.writeLoop()
	}
}

// goLocked runs f on a goroutine the engine waits for in Shutdown, and reports whether
// it did. Once Shutdown has begun it does nothing: Shutdown itself closes every
// transport and stops the matcher, and an Add after its Wait could be missed.
func (e *Engine) goLocked(f func()) bool {
	if e.closed {
		return false
	}
	e.workers.Add(1)
	go func() {
		defer e.workers.Done()
		f()
	}()
	return true
}

// Shutdown stops the engine: new connections are refused, every connection is closed
// with [CloseGoingAway], the matcher is stopped, and Shutdown waits until every
// goroutine the engine started has returned and every Serve call has returned, or ctx
// is done, whichever is first. Once ctx is done, connections whose close handshake is
// still under way are closed at once, without waiting for their peers, and matcher
// calls under way are cancelled. Hooks are not called for chats cut by Shutdown. It is
// safe to call more than once and from several goroutines; each call waits, bounded by
// its own ctx.
//
// Called from a hook (of this Engine or of another), Shutdown cannot wait for the hook
// that called it: it begins the shutdown and returns nil at once.
//
// With net/http, call [http.Server.Shutdown] first, so that no new connection arrives,
// and then Engine.Shutdown: http.Server.Shutdown does not wait for WebSocket
// connections (they are hijacked), and this closes them.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.shutdownOnce.Do(func() {
		go func() {
			e.stopErr = e.shutdown()
			close(e.stopped)
		}()
	})
	if calledFromHook() {
		return nil
	}
	// When ctx ends, so do matcher calls and close handshakes under way.
	stop := context.AfterFunc(ctx, e.cancel)
	defer stop()
	done := make(chan struct{})
	go func() {
		<-e.stopped
		e.workers.Wait()
		e.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
		e.cancel()
		return e.stopErr
	case <-ctx.Done():
		e.cancel() // (the AfterFunc may not have run yet, and stop would keep it from it)
		return ctx.Err()
	}
}

// shutdown runs once, on its own goroutine; e.stopped is closed when it returns. Its
// waits end when e.ctx does: when the context of a Shutdown call ends.
func (e *Engine) shutdown() error {
	conns := e.close()
	close(e.done)
	e.closeAll(conns)

	var err error
	if e.broker != nil {
		// Once every connection has ended, the broker leaves the sessions (with
		// what is held for them) to the other nodes; it stops the matcher it
		// shares with them when it no longer needs it. The outbox is made until
		// the broker has stopped: a release it asks for meanwhile is answered.
		served := make(chan struct{})
		go func() {
			e.serving.Wait()
			close(served)
		}()
		select {
		case <-served:
		case <-e.ctx.Done():
		}
		err = e.broker.Stop(e.ctx)
	}
	err = errors.Join(err, e.matcher.Stop(e.ctx))
	if e.broker != nil {
		close(e.flushStop)
		e.flusher.Wait()
	}
	return err
}

// close marks the engine closed and every connection closing, and returns them.
func (e *Engine) close() []*conn {
	e.mu.Lock()
	defer e.unlock()
	e.closed = true
	conns := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		if !c.closed {
			conns = append(conns, c)
			c.setClosedLocked()
			e.counters.closes[CloseGoingAway]++
		}
	}
	return conns
}

// closeAll closes conns concurrently, a bounded number at a time, on a goroutine the
// engine waits for: a close handshake with an unresponsive peer can take seconds.
func (e *Engine) closeAll(conns []*conn) {
	const parallel = 256
	e.workers.Add(1)
	go func() {
		defer e.workers.Done()
		sem := make(chan struct{}, parallel)
		var wg sync.WaitGroup
		for _, c := range conns {
			acquired := false
			select {
			case sem <- struct{}{}:
				acquired = true
			case <-e.ctx.Done(): // each close is now quick: no need to bound them
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.closeTransport(c, CloseGoingAway, "server shutting down")
				if acquired {
					<-sem
				}
			}()
		}
		wg.Wait()
	}()
}

// closeTransport closes c's transport. Once e.ctx is done (a Shutdown's context
// ended), or after a moment for a peer known to be unresponsive, it stops waiting for
// the peer and closes the transport at once.
func (e *Engine) closeTransport(c *conn, code CloseCode, reason string) {
	stop := context.AfterFunc(e.ctx, func() { closeNow(c.t) })
	defer stop()
	if c.unresponsive {
		// The close frame is still worth a try, but not the 5 s a WebSocket
		// close handshake waits for a peer that does not read.
		t := time.AfterFunc(unresponsiveCloseWait, func() { closeNow(c.t) })
		defer t.Stop()
	}
	_ = c.t.Close(code, reason)
}

// unresponsiveCloseWait is how long the close of an unresponsive peer may wait for it.
const unresponsiveCloseWait = time.Second

// closeNower is a [Transport] that can close without waiting for its peer. Shutdown
// uses it once its context is done.
type closeNower interface {
	CloseNow() error
}

// closeNow closes t without waiting for its peer if t can, and otherwise does nothing:
// a Close is already under way.
func closeNow(t Transport) {
	if cn, ok := t.(closeNower); ok {
		_ = cn.CloseNow()
	}
}

// hookFunc is the name of the function that runs every hook, as the runtime reports it.
var hookFunc = runtime.FuncForPC(reflect.ValueOf((*Engine).callHook).Pointer()).Name()

// calledFromHook reports whether the calling goroutine is running a hook of an Engine.
// It looks at the whole stack; Shutdown is the only caller, so this costs nothing on
// the hot path.
func calledFromHook() bool {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(3, pcs)
	for n == len(pcs) {
		pcs = make([]uintptr, 2*len(pcs))
		n = runtime.Callers(3, pcs)
	}
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if f.Function == hookFunc {
			return true
		}
		if !more {
			return false
		}
	}
}
