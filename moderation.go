package flamingo

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// This file holds next, block and report (DESIGN.md §4.7): the moderation a user does
// on their own chats, and what the engine remembers for it. For each user: whom they
// must not meet again (session.avoid), and their chats that ended lately. For each
// chat: its last Config.ReportContext messages, both sides, in memory only, for the
// chat's life and reportWindow after; the sweep forgets them then. They are the only
// message content the engine keeps (SECURITY.md).

// reportWindow is how long after a chat ends its users may still block or report it,
// and so how long its last messages are kept.
const reportWindow = 5 * time.Minute

// chatRecord is what the engine remembers of one chat for block and report: its users,
// when it ended, and its last messages. The users of a chat on this node share one
// record; on a cluster each node keeps its own user's, which sees both directions.
// Guarded by Engine.mu.
type chatRecord struct {
	id    string
	users [2]string // handles
	ended time.Time // zero while the chat lives
	// msgs are the chat's last messages, at most Config.ReportContext: in order
	// until full, then a ring whose oldest entry is at next.
	msgs []recordedMessage
	next int
	// reported is set for each user (as in users) who has reported the chat: a
	// second report of theirs is answered but not passed on to OnReport again.
	reported [2]bool
}

// recordedMessage is one message of a chatRecord. A message relayed by this node is
// kept as its fields, without allocating; one that came from another node is kept
// as the frame it came in, decoded only if a report needs it.
type recordedMessage struct {
	from    string // the sender's handle
	content []byte // reused when the ring comes round: copied by snapshot
	sentAt  time.Time
	id      [16]byte // the message id (hex of 64 bits, so at most 16 bytes)
	idLen   uint8
	frame   []byte // a message_received frame from another node, instead of the fields above
}

// add records m, dropping the oldest message once the record holds limit.
func (r *chatRecord) add(limit int, m recordedMessage) {
	if len(r.msgs) < limit {
		r.msgs = append(r.msgs, m)
		return
	}
	r.msgs[r.next] = m
	r.next = (r.next + 1) % len(r.msgs)
}

// addLocal records a message relayed by this node, copying its content into the
// buffer of the entry it replaces, so that a chat past its first limit messages
// records without allocating.
func (r *chatRecord) addLocal(limit int, from string, id, content []byte, sentAt time.Time) {
	var m *recordedMessage
	if len(r.msgs) < limit {
		r.msgs = append(r.msgs, recordedMessage{})
		m = &r.msgs[len(r.msgs)-1]
	} else {
		m = &r.msgs[r.next]
		r.next = (r.next + 1) % len(r.msgs)
	}
	m.from, m.sentAt, m.frame = from, sentAt, nil
	m.content = append(m.content[:0], content...)
	m.idLen = uint8(copy(m.id[:], id))
}

// snapshot returns the recorded messages, oldest first, in a new slice that shares
// nothing with r: it is read with no lock held.
func (r *chatRecord) snapshot() []recordedMessage {
	out := make([]recordedMessage, 0, len(r.msgs))
	out = append(out, r.msgs[r.next:]...)
	out = append(out, r.msgs[:r.next]...)
	for i := range out {
		out[i].content = bytes.Clone(out[i].content)
	}
	return out
}

// other returns the user of r who is not user.
func (r *chatRecord) other(user string) string {
	if r.users[0] == user {
		return r.users[1]
	}
	return r.users[0]
}

// reportedBy records that user reports the chat, and reports whether they had before.
func (r *chatRecord) reportedBy(user string) bool {
	i := 0
	if r.users[1] == user {
		i = 1
	}
	was := r.reported[i]
	r.reported[i] = true
	return was
}

// talkLocked returns the record of ch, s's live chat, making it if there is none yet:
// shared with the partner when the partner is on this node.
func (e *Engine) talkLocked(s *session, ch *chat) *chatRecord {
	if r := s.talk; r != nil && r.id == ch.id {
		return r
	}
	p := ch.partner(s)
	if r := p.talk; !p.remote && r != nil && r.id == ch.id {
		s.talk = r
		return r
	}
	r := &chatRecord{id: ch.id, users: [2]string{ch.users[0].handle, ch.users[1].handle}}
	s.talk = r
	if !p.remote {
		p.talk = r
	}
	return r
}

// recordMessageLocked keeps a message that s sent in ch, for a report: called by
// relayLocked once the message is on its way.
func (e *Engine) recordMessageLocked(s *session, ch *chat, msgID, content []byte, sentAt time.Time) {
	if e.cfg.ReportContext == 0 {
		return
	}
	e.talkLocked(s, ch).addLocal(e.cfg.ReportContext, s.handle, msgID, content, sentAt)
}

// messageFramePrefix begins every message_received frame (appendMessageReceived).
var messageFramePrefix = []byte(`{"type":"` + EventMessageReceived + `"`)

// recordDeliveredLocked keeps a frame that another node delivered to s in ch, s's
// live chat, if it is a message from the partner. It is not decoded here: the lock
// is held, and most are never reported.
func (e *Engine) recordDeliveredLocked(s *session, ch *chat, frame []byte) {
	if e.cfg.ReportContext == 0 || !bytes.HasPrefix(frame, messageFramePrefix) {
		return
	}
	e.talkLocked(s, ch).add(e.cfg.ReportContext, recordedMessage{from: ch.partner(s).handle, frame: frame})
}

// chatEndedLocked remembers, for each user of ch on this node, that ch is ending now:
// its record joins the user's ended chats (block and report may name it for
// reportWindow), and the partner is not to be met again within Config.RepeatWindow.
// Called before the users leave ch.
func (e *Engine) chatEndedLocked(ch *chat) {
	now := time.Now()
	var rec *chatRecord
	for _, s := range ch.users {
		if s.remote || s.chat != ch {
			continue
		}
		if rec == nil {
			rec = e.talkLocked(s, ch)
		}
		s.talk = rec
		s.ended = append(e.endedLocked(s, now), rec)
		e.avoidLocked(s, ch.partner(s).handle, now.Add(e.cfg.RepeatWindow))
	}
	if rec != nil && rec.ended.IsZero() {
		rec.ended = now
		e.endedChats = append(e.endedChats, rec)
	}
}

// endedLocked returns the chats of s that ended within reportWindow of now, dropping
// the older ones.
func (e *Engine) endedLocked(s *session, now time.Time) []*chatRecord {
	n := 0
	for n < len(s.ended) && now.Sub(s.ended[n].ended) > reportWindow {
		s.ended[n] = nil
		n++
	}
	s.ended = s.ended[n:]
	if len(s.ended) == 0 {
		s.ended = nil
	}
	return s.ended
}

// forgetEndedChatsLocked drops the messages of the chats that ended more than
// reportWindow ago. The sweep calls it; the records themselves go once no session
// refers to them.
func (e *Engine) forgetEndedChatsLocked(now time.Time) {
	n := 0
	for n < len(e.endedChats) && now.Sub(e.endedChats[n].ended) > reportWindow {
		r := e.endedChats[n]
		r.msgs, r.next = nil, 0
		e.endedChats[n] = nil
		n++
	}
	e.endedChats = e.endedChats[n:]
	if len(e.endedChats) == 0 {
		e.endedChats = nil
	}
}

// avoidLocked records that s must not be paired with user until the given time; the
// zero time means for as long as the session lives (a block), and is never shortened.
func (e *Engine) avoidLocked(s *session, user string, until time.Time) {
	if s.avoid == nil {
		s.avoid = make(map[string]time.Time)
	}
	if old, ok := s.avoid[user]; ok && old.IsZero() {
		return
	}
	s.avoid[user] = until
}

// avoidListLocked returns the users that a ticket of s made at now must avoid, sorted,
// forgetting the recent partners whose RepeatWindow has ended.
func (e *Engine) avoidListLocked(s *session, now time.Time) []string {
	var list []string
	for user, until := range s.avoid {
		if !until.IsZero() && !until.After(now) {
			delete(s.avoid, user)
			continue
		}
		list = append(list, user)
	}
	slices.Sort(list)
	return list
}

// criteriaStateLocked fills in st what moves with the session s to another node: the
// criteria of its last join (for next) and whom it avoids.
func (e *Engine) criteriaStateLocked(s *session, st *SessionState) {
	st.Preference, st.Interests = s.pref, s.interests
	now := time.Now()
	for user, until := range s.avoid {
		if until.IsZero() || until.After(now) {
			if st.Avoid == nil {
				st.Avoid = make(map[string]time.Time, len(s.avoid))
			}
			st.Avoid[user] = until
		}
	}
}

// restoreCriteriaLocked sets in s, a session claimed from another node, what
// criteriaStateLocked put in st.
func (e *Engine) restoreCriteriaLocked(s *session, st *SessionState) {
	s.pref, s.interests = st.Preference, slices.Clone(st.Interests)
	if s.gender != "" && s.pref == "" {
		s.pref = PreferAny
	}
	s.avoid = maps.Clone(st.Avoid)
}

// handleNext ends the user's chat, if any, and joins the queue again with the criteria
// of their last join_queue. Since it joins the queue, it counts against
// Config.JoinRate, as join_queue does.
func (e *Engine) handleNext(c *conn, ev clientEvent) {
	if ok, retry := take(&c.limits.joins, time.Now()); !ok {
		e.rateLimited(c, ev.typ, retry)
		return
	}
	end, ended, pj := e.next(c, ev)
	if ended {
		e.callOnChatEnd(c, end)
	}
	if pj != nil {
		e.joinAfterHook(c, ev.typ, pj)
	}
}

// next does the part of a next that needs the lock: the chat's end, and the join
// itself unless an OnJoin hook is to be asked first (then it returns the join).
func (e *Engine) next(c *conn, ev clientEvent) (end ChatEnd, ended bool, pj *pendingJoin) {
	e.mu.Lock()
	defer e.unlock()
	s := e.sessionLocked(c, ev)
	switch {
	case s == nil:
		return
	case s.queued:
		e.sendErrorLocked(c, CodeAlreadyInQueue, "you are already in the queue", ev.typ)
		return
	case s.chat == nil && s.gender == "":
		e.sendErrorLocked(c, CodeNotInChat, "you are not in a chat; join the queue first", ev.typ)
		return
	case e.closed || e.draining:
		e.sendErrorLocked(c, CodeInternal, "the server is shutting down", ev.typ)
		return
	}
	if ch := s.chat; ch != nil {
		end, ended = e.endChatLocked(ch, s, ReasonLeft), true
	}
	pj = e.joinLocked(c, s, criteria{gender: s.gender, pref: s.pref, interests: s.interests})
	return end, ended, pj
}

// handleBlock ends the chat named, if it is live, and keeps its two users apart from
// then on.
func (e *Engine) handleBlock(c *conn, ev clientEvent) {
	if end, ended, _, ok := e.block(c, ev, EventBlocked); ok && ended {
		e.callOnChatEnd(c, end)
	}
}

// handleReport blocks as handleBlock does, answers reported instead of blocked, and
// tells Config.OnReport.
func (e *Engine) handleReport(c *conn, ev clientEvent) {
	end, ended, r, ok := e.block(c, ev, EventReported)
	if !ok {
		return
	}
	if ended {
		e.callOnChatEnd(c, end)
	}
	e.callOnReport(c, r)
}

// block does block or report (answered by reply) under the lock. For a report it
// returns what OnReport is to be told, less the decoding of messages that came from
// another node, which toReport does after the unlock.
func (e *Engine) block(c *conn, ev clientEvent, reply EventType) (end ChatEnd, ended bool, r *pendingReport, ok bool) {
	e.mu.Lock()
	defer e.unlock()
	s := e.sessionLocked(c, ev)
	if s == nil {
		return
	}
	now := time.Now()
	rec := e.moderatedChatLocked(s, ev.chatID, now)
	if rec == nil {
		e.sendErrorLocked(c, CodeNotInChat, "you were not in that chat, or it ended more than 5 minutes ago", ev.typ)
		return
	}
	if ch := s.chat; ch != nil && ch.id == rec.id {
		end, ended = e.endChatLocked(ch, s, ReasonLeft), true
	}
	partner := rec.other(s.handle)
	e.blockLocked(s, partner)
	if p := e.sessions[partner]; p != nil && p != s {
		// One side suffices (Ticket.Acceptable checks both tickets' Avoid), so a
		// waiting ticket of the partner stays as it is; but the partner's future
		// tickets say it too, and so does its state if it moves to another node.
		e.avoidLocked(p, s.handle, time.Time{})
		e.saveLocked(p)
	}
	e.replyLocked(c, appendChat(nil, reply, rec.id))
	if reply == EventReported && e.cfg.OnReport != nil && !rec.reportedBy(s.handle) {
		r = &pendingReport{
			report: Report{ChatID: rec.id, Reporter: s.handle, Reported: partner, Reason: ev.reason, Details: ev.details, At: now},
			users:  rec.users,
			msgs:   rec.snapshot(),
		}
	}
	return end, ended, r, true
}

// moderatedChatLocked returns the record of chat id if block and report may name it
// for s: s's live chat, or one of s's that ended within reportWindow. Otherwise nil.
func (e *Engine) moderatedChatLocked(s *session, id string, now time.Time) *chatRecord {
	if ch := s.chat; ch != nil && ch.id == id {
		return e.talkLocked(s, ch)
	}
	for _, r := range e.endedLocked(s, now) {
		if r.id == id {
			return r
		}
	}
	return nil
}

// blockLocked keeps s from ever being paired with user while s lives. A ticket of s
// that is waiting and does not avoid user yet is put back in the queue with user in
// its Avoid: otherwise, made before the block, it could still pair the two.
func (e *Engine) blockLocked(s *session, user string) {
	e.avoidLocked(s, user, time.Time{})
	if s.queued && !s.ticket.avoids(user) {
		t := s.ticket
		t.Avoid = append(slices.Clip(t.Avoid), user)
		slices.Sort(t.Avoid)
		// The new ticket keeps its place in the queue, but a JoinedAt of its own
		// tells it from the one it replaces (see waitingLocked): a pair of the old
		// one that the Cancel comes too late for is then refused, as a pair of a
		// ticket that left is.
		t.JoinedAt = t.JoinedAt.Add(time.Nanosecond)
		if e.lastJoin.Before(t.JoinedAt) {
			e.lastJoin = t.JoinedAt
		}
		s.ticket = t
		e.matcherOpLocked(s, matcherOp{cancel: true})
		e.matcherOpLocked(s, matcherOp{ticket: t})
	}
	e.saveLocked(s)
}

// pendingReport is a report decided under the lock, to be finished after it.
type pendingReport struct {
	report Report
	users  [2]string
	msgs   []recordedMessage
}

// toReport returns the report with its messages, oldest first. Messages that came
// from another node are decoded here, with no lock held; one that does not decode
// (it cannot happen with frames this package builds) is left out.
func (p *pendingReport) toReport() Report {
	r := p.report
	r.Messages = make([]Message, 0, len(p.msgs))
	for _, m := range p.msgs {
		msg := Message{ChatID: r.ChatID, From: m.from}
		if m.frame != nil {
			var env struct{ Payload MessageReceivedPayload }
			if json.Unmarshal(m.frame, &env) != nil {
				continue
			}
			msg.MessageID, msg.Content, msg.SentAt = env.Payload.MessageID, env.Payload.Content, env.Payload.SentAt
		} else {
			msg.MessageID, msg.Content, msg.SentAt = string(m.id[:m.idLen]), string(m.content), m.sentAt
		}
		msg.To = p.users[0]
		if msg.To == msg.From {
			msg.To = p.users[1]
		}
		r.Messages = append(r.Messages, msg)
	}
	return r
}
