package flamingo_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flamingochat/flamingo"
)

// The simulated users of TestChaos_KillConnections and the run state they share.

// chaosRun is one run of TestChaos_KillConnections: its users, its ledger and the
// signals that move the users through its phases.
type chaosRun struct {
	e      *flamingo.Engine
	dialer *chaosDialer
	grace  time.Duration
	period time.Duration // mean time between two messages of one user
	ctl    *chaosControl
	ledger chaosLedger
	stalls *chaosStalls

	// The phases every user passes, in order; a user that ends early passes the
	// rest as it returns.
	ready   sync.WaitGroup // matched (chatters) or queued (waiters)
	drained sync.WaitGroup // after stop: every message sent has its answer
	synced  sync.WaitGroup // after syncNow: a ping sent after every sender drained got its pong

	start    chan struct{}   // the chaos begins: chatters send
	waves    []chan struct{} // each closes when its wave of kills and leaves comes
	stop     chan struct{}   // stop sending
	syncNow  chan struct{}
	closeAll chan struct{} // every user closes its connection and returns

	resumesDone atomic.Int32

	mu       sync.Mutex
	problems []string
	dials    int
	late     []*chaosUser // users whose resume came after the grace
}

const chaosPhases = 3

func (r *chaosRun) phase(i int) *sync.WaitGroup {
	return [chaosPhases]*sync.WaitGroup{&r.ready, &r.drained, &r.synced}[i]
}

func (r *chaosRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *chaosRun) hasProblems() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.problems) > 0
}

func (r *chaosRun) requireNoProblems(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.problems); n > 0 {
		t.Fatalf("%d problems, the first ones:\n%s", n, strings.Join(r.problems[:min(n, 20)], "\n"))
	}
}

// chaosUser is one simulated user. Its fields belong to its own goroutine (run) while
// it runs; the test reads them only before start and after the goroutine has ended,
// except role and fate, which do not change after start.
type chaosUser struct {
	r    *chaosRun
	idx  int
	role chaosRole
	rng  *rand.Rand
	fate chaosFate

	partner   *chaosUser // the other user of the chat; set before start
	conn      *chaosConn
	connNo    int
	userID    string
	chatID    string // from match_found
	chatting  bool   // in the chat, so sending
	queued    bool
	ready     *chaosFrame // this connection's ready, once it came
	pending   []*chaosPending
	events    int // frames read, over all connections
	stopped   bool
	syncSent  bool
	syncPongs int
	leaveSent bool
	phase     int // how many phases the user has passed

	// Records for the checks.
	ends       []chaosEnd
	reads      [][2]int // seq and connNo of each message read, in order
	lateLeaves int      // leave_chat answered with not_in_chat
	killedAt   time.Time
	noticeSeq  int       // the ledger's length once the engine had seen the kill
	noticedAt  time.Time // when the test saw that the engine had seen the kill
	resumedAt  time.Time
	late       bool // the resume came after the grace: a new identity
	chatGone   bool // the resume came after the chat had ended
}

// chaosPending is a send_message (or, with msg nil, a lone ping) waiting for the pong
// of the ping that follows it. Errors come before that pong, in order.
type chaosPending struct {
	msg      *chaosMsg
	code     flamingo.ErrorCode
	errIndex int
}

// chaosEnd is one chat_ended a user read.
type chaosEnd struct {
	chatID string
	reason flamingo.EndReason
	at     time.Time
	connNo int
	index  int
}

func (u *chaosUser) pass() {
	u.r.phase(u.phase).Done()
	u.phase++
}

func (u *chaosUser) run() {
	r := u.r
	defer r.ctl.actors.Done()
	defer func() {
		for u.phase < chaosPhases {
			u.pass()
		}
	}()
	defer u.hangUp()
	if err := u.live(); err != nil && !errors.Is(err, errChaosAborted) {
		r.problem("user %d (%s): %v", u.idx, u.describe(), err)
	}
}

func (u *chaosUser) describe() string {
	if u.role == chaosWaiter {
		return "waiter"
	}
	return "chatter"
}

func (u *chaosUser) live() error {
	r := u.r
	if err := u.connect(""); err != nil {
		return err
	}
	if err := u.join(); err != nil {
		return err
	}
	if u.role == chaosChatter {
		if err := u.await(func() bool { return u.chatID != "" }); err != nil {
			return fmt.Errorf("waiting for a match: %w", err)
		}
	}
	u.pass() // ready
	select {
	case <-r.start:
	case <-r.ctl.abort:
		return errChaosAborted
	}
	return u.loop()
}

// join queues the user: chatters (male, looking for males) are matched with each
// other; waiters (other, looking for females) are matched with no one.
func (u *chaosUser) join() error {
	p := flamingo.JoinQueuePayload{Gender: flamingo.GenderMale, Preference: flamingo.PreferMale}
	if u.role == chaosWaiter {
		p = flamingo.JoinQueuePayload{Gender: flamingo.GenderOther, Preference: flamingo.PreferFemale}
	}
	u.queued = false
	if err := u.conn.write(chaosEvent(flamingo.EventJoinQueue, p)); err != nil {
		return err
	}
	if err := u.await(func() bool { return u.queued || u.chatID != "" }); err != nil {
		return fmt.Errorf("waiting for queue_joined: %w", err)
	}
	return nil
}

// connect opens a new connection and sends init with askID.
func (u *chaosUser) connect(askID string) error {
	c, err := u.r.dialer.dial(u.idx)
	if err != nil {
		return err
	}
	u.r.mu.Lock()
	u.r.dials++
	u.r.mu.Unlock()
	u.conn, u.ready = c, nil
	if err := c.write(chaosEvent(flamingo.EventInit, flamingo.InitPayload{UserID: askID})); err != nil {
		return err
	}
	if err := u.await(func() bool { return u.ready != nil }); err != nil {
		return fmt.Errorf("waiting for ready: %w", err)
	}
	p := u.ready.Payload
	switch {
	case p.UserID == "" || p.UserID == askID && !p.Resumed || p.UserID != askID && p.Resumed:
		return fmt.Errorf("bad ready for init with %q: %s", askID, u.ready.raw)
	case askID == "" && p.Resumed:
		return fmt.Errorf("a new user resumed: %s", u.ready.raw)
	}
	u.userID = p.UserID
	return nil
}

// await handles frames until cond holds.
func (u *chaosUser) await(cond func() bool) error {
	timer := time.NewTimer(chaosLimit)
	defer timer.Stop()
	for !cond() {
		select {
		case f, ok := <-u.conn.frames:
			if !ok {
				return fmt.Errorf("connection ended: %v", u.conn.err)
			}
			u.handle(f)
		case <-timer.C:
			return errors.New("timed out")
		case <-u.r.ctl.abort:
			return errChaosAborted
		}
	}
	return nil
}

// jitter is the time until the next message: between half and one and a half periods.
func (u *chaosUser) jitter() time.Duration {
	return u.r.period/2 + time.Duration(u.rng.Int64N(int64(u.r.period)))
}

func (u *chaosUser) loop() error {
	r := u.r
	var wave <-chan struct{}
	if u.fate.kill || u.fate.leave || u.fate.raceLeave {
		wave = r.waves[u.fate.wave]
	}
	var race <-chan time.Time
	next := time.NewTimer(u.jitter())
	defer next.Stop()
	stop, syncNow := r.stop, (<-chan struct{})(nil)
	for {
		select {
		case f, ok := <-u.conn.frames:
			if !ok {
				return fmt.Errorf("connection %d ended: %v", u.connNo, u.conn.err)
			}
			u.handle(f)
		case <-next.C:
			if u.chatting && !u.stopped {
				if err := u.say(); err != nil {
					return err
				}
			}
			next.Reset(u.jitter())
		case <-wave:
			wave = nil
			switch {
			case u.fate.kill:
				if err := u.kill(); err != nil {
					return err
				}
				if !u.fate.resume {
					return nil
				}
				if err := u.resume(); err != nil {
					return err
				}
			case u.fate.leave:
				if err := u.leave(); err != nil {
					return err
				}
			case u.fate.raceLeave:
				timer := time.NewTimer(r.grace + u.fate.raceOffset)
				defer timer.Stop()
				race = timer.C
			}
		case <-race:
			race = nil
			if err := u.leave(); err != nil {
				return err
			}
		case <-stop:
			stop, u.stopped = nil, true
		case <-syncNow:
			syncNow = nil
			u.pending = append(u.pending, &chaosPending{})
			u.syncSent = true
			if err := u.conn.write(chaosPing); err != nil {
				return err
			}
		case <-r.closeAll:
			return nil
		case <-r.ctl.abort:
			return errChaosAborted
		}
		if u.stopped && u.phase == 1 && len(u.pending) == 0 {
			u.pass() // drained
			syncNow = r.syncNow
		}
		if u.syncSent && u.phase == 2 && u.syncPongs > 0 {
			u.pass() // synced
		}
	}
}

// say sends a message with a unique content into the user's chat, followed by a ping
// whose pong tells that the message has been handled.
func (u *chaosUser) say() error {
	m := u.r.ledger.add(u, u.chatID)
	u.pending = append(u.pending, &chaosPending{msg: m})
	err := u.conn.write(chaosEvent(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: u.chatID, Content: chaosContent(m.seq)}))
	if err != nil {
		return err
	}
	return u.conn.write(chaosPing)
}

func (u *chaosUser) leave() error {
	u.leaveSent = true
	return u.conn.write(chaosEvent(flamingo.EventLeaveChat, flamingo.LeaveChatPayload{ChatID: u.chatID}))
}

// hangUp closes the user's connection without a close handshake and handles what its
// reader had read before.
func (u *chaosUser) hangUp() {
	if u.conn == nil {
		return
	}
	for _, f := range u.conn.hangUp() {
		u.handle(f)
	}
	u.conn = nil
}

// kill ends the connection abruptly, as a network failure would, and waits until the
// engine has seen the user go.
func (u *chaosUser) kill() error {
	u.killedAt = time.Now()
	u.hangUp()
	u.chatting = false // until a resume into the chat
	for _, p := range u.pending {
		if p.msg != nil {
			u.r.ledger.settle(p.msg, chaosUnanswered, "", 0)
		}
	}
	u.pending = nil
	deadline := time.Now().Add(chaosLimit)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !flamingo.SessionAway(u.r.e, u.userID) {
		if time.Now().After(deadline) {
			return errors.New("the engine did not see the killed connection go")
		}
		select {
		case <-tick.C:
		case <-u.r.ctl.abort:
			return errChaosAborted
		}
	}
	u.noticeSeq, u.noticedAt = u.r.ledger.len(), time.Now()
	return nil
}

// resume comes back on a new connection with the user's id, within the grace.
func (u *chaosUser) resume() error {
	timer := time.NewTimer(u.fate.resumeDelay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-u.r.ctl.abort:
		return errChaosAborted
	}
	u.connNo++
	defer u.r.resumesDone.Add(1)
	if err := u.connect(u.userID); err != nil {
		return err
	}
	u.resumedAt = u.ready.at
	if !u.ready.Payload.Resumed {
		// Too late: on a loaded machine the reconnection can take longer than
		// the grace, and the engine rightly answers with a new identity. The
		// test checks that the grace had indeed passed, and from here on counts
		// the user as gone; the new identity stays idle.
		u.late = true
		u.r.mu.Lock()
		u.r.late = append(u.r.late, u)
		u.r.mu.Unlock()
		return nil
	}
	got := u.ready.Payload.ChatID
	if u.role == chaosWaiter {
		if got != "" {
			return fmt.Errorf("a waiter resumed into chat %s", got)
		}
		return u.join() // a user who went away left the queue
	}
	switch got {
	case u.chatID:
		u.chatting = true
	case "":
		// The chat ended while the user was away: the partner did not come
		// back either (checked after the run).
		u.chatGone = true
	default:
		return fmt.Errorf("resumed into chat %q, want %q", got, u.chatID)
	}
	return nil
}

// handle records one frame the user read.
func (u *chaosUser) handle(f *chaosFrame) {
	u.events++
	p := &f.Payload
	if u.late {
		switch f.Type {
		case flamingo.EventMatchFound, flamingo.EventMessageReceived, flamingo.EventChatEnded:
			u.r.problem("user %d: the new identity of a user back too late got %s", u.idx, f.raw)
			return
		}
	}
	switch f.Type {
	case flamingo.EventReady:
		if u.ready != nil {
			u.r.problem("user %d: a second ready on one connection: %s", u.idx, f.raw)
		}
		u.ready = f
	case flamingo.EventQueueJoined:
		u.queued = true
	case flamingo.EventMatchFound:
		if u.role != chaosChatter || u.chatID != "" {
			u.r.problem("user %d (%s): unexpected %s", u.idx, u.describe(), f.raw)
			return
		}
		u.chatID, u.chatting, u.queued = p.ChatID, true, false
	case flamingo.EventMessageReceived:
		seq, ok := chaosSeqOf(p.Content)
		if !ok || !u.r.ledger.read(seq, chaosRead{by: u, connNo: u.connNo, chatID: p.ChatID}) {
			u.r.problem("user %d: a message no one sent: %s", u.idx, f.raw)
			return
		}
		u.reads = append(u.reads, [2]int{seq, u.connNo})
	case flamingo.EventChatEnded:
		u.ends = append(u.ends, chaosEnd{chatID: p.ChatID, reason: p.Reason, at: f.at, connNo: u.connNo, index: u.events})
		if p.ChatID == u.chatID {
			u.chatting = false
		}
	case flamingo.EventPong:
		if len(u.pending) == 0 {
			u.r.problem("user %d: a pong for no ping", u.idx)
			return
		}
		q := u.pending[0]
		u.pending = u.pending[1:]
		switch {
		case q.msg == nil:
			u.syncPongs++
		case q.code != "":
			u.r.ledger.settle(q.msg, chaosErrored, q.code, q.errIndex)
		default:
			u.r.ledger.settle(q.msg, chaosAccepted, "", 0)
		}
	case flamingo.EventError:
		switch {
		case p.Ref == flamingo.EventSendMessage && len(u.pending) > 0 && u.pending[0].msg != nil && u.pending[0].code == "":
			u.pending[0].code, u.pending[0].errIndex = p.Code, u.events
		case p.Ref == flamingo.EventLeaveChat && p.Code == flamingo.CodeNotInChat && u.leaveSent:
			u.lateLeaves++
		default:
			u.r.problem("user %d (%s): unexpected error %s", u.idx, u.describe(), f.raw)
		}
	case flamingo.EventPartnerAway, flamingo.EventPartnerBack:
		if p.ChatID != u.chatID {
			u.r.problem("user %d: presence for a chat it is not in: %s", u.idx, f.raw)
		}
	default:
		u.r.problem("user %d: unexpected frame %s", u.idx, f.raw)
	}
}
