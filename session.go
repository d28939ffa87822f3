package flamingo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"time"
)

// This file holds a user's session: init, which makes or resumes one; a connection
// taking a session over; a user going away and coming back; and the reaper, which
// forgets sessions whose users did not come back within the resume grace.

// session is one user's identity and state. It outlives connections: a user who
// disconnects keeps it for Config.ResumeGrace. All fields are guarded by Engine.mu.
type session struct {
	handle string
	digest [sha256.Size]byte // of the user_id; the raw id is not kept
	conn   *conn             // nil while the user is away
	gender Gender            // from the last join_queue

	queued    bool
	ticket    Ticket // valid while queued
	joinAcked bool   // queue_joined was sent for ticket
	chat      *chat

	// matcherOps are the Matcher calls decided for this session and not yet made, in
	// order; matcherBusy is set while a goroutine makes them (queue.go).
	matcherOps  []matcherOp
	matcherBusy bool

	held      [][]byte // events for the user while away, in order
	heldBytes int
	awayGen   uint64 // counts departures, so a stale expiry is recognised

	// remote marks a stand-in for a chat partner whose session is on another node
	// (with a Broker): only handle and gender are set, and it is in no map.
	remote bool

	// matching v2 (moderation.go). pref and interests are, with gender, the criteria
	// of the last join_queue, which next joins with again. avoid maps the users this
	// one must not be paired with to when that ends: a recent partner's RepeatWindow,
	// or the zero time for a block (either way), which lasts as long as the session.
	// talk is the record of the user's current or last chat (its messages, for a
	// report), and ended the records of the chats that ended within reportWindow,
	// oldest first.
	pref      Preference
	interests []string
	avoid     map[string]time.Time
	talk      *chatRecord
	ended     []*chatRecord
}

// waitsWith reports whether s is waiting with ticket t (JoinedAt tells a user's
// tickets apart).
func (s *session) waitsWith(t Ticket) bool {
	return s.queued && s.ticket.JoinedAt.Equal(t.JoinedAt)
}

// absence is an entry in the reaper's queue: sess left at gen and expires at deadline.
type absence struct {
	sess     *session
	gen      uint64
	deadline time.Time
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

// initStep is what handleInit does next.
type initStep int

const (
	initDone  initStep = iota // init has been answered
	initWait                  // wait for another connection's claim of the session
	initClaim                 // claim the session from the cluster
)

// claimTimeout bounds a Broker.Claim made for an init.
const claimTimeout = 5 * time.Second

func (e *Engine) handleInit(c *conn, ev clientEvent) {
	var digest [sha256.Size]byte
	if ev.userID != "" {
		digest = sha256.Sum256([]byte(ev.userID))
	}
	h := handleOf(digest)
	for {
		step, cl := e.initStep(c, ev, h, digest)
		switch step {
		case initWait:
			// Another connection is claiming this session from the cluster: once it
			// has, this one takes it over, as on a single node.
			<-cl.done
			continue
		case initClaim:
			ctx, cancel := context.WithTimeout(e.ctx, claimTimeout)
			st, err := e.broker.Claim(ctx, h, digest)
			cancel()
			e.claimed(c, cl, ev, h, digest, st, err)
		}
		return
	}
}

// initStep answers init on c if it can be answered at once: an error, a resume of a
// session this node holds, or a new identity. Otherwise it returns the claim to wait
// for, or the claim this connection is to make (registered in e.claims).
func (e *Engine) initStep(c *conn, ev clientEvent, h string, digest [sha256.Size]byte) (initStep, *claim) {
	e.mu.Lock()
	defer e.unlock()
	if c.sess != nil || c.replaced {
		e.sendErrorLocked(c, CodeAlreadyInitialized, "init was already sent on this connection", EventInit)
		return initDone, nil
	}
	if c.closed {
		return initDone, nil
	}
	if ev.userID != "" {
		s := e.sessions[h]
		if s != nil && subtle.ConstantTimeCompare(s.digest[:], digest[:]) == 1 {
			// A resume needs the secret, so it is never limited: a storm of inits
			// from a shared address cannot keep its users from coming back.
			e.resumeLocked(c, s, ev.userID)
			return initDone, nil
		}
		if s == nil && e.broker != nil {
			if cl := e.claims[h]; cl != nil {
				return initWait, cl
			}
			cl := &claim{done: make(chan struct{})}
			e.claims[h] = cl
			return initClaim, cl
		}
	}
	e.newSessionLocked(c, ev)
	return initDone, nil
}

// newSessionLocked gives c a new identity, within the init limits of its address.
func (e *Engine) newSessionLocked(c *conn, ev clientEvent) {
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
	e.counters.resumed++
	away := s.conn == nil
	if old := s.conn; old != nil {
		e.replaceConnLocked(old, s)
	}
	e.attachLocked(c, s)
	if away { // (a takeover is no drop: the partner saw no partner_away)
		e.partnerBackLocked(s)
	}
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
	if !old.closed {
		e.counters.errors[CodeSessionReplaced]++
	}
	e.pushLocked(old, outFrame{b: appendError(nil, CodeSessionReplaced, "this chat was opened on another connection", "")})
	old.qmu.Lock()
	old.closeAt = &closeReq{CloseSessionReplaced, "session replaced"}
	old.qmu.Unlock()
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
	c.qmu.Lock()
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
	c.qmu.Unlock()
	e.leaveQueueLocked(s)
	if away {
		e.partnerAwayLocked(s)
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

// reaper expires sessions whose users did not come back within the resume grace.
func (e *Engine) reaper() {
	defer e.workers.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		ends, wait := e.expireDue(time.Now())
		e.callOnChatEnd(nil, ends...)
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

// expireDue expires the sessions whose grace ended by now. It returns the chats that
// ended, and how long until the next deadline (negative if none).
func (e *Engine) expireDue(now time.Time) (ends []ChatEnd, wait time.Duration) {
	e.mu.Lock()
	defer e.unlock()
	for len(e.absent) > 0 && !e.absent[0].deadline.After(now) {
		a := e.absent[0]
		e.absent[0] = absence{}
		e.absent = e.absent[1:]
		if end, ok := e.expireLocked(a); ok {
			ends = append(ends, end)
		}
	}
	if len(e.absent) == 0 {
		return ends, -1
	}
	return ends, e.absent[0].deadline.Sub(now)
}

// expireLocked forgets a session that stayed away past its grace, ending its chat.
func (e *Engine) expireLocked(a absence) (ChatEnd, bool) {
	s := a.sess
	if s.conn != nil || s.awayGen != a.gen || e.sessions[s.handle] != s {
		return ChatEnd{}, false // came back, or left again later
	}
	delete(e.sessions, s.handle)
	s.held, s.heldBytes = nil, 0
	e.counters.expired++
	e.checkDrainedLocked()
	e.log.Debug("flamingo: session expired", slog.String("user", s.handle))
	var end ChatEnd
	ch := s.chat
	if ch != nil {
		end = e.endChatLocked(ch, s, ReasonPartnerDisconnected)
	}
	if b := e.broker; b != nil {
		e.publishLocked(func() { b.Forget(s.handle) })
	}
	return end, ch != nil
}
