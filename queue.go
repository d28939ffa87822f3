package flamingo

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// This file is the engine's side of the queue: join_queue and leave_queue, the calls
// to the Matcher that they lead to, and the pairs the Matcher reports.
//
// Matcher calls are made with no engine lock held, in order for each session: a
// session's calls wait in session.matcherOps and one goroutine at a time makes them
// (runMatcherOps). So a leave_queue's Cancel always reaches the matcher before the
// Enqueue of the join after it, and the engine never waits for the matcher under its
// lock.

// matcherOp is a Matcher call decided for a session.
type matcherOp struct {
	cancel bool   // Cancel the user's ticket
	ticket Ticket // otherwise, Enqueue this ticket
	// after is how many Broker calls had been queued when the op was: they are made
	// before it (see waitOutbox).
	after uint64
	// then, if set, makes this op no Matcher call but a function to run once the
	// calls before it have been made (the reply to a release).
	then func()
}

// criteria are what a user waits with: those of a join_queue, which the session keeps
// for next.
type criteria struct {
	gender    Gender
	pref      Preference
	interests []string
}

// pendingJoin is a join to ask Config.OnJoin about, with no lock held.
type pendingJoin struct {
	crit criteria
	req  *JoinRequest // what the hook sees and may change
}

func (e *Engine) handleJoinQueue(c *conn, ev clientEvent) {
	if pj := e.joinQueue(c, ev); pj != nil {
		e.joinAfterHook(c, ev.typ, pj)
	}
}

// joinQueue answers a join_queue that the session's state refuses; otherwise it
// queues the user, or returns the join to ask Config.OnJoin about first.
func (e *Engine) joinQueue(c *conn, ev clientEvent) *pendingJoin {
	e.mu.Lock()
	defer e.unlock()
	s := e.sessionLocked(c, ev)
	if !e.mayJoinLocked(c, s, ev.typ) {
		return nil
	}
	return e.joinLocked(c, s, criteria{gender: ev.gender, pref: ev.pref, interests: ev.interests})
}

// mayJoinLocked reports whether s, the session of c, may join the queue now, and
// otherwise answers the event ref with the error that says why.
func (e *Engine) mayJoinLocked(c *conn, s *session, ref EventType) bool {
	switch {
	case s == nil:
		return false
	case s.chat != nil:
		e.sendErrorLocked(c, CodeAlreadyInChat, "leave your chat first", ref)
		return false
	case s.queued:
		e.sendErrorLocked(c, CodeAlreadyInQueue, "you are already in the queue", ref)
		return false
	case e.closed || e.draining:
		e.sendErrorLocked(c, CodeInternal, "the server is shutting down", ref)
		return false
	}
	return true
}

// joinLocked queues s, which may join, with crit; or, if there is an OnJoin hook,
// returns the join to ask it about.
func (e *Engine) joinLocked(c *conn, s *session, crit criteria) *pendingJoin {
	if e.cfg.OnJoin == nil {
		e.enqueueLocked(s, crit, "", nil)
		return nil
	}
	req := &JoinRequest{
		User:       s.handle,
		Gender:     crit.gender,
		Preference: crit.pref,
		Interests:  slices.Clone(crit.interests),
	}
	if c.addr.IsValid() {
		req.RemoteAddr = c.addr.String()
	}
	return &pendingJoin{crit: crit, req: req}
}

// joinAfterHook asks Config.OnJoin about pj, with no lock held, and queues the user
// if the hook agrees and the user still may join: they may have left, or joined on
// another connection, meanwhile. ref is the event that asked (join_queue or next).
func (e *Engine) joinAfterHook(c *conn, ref EventType, pj *pendingJoin) {
	refusal, ok := e.callOnJoin(c, pj.req)
	switch {
	case !ok:
		return
	case refusal != nil:
		e.sendError(c, refusal.Code, refusal.Message, ref)
		return
	}
	e.mu.Lock()
	defer e.unlock()
	s := c.sess
	if s == nil || s.handle != pj.req.User || !e.mayJoinLocked(c, s, ref) {
		return
	}
	e.enqueueLocked(s, pj.crit, pj.req.Pool, maps.Clone(pj.req.Labels))
}

// enqueueLocked puts s in the queue with crit, in pool with labels: the ticket also
// avoids the users s has blocked or been blocked by and its recent partners, and
// relaxes Config.InterestWait after it is made if it has interests. queue_joined
// follows once the matcher has the ticket (enqueued).
func (e *Engine) enqueueLocked(s *session, crit criteria, pool string, labels map[string]string) {
	if len(crit.interests) == 0 {
		crit.interests = nil
	}
	changed := s.gender != crit.gender || s.pref != crit.pref || !slices.Equal(s.interests, crit.interests)
	s.queued, s.joinAcked = true, false
	s.gender, s.pref, s.interests = crit.gender, crit.pref, crit.interests
	// JoinedAt also tells one ticket of a user from the next (see waitingLocked), so
	// it never repeats, even where the clock does not move between two joins.
	now := time.Now()
	if !now.After(e.lastJoin) {
		now = e.lastJoin.Add(time.Nanosecond)
	}
	e.lastJoin = now
	s.ticket = Ticket{
		User: s.handle, Gender: crit.gender, Preference: crit.pref, JoinedAt: now, Node: e.node,
		Interests: crit.interests, Pool: pool, Labels: labels, Avoid: e.avoidListLocked(s, now),
	}
	if len(crit.interests) > 0 {
		s.ticket.RelaxAt = now.Add(e.cfg.InterestWait)
	}
	e.inQueue++
	if changed {
		e.saveLocked(s) // the criteria move with the session; saved before the Enqueue
	}
	e.matcherOpLocked(s, matcherOp{ticket: s.ticket})
}

func (e *Engine) handleLeaveQueue(c *conn, ev clientEvent) {
	e.mu.Lock()
	defer e.unlock()
	s := e.sessionLocked(c, ev)
	switch {
	case s == nil:
		return
	case !s.queued:
		e.sendErrorLocked(c, CodeNotInQueue, "you are not in the queue", ev.typ)
		return
	}
	e.leaveQueueLocked(s)
	e.replyLocked(c, appendEmpty(nil, EventQueueLeft))
}

// dequeueLocked takes s out of the queue's bookkeeping; the matcher no longer holds
// its ticket, or is told by the caller.
func (e *Engine) dequeueLocked(s *session) {
	s.queued = false
	s.ticket = Ticket{}
	e.inQueue--
}

// leaveQueueLocked takes s out of the queue, if it is waiting, and cancels its ticket.
func (e *Engine) leaveQueueLocked(s *session) {
	if s.queued {
		e.dequeueLocked(s)
		e.matcherOpLocked(s, matcherOp{cancel: true})
	}
}

// ackJoinLocked sends queue_joined to s if its join has not been answered yet.
func (e *Engine) ackJoinLocked(s *session, others Stats) {
	if s.joinAcked {
		return
	}
	s.joinAcked = true
	if c := s.conn; c != nil {
		e.replyLocked(c, appendQueueJoined(nil, e.statsLocked(others).InQueue))
	}
}

// matcherOpLocked queues op for s and starts a goroutine to make it if none is running.
func (e *Engine) matcherOpLocked(s *session, op matcherOp) {
	op.after = e.outQueued
	s.matcherOps = append(s.matcherOps, op)
	if !s.matcherBusy {
		s.matcherBusy = e.goLocked(func() { e.runMatcherOps(s) })
	}
}

// runMatcherOps makes the Matcher calls queued for s, in order, until none is left.
func (e *Engine) runMatcherOps(s *session) {
	for {
		op, ok := e.nextMatcherOp(s)
		if !ok {
			return
		}
		switch {
		case op.then != nil:
			op.then()
			continue
		case op.cancel:
			e.cancelTicket(s.handle)
			continue
		}
		err := e.callEnqueue(op.ticket, op.after)
		if errors.Is(err, ErrAlreadyQueued) && e.isWaiting(s, op.ticket) {
			// A ticket of this user is already waiting: a stale one that a cluster
			// resync or a move between nodes left, or this very ticket, put back
			// after the cluster lost nothing. Either way this one takes its place.
			e.cancelTicket(s.handle)
			err = e.callEnqueue(op.ticket, 0)
		}
		e.enqueued(s, op.ticket, err)
	}
}

func (e *Engine) nextMatcherOp(s *session) (matcherOp, bool) {
	e.mu.Lock()
	defer e.unlock()
	if len(s.matcherOps) == 0 {
		s.matcherOps, s.matcherBusy = nil, false
		return matcherOp{}, false
	}
	op := s.matcherOps[0]
	s.matcherOps = s.matcherOps[1:]
	return op, true
}

// callEnqueue enqueues t once the first after Broker calls have been made.
func (e *Engine) callEnqueue(t Ticket, after uint64) error {
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.MatcherTimeout)
	defer cancel()
	if e.broker != nil {
		if err := e.waitOutbox(ctx, after); err != nil {
			return err
		}
	}
	return e.matcher.Enqueue(ctx, t)
}

func (e *Engine) cancelTicket(user string) {
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.MatcherTimeout)
	defer cancel()
	_, err := e.matcher.Cancel(ctx, user)
	if err != nil && !(errors.Is(err, ErrMatcherNotStarted) && e.isClosed()) { // (the queue went with the matcher)
		e.log.Error("flamingo: matcher cancel failed", slog.String("user", user), slog.Any("err", err))
	}
}

func (e *Engine) isWaiting(s *session, t Ticket) bool {
	e.mu.Lock()
	defer e.unlock()
	return s.waitsWith(t)
}

// enqueued answers the join of s once the matcher has taken t, or failed to: with
// queue_joined, or with error internal instead, and out of the queue. If s left the
// queue meanwhile, the Cancel queued when it left follows this Enqueue.
func (e *Engine) enqueued(s *session, t Ticket, err error) {
	others := e.otherStats()
	e.mu.Lock()
	defer e.unlock()
	if !s.waitsWith(t) {
		return
	}
	if err == nil {
		e.ackJoinLocked(s, others)
		return
	}
	e.log.Error("flamingo: matcher enqueue failed", slog.String("user", t.User), slog.Any("err", err))
	// The call may have reached the matcher all the same (a timeout, a lost reply):
	// the ticket is taken out again, so that nobody is paired with a user who is not
	// waiting.
	e.leaveQueueLocked(s)
	if c := s.conn; c != nil {
		e.sendErrorLocked(c, CodeInternal, "could not join the queue, try again", EventJoinQueue)
	}
}

// onPair is the report function installed in the matcher.
func (e *Engine) onPair(p Pair) {
	if e.broker != nil && (!e.ownTicket(p.A) || !e.ownTicket(p.B)) {
		e.onRemotePair(p)
		return
	}
	if info, ok := e.startLocalPair(p); ok {
		e.callOnMatch(info)
	}
}

// startLocalPair starts the chat of a pair whose users are both on this node.
func (e *Engine) startLocalPair(p Pair) (ChatInfo, bool) {
	ice := [2][]ICEServer{e.iceServers(p.A.User), e.iceServers(p.B.User)}
	others := e.otherStats()
	e.mu.Lock()
	defer e.unlock()
	a, b := e.waitingLocked(p.A), e.waitingLocked(p.B)
	if a == nil || b == nil || a == b {
		if p.ChatID != "" && e.broker != nil {
			e.publishEndChatLocked(p.ChatID, [2]string{p.A.User, p.B.User}, "", "")
		}
		// One side left before the pair arrived: the other keeps its place in the
		// queue, by its original JoinedAt.
		if a != nil {
			e.matcherOpLocked(a, matcherOp{ticket: p.A})
		}
		if b != nil && b != a {
			e.matcherOpLocked(b, matcherOp{ticket: p.B})
		}
		return ChatInfo{}, false
	}
	id := p.ChatID
	if id == "" {
		id = randomHex(16)
	}
	ch := e.startChatLocked(id, [2]*session{a, b}, p, ice, others)
	return ch.info(), true
}

// waitingLocked returns the session that t belongs to if it is still waiting with t.
func (e *Engine) waitingLocked(t Ticket) *session {
	s := e.sessions[t.User]
	if s == nil || !s.waitsWith(t) || s.conn == nil {
		return nil
	}
	return s
}
