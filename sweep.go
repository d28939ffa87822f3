package flamingo

import (
	"context"
	"math/rand/v2"
	"time"
)

// This file enforces every connection's deadlines: InitTimeout, WriteTimeout and the
// heartbeat; and the end of typing indicators that were not refreshed.

// sweeper enforces the deadlines of every connection. One goroutine that looks at each
// connection every tenth of the shortest of those durations costs less than three
// timers per connection, and the per-frame timer it replaces was on the relay's hot
// path. Each sweep also sets the clock readers stamp frames with (Engine.clock).
func (e *Engine) sweeper() {
	defer e.workers.Done()
	// At least every second, for the typing timeout (conversation.go).
	every := min(e.cfg.InitTimeout, e.cfg.WriteTimeout, e.cfg.HeartbeatInterval, 10*time.Second) / 10
	tick := time.NewTicker(max(every, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-e.done:
			return
		case now := <-tick.C:
			e.clock.Store(int64(now.Sub(e.epoch)))
			e.sweep(now)
		}
	}
}

func (e *Engine) sweep(now time.Time) {
	e.mu.Lock()
	closed := e.closed
	if !closed {
		if e.sweeps++; e.sweeps%64 == 0 {
			e.forgetIdleIPsLocked(now)
		}
		e.expireTypingLocked(now)
		e.forgetEndedChatsLocked(now) // what a report could carry (moderation.go)
	}
	e.unlock()
	if closed {
		return
	}
	// The connections are looked at with the lock shared, so that a sweep of many
	// thousands does not hold up their messages (relayFast); the few with something
	// due are dealt with under the exclusive lock, looked at again.
	var due []*conn
	e.mu.RLock()
	for c := range e.conns {
		if e.sweepActionLocked(c, now) != sweepNone {
			due = append(due, c)
		}
	}
	e.mu.RUnlock()
	if len(due) == 0 {
		return
	}
	e.mu.Lock()
	defer e.unlock()
	if e.closed {
		return
	}
	for _, c := range due {
		switch e.sweepActionLocked(c, now) {
		case sweepInitTimeout:
			e.closeConnLocked(c, ClosePolicyViolation, "init timeout")
		case sweepWriteTimeout:
			e.dropSlowLocked(c, "write timeout")
		case sweepPing:
			if e.postponePingLocked(c, now) {
				continue
			}
			c.pinging = true
			e.goLocked(func() { e.ping(c) })
		}
	}
}

// sweepAction is what a sweep does to a connection.
type sweepAction uint8

const (
	sweepNone         sweepAction = iota
	sweepInitTimeout              // no init within InitTimeout
	sweepWriteTimeout             // a write under way for WriteTimeout
	sweepPing                     // a heartbeat is due
)

// sweepActionLocked returns what is due for c at now (e.mu held, shared will do).
func (e *Engine) sweepActionLocked(c *conn, now time.Time) sweepAction {
	switch {
	case c.closed:
	case c.sess == nil && !c.replaced && now.Sub(c.started) >= e.cfg.InitTimeout:
		return sweepInitTimeout
	case c.writeSince.Load() != 0 && now.Sub(e.epoch.Add(time.Duration(c.writeSince.Load()))) >= e.cfg.WriteTimeout:
		return sweepWriteTimeout
	case c.pinger != nil && !c.pinging && !now.Before(c.nextPing):
		return sweepPing
	}
	return sweepNone
}

// pingCheckEvery is how many heartbeat intervals a connection that talks goes without
// a ping at most (and a sweep): its frames show that it is alive, but only a pong
// shows that what the server sends reaches it.
const pingCheckEvery = 4

// firstPingDelay is how long after a connection's start (or the first frame a due
// ping finds) it is pinged if it stays silent: at random between half and the whole
// HeartbeatInterval, so that connections made together (a load balancer's reconnect
// wave, a restart) are not pinged together.
func (e *Engine) firstPingDelay() time.Duration {
	half := e.cfg.HeartbeatInterval / 2
	return half + rand.N(half+1)
}

// postponePingLocked reports whether c's due ping is put off because a frame was read
// from c after the sign of life the ping was counted from. The ping is then due once
// c has been silent for the interval less a random tenth (while the first wait is not
// over, for a firstPingDelay), so that a peer is still pinged within an interval of
// the last thing it sent, and at the latest pingCheckEvery intervals after the last
// pong.
func (e *Engine) postponePingLocked(c *conn, now time.Time) bool {
	heard := e.epoch.Add(time.Duration(c.heard.Load()))
	check := c.pongAt.Add(pingCheckEvery * e.cfg.HeartbeatInterval)
	if !heard.After(c.pingFrom) || !check.After(now) {
		return false
	}
	delay := e.cfg.HeartbeatInterval - rand.N(e.cfg.HeartbeatInterval/10+1)
	if c.pingFrom.Equal(c.started) { // the first wait: no pong, nor frame, counted yet
		delay = e.firstPingDelay()
	}
	c.pingFrom = heard
	next := heard.Add(delay)
	if next.After(check) {
		next = check
	}
	if !next.After(now) {
		return false
	}
	c.nextPing = next
	return true
}

// ping runs one heartbeat on c, closing c if it goes unanswered.
func (e *Engine) ping(c *conn) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.HeartbeatTimeout)
	err := c.pinger.Ping(ctx)
	cancel()
	e.pinged(c, err)
}

func (e *Engine) pinged(c *conn, err error) {
	e.mu.Lock()
	defer e.unlock()
	c.pinging = false
	c.pongAt = time.Now()
	c.pingFrom = c.pongAt
	c.nextPing = c.pongAt.Add(e.cfg.HeartbeatInterval)
	if err != nil && !c.closed {
		c.unresponsive = true
		e.closeConnLocked(c, CloseGoingAway, "heartbeat timeout")
	}
}
