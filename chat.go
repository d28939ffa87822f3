package flamingo

import (
	"strconv"
	"sync"
	"time"
)

// This file holds chats: how one starts, the message relay, how one ends, and the
// delivery of chat events to a user wherever they are.

// chat is two users talking. Guarded by Engine.mu; relayFast, which holds Engine.mu
// shared, takes mu too for what it changes (the sides' acks and the chat's record).
type chat struct {
	id      string
	users   [2]*session
	started time.Time
	sides   [2]chatSide // of users[i], if on this node (conversation.go)
	mu      sync.Mutex
}

func (ch *chat) partner(s *session) *session {
	if ch.users[0] == s {
		return ch.users[1]
	}
	return ch.users[0]
}

func (ch *chat) info() ChatInfo {
	return ChatInfo{
		ChatID:    ch.id,
		Users:     [2]string{ch.users[0].handle, ch.users[1].handle},
		Genders:   [2]Gender{ch.users[0].gender, ch.users[1].gender},
		StartedAt: ch.started,
	}
}

// startChatLocked starts chat id between users, which were waiting: those of this node
// leave the queue and get match_found (after queue_joined, if their join was not
// answered yet). A remote user is a stand-in for a user of another node, which starts
// its own side of the chat.
//
// p is the pair as the matcher reported it (users[0] is p.A's), and ice the ICE
// servers of each user (Config.ICEServers, called before the lock). The user who
// waited longer, p.A, is the WebRTC initiator.
func (e *Engine) startChatLocked(id string, users [2]*session, p Pair, ice [2][]ICEServer, others Stats) *chat {
	ch := &chat{id: id, users: users, started: time.Now()}
	e.chats[ch] = struct{}{}
	if !users[0].remote { // on a cluster, the node of the user who waited longer counts it
		e.counters.matches++
	}
	common := p.A.CommonInterests(p.B)
	relaxed := common == nil && (len(p.A.Interests) > 0 || len(p.B.Interests) > 0)
	for i, s := range users {
		if s.remote {
			continue
		}
		e.ackJoinLocked(s, others)
		e.counters.matchWait.observe(ch.started.Sub(s.ticket.JoinedAt))
		e.dequeueLocked(s)
		s.chat = ch
		e.inChat++
		e.saveLocked(s)
		e.deliverLocked(s, appendMatchFound(nil, matchFound{
			chatID:     ch.id,
			partner:    ch.partner(s).gender,
			common:     common,
			relaxed:    relaxed,
			initiator:  i == 0,
			iceServers: ice[i],
		}), true)
	}
	return ch
}

func (e *Engine) handleSendMessage(c *conn, ev clientEvent) {
	if e.cfg.OnMessage == nil {
		e.sendMessage(c, ev) // the hot path: one lock
		return
	}
	m, ok := e.messageFor(c, ev)
	if !ok {
		return
	}
	refusal, ok := e.callOnMessage(c, m)
	switch {
	case !ok:
	case refusal != nil:
		e.sendError(c, refusal.Code, refusal.Message, ev.typ)
	default:
		e.relayAfterHook(c, ev, m)
	}
}

func (e *Engine) sendMessage(c *conn, ev clientEvent) {
	// The frame is built before the lock is taken, so that the lock is held only to
	// check the chat and queue the frame: every connection's messages go through it.
	// ev.chatID is checked against the chat under the lock, and the frame is dropped
	// if they differ.
	now := time.Now()
	var idBuf [16]byte
	msgID := e.nextMessageID(idBuf[:0], now)
	f := messageReceivedFrame(ev.chatID, msgID, ev.content, now)
	if e.relayFast(c, ev, msgID, now, f) {
		return
	}
	e.mu.Lock()
	defer e.unlock()
	s, ch := e.chatLocked(c, ev)
	if ch == nil || e.ackedLocked(s, ch, ev) {
		f.free()
		return
	}
	e.relayLocked(c, s, ch, ev, msgID, now, f)
}

// relayFast relays message ev of c in the common case, with e.mu held shared, so that
// the messages of different chats do not wait for each other: the sender is in the
// chat ev names, its partner is connected to this node and has room in its queue, the
// sender was not shown typing, the chat's record exists, and ev is not the retry of
// an acknowledged message. It reports false, having changed nothing, when any of that
// does not hold; sendMessage then takes the exclusive path, which handles every case.
func (e *Engine) relayFast(c *conn, ev clientEvent, msgID []byte, sentAt time.Time, f *frame) bool {
	r, ok := e.relayFastRLocked(c, ev, msgID, sentAt, f)
	if !ok {
		return false
	}
	if r.partner != nil {
		go r.partner.writeLoop()
	}
	if r.sender {
		go c.writeLoop()
	}
	if r.ack != nil {
		// The sender's own queue is full: as on the exclusive path, the
		// acknowledgement is held for it and it is dropped as too slow.
		e.holdAck(r.s, r.ack)
	}
	return true
}

// fastRelayed is what relayFastRLocked leaves to do once the lock is released.
type fastRelayed struct {
	partner *conn    // whose writer is to be started, if set
	sender  bool     // the sender's writer is to be started
	s       *session // the sender, and the acknowledgement its queue had no room for
	ack     *frame
}

// relayFastRLocked is relayFast's work with e.mu held shared. Writers it decides to
// start are counted in e.workers before the lock is released, so that a Shutdown
// that begins meanwhile waits for them.
func (e *Engine) relayFastRLocked(c *conn, ev clientEvent, msgID []byte, sentAt time.Time, f *frame) (r fastRelayed, ok bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := c.sess
	if s == nil || s.chat == nil || s.chat.id != ev.chatID {
		return r, false
	}
	ch := s.chat
	p, side, rec := ch.partner(s), ch.sideOf(s), s.talk
	pc := p.conn
	if p.remote || pc == nil || side.typing || (e.cfg.ReportContext != 0 && (rec == nil || rec.id != ch.id)) {
		return r, false
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ev.clientMsgID != "" {
		if _, acked := side.acked.find(ev.clientMsgID); acked {
			return r, false // the exclusive path answers the retry
		}
	}
	queued, start := e.queueLocked(pc, f.outFrame())
	if !queued {
		return r, false
	}
	if start {
		e.workers.Add(1)
		r.partner = pc
	}
	if ev.clientMsgID != "" {
		m := AckedMessage{ClientMsgID: ev.clientMsgID, MessageID: string(msgID), SentAt: sentAt}
		side.acked.add(m)
		ack := messageSentFrame(ch.id, m)
		queued, start := e.queueLocked(c, ack.outFrame())
		switch {
		case !queued:
			r.s, r.ack = s, ack
		case start:
			e.workers.Add(1)
			r.sender = true
		}
	}
	if e.cfg.ReportContext != 0 {
		rec.addLocal(e.cfg.ReportContext, s.handle, msgID, ev.content, sentAt)
	}
	e.fastMessages.Add(1)
	return r, true
}

// holdAck delivers ack, an acknowledgement that s's queue had no room for.
func (e *Engine) holdAck(s *session, ack *frame) {
	e.mu.Lock()
	defer e.unlock()
	e.deliverFrameLocked(s, ack.outFrame(), true)
}

// messageFor describes the message ev for the OnMessage hook, with its id and time.
func (e *Engine) messageFor(c *conn, ev clientEvent) (Message, bool) {
	e.mu.Lock()
	defer e.unlock()
	s, ch := e.chatLocked(c, ev)
	if ch == nil || e.ackedLocked(s, ch, ev) {
		return Message{}, false
	}
	now := time.Now()
	return Message{
		ChatID:    ch.id,
		MessageID: string(e.nextMessageID(nil, now)),
		From:      s.handle,
		To:        ch.partner(s).handle,
		Content:   string(ev.content),
		SentAt:    now,
	}, true
}

// relayAfterHook relays m, which the OnMessage hook accepted, unless the chat ended
// while the hook ran.
func (e *Engine) relayAfterHook(c *conn, ev clientEvent, m Message) {
	e.mu.Lock()
	defer e.unlock()
	s := c.sess
	if s == nil || s.chat == nil || s.chat.id != m.ChatID {
		e.sendErrorLocked(c, CodeNotInChat, "the chat has ended", ev.typ)
		return
	}
	if e.ackedLocked(s, s.chat, ev) { // a retry that raced the hook
		return
	}
	f := messageReceivedFrame(m.ChatID, m.MessageID, ev.content, m.SentAt)
	e.relayLocked(c, s, s.chat, ev, []byte(m.MessageID), m.SentAt, f)
}

// chatLocked returns the session of c and its chat if ev names that chat; otherwise
// it answers the error and returns a nil chat.
func (e *Engine) chatLocked(c *conn, ev clientEvent) (*session, *chat) {
	s := e.sessionLocked(c, ev)
	if s == nil {
		return nil, nil
	}
	ch := s.chat
	if ch == nil || ev.chatID != ch.id {
		e.sendErrorLocked(c, CodeNotInChat, "you are not in that chat", ev.typ)
		return s, nil
	}
	return s, ch
}

// nextMessageID appends a new message id to dst. A message id is the send time in
// Unix nanoseconds, or one more than the last id where the clock has not moved on:
// increasing on each node, and across the nodes of a cluster (within their clock
// skew), so a sender who moves to another node goes on with larger ids.
func (e *Engine) nextMessageID(dst []byte, now time.Time) []byte {
	for {
		last := e.lastMsgID.Load()
		id := max(last+1, uint64(now.UnixNano()))
		if e.lastMsgID.CompareAndSwap(last, id) {
			return strconv.AppendUint(dst, id, 16)
		}
	}
}

// relayLocked delivers message ev of s, with id msgID, to the partner in ch: f is its
// message_received frame.
func (e *Engine) relayLocked(c *conn, s *session, ch *chat, ev clientEvent, msgID []byte, sentAt time.Time, f *frame) {
	var ok bool
	if p := ch.partner(s); p.remote {
		ok = e.toPartnerLocked(s, ch, f.b, false) // the broker keeps f.b: not recycled
	} else {
		ok = e.deliverFrameLocked(p, f.outFrame(), false)
	}
	if !ok {
		f.free()
		e.sendErrorLocked(c, CodeRateLimited, "your partner is away and cannot take more messages now", ev.typ)
		return
	}
	e.counters.messages++
	e.sentLocked(s, ch, ev, msgID, sentAt)
	e.recordMessageLocked(s, ch, msgID, ev.content, sentAt) // for a report (moderation.go)
}

func (e *Engine) handleLeaveChat(c *conn, ev clientEvent) {
	if end, ok := e.leaveChat(c, ev); ok {
		e.callOnChatEnd(c, end)
	}
}

func (e *Engine) leaveChat(c *conn, ev clientEvent) (ChatEnd, bool) {
	e.mu.Lock()
	defer e.unlock()
	s := e.sessionLocked(c, ev)
	if s == nil {
		return ChatEnd{}, false
	}
	ch := s.chat
	if ch == nil || (ev.chatID != "" && ev.chatID != ch.id) {
		e.sendErrorLocked(c, CodeNotInChat, "you are not in that chat", ev.typ)
		return ChatEnd{}, false
	}
	return e.endChatLocked(ch, s, ReasonLeft), true
}

// endChatLocked ends ch because by left (ReasonLeft), did not come back
// (ReasonPartnerDisconnected), or the server is restarting (ReasonServerRestart, by is
// either user), telling each remaining participant once. It returns
// what the OnChatEnd hook is to be told.
func (e *Engine) endChatLocked(ch *chat, by *session, reason EndReason) ChatEnd {
	e.chatEndedLocked(ch) // for next, block and report (moderation.go)
	for _, s := range ch.users {
		if !s.remote && s.chat == ch {
			e.stopTypingLocked(s, ch)
			e.leaveChatLocked(s)
		}
	}
	other := ch.partner(by)
	otherReason := ReasonPartnerDisconnected
	switch reason {
	case ReasonLeft:
		e.deliverLocked(by, appendChatEnded(nil, ch.id, ReasonLeft), true)
		otherReason = ReasonPartnerLeft
	case ReasonServerRestart:
		e.deliverLocked(by, appendChatEnded(nil, ch.id, ReasonServerRestart), true)
		otherReason = ReasonServerRestart
	}
	if e.broker != nil {
		var notify string
		var notifyReason EndReason
		switch {
		case other.remote:
			notify, notifyReason = other.handle, otherReason
		case by.remote: // this node lost touch with the cluster (Resync)
			notify, notifyReason = by.handle, ReasonPartnerDisconnected
		}
		e.publishEndChatLocked(ch.id, [2]string{ch.users[0].handle, ch.users[1].handle}, notify, notifyReason)
	}
	if !other.remote {
		e.deliverLocked(other, appendChatEnded(nil, ch.id, otherReason), true)
	}
	now := time.Now()
	e.counters.chatDuration.observe(now.Sub(ch.started))
	return ChatEnd{
		ChatID:    ch.id,
		Users:     [2]string{ch.users[0].handle, ch.users[1].handle},
		By:        by.handle,
		Reason:    reason,
		StartedAt: ch.started,
		EndedAt:   now,
	}
}

// leaveChatLocked takes s, a user of this node, out of its chat. The chat is
// forgotten once no user of this node is left in it.
func (e *Engine) leaveChatLocked(s *session) {
	ch := s.chat
	s.chat = nil
	e.inChat--
	if side := ch.sideOf(s); side.typing { // (the partner was told, if still there)
		side.typing = false
		if !ch.sides[0].typing && !ch.sides[1].typing {
			delete(e.typers, ch)
		}
	}
	if p := ch.partner(s); p.remote || p.chat != ch {
		delete(e.chats, ch)
	}
}

// deliverLocked sends a chat event to s, wherever s is: on its connection, or held
// until it comes back. A connection that cannot take the event is dropped as a slow
// consumer and its user is treated as away. Unless force is set, an event for a user
// whose held events are at their bound is refused (false).
func (e *Engine) deliverLocked(s *session, b []byte, force bool) bool {
	return e.deliverFrameLocked(s, outFrame{b: b, keep: true}, force)
}

// deliverFrameLocked is deliverLocked for a frame that may have a recycled buffer:
// one that is held for an away user leaves the recycling (held frames are plain
// slices).
func (e *Engine) deliverFrameLocked(s *session, f outFrame, force bool) bool {
	if c := s.conn; c != nil {
		if e.sendLocked(c, f) {
			return true
		}
		e.dropSlowLocked(c, "too slow")
	}
	if !force && (len(s.held) >= e.cfg.MaxQueuedEvents || s.heldBytes+len(f.b) > e.cfg.MaxQueuedBytes) {
		return false
	}
	s.held = append(s.held, f.b)
	s.heldBytes += len(f.b)
	return true
}
