package flamingo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// ChatInfo describes a chat that has just started. Users are handles: stable, opaque
// names for the users that are not their secret user_ids.
type ChatInfo struct {
	ChatID    string
	Users     [2]string
	Genders   [2]Gender
	StartedAt time.Time
}

// Message is a message on its way from one user to their partner.
type Message struct {
	ChatID    string
	MessageID string
	From, To  string // handles
	Content   string
	SentAt    time.Time
}

// ChatEnd describes a chat that has ended.
type ChatEnd struct {
	ChatID string
	Users  [2]string // handles
	// By is the handle of the user who left or did not come back.
	By string
	// Reason is [ReasonLeft] when By left on purpose, [ReasonPartnerDisconnected] when
	// By did not come back within the resume grace.
	Reason    EndReason
	StartedAt time.Time
	EndedAt   time.Time
}

// session is one user's identity and state. It outlives connections: a user who
// disconnects keeps it for Config.ResumeGrace. All fields are guarded by Engine.mu.
type session struct {
	handle string
	digest [sha256.Size]byte // of the user_id; the raw id is not kept
	conn   *conn             // nil while the user is away
	gender Gender            // from the last join_queue

	queued bool
	ticket Ticket // valid while queued
	chat   *chat

	held      [][]byte // events for the user while away, in order
	heldBytes int
	awayGen   uint64 // counts departures, so a stale expiry is recognised

	// remote marks a stand-in for a chat partner whose session is on another node
	// (with a Broker): only handle and gender are set, and it is in no map.
	remote bool
}

// absence is an entry in the reaper's queue: sess left at gen and expires at deadline.
type absence struct {
	sess     *session
	gen      uint64
	deadline time.Time
}

// chat is two users talking. Guarded by Engine.mu.
type chat struct {
	id      string
	users   [2]*session
	started time.Time
}

func (ch *chat) partner(s *session) *session {
	if ch.users[0] == s {
		return ch.users[1]
	}
	return ch.users[0]
}

// outFrame is one event queued for a connection. keep marks chat events, which are
// held for the user if the connection ends before they are written.
type outFrame struct {
	b    []byte
	keep bool
}

// conn is one connection being served. Fields after t are guarded by Engine.mu.
type conn struct {
	e *Engine
	t Transport

	pinger  Pinger     // t, if it is one
	addr    netip.Addr // the peer's address, if t is an Addresser
	limits  connLimits
	started time.Time // when Serve began, for InitTimeout
	// writeSince is when the write under way began (Unix nanoseconds), 0 between
	// writes: the sweeper drops a connection whose write takes over WriteTimeout.
	writeSince atomic.Int64

	sess     *session
	owner    *session // the session c was attached to last, kept after detaching
	replaced bool     // another connection took the session over
	closed   bool     // closing or closed: nothing more is queued
	writing  bool     // a writer goroutine is running
	queue    []outFrame
	inflight []outFrame   // the batch the writer is writing
	spare    []outFrame   // an empty slice to take the queue's place
	written  atomic.Int64 // how many frames of inflight have been written
	qbytes   int
	closeAt  *closeReq // close the transport once the queue is written
	pinging  bool      // a heartbeat ping is under way
	nextPing time.Time // when the next heartbeat ping is due
	// slack and slackBytes are what the resume replayed: room beyond the bounds, so
	// that a replay at the bound does not make a reading client look slow.
	slack, slackBytes int
}

// writtenHalt, stored in conn.written when the connection is detached from its
// session, stops the writer before its next frame.
const writtenHalt = 1 << 40

// keepQueueCap is the largest queue slice kept for reuse; a larger one (after a
// burst) is left to the garbage collector so that idle connections stay small.
const keepQueueCap = 8

type closeReq struct {
	code   CloseCode
	reason string
}

func randomHex(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b)
}

// handleOf derives the internal handle from a user_id digest.
func handleOf(d [sha256.Size]byte) string {
	return hex.EncodeToString(d[:16])
}

// handle processes one client frame on c.
func (e *Engine) handle(c *conn, b []byte) {
	now := time.Now()
	if ok, retry := take(&c.limits.events, now); !ok { // before parsing: shed a flood cheaply
		e.rateLimited(c, "", retry)
		return
	}
	ev, perr := parseClientEvent(b)
	if perr != nil {
		e.sendError(c, perr.code, perr.msg, perr.ref)
		return
	}
	switch ev.typ {
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
	if ev.typ == EventInit {
		e.handleInit(c, ev)
		return
	}
	e.mu.Lock()
	s := c.sess
	if s == nil {
		if !c.replaced {
			e.sendErrorLocked(c, CodeNotInitialized, "send init first", ev.typ)
		}
		e.mu.Unlock()
		return
	}
	switch ev.typ {
	case EventPing:
		e.replyLocked(c, appendEmpty(nil, EventPong))
		e.mu.Unlock()
	case EventGetStats:
		e.replyLocked(c, appendStats(nil, e.statsLocked()))
		e.mu.Unlock()
	case EventJoinQueue:
		e.joinQueueLocked(c, s, ev) // unlocks
	case EventLeaveQueue:
		if !s.queued {
			e.sendErrorLocked(c, CodeNotInQueue, "you are not in the queue", ev.typ)
			e.mu.Unlock()
			return
		}
		e.dequeueLocked(s)
		e.replyLocked(c, appendEmpty(nil, EventQueueLeft))
		e.mu.Unlock()
		e.cancelTicket(s.handle)
	case EventSendMessage:
		e.sendMessageLocked(c, s, ev) // unlocks
	case EventLeaveChat:
		ch := s.chat
		if ch == nil || (ev.chatID != "" && ev.chatID != ch.id) {
			e.sendErrorLocked(c, CodeNotInChat, "you are not in that chat", ev.typ)
			e.mu.Unlock()
			return
		}
		end := e.endChatLocked(ch, s, ReasonLeft)
		e.mu.Unlock()
		e.callOnChatEnd(c, end)
	default:
		e.mu.Unlock()
	}
}

func (e *Engine) handleInit(c *conn, ev clientEvent) {
	var digest [sha256.Size]byte
	if ev.userID != "" {
		digest = sha256.Sum256([]byte(ev.userID))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.sess != nil || c.replaced {
		e.sendErrorLocked(c, CodeAlreadyInitialized, "init was already sent on this connection", EventInit)
		return
	}
	if c.closed {
		return
	}
	if ev.userID != "" {
		h := handleOf(digest)
		for waited := false; ; waited = true {
			s := e.sessions[h]
			if s != nil && subtle.ConstantTimeCompare(s.digest[:], digest[:]) == 1 {
				// A resume needs the secret, so it is never limited: a storm of inits
				// from a shared address cannot keep its users from coming back.
				e.resumeLocked(c, s, ev.userID)
				return
			}
			if s != nil || e.broker == nil {
				break
			}
			if cl := e.claims[h]; cl != nil && !waited {
				// Another connection is claiming this session from the cluster: once
				// it has, this one takes it over, as on a single node.
				e.mu.Unlock()
				<-cl.done
				e.mu.Lock()
				if c.closed || c.sess != nil || c.replaced {
					return
				}
				continue
			}
			if e.claims[h] == nil {
				switch e.claimLocked(c, h, digest, ev.userID) {
				case claimed:
					return
				case claimFailed:
					// The session may exist, but could not be reached: the client
					// should come back with the same user_id, not get a new one.
					e.sendErrorLocked(c, CodeInternal, "could not resume the session, try again", EventInit)
					e.closeConnLocked(c, CloseInternalError, "resume failed")
					return
				}
			}
			break
		}
	}
	if c.addr.IsValid() {
		ipl := e.ipLimitsLocked(c.addr)
		bucket := &ipl.inits
		if ev.userID != "" {
			// An id that matches nothing: expired, mistyped or guessed. Guessing
			// is what this bucket makes slow.
			bucket = &ipl.guesses
		}
		if ok, retry := take(bucket, time.Now()); !ok {
			e.rateLimitedLocked(c, EventInit, retry)
			return
		}
	}
	// A new identity; an unknown user_id is never reused.
	userID := randomHex(16)
	s := &session{digest: sha256.Sum256([]byte(userID))}
	s.handle = handleOf(s.digest)
	e.sessions[s.handle] = s
	e.attachLocked(c, s)
	e.pushLocked(c, outFrame{b: appendReady(nil, userID, false, "")})
	e.saveLocked(s)
	e.log.Debug("flamingo: new session", slog.String("user", s.handle))
}

// resumeLocked gives session s to connection c, taking it from its old connection if it
// has a live one, and replays what was held for it.
func (e *Engine) resumeLocked(c *conn, s *session, userID string) {
	if old := s.conn; old != nil {
		e.replaceConnLocked(old, s)
	}
	e.attachLocked(c, s)
	chatID := ""
	if s.chat != nil {
		chatID = s.chat.id
	}
	e.pushLocked(c, outFrame{b: appendReady(nil, userID, true, chatID)})
	for _, b := range s.held {
		e.pushLocked(c, outFrame{b: b, keep: true})
	}
	c.slack, c.slackBytes = len(s.held)+1, s.heldBytes
	s.held, s.heldBytes = nil, 0
	e.saveLocked(s)
	e.log.Debug("flamingo: session resumed", slog.String("user", s.handle))
}

// replaceConnLocked ends old, the connection of s, because another connection took s
// over; what old had not written is held for s.
func (e *Engine) replaceConnLocked(old *conn, s *session) {
	e.detachLocked(old, false)
	old.replaced = true
	// The last word to the old connection, whatever its queue holds; the writer
	// closes it after this frame.
	e.pushLocked(old, outFrame{b: appendError(nil, CodeSessionReplaced, "this chat was opened on another connection", "")})
	old.closeAt = &closeReq{CloseSessionReplaced, "session replaced"}
	e.log.Debug("flamingo: session taken over", slog.String("user", s.handle))
}

func (e *Engine) attachLocked(c *conn, s *session) {
	c.sess, c.owner = s, s
	s.conn = c
	e.online++
}

// detachLocked separates c from its session. Frames not yet known to be written are held
// for the user. With away set, the session starts its resume grace (and leaves the
// queue); otherwise another connection is about to take it.
func (e *Engine) detachLocked(c *conn, away bool) {
	s := c.sess
	if s == nil || s.conn != c {
		return
	}
	c.sess = nil
	s.conn = nil
	e.online--
	// The writer stops before its next frame: those from here on are held, once.
	unwritten := c.inflight[min(int(c.written.Swap(writtenHalt)), len(c.inflight)):]
	for _, q := range [][]outFrame{unwritten, c.queue} {
		for _, f := range q {
			if f.keep {
				s.held = append(s.held, f.b)
				s.heldBytes += len(f.b)
			}
		}
	}
	c.queue, c.qbytes = nil, 0
	if s.queued {
		e.dequeueLocked(s)
		e.goLocked(func() { e.cancelTicket(s.handle) })
	}
	if away {
		e.saveLocked(s)
		s.awayGen++
		e.absent = append(e.absent, absence{sess: s, gen: s.awayGen, deadline: time.Now().Add(e.cfg.ResumeGrace)})
		if len(e.absent) == 1 {
			select {
			case e.wake <- struct{}{}:
			default:
			}
		}
	}
}

// disconnect is called once the read loop of c has ended.
func (e *Engine) disconnect(c *conn) {
	e.mu.Lock()
	delete(e.conns, c)
	if s := c.sess; s != nil {
		e.detachLocked(c, true)
		e.log.Debug("flamingo: user away", slog.String("user", s.handle))
	}
	e.closeConnLocked(c, CloseNormal, "")
	e.mu.Unlock()
}

func (e *Engine) dequeueLocked(s *session) {
	s.queued = false
	s.ticket = Ticket{}
	e.inQueue--
}

func (e *Engine) cancelTicket(user string) {
	if _, err := e.matcher.Cancel(context.Background(), user); err != nil {
		e.log.Error("flamingo: matcher cancel failed", slog.String("user", user), slog.Any("err", err))
	}
}

func (e *Engine) joinQueueLocked(c *conn, s *session, ev clientEvent) {
	switch {
	case s.chat != nil:
		e.sendErrorLocked(c, CodeAlreadyInChat, "leave your chat first", ev.typ)
		e.mu.Unlock()
		return
	case s.queued:
		e.sendErrorLocked(c, CodeAlreadyInQueue, "you are already in the queue", ev.typ)
		e.mu.Unlock()
		return
	}
	s.queued = true
	s.gender = ev.gender
	// JoinedAt also tells one ticket of a user from the next (see waitingLocked), so
	// it never repeats, even where the clock does not move between two joins.
	now := time.Now()
	if !now.After(e.lastJoin) {
		now = e.lastJoin.Add(time.Nanosecond)
	}
	e.lastJoin = now
	s.ticket = Ticket{User: s.handle, Gender: ev.gender, Preference: ev.pref, JoinedAt: now, Node: e.node}
	e.inQueue++
	e.replyLocked(c, appendQueueJoined(nil, e.statsLocked().InQueue))
	t := s.ticket
	e.mu.Unlock()
	e.enqueue(t)
}

// enqueue hands t to the matcher; if that fails, the user is told and leaves the
// queue. The user may leave the queue while the call is under way (a takeover, a
// disconnect): the cancel, made on another goroutine, may then have reached the
// matcher first, so the ticket is taken out again here; and a stale ticket of the
// user that such a race left waiting earlier is replaced by t.
func (e *Engine) enqueue(t Ticket) {
	ctx := context.Background()
	err := e.matcher.Enqueue(ctx, t)
	for retried := false; ; retried = true {
		e.mu.Lock()
		s := e.sessions[t.User]
		waiting := s != nil && s.queued && s.ticket.JoinedAt.Equal(t.JoinedAt)
		switch {
		case err == nil:
			if s == nil || !s.queued {
				// Rare, so done under the lock: ordered before any later join.
				e.cancelTicketLocked(ctx, t.User)
			}
			e.mu.Unlock()
			return
		case errors.Is(err, ErrAlreadyQueued) && waiting && !retried:
			// A ticket of this user is waiting: a stale one, or t itself (a Resync
			// after the cluster lost nothing). Either way t takes its place.
			e.cancelTicketLocked(ctx, t.User)
			e.mu.Unlock()
			err = e.matcher.Enqueue(ctx, t)
			continue
		}
		if waiting {
			e.log.Error("flamingo: matcher enqueue failed", slog.String("user", t.User), slog.Any("err", err))
			e.dequeueLocked(s)
			if s.conn != nil {
				e.sendErrorLocked(s.conn, CodeInternal, "could not join the queue, try again", EventJoinQueue)
			}
		}
		e.mu.Unlock()
		return
	}
}

// cancelTicketLocked cancels user's ticket while e.mu is held (Cancel never reports a
// pair, so it cannot call back into the engine).
func (e *Engine) cancelTicketLocked(ctx context.Context, user string) {
	if _, err := e.matcher.Cancel(ctx, user); err != nil {
		e.log.Error("flamingo: matcher cancel failed", slog.String("user", user), slog.Any("err", err))
	}
}

// onPair is the report function installed in the matcher.
func (e *Engine) onPair(p Pair) {
	if e.broker != nil && (!e.ownTicket(p.A) || !e.ownTicket(p.B)) {
		e.onRemotePair(p)
		return
	}
	e.mu.Lock()
	a, b := e.waitingLocked(p.A), e.waitingLocked(p.B)
	if a == nil || b == nil || a == b {
		closed := e.closed
		if p.ChatID != "" && e.broker != nil {
			e.broker.Publish(BrokerOp{Kind: OpEndChat, ChatID: p.ChatID, Users: [2]string{p.A.User, p.B.User}})
		}
		e.mu.Unlock()
		// One side left before the pair arrived: the other keeps its place in the
		// queue, by its original JoinedAt.
		if a != nil && !closed {
			e.enqueue(p.A)
		}
		if b != nil && b != a && !closed {
			e.enqueue(p.B)
		}
		return
	}
	id := p.ChatID
	if id == "" {
		id = randomHex(16)
	}
	ch := &chat{id: id, users: [2]*session{a, b}, started: time.Now()}
	e.chats[ch] = struct{}{}
	for _, s := range ch.users {
		e.dequeueLocked(s)
		s.chat = ch
		e.inChat++
		e.saveLocked(s)
	}
	e.deliverLocked(a, appendMatchFound(nil, ch.id, b.gender), true)
	e.deliverLocked(b, appendMatchFound(nil, ch.id, a.gender), true)
	info := ChatInfo{ChatID: ch.id, Users: [2]string{a.handle, b.handle}, Genders: [2]Gender{a.gender, b.gender}, StartedAt: ch.started}
	e.mu.Unlock()
	if e.cfg.OnMatch != nil {
		e.callHook(nil, "OnMatch", func() { e.cfg.OnMatch(info) })
	}
}

// waitingLocked returns the session that t belongs to if it is still waiting with t.
func (e *Engine) waitingLocked(t Ticket) *session {
	s := e.sessions[t.User]
	if s == nil || !s.queued || !s.ticket.JoinedAt.Equal(t.JoinedAt) || s.conn == nil {
		return nil
	}
	return s
}

func (e *Engine) sendMessageLocked(c *conn, s *session, ev clientEvent) {
	ch := s.chat
	if ch == nil || ev.chatID != ch.id {
		e.sendErrorLocked(c, CodeNotInChat, "you are not in that chat", ev.typ)
		e.mu.Unlock()
		return
	}
	now := time.Now()
	// A message id is the send time in Unix nanoseconds, or one more than the last id
	// where the clock has not moved on: increasing on each node, and across the nodes
	// of a cluster (within their clock skew), so a sender who moves to another node
	// goes on with larger ids.
	id := max(e.lastMsgID+1, uint64(now.UnixNano()))
	e.lastMsgID = id
	var idBuf [16]byte
	msgID := strconv.AppendUint(idBuf[:0], id, 16)
	m := Message{
		ChatID:  ch.id,
		From:    s.handle,
		To:      ch.partner(s).handle,
		Content: ev.content,
		SentAt:  now,
	}
	if e.cfg.OnMessage != nil {
		m.MessageID = string(msgID)
		e.mu.Unlock()
		var err error
		if !e.callHook(c, "OnMessage", func() { err = e.cfg.OnMessage(m) }) {
			return
		}
		e.mu.Lock()
		if err != nil {
			var perr *Error
			if errors.As(err, &perr) {
				e.sendErrorLocked(c, perr.Code, perr.Message, ev.typ)
			} else {
				e.sendErrorLocked(c, CodeMessageRejected, "the message was refused", ev.typ)
			}
			e.mu.Unlock()
			return
		}
		if s.chat != ch { // the chat ended while the hook ran
			e.sendErrorLocked(c, CodeNotInChat, "the chat has ended", ev.typ)
			e.mu.Unlock()
			return
		}
	}
	// One allocation of exactly the right size.
	frame := appendMessageReceived(make([]byte, 0, messageReceivedLen(m.ChatID, msgID, m.Content)),
		m.ChatID, msgID, m.Content, m.SentAt)
	if p := ch.partner(s); p.remote {
		// Whether a partner away on another node can take more is not known here:
		// that node drops what is over its bound.
		e.broker.Publish(BrokerOp{Kind: OpSend, User: p.handle, Event: ClusterEvent{Kind: KindMessage, ChatID: ch.id, Frame: frame}})
	} else if !e.deliverLocked(p, frame, false) {
		e.sendErrorLocked(c, CodeRateLimited, "your partner is away and cannot take more messages now", ev.typ)
	}
	e.mu.Unlock()
}

// endChatLocked ends ch because by left (ReasonLeft) or did not come back
// (ReasonPartnerDisconnected), telling each remaining participant once.
func (e *Engine) endChatLocked(ch *chat, by *session, reason EndReason) ChatEnd {
	delete(e.chats, ch)
	for _, s := range ch.users {
		if !s.remote {
			s.chat = nil
			e.inChat--
		}
	}
	other := ch.partner(by)
	otherReason := ReasonPartnerDisconnected
	if reason == ReasonLeft {
		e.deliverLocked(by, appendChatEnded(nil, ch.id, ReasonLeft), true)
		otherReason = ReasonPartnerLeft
	}
	if e.broker != nil {
		op := BrokerOp{Kind: OpEndChat, ChatID: ch.id, Users: [2]string{ch.users[0].handle, ch.users[1].handle}}
		switch {
		case other.remote:
			op.Notify, op.Reason = other.handle, otherReason
		case by.remote: // this node lost touch with the cluster (Resync)
			op.Notify, op.Reason = by.handle, ReasonPartnerDisconnected
		}
		e.broker.Publish(op)
	}
	if !other.remote {
		e.deliverLocked(other, appendChatEnded(nil, ch.id, otherReason), true)
	}
	return ChatEnd{
		ChatID:    ch.id,
		Users:     [2]string{ch.users[0].handle, ch.users[1].handle},
		By:        by.handle,
		Reason:    reason,
		StartedAt: ch.started,
		EndedAt:   time.Now(),
	}
}

func (e *Engine) callOnChatEnd(c *conn, end ChatEnd) {
	if e.cfg.OnChatEnd != nil {
		e.callHook(c, "OnChatEnd", func() { e.cfg.OnChatEnd(end) })
	}
}

// callHook runs a user hook, recovering a panic. If the hook ran for connection c, a
// panic closes c with CloseInternalError. It reports whether the hook returned.
func (e *Engine) callHook(c *conn, name string, f func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("flamingo: hook panicked", slog.String("hook", name), slog.String("panic", fmt.Sprint(r)))
			if c != nil {
				e.closeConn(c, CloseInternalError, "internal error")
			}
			ok = false
		}
	}()
	f()
	return true
}

// deliverLocked sends a chat event to s, wherever s is: on its connection, or held
// until it comes back. A connection that cannot take the event is dropped as a slow
// consumer and its user is treated as away. Unless force is set, an event for a user
// whose held events are at their bound is refused (false).
func (e *Engine) deliverLocked(s *session, b []byte, force bool) bool {
	if c := s.conn; c != nil {
		if e.sendLocked(c, outFrame{b: b, keep: true}) {
			return true
		}
		e.dropSlowLocked(c, "too slow")
	}
	if !force && (len(s.held) >= e.cfg.MaxQueuedEvents || s.heldBytes+len(b) > e.cfg.MaxQueuedBytes) {
		return false
	}
	s.held = append(s.held, b)
	s.heldBytes += len(b)
	return true
}

func (e *Engine) sendError(c *conn, code ErrorCode, msg string, ref EventType) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sendErrorLocked(c, code, msg, ref)
}

// sendErrorLocked answers c with an error event. Each one spends a token of c's error
// budget; a connection that has spent it all is closed instead, as abusive.
func (e *Engine) sendErrorLocked(c *conn, code ErrorCode, msg string, ref EventType) {
	e.sendErrorFrameLocked(c, appendError(nil, code, msg, ref))
}

func (e *Engine) sendErrorFrameLocked(c *conn, frame []byte) {
	if ok, _ := take(&c.limits.errors, time.Now()); !ok {
		if s := c.sess; s != nil {
			e.log.Info("flamingo: closing abusive connection", slog.String("user", s.handle))
			e.detachLocked(c, true)
		}
		e.closeConnLocked(c, ClosePolicyViolation, "too many errors")
		return
	}
	e.replyLocked(c, frame)
}

// rateLimited tells c that its event was dropped and when to try again.
func (e *Engine) rateLimited(c *conn, ref EventType, retry time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rateLimitedLocked(c, ref, retry)
}

func (e *Engine) rateLimitedLocked(c *conn, ref EventType, retry time.Duration) {
	e.sendErrorFrameLocked(c, appendRateLimited(nil, ref, retry))
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
	e.closeConnLocked(c, CloseSlowConsumer, reason)
}

// sendLocked queues f for c within the queue's bounds; it reports false if c is
// closed or its queue is full. Frames replayed on resume do not count against the
// bounds (c.slack).
func (e *Engine) sendLocked(c *conn, f outFrame) bool {
	if c.closed {
		return false
	}
	pending := len(c.queue) + len(c.inflight) - int(c.written.Load()) - c.slack
	if pending >= e.cfg.MaxQueuedEvents || c.qbytes+len(f.b) > e.cfg.MaxQueuedBytes+c.slackBytes {
		return false
	}
	e.pushLocked(c, f)
	return true
}

// pushLocked queues f for c regardless of the bounds (used when a resume replays held
// events, which were within the bounds when they were held) and starts a writer.
func (e *Engine) pushLocked(c *conn, f outFrame) {
	if c.closed {
		return
	}
	c.queue = append(c.queue, f)
	c.qbytes += len(f.b)
	if !c.writing && !e.closed { // (see goLocked on why not after Shutdown began)
		c.writing = true
		e.workers.Add(1)
		go c.writeLoop()
	}
}

// writeLoop writes c's queue until it is empty, then exits: an idle connection has no
// writer goroutine.
func (c *conn) writeLoop() {
	e := c.e
	defer e.workers.Done()
	ctx := context.Background()
	for {
		e.mu.Lock()
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
			if req := c.closeAt; req != nil {
				e.closeConnLocked(c, req.code, req.reason)
			}
			e.mu.Unlock()
			return
		}
		batch := c.queue
		c.inflight, c.queue, c.spare, c.qbytes = batch, c.spare, nil, 0
		c.written.Store(0)
		e.mu.Unlock()

		for _, f := range batch {
			// Counted as written before the write, so that a disconnect seen by the
			// reader meanwhile does not hold (and later repeat) a frame the client
			// may already have; if the write fails, it is held after all. Once c
			// has been detached (writtenHalt), what is left of the batch is held
			// for the user and must not be written here too.
			if c.written.Add(1) > int64(len(batch)) {
				break
			}
			c.writeSince.Store(time.Now().UnixNano())
			err := c.t.Write(ctx, f.b)
			c.writeSince.Store(0)
			if err != nil {
				e.writeFailed(c, f)
				return
			}
		}
	}
}

// writeFailed ends c after a failed write of f.
func (e *Engine) writeFailed(c *conn, f outFrame) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Uncounted under the lock, so that exactly one of detachLocked (now or already
	// done) and the case below holds f.
	c.written.Add(-1)
	c.writing = false
	switch s := c.owner; {
	case c.sess != nil:
		e.detachLocked(c, true) // holds f and what follows it
	case s != nil && s.conn == nil && f.keep:
		// The reader saw the disconnect first and held what followed f; f goes
		// before it.
		s.held = append([][]byte{f.b}, s.held...)
		s.heldBytes += len(f.b)
	case s != nil && s.conn != nil && f.keep && e.sessions[s.handle] == s:
		// The user came back on another connection before this write failed: f
		// was not replayed, so it goes there now, after what was (the one case
		// where an event arrives out of order).
		e.deliverLocked(s, f.b, true)
	}
	e.closeConnLocked(c, CloseGoingAway, "write failed")
}

// reaper expires sessions whose users did not come back within the resume grace.
func (e *Engine) reaper() {
	defer e.workers.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var ends []ChatEnd
		e.mu.Lock()
		now := time.Now()
		for len(e.absent) > 0 && !e.absent[0].deadline.After(now) {
			a := e.absent[0]
			e.absent[0] = absence{}
			e.absent = e.absent[1:]
			if end, ok := e.expireLocked(a); ok {
				ends = append(ends, end)
			}
		}
		wait := time.Duration(-1)
		if len(e.absent) > 0 {
			wait = e.absent[0].deadline.Sub(now)
		}
		e.mu.Unlock()
		for _, end := range ends {
			e.callOnChatEnd(nil, end)
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-e.done:
			timer.Stop()
			return
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// expireLocked forgets a session that stayed away past its grace, ending its chat.
func (e *Engine) expireLocked(a absence) (ChatEnd, bool) {
	s := a.sess
	if s.conn != nil || s.awayGen != a.gen || e.sessions[s.handle] != s {
		return ChatEnd{}, false // came back, or left again later
	}
	delete(e.sessions, s.handle)
	s.held, s.heldBytes = nil, 0
	e.log.Debug("flamingo: session expired", slog.String("user", s.handle))
	var end ChatEnd
	ch := s.chat
	if ch != nil {
		end = e.endChatLocked(ch, s, ReasonPartnerDisconnected)
	}
	if e.broker != nil {
		e.broker.Publish(BrokerOp{Kind: OpForget, User: s.handle})
	}
	return end, ch != nil
}
