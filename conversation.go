package flamingo

import (
	"time"
)

// This file holds what a chat carries besides messages (DESIGN.md §4.8): typing
// indicators, acknowledgements of messages sent with a client_msg_id, the partner's
// presence during a resume grace, and WebRTC signaling.

// Typing and acknowledgement rules of DESIGN.md §4.8.
const (
	// typingTimeout is how long a typing:true lasts without a refresh.
	typingTimeout = 6 * time.Second
	// typingRepeat is how long an identical typing event is not forwarded again.
	typingRepeat = time.Second
	// maxAcked is how many acknowledged client_msg_ids each sender's side of a chat
	// remembers.
	maxAcked = 256
)

// chatSide is the state of one user of this node in a chat, besides the chat itself.
// Guarded by Engine.mu.
type chatSide struct {
	typing      bool      // the partner was last told typing:true
	typingSent  time.Time // when the partner was last told either way
	typingUntil time.Time // when typing:true runs out without a refresh
	acked       ackLog
}

// ackLog remembers the last maxAcked messages a user sent with a client_msg_id in one
// chat. Nothing is allocated for a user who never sends one.
type ackLog struct {
	byID  map[string]AckedMessage
	order []string // client_msg_ids as a ring, up to maxAcked: next is the oldest once full
	next  int
}

func (l *ackLog) find(id string) (AckedMessage, bool) {
	m, ok := l.byID[id]
	return m, ok
}

// add remembers m, forgetting the oldest once maxAcked are remembered: O(1), since
// with flamingo.js every message of a chat comes through here.
func (l *ackLog) add(m AckedMessage) {
	if l.byID == nil {
		l.byID = make(map[string]AckedMessage)
	}
	if len(l.order) < maxAcked {
		l.order = append(l.order, m.ClientMsgID)
	} else {
		delete(l.byID, l.order[l.next])
		l.order[l.next] = m.ClientMsgID
		l.next = (l.next + 1) % maxAcked
	}
	l.byID[m.ClientMsgID] = m
}

// list returns the log oldest first, for a session that moves to another node.
func (l *ackLog) list() []AckedMessage {
	if len(l.order) == 0 {
		return nil
	}
	out := make([]AckedMessage, 0, len(l.order))
	for i := range l.order {
		out = append(out, l.byID[l.order[(l.next+i)%len(l.order)]])
	}
	return out
}

// sideOf returns the state of s, a user of this node, in ch.
func (ch *chat) sideOf(s *session) *chatSide {
	if ch.users[1] == s {
		return &ch.sides[1]
	}
	return &ch.sides[0]
}

// toPartnerLocked delivers frame, an event of chat ch from s, to s's partner: on this
// node, or through the cluster. Unless force is set, it refuses (false) when the
// partner is away here and its held events are at their bound.
func (e *Engine) toPartnerLocked(s *session, ch *chat, frame []byte, force bool) bool {
	p := ch.partner(s)
	if p.remote {
		// Whether a partner away on another node can take more is not known here:
		// that node drops what is over its bound.
		e.publishLocked(func() { e.broker.Send(p.handle, ClusterEvent{ChatID: ch.id, Frame: frame}) })
		e.counters.crossNode++
		return true
	}
	return e.deliverLocked(p, frame, force)
}

// ackedLocked answers a retry: if s already sent ev's client_msg_id in ch, s gets the
// same message_sent again and true is returned; the message is not relayed again.
func (e *Engine) ackedLocked(s *session, ch *chat, ev clientEvent) bool {
	if ev.clientMsgID == "" {
		return false
	}
	m, ok := ch.sideOf(s).acked.find(ev.clientMsgID)
	if ok {
		e.deliverFrameLocked(s, messageSentFrame(ch.id, m).outFrame(), true)
	}
	return ok
}

// sentLocked follows a message of s that was relayed: the partner stops seeing s
// typing, and s gets message_sent if the message carried a client_msg_id.
func (e *Engine) sentLocked(s *session, ch *chat, ev clientEvent, msgID []byte, sentAt time.Time) {
	side := ch.sideOf(s)
	if side.typing {
		e.typingLocked(s, ch, side, false, sentAt)
	}
	if ev.clientMsgID == "" {
		return
	}
	m := AckedMessage{ClientMsgID: ev.clientMsgID, MessageID: string(msgID), SentAt: sentAt}
	side.acked.add(m)
	e.deliverFrameLocked(s, messageSentFrame(ch.id, m).outFrame(), true)
}

func (e *Engine) handleTyping(c *conn, ev clientEvent) {
	e.mu.Lock()
	defer e.unlock()
	s, ch := e.chatLocked(c, ev)
	if ch == nil {
		return
	}
	now := time.Now()
	side := ch.sideOf(s)
	if ev.typing {
		side.typingUntil = now.Add(typingTimeout) // a repeat still refreshes it
	}
	if ev.typing == side.typing && now.Sub(side.typingSent) < typingRepeat {
		return // the partner saw this value less than a second ago
	}
	e.typingLocked(s, ch, side, ev.typing, now)
}

// typingLocked tells the partner of s whether s is typing.
func (e *Engine) typingLocked(s *session, ch *chat, side *chatSide, typing bool, now time.Time) {
	side.typing, side.typingSent = typing, now
	if typing {
		e.typers[ch] = struct{}{}
	} else if !ch.sides[0].typing && !ch.sides[1].typing {
		delete(e.typers, ch)
	}
	// A typing:true is best effort: a partner away with a full backlog misses it.
	// The typing:false that ends one goes past the bound, so that an indicator the
	// partner was shown is never left on.
	e.toPartnerLocked(s, ch, appendTyping(nil, EventPartnerTyping, ch.id, typing), !typing)
}

// stopTypingLocked tells the partner of s, if it was told s is typing, that s is not:
// s disconnected, or the chat is ending.
func (e *Engine) stopTypingLocked(s *session, ch *chat) {
	if side := ch.sideOf(s); side.typing {
		e.typingLocked(s, ch, side, false, time.Now())
	}
}

// expireTypingLocked ends each typing:true that went without a refresh for
// typingTimeout. The sweeper calls it.
func (e *Engine) expireTypingLocked(now time.Time) {
	for ch := range e.typers {
		for i := range ch.sides {
			side := &ch.sides[i]
			if side.typing && !now.Before(side.typingUntil) {
				e.typingLocked(ch.users[i], ch, side, false, now)
			}
		}
	}
}

func (e *Engine) handleSignal(c *conn, ev clientEvent) {
	e.mu.Lock()
	defer e.unlock()
	s, ch := e.chatLocked(c, ev)
	if ch == nil {
		return
	}
	if !e.toPartnerLocked(s, ch, appendSignal(nil, ch.id, ev.data), false) {
		e.sendErrorLocked(c, CodeRateLimited, "your partner is away and cannot take more events now", ev.typ)
	}
}

// partnerAwayLocked tells the partner of s, who lost their last connection and keeps
// their chat for the grace, that s is away.
func (e *Engine) partnerAwayLocked(s *session) {
	ch := s.chat
	if ch == nil {
		return
	}
	e.stopTypingLocked(s, ch)
	e.toPartnerLocked(s, ch, appendPartnerAway(nil, ch.id, e.cfg.ResumeGrace), true)
}

// partnerBackLocked tells the partner of s that s is back.
func (e *Engine) partnerBackLocked(s *session) {
	if ch := s.chat; ch != nil {
		e.toPartnerLocked(s, ch, appendChat(nil, EventPartnerBack, ch.id), true)
	}
}
