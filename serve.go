package flamingo

import (
	"context"
	"log/slog"
	"time"
	"unicode/utf8"
)

// This file runs one connection: Serve's read loop, from the first frame to the
// disconnect.

// Serve runs the protocol over one connection and blocks until the connection ends: the
// peer closes it, it fails, the engine closes it, ctx is done (the connection is closed
// with [CloseGoingAway]) or the engine shuts down. It closes t before returning. It
// returns [ErrEngineClosed] if Shutdown had begun before the call, nil otherwise.
func (e *Engine) Serve(ctx context.Context, t Transport) error {
	c := &conn{e: e, t: t, ctx: ctx, started: time.Now()}
	c.pinger, _ = t.(Pinger)
	if a, ok := t.(Addresser); ok {
		c.addr = a.RemoteAddr()
	}
	c.limits.init(&e.cfg)
	// The first ping is due after a random half to whole interval (firstPingDelay),
	// unless a frame puts it off.
	c.pingFrom, c.pongAt = c.started, c.started
	c.nextPing = c.started.Add(e.firstPingDelay())
	if !e.register(c) {
		if e.isDraining() {
			_ = t.Close(CloseServiceRestart, "server restarting")
			return ErrEngineClosed
		}
		_ = t.Close(CloseGoingAway, "server shutting down")
		return ErrEngineClosed
	}
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
		if c.pinger != nil {
			if now := e.clock.Load(); c.heard.Load() != now {
				c.heard.Store(now) // once a sweep at most
			}
		}
		e.handle(c, b)
	}
	e.disconnect(c)
	return nil
}

// register adds c to the connections being served, unless Shutdown has begun.
func (e *Engine) register(c *conn) bool {
	e.mu.Lock()
	defer e.unlock()
	if e.closed || e.draining {
		return false
	}
	e.conns[c] = struct{}{}
	e.serving.Add(1)
	return true
}

// isDraining reports whether Drain has begun.
func (e *Engine) isDraining() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.draining
}

// isClosed reports whether Shutdown has begun.
func (e *Engine) isClosed() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.closed
}

// disconnect is called once the read loop of c has ended.
func (e *Engine) disconnect(c *conn) {
	e.mu.Lock()
	defer e.unlock()
	delete(e.conns, c)
	if s := c.sess; s != nil {
		e.detachLocked(c, true)
		e.log.Debug("flamingo: user away", slog.String("user", s.handle))
	}
	e.releaseConnLocked(c, CloseNormal, "") // the peer ended it: no close of the engine's
}
