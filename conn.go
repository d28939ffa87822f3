package flamingo

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds one connection being served: its bounded outgoing queue, the writer
// goroutine that drains it, and how a connection is closed or dropped as too slow.

// conn is one connection being served. Fields after writeSince are guarded by Engine.mu;
// those after qmu are also guarded by qmu, which the writer takes alone (nextBatch),
// so that a writer between batches never waits for the engine's lock. Code holding
// Engine.mu takes qmu to touch them; a field the writer only reads (closed,
// closeAt) is changed with both held, and may be read with either.
type conn struct {
	e *Engine
	t Transport

	ctx context.Context // given to Serve, for Config.OnJoin

	pinger  Pinger     // t, if it is one
	addr    netip.Addr // the peer's address, if t is an Addresser
	limits  connLimits
	started time.Time // when Serve began, for InitTimeout
	// lastChatID is the chat id of the last send_message, kept by the reader
	// goroutine (the only one to touch it) so that each message need not copy it.
	lastChatID string
	// heard is when the reader last read a frame, by the sweeper's clock
	// (Engine.clock, so up to a sweep early), on a connection with a Pinger: a frame
	// is a sign of life, which puts off the heartbeat (postponePingLocked).
	heard atomic.Int64
	// writeSince is when the write under way began (Engine.sinceEpoch), 0 between
	// writes: the sweeper drops a connection whose write takes over WriteTimeout.
	writeSince atomic.Int64

	sess     *session
	owner    *session // the session c was attached to last, kept after detaching
	replaced bool     // another connection took the session over
	// unresponsive marks a peer that stopped reading or answering pings: its close
	// does not wait for a handshake it would not answer (see closeConnLocked).
	unresponsive bool
	pinging      bool      // a heartbeat ping is under way
	nextPing     time.Time // when the next heartbeat ping is due
	// pingFrom is the sign of life nextPing was counted from: Serve's start (the
	// first wait, see firstPingDelay), the last pong, or a frame read (heard);
	// pongAt is Serve's start or the last pong.
	pingFrom, pongAt time.Time
	// slack and slackBytes are what the resume replayed: room beyond the bounds, so
	// that a replay at the bound does not make a reading client look slow.
	slack, slackBytes int

	qmu      sync.Mutex
	closed   bool // closing or closed: nothing more is queued
	writing  bool // a writer goroutine is running
	queue    []outFrame
	inflight []outFrame   // the batch the writer is writing
	spare    []outFrame   // an empty slice to take the queue's place
	written  atomic.Int64 // how many frames of inflight have been written
	qbytes   int
	closeAt  *closeReq // close the transport once the queue is written
	// pushed and pushedBytes count every frame ever queued, for a replay to measure
	// itself while the writer takes frames off the queue (claimed, cluster.go).
	pushed, pushedBytes int
}

// outFrame is one event queued for a connection. keep marks chat events, which are
// held for the user if the connection ends before they are written. buf, if set, is
// the pooled buffer of b, freed once b is written (a frame that is held instead
// leaves the pool).
type outFrame struct {
	b    []byte
	keep bool
	buf  *frame
}

type closeReq struct {
	code   CloseCode
	reason string
}

// writtenHalt, stored in conn.written when the connection is detached from its
// session, stops the writer before its next frame.
const writtenHalt = 1 << 40

// keepQueueCap is the largest queue slice kept for reuse; a larger one (after a
// burst) is left to the garbage collector so that idle connections stay small.
const keepQueueCap = 16

// closeConn marks c closed and closes its transport on a worker goroutine, so that a
// caller is never blocked by a slow close handshake.
func (e *Engine) closeConn(c *conn, code CloseCode, reason string) {
	e.mu.Lock()
	defer e.unlock()
	e.closeConnLocked(c, code, reason)
}

func (e *Engine) closeConnLocked(c *conn, code CloseCode, reason string) {
	if !c.closed {
		e.counters.closes[code]++ // a close the engine decided
		e.releaseConnLocked(c, code, reason)
	}
}

// releaseConnLocked marks c closed and closes its transport on a worker goroutine,
// without counting the close: it is also how the engine lets go of a connection its
// peer ended.
func (e *Engine) releaseConnLocked(c *conn, code CloseCode, reason string) {
	if c.closed {
		return
	}
	c.setClosedLocked()
	e.goLocked(func() { e.closeTransport(c, code, reason) })
}

// setClosedLocked marks c closed (Engine.mu held).
func (c *conn) setClosedLocked() {
	c.qmu.Lock()
	c.closed = true
	c.qmu.Unlock()
}

// closeWhenWrittenLocked closes c once its writer has written what is queued.
func (e *Engine) closeWhenWrittenLocked(c *conn, code CloseCode, reason string) {
	c.qmu.Lock()
	if c.writing {
		c.closeAt = &closeReq{code, reason}
		c.qmu.Unlock()
		return
	}
	c.qmu.Unlock()
	e.closeConnLocked(c, code, reason)
}

// sendLocked queues f for c within the queue's bounds; it reports false if c is
// closed or its queue is full. Frames replayed on resume do not count against the
// bounds (c.slack).
func (e *Engine) sendLocked(c *conn, f outFrame) bool {
	ok, start := e.queueLocked(c, f)
	if start {
		e.startWriterLocked(c)
	}
	return ok
}

// queueLocked queues f for c within the queue's bounds, with e.mu held (shared will
// do): it reports whether f was queued, and whether a writer is to be started for
// it, which the caller must do (counting it in e.workers before it releases e.mu).
func (e *Engine) queueLocked(c *conn, f outFrame) (ok, start bool) {
	if c.closed {
		return false, false
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	pending := len(c.queue) + len(c.inflight) - int(c.written.Load()) - c.slack
	if pending >= e.cfg.MaxQueuedEvents || c.qbytes+len(f.b) > e.cfg.MaxQueuedBytes+c.slackBytes {
		return false, false
	}
	return true, c.pushQLocked(f)
}

// pushLocked queues f for c regardless of the bounds (used when a resume replays held
// events, which were within the bounds when they were held) and starts a writer.
func (e *Engine) pushLocked(c *conn, f outFrame) {
	if c.closed {
		return
	}
	c.qmu.Lock()
	start := c.pushQLocked(f)
	c.qmu.Unlock()
	if start {
		e.startWriterLocked(c)
	}
}

// pushQLocked appends f to c's queue (qmu held), and reports whether a writer is to
// be started for it.
func (c *conn) pushQLocked(f outFrame) bool {
	c.queue = append(c.queue, f)
	c.qbytes += len(f.b)
	c.pushed++
	c.pushedBytes += len(f.b)
	if c.writing || c.e.closed { // (see goLocked on why not after Shutdown began)
		return false
	}
	c.writing = true
	return true
}

// startWriterLocked starts c's writer once Engine.mu is released (see Engine.unlock):
// starting a goroutine may wake a thread, which is not done with the lock held.
func (e *Engine) startWriterLocked(c *conn) {
	e.workers.Add(1)
	if e.nstart < len(e.starts) {
		e.starts[e.nstart] = c
		e.nstart++
		return
	}
	go c.writeLoop()
}

// replyLocked queues a frame that answers c's own event. A connection too far behind
// to take it is dropped as a slow consumer: nothing is left out silently.
func (e *Engine) replyLocked(c *conn, b []byte) {
	if !e.sendLocked(c, outFrame{b: b}) {
		e.dropSlowLocked(c, "too slow")
	}
}

// dropSlowLocked closes c as a slow consumer; its user is away from then on, with the
// frames not yet written held for them.
func (e *Engine) dropSlowLocked(c *conn, reason string) {
	if c.closed {
		return
	}
	if s := c.sess; s != nil {
		e.log.Info("flamingo: dropping slow consumer", slog.String("user", s.handle), slog.String("reason", reason))
		e.detachLocked(c, true)
	}
	c.unresponsive = true
	e.counters.slowConsumers++
	e.closeConnLocked(c, CloseSlowConsumer, reason)
}

// writeLoop writes c's queue until it is empty, then exits: an idle connection has no
// writer goroutine. On a transport that gathers (the WebSocket one), each batch goes
// out in one write to the socket.
func (c *conn) writeLoop() {
	e := c.e
	defer e.workers.Done()
	ctx := context.Background()
	g, _ := c.t.(gatherer)
	for {
		batch := e.nextBatch(c)
		if batch == nil {
			return
		}
		if g != nil {
			g.gather()
		}
		// batch[sent:n] are written to the transport but, when it gathers, not yet
		// known to be on their way: if the final write fails, they are held with
		// the frame that failed.
		sent, n := 0, 0
		for _, f := range batch {
			// Counted as written before the write, so that a disconnect seen by the
			// reader meanwhile does not hold (and later repeat) a frame the client
			// may already have; if the write fails, it is held after all. Once c
			// has been detached (writtenHalt), what is left of the batch is held
			// for the user and must not be written here too.
			if c.written.Add(1) > int64(len(batch)) {
				break
			}
			c.writeSince.Store(c.e.sinceEpoch())
			err := c.t.Write(ctx, f.b)
			c.writeSince.Store(0)
			n++
			if err != nil {
				// The transport wrote nothing of f. What it gathered before f is
				// sent if it can be (with any close frame written meanwhile), and
				// then only f is not on its way.
				if g != nil && g.flush() == nil {
					for _, f := range batch[sent : n-1] {
						f.buf.free()
					}
					sent = n - 1
				}
				e.writeFailed(c, batch[sent:n])
				return
			}
			if g == nil {
				f.buf.free()
				sent = n
				continue
			}
			if g.gathered() >= gatherFlushAt { // a long batch goes out in parts
				if !c.flushGathered(g, batch[sent:n]) {
					return
				}
				sent = n
				g.gather()
			}
		}
		if g != nil && !c.flushGathered(g, batch[sent:n]) {
			return
		}
	}
}

// flushGathered writes out what g gathered, the frames fs, and frees their buffers.
// If the write fails, fs are held (writeFailed) and it reports false: the writer is
// done.
func (c *conn) flushGathered(g gatherer, fs []outFrame) bool {
	c.writeSince.Store(c.e.sinceEpoch())
	err := g.flush()
	c.writeSince.Store(0)
	if err != nil {
		c.e.writeFailed(c, fs)
		return false
	}
	for _, f := range fs {
		f.buf.free()
	}
	return true
}

// gatherer is a Transport that can gather the frames written between gather and
// flush into one write to its connection (wsTransport). Frames written in between
// return at once; flush writes them and reports whether that worked.
type gatherer interface {
	gather()
	flush() error
	gathered() int // bytes gathered since gather
}

// nextBatch takes c's queue for the writer, or returns nil when the writer is to exit:
// the queue is empty or c is closed. The batch before it is done with by then. It
// takes only c.qmu, and Engine.mu only to close c once its last frame is written.
func (e *Engine) nextBatch(c *conn) []outFrame {
	c.qmu.Lock()
	if b := c.inflight; b != nil && cap(b) <= keepQueueCap {
		clear(b)
		c.spare = b[:0] // reused for the queue: no allocation per batch
	}
	c.inflight = nil
	if c.queue == nil {
		c.queue, c.spare = c.spare, nil
	}
	if c.closed || len(c.queue) == 0 {
		c.writing = false
		req := c.closeAt
		c.qmu.Unlock()
		if req != nil {
			e.closeConn(c, req.code, req.reason)
		}
		return nil
	}
	batch := c.queue
	c.inflight, c.queue, c.spare, c.qbytes = batch, c.spare, nil, 0
	c.written.Store(0)
	c.qmu.Unlock()
	return batch
}

// writeFailed ends c after a failed write of fs: the frames of the batch that are not
// known to have left, in order.
func (e *Engine) writeFailed(c *conn, fs []outFrame) {
	e.mu.Lock()
	defer e.unlock()
	// Uncounted under the lock, so that exactly one of detachLocked (now or already
	// done) and the cases below holds fs.
	c.written.Add(-int64(len(fs)))
	c.qmu.Lock()
	c.writing = false
	c.qmu.Unlock()
	switch s := c.owner; {
	case c.sess != nil:
		e.detachLocked(c, true) // holds fs and what follows them
	case s != nil && s.conn == nil:
		// The reader saw the disconnect first and held what followed fs; fs go
		// before it.
		var held [][]byte
		for _, f := range fs {
			if f.keep {
				held = append(held, f.b)
				s.heldBytes += len(f.b)
			}
		}
		s.held = append(held, s.held...)
	case s != nil && s.conn != nil && e.sessions[s.handle] == s:
		// The user came back on another connection before this write failed: fs
		// were not replayed, so they go there now, after what was (the one case
		// where events arrive out of order).
		for _, f := range fs {
			if f.keep {
				e.deliverLocked(s, f.b, true)
			}
		}
	}
	e.closeConnLocked(c, CloseGoingAway, "write failed")
}
