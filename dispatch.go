package flamingo

import (
	"time"
)

// This file dispatches one client event: the rate limits and checks that come before
// any state is touched, then the handler of its type, and the error replies they share.

// handle processes one client frame on c.
func (e *Engine) handle(c *conn, b []byte) {
	now := time.Now()
	r := c.limits.events.ReserveN(now, 1) // before parsing: shed a flood cheaply
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now)
		e.rateLimited(c, "", max(d, time.Millisecond))
		return
	}
	ev, perr := parseEvent(b, &c.lastChatID)
	if perr != nil {
		e.sendError(c, perr.code, perr.msg, perr.ref)
		return
	}
	switch ev.typ {
	case EventSignal:
		r.CancelAt(now) // signals have their own limit instead of the event rate
		if ok, retry := take(&c.limits.signals, now); !ok {
			e.rateLimited(c, ev.typ, retry)
			return
		}
	case EventSendMessage:
		if ok, retry := take(&c.limits.messages, now); !ok {
			e.rateLimited(c, ev.typ, retry)
			return
		}
		if code, msg := e.checkContent(ev.content); code != "" {
			e.sendError(c, code, msg, ev.typ)
			return
		}
	case EventJoinQueue:
		if ok, retry := take(&c.limits.joins, now); !ok {
			e.rateLimited(c, ev.typ, retry)
			return
		}
	}
	switch ev.typ {
	case EventInit:
		e.handleInit(c, ev)
	case EventPing:
		e.handlePing(c, ev)
	case EventGetStats:
		e.handleGetStats(c, ev)
	case EventJoinQueue:
		e.handleJoinQueue(c, ev)
	case EventLeaveQueue:
		e.handleLeaveQueue(c, ev)
	case EventSendMessage:
		e.handleSendMessage(c, ev)
	case EventLeaveChat:
		e.handleLeaveChat(c, ev)
	case EventTyping:
		e.handleTyping(c, ev)
	case EventSignal:
		e.handleSignal(c, ev)
	case EventNext:
		e.handleNext(c, ev)
	case EventBlock:
		e.handleBlock(c, ev)
	case EventReport:
		e.handleReport(c, ev)
	}
}

// sessionLocked returns c's session, or answers not_initialized (once c has been
// taken over, nothing: it is closing) and returns nil.
func (e *Engine) sessionLocked(c *conn, ev clientEvent) *session {
	s := c.sess
	if s == nil && !c.replaced {
		e.sendErrorLocked(c, CodeNotInitialized, "send init first", ev.typ)
	}
	return s
}

func (e *Engine) handlePing(c *conn, ev clientEvent) {
	e.mu.Lock()
	defer e.unlock()
	if e.sessionLocked(c, ev) != nil {
		e.replyLocked(c, appendEmpty(nil, EventPong))
	}
}

func (e *Engine) handleGetStats(c *conn, ev clientEvent) {
	others := e.otherStats()
	e.mu.Lock()
	defer e.unlock()
	if e.sessionLocked(c, ev) != nil {
		e.replyLocked(c, appendStats(nil, e.statsLocked(others)))
	}
}

func (e *Engine) sendError(c *conn, code ErrorCode, msg string, ref EventType) {
	e.mu.Lock()
	defer e.unlock()
	e.sendErrorLocked(c, code, msg, ref)
}

// sendErrorLocked answers c with an error event. Each one spends a token of c's error
// budget; a connection that has spent it all is closed instead, as abusive.
func (e *Engine) sendErrorLocked(c *conn, code ErrorCode, msg string, ref EventType) {
	e.sendErrorFrameLocked(c, code, appendError(nil, code, msg, ref))
}

func (e *Engine) sendErrorFrameLocked(c *conn, code ErrorCode, frame []byte) {
	if ok, _ := take(&c.limits.errors, time.Now()); !ok {
		if s := c.sess; s != nil {
			e.log.Info("flamingo: closing abusive connection", "user", s.handle)
			e.detachLocked(c, true)
		}
		e.closeConnLocked(c, ClosePolicyViolation, "too many errors")
		return
	}
	if e.sendLocked(c, outFrame{b: frame}) {
		e.counters.errors[code]++
	} else {
		e.dropSlowLocked(c, "too slow")
	}
}

// rateLimited tells c that its event was dropped and when to try again.
func (e *Engine) rateLimited(c *conn, ref EventType, retry time.Duration) {
	e.mu.Lock()
	defer e.unlock()
	e.rateLimitedLocked(c, ref, retry)
}

func (e *Engine) rateLimitedLocked(c *conn, ref EventType, retry time.Duration) {
	e.counters.rateLimited[ref]++
	e.sendErrorFrameLocked(c, CodeRateLimited, appendRateLimited(nil, ref, retry))
}
