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

// claimTimeout bounds a Broker.Claim made for an init.
const claimTimeout = 5 * time.Second

// claim is a session being claimed from another node: the events that arrive for
// it meanwhile wait here, to follow the ones the claim returns, and so do the
// requests of other nodes to release it (it may move on before it has arrived).
type claim struct {
	events   []ClusterEvent
	releases []func(SessionState)
	done     chan struct{} // closed when the claim is over
}

// claimResult is how claimLocked went.
type claimResult int

const (
	claimed     claimResult = iota // the session is now on c
	claimAbsent                    // there is no such session
	claimFailed                    // the cluster could not be asked
)

// host is the Engine as its Broker sees it.
type host struct{ e *Engine }

var _ BrokerHost = host{}

func (e *Engine) ownTicket(t Ticket) bool {
	return t.Node == "" || t.Node == e.node
}

// saveLocked publishes s as this node holds it now.
func (e *Engine) saveLocked(s *session) {
	if e.broker == nil {
		return
	}
	e.broker.Publish(BrokerOp{Kind: OpSave, State: e.stateLocked(s, false)})
}

// stateLocked describes s for the cluster, with its held events if withHeld is set.
func (e *Engine) stateLocked(s *session, withHeld bool) *SessionState {
	st := &SessionState{Found: true, User: s.handle, Digest: s.digest, Gender: s.gender, Away: s.conn == nil}
	if ch := s.chat; ch != nil {
		p := ch.partner(s)
		st.Chat = &ChatState{ID: ch.id, Peer: p.handle, PeerGender: p.gender, StartedAt: ch.started}
	}
	if withHeld {
		for _, b := range s.held {
			st.Events = append(st.Events, ClusterEvent{Kind: KindFrame, Frame: b})
		}
	}
	return st
}

// claimLocked asks the cluster for the session h, which this node does not hold, and
// resumes it on c if it is found. e.mu is released during the claim.
func (e *Engine) claimLocked(c *conn, h string, digest [sha256.Size]byte, userID string) claimResult {
	cl := &claim{done: make(chan struct{})}
	e.claims[h] = cl
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	st, err := e.broker.Claim(ctx, h, digest)
	cancel()
	e.mu.Lock()
	delete(e.claims, h)
	defer close(cl.done)
	// Nodes that asked for the session meanwhile get it once it is here (or hear
	// that it is not).
	defer func() {
		for _, reply := range cl.releases {
			e.releaseLocked(h, reply)
		}
	}()
	if err != nil {
		if errors.Is(err, ErrSessionNotFound) {
			return claimAbsent
		}
		e.log.Error("flamingo: claiming a session failed", slog.String("user", h), slog.Any("err", err))
		return claimFailed
	}
	if e.sessions[h] != nil || c.sess != nil || c.replaced {
		// Cannot happen while claims[h] kept other inits of h from claiming.
		e.log.Error("flamingo: claimed session already here", slog.String("user", h))
		return claimFailed
	}
	s := &session{handle: h, digest: digest, gender: st.Gender}
	e.sessions[h] = s
	chatID := ""
	if cs := st.Chat; cs != nil {
		peer := &session{handle: cs.Peer, gender: cs.PeerGender, remote: true}
		ch := &chat{id: cs.ID, users: [2]*session{s, peer}, started: cs.StartedAt}
		e.chats[ch] = struct{}{}
		s.chat = ch
		e.inChat++
		chatID = ch.id
	}
	e.attachLocked(c, s)
	n := len(c.queue)
	e.pushLocked(c, outFrame{b: appendReady(nil, userID, true, chatID)})
	for _, ev := range st.Events {
		e.applyLocked(s, ev, true)
	}
	for _, ev := range cl.events {
		e.applyLocked(s, ev, true)
	}
	// What the resume replayed goes past the bounds, as on a local resume.
	c.slack, c.slackBytes = len(c.queue)-n, 0
	for _, f := range c.queue[n:] {
		c.slackBytes += len(f.b)
	}
	e.saveLocked(s)
	e.log.Debug("flamingo: session claimed from another node", slog.String("user", s.handle))
	return claimed
}

// applyLocked applies an event from another node to s. With replay set, it is part
// of a resume and goes past the queue's bounds, like a local replay.
func (e *Engine) applyLocked(s *session, ev ClusterEvent, replay bool) {
	switch ev.Kind {
	case KindFrame:
		e.deliverClusterLocked(s, ev.Frame, replay, true)
	case KindMessage:
		if ch := s.chat; ch != nil && ch.id == ev.ChatID {
			e.deliverClusterLocked(s, ev.Frame, replay, false)
		}
	case KindChatEnded:
		ch := s.chat
		if ch == nil || ch.id != ev.ChatID || !ch.partner(s).remote {
			return
		}
		delete(e.chats, ch)
		s.chat = nil
		e.inChat--
		e.deliverClusterLocked(s, appendChatEnded(nil, ch.id, ev.Reason), replay, true)
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
	defer e.mu.Unlock()
	if s := e.sessions[user]; s != nil {
		e.applyLocked(s, ev, false)
	} else if cl := e.claims[user]; cl != nil {
		cl.events = append(cl.events, ev)
	}
}

func (h host) Release(user string, reply func(SessionState)) {
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
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
		reply(SessionState{User: user})
		return
	}
	if old := s.conn; old != nil {
		e.replaceConnLocked(old, s)
	}
	if s.queued {
		e.dequeueLocked(s)
		e.goLocked(func() { e.cancelTicket(s.handle) })
	}
	delete(e.sessions, user)
	st := e.stateLocked(s, true)
	st.Away = true
	s.held, s.heldBytes = nil, 0
	if ch := s.chat; ch != nil {
		if p := ch.partner(s); p.remote {
			delete(e.chats, ch)
		} else {
			// The partner stays here and talks to s through the cluster from now on.
			stub := &session{handle: s.handle, gender: s.gender, remote: true}
			if ch.users[0] == s {
				ch.users[0] = stub
			} else {
				ch.users[1] = stub
			}
		}
		s.chat = nil
		e.inChat--
	}
	e.log.Debug("flamingo: session released to another node", slog.String("user", user))
	reply(*st)
}

func (h host) Resync() {
	e := h.e
	e.mu.Lock()
	var (
		tickets []Ticket
		ends    []ChatEnd
	)
	for _, s := range e.sessions {
		if ch := s.chat; ch != nil {
			if p := ch.partner(s); p.remote {
				ends = append(ends, e.endChatLocked(ch, p, ReasonPartnerDisconnected))
			}
		}
		e.saveLocked(s)
		if s.queued {
			tickets = append(tickets, s.ticket)
		}
	}
	closed := e.closed
	e.mu.Unlock()
	e.log.Warn("flamingo: resynchronised with the cluster", slog.Int("chats_ended", len(ends)), slog.Int("requeued", len(tickets)))
	for _, end := range ends {
		e.callOnChatEnd(nil, end)
	}
	if !closed {
		for _, t := range tickets {
			e.enqueue(t)
		}
	}
}

func (h host) LocalStats() Stats {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	return h.e.localStatsLocked()
}

func (h host) Grace() time.Duration { return h.e.cfg.ResumeGrace }

// onRemotePair starts the chat of a pair with one ticket of another node: each of the
// two nodes starts its own side.
func (e *Engine) onRemotePair(p Pair) {
	mine, other, aMine := p.A, p.B, e.ownTicket(p.A)
	if !aMine {
		mine, other = other, mine
	}
	id := p.ChatID
	if id == "" {
		id = pairChatID(p)
	}
	e.mu.Lock()
	s := e.waitingLocked(mine)
	if s == nil {
		// Our user left before the pair arrived (or this node is shutting down). The
		// other node has started its side (its user may have seen match_found): it is
		// told that the partner left.
		e.broker.Publish(BrokerOp{Kind: OpEndChat, ChatID: id, Users: [2]string{p.A.User, p.B.User},
			Notify: other.User, Reason: ReasonPartnerLeft})
		e.mu.Unlock()
		return
	}
	peer := &session{handle: other.User, gender: other.Gender, remote: true}
	ch := &chat{id: id, users: [2]*session{s, peer}, started: time.Now()}
	if !aMine {
		ch.users = [2]*session{peer, s}
	}
	e.chats[ch] = struct{}{}
	e.dequeueLocked(s)
	s.chat = ch
	e.inChat++
	e.saveLocked(s)
	e.deliverLocked(s, appendMatchFound(nil, ch.id, peer.gender), true)
	info := ChatInfo{ChatID: ch.id, Users: [2]string{p.A.User, p.B.User}, Genders: [2]Gender{p.A.Gender, p.B.Gender}, StartedAt: ch.started}
	e.mu.Unlock()
	// OnMatch runs once per chat, on the node of A.
	if e.cfg.OnMatch != nil && aMine {
		e.callHook(nil, "OnMatch", func() { e.cfg.OnMatch(info) })
	}
}

// pairChatID derives a chat id from the tickets of a pair whose matcher set none, so
// that the nodes of its two users agree on it.
func pairChatID(p Pair) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%s\x00%d", p.A.User, p.A.JoinedAt.UnixNano(), p.B.User, p.B.JoinedAt.UnixNano()))
	return hex.EncodeToString(h[:16])
}

func (h host) Held() []SessionState {
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]SessionState, 0, len(e.sessions))
	for _, s := range e.sessions {
		out = append(out, *e.stateLocked(s, true))
	}
	return out
}
