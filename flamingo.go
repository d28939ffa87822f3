package flamingo

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"
	"unicode/utf8"
)

// Transport is one client connection's message pipe: whole text messages in, whole
// text messages out. It knows nothing of chat; [Engine.Serve] runs the protocol over it.
//
// The Engine calls Read from one goroutine only (the one running Serve). Write is
// called from one goroutine at a time, but concurrently with Read. Close may be called
// at any time from any goroutine, more than once; it must unblock a pending Read and
// Write, and calls after the first may do nothing.
//
// The Engine never cancels the context it passes to Read; it unblocks a Read by calling
// Close, which is cheaper for most transports. It bounds each Write with a timer that
// calls Close rather than with a context deadline, for the same reason.
type Transport interface {
	// Read blocks until the next message arrives and returns it. The returned slice
	// may be reused by the next Read call. Any error ends the connection.
	Read(ctx context.Context) ([]byte, error)
	// Write sends one message. The Engine does not touch p afterwards, and never
	// modifies it.
	Write(ctx context.Context, p []byte) error
	// Close ends the connection, telling the peer code and reason where the
	// transport can.
	Close(code CloseCode, reason string) error
}

// Pinger is a [Transport] that can check that its peer is alive. When a Transport
// implements it, the Engine calls Ping every [Config.HeartbeatInterval] and closes the
// connection if no answer comes within [Config.HeartbeatTimeout]. Ping is called
// concurrently with Read, never with another Ping.
type Pinger interface {
	Ping(ctx context.Context) error
}

// CloseCode is a WebSocket close status code, as the engine uses them.
type CloseCode int

// Close codes the engine uses. A client should reconnect (and resume) after
// CloseGoingAway, CloseSlowConsumer and abnormal closes, and not after
// CloseSessionReplaced, which means the user opened the chat elsewhere.
const (
	CloseNormal          CloseCode = 1000 // the connection ended normally
	CloseGoingAway       CloseCode = 1001 // the server is shutting down or lost the peer's heartbeat
	CloseUnsupportedData CloseCode = 1003 // a binary frame arrived
	CloseInvalidPayload  CloseCode = 1007 // a text frame was not valid UTF-8
	ClosePolicyViolation CloseCode = 1008 // no init within Config.InitTimeout, or abuse
	CloseMessageTooBig   CloseCode = 1009 // a frame over Config.MaxFrameBytes
	CloseInternalError   CloseCode = 1011 // a hook panicked while handling this connection's event
	CloseSessionReplaced CloseCode = 4001 // another connection took the session over
	CloseSlowConsumer    CloseCode = 4002 // the client did not read its events fast enough
)

// Errors returned by the Engine.
var (
	// ErrEngineClosed is returned by [Engine.Serve] once [Engine.Shutdown] has begun.
	ErrEngineClosed = errors.New("flamingo: engine closed")
)

// Config configures an [Engine]. A zero Config is ready to use: each field's zero value
// means the default its comment gives.
type Config struct {
	// Matcher pairs waiting users. Nil means a new [MemoryMatcher].
	Matcher Matcher
	// Broker, if set, joins the engine to a cluster of nodes (see [Broker]); its
	// Matcher must then be one the nodes share. Nil means a single node.
	Broker Broker
	// Logger receives the engine's logs. Nil means no logging. Logs never hold
	// message content or user_ids, only handles.
	Logger *slog.Logger

	// ResumeGrace is how long a disconnected user keeps their session and chat.
	// Zero means 30 seconds.
	ResumeGrace time.Duration
	// MaxQueuedEvents bounds the events waiting to be written to one connection, and
	// the events held for a user who is away. Zero means 256.
	MaxQueuedEvents int
	// MaxQueuedBytes bounds the same queues by size. Zero means 1 MiB.
	MaxQueuedBytes int
	// MaxFrameBytes is the largest frame a client may send; a larger one closes the
	// connection with [CloseMessageTooBig]. Zero means 32 KiB.
	MaxFrameBytes int
	// MaxMessageBytes is the largest send_message content in bytes. Zero means 4096.
	MaxMessageBytes int
	// MaxMessageRunes is the largest send_message content in characters (Unicode
	// code points). Zero means 1000.
	MaxMessageRunes int

	// EventRate limits every event of one connection. Zero means 20 per second with
	// a burst of 40.
	EventRate RateLimit
	// MessageRate limits one connection's send_message. Zero means 5 per second
	// with a burst of 20.
	MessageRate RateLimit
	// JoinRate limits one connection's join_queue. Zero means one every 2 seconds
	// with a burst of 5.
	JoinRate RateLimit
	// InitRate limits, per remote address (see [Addresser]), init that makes a new
	// identity. Resuming with a valid user_id is not limited. Zero means one per
	// second with a burst of 10.
	InitRate RateLimit
	// ResumeGuessRate limits, per remote address, init with a user_id that matches
	// no session: the cost of guessing ids. Zero means one per minute with a burst
	// of 10. Over it, such an init gets rate_limited and no new identity.
	ResumeGuessRate RateLimit
	// ErrorBudget is how many error events a connection may earn: each one takes a
	// token, and a connection with none left is closed with [ClosePolicyViolation].
	// Zero means one per second with a burst of 20.
	ErrorBudget RateLimit
	// InitTimeout is how long a new connection may take to send init before it is
	// closed with [ClosePolicyViolation]. Zero means 10 seconds.
	InitTimeout time.Duration
	// WriteTimeout bounds one write to a connection; a connection whose write takes
	// longer is closed with [CloseSlowConsumer]. Zero means 10 seconds.
	WriteTimeout time.Duration
	// HeartbeatInterval is the time between pings to a transport that is a [Pinger].
	// Zero means 25 seconds.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long a ping may go unanswered before the connection is
	// closed. Zero means 10 seconds.
	HeartbeatTimeout time.Duration
	// InitTimeout, WriteTimeout and HeartbeatInterval are enforced by one engine
	// goroutine that looks at every connection ten times per the shortest of the
	// three (every second with the defaults), so each may run over by that much.

	// OnMatch, if set, is called after two users are paired.
	OnMatch func(ChatInfo)
	// OnMessage, if set, is called before a message is delivered. A non-nil error
	// refuses the message: the sender gets an error event with the code of an
	// [*Error] (or [CodeMessageRejected] for any other error) and the partner gets
	// nothing.
	OnMessage func(Message) error
	// OnChatEnd, if set, is called once after a chat ends.
	OnChatEnd func(ChatEnd)
	// The hooks are called on engine goroutines, never with an engine lock held, and
	// must return quickly: a slow hook delays the connection (or the worker) that
	// called it. Hooks for one chat may run on different goroutines: OnChatEnd can
	// begin before an OnMatch for the same chat has returned. A panicking hook is
	// recovered; if it ran for one connection's event, that connection is closed with
	// [CloseInternalError]. With a [Broker], OnMatch runs on the node of the user who
	// waited longer and OnChatEnd on the node that ended the chat (SCALING.md).
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	def(&c.ResumeGrace, 30*time.Second)
	def(&c.InitTimeout, 10*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.HeartbeatInterval, 25*time.Second)
	def(&c.HeartbeatTimeout, 10*time.Second)
	defInt(&c.MaxQueuedEvents, 256)
	defInt(&c.MaxQueuedBytes, 1<<20)
	defInt(&c.MaxFrameBytes, 32<<10)
	defInt(&c.MaxMessageBytes, 4096)
	defInt(&c.MaxMessageRunes, 1000)
	c.EventRate = c.EventRate.or(20, 40)
	c.MessageRate = c.MessageRate.or(5, 20)
	c.JoinRate = c.JoinRate.or(0.5, 5)
	c.InitRate = c.InitRate.or(1, 10)
	c.ResumeGuessRate = c.ResumeGuessRate.or(1.0/60, 10)
	c.ErrorBudget = c.ErrorBudget.or(1, 20)
	if c.Matcher == nil {
		c.Matcher = NewMemoryMatcher()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Engine runs stranger chat: it serves connections, keeps sessions and chats, asks its
// [Matcher] for pairs and enforces every protocol rule. Create one with [New]; its
// methods are safe for concurrent use.
type Engine struct {
	cfg     Config
	matcher Matcher
	broker  Broker // nil on a single node
	node    string // broker.NodeID()
	log     *slog.Logger

	mu       sync.Mutex // guards everything below, and the state of sessions, chats and conns
	closed   bool
	sessions map[string]*session // by handle
	chats    map[*chat]struct{}
	claims   map[string]*claim // by handle: sessions being claimed from another node
	conns    map[*conn]struct{}
	ips      map[netip.Addr]*ipLimits // buckets of remote addresses seen lately
	online   int
	inQueue  int
	inChat   int
	absent   []absence // users away, in order of their grace deadline
	lastJoin time.Time // the latest Ticket.JoinedAt given out
	sweeps   int       // sweeps so far
	// lastMsgID is the last message_id given out (see sendMessageLocked).
	lastMsgID uint64

	wake         chan struct{} // nudges the reaper; capacity 1
	done         chan struct{} // closed when Shutdown begins
	workers      sync.WaitGroup
	serving      sync.WaitGroup
	shutdownOnce sync.Once
}

// New returns a running Engine configured by cfg. It starts the matcher and the worker
// that expires sessions; [Engine.Shutdown] stops them.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	e := &Engine{
		cfg:      cfg,
		matcher:  cfg.Matcher,
		log:      cfg.Logger,
		sessions: make(map[string]*session),
		chats:    make(map[*chat]struct{}),
		claims:   make(map[string]*claim),
		conns:    make(map[*conn]struct{}),
		ips:      make(map[netip.Addr]*ipLimits),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if b := cfg.Broker; b != nil {
		e.broker, e.node = b, b.NodeID()
		if err := b.Start(host{e}); err != nil {
			return nil, err
		}
	}
	if err := e.matcher.Start(e.onPair); err != nil {
		if e.broker != nil {
			_ = e.broker.Stop(context.Background())
		}
		return nil, err
	}
	e.workers.Add(2)
	go e.reaper()
	go e.sweeper()
	return e, nil
}

// Stats returns the current counts of users on this engine; with a [Broker], of the
// whole cluster (the other nodes' counts as the broker last saw them).
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statsLocked()
}

func (e *Engine) statsLocked() Stats {
	st := e.localStatsLocked()
	if e.broker != nil {
		o := e.broker.Stats()
		st.Online += o.Online
		st.InQueue += o.InQueue
		st.InChat += o.InChat
	}
	return st
}

func (e *Engine) localStatsLocked() Stats {
	return Stats{Online: e.online, InQueue: e.inQueue, InChat: e.inChat}
}

// Serve runs the protocol over one connection and blocks until the connection ends: the
// peer closes it, it fails, the engine closes it, ctx is done (the connection is closed
// with [CloseGoingAway]) or the engine shuts down. It closes t before returning. It
// returns [ErrEngineClosed] if Shutdown had begun before the call, nil otherwise.
func (e *Engine) Serve(ctx context.Context, t Transport) error {
	c := &conn{e: e, t: t, started: time.Now()}
	c.pinger, _ = t.(Pinger)
	if a, ok := t.(Addresser); ok {
		c.addr = a.RemoteAddr()
	}
	c.limits.init(&e.cfg)
	c.nextPing = c.started.Add(e.cfg.HeartbeatInterval)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = t.Close(CloseGoingAway, "server shutting down")
		return ErrEngineClosed
	}
	e.conns[c] = struct{}{}
	e.serving.Add(1)
	e.mu.Unlock()
	defer e.serving.Done()

	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { e.closeConn(c, CloseGoingAway, "server shutting down") })
		defer stop()
	}

	readCtx := context.WithoutCancel(ctx)
	for {
		b, err := t.Read(readCtx)
		if err != nil {
			break
		}
		if len(b) > e.cfg.MaxFrameBytes {
			e.closeConn(c, CloseMessageTooBig, "frame too big")
			break
		}
		if !utf8.Valid(b) {
			e.closeConn(c, CloseInvalidPayload, "frame is not valid UTF-8")
			break
		}
		e.handle(c, b)
	}
	e.disconnect(c)
	return nil
}

// closeConn marks c closed and closes its transport on a worker goroutine, so that a
// caller holding no lock is never blocked by a slow close handshake.
func (e *Engine) closeConn(c *conn, code CloseCode, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closeConnLocked(c, code, reason)
}

func (e *Engine) closeConnLocked(c *conn, code CloseCode, reason string) {
	if c.closed {
		return
	}
	c.closed = true
	e.goLocked(func() { _ = c.t.Close(code, reason) })
}

// goLocked runs f on a goroutine the engine waits for in Shutdown. Once Shutdown has
// begun it does nothing: Shutdown itself closes every transport and stops the matcher,
// and an Add after its Wait could be missed.
func (e *Engine) goLocked(f func()) {
	if e.closed {
		return
	}
	e.workers.Add(1)
	go func() {
		defer e.workers.Done()
		f()
	}()
}

// sweeper enforces the deadlines of every connection: InitTimeout, WriteTimeout and
// the heartbeat. One goroutine that looks at each connection every tenth of the
// shortest of those durations costs less than three timers per connection, and the
// per-frame timer it replaces was on the relay's hot path.
func (e *Engine) sweeper() {
	defer e.workers.Done()
	every := min(e.cfg.InitTimeout, e.cfg.WriteTimeout, e.cfg.HeartbeatInterval) / 10
	tick := time.NewTicker(max(every, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-e.done:
			return
		case now := <-tick.C:
			e.sweep(now)
		}
	}
}

func (e *Engine) sweep(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if e.sweeps++; e.sweeps%64 == 0 {
		e.forgetIdleIPsLocked(now)
	}
	for c := range e.conns {
		switch {
		case c.closed:
		case c.sess == nil && !c.replaced && now.Sub(c.started) >= e.cfg.InitTimeout:
			e.closeConnLocked(c, ClosePolicyViolation, "init timeout")
		case c.writeSince.Load() != 0 && now.Sub(time.Unix(0, c.writeSince.Load())) >= e.cfg.WriteTimeout:
			e.dropSlowLocked(c, "write timeout")
		case c.pinger != nil && !c.pinging && !now.Before(c.nextPing):
			c.pinging = true
			e.goLocked(func() { e.ping(c) })
		}
	}
}

// ping runs one heartbeat on c, closing c if it goes unanswered.
func (e *Engine) ping(c *conn) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.HeartbeatTimeout)
	err := c.pinger.Ping(ctx)
	cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	c.pinging = false
	c.nextPing = time.Now().Add(e.cfg.HeartbeatInterval)
	if err != nil {
		e.closeConnLocked(c, CloseGoingAway, "heartbeat timeout")
	}
}

// Shutdown stops the engine: new connections are refused, every connection is closed
// with [CloseGoingAway], the matcher is stopped, and Shutdown waits until every
// goroutine the engine started has returned and every Serve call has returned, or ctx
// is done, whichever is first. Hooks are not called for chats cut by Shutdown. It is
// safe to call more than once; each call waits.
func (e *Engine) Shutdown(ctx context.Context) error {
	var stopErr error
	e.shutdownOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		conns := make([]*conn, 0, len(e.conns))
		for c := range e.conns {
			conns = append(conns, c)
			c.closed = true
		}
		e.mu.Unlock()
		close(e.done)

		// Close connections concurrently, a bounded number at a time: a close
		// handshake with an unresponsive peer can take seconds.
		const parallel = 256
		sem := make(chan struct{}, parallel)
		e.workers.Add(1)
		go func() {
			defer e.workers.Done()
			var wg sync.WaitGroup
			for _, c := range conns {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = c.t.Close(CloseGoingAway, "server shutting down")
					<-sem
				}()
			}
			wg.Wait()
		}()
		if e.broker != nil {
			// Once every connection has ended, the broker leaves the sessions (with
			// what is held for them) to the other nodes; it stops the matcher it
			// shares with them when it no longer needs it.
			served := make(chan struct{})
			go func() {
				e.serving.Wait()
				close(served)
			}()
			select {
			case <-served:
			case <-ctx.Done():
			}
			stopErr = e.broker.Stop(ctx)
		}
		stopErr = errors.Join(stopErr, e.matcher.Stop(ctx))
	})
	done := make(chan struct{})
	go func() {
		e.workers.Wait()
		e.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
		return stopErr
	case <-ctx.Done():
		return ctx.Err()
	}
}
