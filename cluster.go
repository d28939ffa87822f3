package flamingo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// This file is the Engine's side of the [Broker] seam. None of it runs on an Engine
// without a Broker.
//
// Broker calls decided under e.mu wait in e.outbox, in order, and one goroutine
// (flushOutbox) makes them with no lock held: so the Broker sees each node's decisions
// in the order they were made, and the engine never calls it under its lock.

// claim is a session being claimed from another node: the events that arrive for
// it meanwhile wait here, to follow the ones the claim returns, and so do the
// requests of other nodes to release it (it may move on before it has arrived).
type claim struct {
	events   []ClusterEvent
	releases []func(SessionState)
	done     chan struct{} // closed when the claim is over
}

// host is the Engine as its Broker sees it.
type host struct{ e *Engine }

var _ BrokerHost = host{}

func (e *Engine) ownTicket(t Ticket) bool {
	return t.Node == "" || t.Node == e.node
}

// publishLocked queues a Broker call, made after the calls queued before it.
func (e *Engine) publishLocked(call func()) {
	e.outbox = append(e.outbox, call)
	e.outQueued++
	if len(e.outbox) == 1 {
		select {
		case e.flush <- struct{}{}:
		default:
		}
	}
}

// flushOutbox makes the queued Broker calls, in order, until Shutdown has no more
// connections to wait for.
func (e *Engine) flushOutbox() {
	defer e.flusher.Done()
	var batch []func()
	for {
		stopping := false
		select {
		case <-e.flush:
		case <-e.flushStop:
			stopping = true
		}
		for {
			batch = e.takeOutbox(batch[:0])
			if len(batch) == 0 {
				break
			}
			for i, call := range batch {
				call()
				batch[i] = nil
			}
			e.madeOutbox(len(batch))
		}
		if stopping {
			return
		}
	}
}

// madeOutbox records that n more Broker calls have been made, and wakes those who
// wait for them (waitOutbox).
func (e *Engine) madeOutbox(n int) {
	e.mu.Lock()
	defer e.unlock()
	e.outMade += uint64(n)
	if e.outProgress != nil {
		close(e.outProgress)
		e.outProgress = nil
	}
}

// waitOutbox waits until the first n Broker calls ever queued have been made, the
// flusher has stopped, or ctx is done. A Matcher call waits so for the Broker calls
// decided before it: the Save of a new session, made through the outbox, must reach
// the cluster before the user's first Enqueue, or a node could pair the user before
// the cluster knows where to send them their partner's messages.
// It returns an error if they could not be made in time.
func (e *Engine) waitOutbox(ctx context.Context, n uint64) error {
	for {
		progress := e.outboxProgress(n)
		if progress == nil {
			return nil
		}
		select {
		case <-progress:
		case <-e.flushStop:
			return ErrEngineClosed
		case <-ctx.Done():
			return fmt.Errorf("flamingo: waiting for the cluster to take this node's earlier changes: %w", ctx.Err())
		}
	}
}

// outboxProgress returns nil if the first n calls have been made, otherwise a channel
// closed at the next progress.
func (e *Engine) outboxProgress(n uint64) <-chan struct{} {
	e.mu.Lock()
	defer e.unlock()
	if e.outMade >= n {
		return nil
	}
	if e.outProgress == nil {
		e.outProgress = make(chan struct{})
	}
	return e.outProgress
}

// takeOutbox returns the queued Broker calls and leaves spare in their place.
func (e *Engine) takeOutbox(spare []func()) []func() {
	e.mu.Lock()
	defer e.unlock()
	calls := e.outbox
	e.outbox = spare
	return calls
}

// saveLocked tells the cluster about s as this node holds it now.
func (e *Engine) saveLocked(s *session) {
	if b := e.broker; b != nil {
		st := e.stateLocked(s, false)
		e.publishLocked(func() { b.Save(*st) })
	}
}

// publishEndChatLocked tells the cluster that chat id ended here (see Broker.EndChat).
func (e *Engine) publishEndChatLocked(id string, users [2]string, notify string, reason EndReason) {
	b := e.broker
	e.publishLocked(func() { b.EndChat(id, users, notify, reason) })
}

// stateLocked describes s for the cluster, with its held events if withHeld is set.
func (e *Engine) stateLocked(s *session, withHeld bool) *SessionState {
	st := &SessionState{Found: true, User: s.handle, Digest: s.digest, Gender: s.gender, Away: s.conn == nil}
	if ch := s.chat; ch != nil {
		p := ch.partner(s)
		st.Chat = &ChatState{ID: ch.id, Peer: p.handle, PeerGender: p.gender, StartedAt: ch.started,
			Acked: ch.sideOf(s).acked.list()}
	}
	e.criteriaStateLocked(s, st)
	if withHeld {
		for _, b := range s.held {
			st.Events = append(st.Events, ClusterEvent{Frame: b})
		}
	}
	return st
}

// claimed finishes the claim cl of session h for connection c, which Broker.Claim
// answered with st and err: c resumes the session, gets a new one if there was none,
// or is closed if the cluster could not be asked. Nodes that asked for the session
// meanwhile get it then (or hear that it is not here).
func (e *Engine) claimed(c *conn, cl *claim, ev clientEvent, h string, digest [sha256.Size]byte, st SessionState, err error) {
	e.mu.Lock()
	defer e.unlock()
	delete(e.claims, h)
	defer e.checkDrainedLocked()
	defer close(cl.done)
	defer func() {
		for _, reply := range cl.releases {
			e.releaseLocked(h, reply)
		}
	}()
	switch {
	case errors.Is(err, ErrSessionNotFound):
		if !c.closed {
			e.newSessionLocked(c, ev)
		}
		return
	case err == nil && (e.sessions[h] != nil || c.sess != nil || c.replaced):
		// Cannot happen while claims[h] kept other inits of h from claiming.
		err = errors.New("claimed session already here")
	}
	if err != nil {
		// The session may exist, but could not be reached: the client should come
		// back with the same user_id, not get a new one.
		e.log.Error("flamingo: claiming a session failed", slog.String("user", h), slog.Any("err", err))
		e.sendErrorLocked(c, CodeInternal, "could not resume the session, try again", EventInit)
		e.closeConnLocked(c, CloseInternalError, "resume failed")
		return
	}
	s := &session{handle: h, digest: digest, gender: st.Gender}
	e.restoreCriteriaLocked(s, &st)
	e.sessions[h] = s
	chatID := ""
	if cs := st.Chat; cs != nil {
		peer := &session{handle: cs.Peer, gender: cs.PeerGender, remote: true}
		ch := &chat{id: cs.ID, users: [2]*session{s, peer}, started: cs.StartedAt}
		for _, m := range cs.Acked {
			ch.sides[0].acked.add(m)
		}
		e.chats[ch] = struct{}{}
		s.chat = ch
		e.inChat++
		chatID = ch.id
	}
	e.attachLocked(c, s)
	e.counters.resumed++
	if st.Away {
		e.partnerBackLocked(s)
	}
	// The writer may take the queue meanwhile (it needs only qmu): what the replay
	// adds is counted as it is pushed.
	c.qmu.Lock()
	n, nBytes := c.pushed, c.pushedBytes
	c.qmu.Unlock()
	e.pushLocked(c, outFrame{b: appendReady(nil, ev.userID, true, chatID)})
	for _, ev := range st.Events {
		e.applyLocked(s, ev, true)
	}
	for _, ev := range cl.events {
		e.applyLocked(s, ev, true)
	}
	// What the resume replayed goes past the bounds, as on a local resume.
	c.qmu.Lock()
	c.slack, c.slackBytes = c.pushed-n, c.pushedBytes-nBytes
	c.qmu.Unlock()
	e.saveLocked(s)
	e.log.Debug("flamingo: session claimed from another node", slog.String("user", s.handle))
}

// applyLocked applies an event from another node to s. With replay set, it is part
// of a resume and goes past the queue's bounds, like a local replay.
func (e *Engine) applyLocked(s *session, ev ClusterEvent, replay bool) {
	switch {
	case ev.Frame != nil && ev.ChatID == "": // held for the user
		e.deliverClusterLocked(s, ev.Frame, replay, true)
	case ev.Frame != nil: // a message
		if ch := s.chat; ch != nil && ch.id == ev.ChatID {
			e.deliverClusterLocked(s, ev.Frame, replay, false)
			e.recordDeliveredLocked(s, ch, ev.Frame) // for a report (moderation.go)
		}
	default: // the chat ended
		ch := s.chat
		if ch == nil || ch.id != ev.ChatID || !ch.partner(s).remote {
			return
		}
		e.chatEndedLocked(ch) // for next, block and report (moderation.go)
		e.leaveChatLocked(s)
		e.deliverClusterLocked(s, appendChatEnded(nil, ch.id, ev.Ended), replay, true)
		e.saveLocked(s)
	}
}

// deliverClusterLocked sends b to s: past the bounds if it is part of a resume's
// replay, else as deliverLocked does.
func (e *Engine) deliverClusterLocked(s *session, b []byte, replay, force bool) {
	if c := s.conn; replay && c != nil {
		e.pushLocked(c, outFrame{b: b, keep: true})
		return
	}
	if !e.deliverLocked(s, b, force) {
		e.log.Info("flamingo: dropping an event for a user who is away and has too many held",
			slog.String("user", s.handle))
	}
}

func (h host) Deliver(user string, ev ClusterEvent) {
	e := h.e
	e.mu.Lock()
	defer e.unlock()
	if s := e.sessions[user]; s != nil {
		e.applyLocked(s, ev, false)
	} else if cl := e.claims[user]; cl != nil {
		cl.events = append(cl.events, ev)
	}
}

func (h host) Release(user string, reply func(SessionState)) {
	e := h.e
	e.mu.Lock()
	defer e.unlock()
	if cl := e.claims[user]; cl != nil {
		cl.releases = append(cl.releases, reply)
		return
	}
	e.releaseLocked(user, reply)
}

// releaseLocked gives up the session of user to another node (see BrokerHost.Release).
func (e *Engine) releaseLocked(user string, reply func(SessionState)) {
	s := e.sessions[user]
	if s == nil {
		e.publishLocked(func() { reply(SessionState{User: user}) })
		return
	}
	away := s.conn == nil // else a takeover, which is no drop: the partner saw no partner_away
	if old := s.conn; old != nil {
		e.replaceConnLocked(old, s)
	}
	e.leaveQueueLocked(s)
	delete(e.sessions, user)
	e.checkDrainedLocked()
	st := e.stateLocked(s, true)
	st.Away = away
	s.held, s.heldBytes = nil, 0
	if ch := s.chat; ch != nil {
		// The claiming node knows nothing of an indicator shown from here: it ends
		// with the move (a drop ended it already).
		e.stopTypingLocked(s, ch)
		e.leaveChatLocked(s)
		if p := ch.partner(s); !p.remote {
			// The partner stays here and talks to s through the cluster from now on.
			stub := &session{handle: s.handle, gender: s.gender, remote: true}
			if ch.users[0] == s {
				ch.users[0] = stub
			} else {
				ch.users[1] = stub
			}
		}
	}
	e.log.Debug("flamingo: session released to another node", slog.String("user", user))
	answer := func() { reply(*st) }
	if s.matcherBusy && !e.closed {
		// The reply waits for the session's matcher calls, its Cancel among them:
		// once the user is on the other node, a late Cancel from here could take out
		// the ticket of their next join there.
		e.matcherOpLocked(s, matcherOp{then: func() { e.publish(answer) }})
		return
	}
	e.publishLocked(answer)
}

// publish queues a Broker call (see publishLocked).
func (e *Engine) publish(call func()) {
	e.mu.Lock()
	defer e.unlock()
	e.publishLocked(call)
}

func (h host) Resync() {
	ends, requeued := h.e.resync()
	h.e.log.Warn("flamingo: resynchronised with the cluster", slog.Int("chats_ended", len(ends)), slog.Int("requeued", requeued))
	h.e.callOnChatEnd(nil, ends...)
}

// resync publishes every session again, puts the waiting users back in the queue and
// ends the chats with users on other nodes (see BrokerHost.Resync).
func (e *Engine) resync() (ends []ChatEnd, requeued int) {
	e.mu.Lock()
	defer e.unlock()
	for _, s := range e.sessions {
		if ch := s.chat; ch != nil {
			if p := ch.partner(s); p.remote {
				ends = append(ends, e.endChatLocked(ch, p, ReasonPartnerDisconnected))
			}
		}
		e.saveLocked(s)
		if s.queued {
			e.matcherOpLocked(s, matcherOp{ticket: s.ticket})
			requeued++
		}
	}
	return ends, requeued
}

func (h host) Kick(user, reason string) { _ = h.e.kick(user, reason, false) }

func (h host) LocalStats() Stats {
	h.e.mu.Lock()
	defer h.e.unlock()
	return h.e.statsLocked(Stats{})
}

func (h host) Grace() time.Duration { return h.e.cfg.ResumeGrace }

func (h host) Held() []SessionState {
	e := h.e
	e.mu.Lock()
	defer e.unlock()
	out := make([]SessionState, 0, len(e.sessions))
	for _, s := range e.sessions {
		out = append(out, *e.stateLocked(s, true))
	}
	return out
}

// onRemotePair starts this node's side of the chat of a pair with one ticket of
// another node: each of the two nodes starts its own side. OnMatch runs once per
// chat, on the node of A.
func (e *Engine) onRemotePair(p Pair) {
	if info, ok := e.startRemotePair(p); ok && e.ownTicket(p.A) {
		e.callOnMatch(info)
	}
}

func (e *Engine) startRemotePair(p Pair) (ChatInfo, bool) {
	mine, other, aMine := p.A, p.B, e.ownTicket(p.A)
	if !aMine {
		mine, other = other, mine
	}
	id := p.ChatID
	if id == "" {
		id = pairChatID(p)
	}
	var ice [2][]ICEServer
	if aMine {
		ice[0] = e.iceServers(mine.User)
	} else {
		ice[1] = e.iceServers(mine.User)
	}
	others := e.otherStats()
	e.mu.Lock()
	defer e.unlock()
	s := e.waitingLocked(mine)
	if s == nil {
		// Our user left before the pair arrived (or this node is shutting down). The
		// other node has started its side (its user may have seen match_found): it is
		// told that the partner left.
		e.publishEndChatLocked(id, [2]string{p.A.User, p.B.User}, other.User, ReasonPartnerLeft)
		return ChatInfo{}, false
	}
	peer := &session{handle: other.User, gender: other.Gender, remote: true}
	users := [2]*session{s, peer}
	if !aMine {
		users = [2]*session{peer, s}
	}
	return e.startChatLocked(id, users, p, ice, others).info(), true
}

// pairChatID derives a chat id from the tickets of a pair whose matcher set none, so
// that the nodes of its two users agree on it.
func pairChatID(p Pair) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%s\x00%d", p.A.User, p.A.JoinedAt.UnixNano(), p.B.User, p.B.JoinedAt.UnixNano()))
	return hex.EncodeToString(h[:16])
}
