package flamingoredis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// TestClusterChaos runs three nodes on one Redis and 48 users, each one a goroutine
// with its own random choices, who chat across the nodes (numbered messages, now and
// then in bursts) while they drop their connections and resume on any node, open a
// second tab on any node (taking the session over, sometimes just as the first tab
// joins the queue), leave their chats and queue again. On the real redis-server a node
// also crashes mid-run, in a calm of everything but messages: its users' connections
// are cut and they come back on the live nodes.
//
// A ledger of every message checks that each was delivered at most once, to the
// partner only, in the order sent, and that each one accepted arrived unless a
// documented loss explains it: the receiver left the chat as it was on its way, it was
// in a socket as the socket died, or in the crashed node. Each user gets one chat_ended
// per chat, with reasons that match what the two users did, and nothing of a chat after
// its end; a user told queue_joined has its ticket in the shared queue, and a user who
// is not queued has none. The exceptions that FRONTEND_GUIDE.md and SCALING.md document
// are allowed where they apply, and counted: a frame late after a resume on the same
// node, events late after a slow handover, events repeated by the claim after a crash,
// and chats ended on both sides by a resync when a stalled node was taken for dead
// (which a monitor must have seen). Every failure report has the traces of the users
// involved.
//
// partner_away and partner_back come only for the user's current chat, alternate
// (away, back, away...), and leave no user who is in a chat with a partner present at
// the end thinking that partner is away. Only where the user's own connection dropped,
// its node crashed or a handover was slow, in that chat, may one of them be missing
// or late (as a message may): those are counted.
//
// The random choices come from a seed that the test logs; FLAMINGO_CHAOS_SEED repeats
// them (the timing cannot be repeated).
func TestClusterChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster chaos over loopback WebSockets: skipped with -short")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLAMINGO_CHAOS_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "FLAMINGO_CHAOS_SEED")
	}
	t.Logf("seed %d (FLAMINGO_CHAOS_SEED=%[1]d repeats the random choices)", seed)
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		p := ccParams{users: 48, duration: 3 * time.Second}
		// A crashed node is taken for dead when its alive key expires, which
		// miniredis does not do in real time: only the real server sees a crash.
		if strings.HasSuffix(t.Name(), "/redis") {
			p.duration, p.crashAfter = 5500*time.Millisecond, 1200*time.Millisecond
		}
		runClusterChaos(t, client, seed, p)
	})
}

// ccLimit bounds every wait of the chaos run: generous, since it is reached only when
// the test is about to fail.
const ccLimit = 10 * time.Second

var (
	errCCAborted   = errors.New("aborted")
	errCCConnEnded = errors.New("connection ended")
)

type ccParams struct {
	users      int
	duration   time.Duration // of the chaos, from the first connection to the stop
	crashAfter time.Duration // when a node crashes; 0 for no crash
}

// ccRun is one chaos run: its nodes, its users' shared signals and its problems.
type ccRun struct {
	client redis.UniversalClient
	nodes  []*clusterNode
	dead   []atomic.Bool  // nodes that crashed: nobody dials them any more
	conns  []atomic.Int32 // the users' connections open to each node
	keys   *keys          // the cluster's key names

	// gseq numbers every send_message of the run, in the order the senders write
	// them, so that a loss can be placed before or after an event.
	gseq atomic.Int64

	// gate keeps the control operations (drop, takeover, leave, join) out of the
	// calm around a crash: they take it for reading, with TryRLock, the crash for
	// writing. Messages go on meanwhile.
	gate        sync.RWMutex
	crashSeq    atomic.Int64 // the last gseq given out when the node had crashed
	victimsDone atomic.Int32 // users of the crashed node back on a live one

	abort, stop, syncNow, closeAll chan struct{}
	abortOnce                      sync.Once
	actors, drained, synced        sync.WaitGroup

	began time.Time

	mu          sync.Mutex
	problems    []string
	dialRetries int
	// disturbances are what the monitor saw: stalls, live nodes taken for dead.
	disturbances []string
	// maxRTT is the longest Redis round trip the monitor timed.
	maxRTT time.Duration
}

func (r *ccRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *ccRun) nodeID(k int) string { return r.nodes[k].cl.NodeID() }

// ccRoomy is how many connections the users keep at most on one node: all come from
// one address, and a node refuses a 33rd (WebSocketOptions.MaxConnsPerIP).
const ccRoomy = 28

// pick chooses a live node with room at random, another than avoid if other is set
// and there is one; -1 if none has room.
func (r *ccRun) pick(rng *rand.Rand, avoid int, other bool) int {
	var live, others []int
	for k := range r.nodes {
		if r.dead[k].Load() || r.conns[k].Load() >= ccRoomy {
			continue
		}
		live = append(live, k)
		if k != avoid {
			others = append(others, k)
		}
	}
	if other && len(others) > 0 {
		live = others
	}
	if len(live) == 0 {
		return -1
	}
	return live[rng.IntN(len(live))]
}

// ccFrame is one server event as a user read it.
type ccFrame struct {
	Type    flamingo.EventType `json:"type"`
	Payload struct {
		UserID  string             `json:"user_id"`
		Resumed bool               `json:"resumed"`
		ChatID  string             `json:"chat_id"`
		Content string             `json:"content"`
		Reason  flamingo.EndReason `json:"reason"`
		Code    flamingo.ErrorCode `json:"code"`
		Ref     flamingo.EventType `json:"ref"`
		GraceMs int64              `json:"grace_ms"`
	} `json:"payload"`
	raw []byte
}

// ccAfter tells why a connection was opened.
type ccAfter int

const (
	ccNew      ccAfter = iota // the user's first connection
	ccDrop                    // a resume after the user dropped the connection
	ccTakeover                // a second tab, taking the session over
	ccCrash                   // a resume after the node of the connection crashed
)

func (a ccAfter) String() string {
	return [...]string{"new", "drop", "takeover", "crash"}[a]
}

// ccConn is one connection of a user. Its reader goroutine passes every frame it reads
// to frames, and closes frames once the connection has ended (err says why). Only the
// user's goroutine writes and handles the frames; whoever opens a ccConn drains frames
// until it is closed (hangUp does).
type ccConn struct {
	ws     *websocket.Conn
	node   int
	no     int // the user's connection number
	after  ccAfter
	lateOK bool // a resume on the node of a dropped connection: one frame may come late
	// slow is a resume whose ready came after HandoverWait: the old node's events may
	// come late, after newer ones (SCALING.md, "A slow old node").
	slow   bool
	frames chan *ccFrame
	err    error

	pending      []*ccPending // pings sent, in order, waiting for their pongs
	replacing    bool         // a takeover is under way: session_replaced is due
	replacedSeen bool
	late         bool // the one late frame came
}

// ccPending is a ping waiting for its pong, after a send_message (msg) or a resume's
// ready (resume), or the last one of the run (final). Errors come before the pong.
type ccPending struct {
	msg    *ccMsg
	code   flamingo.ErrorCode
	resume bool
	final  bool
}

func (c *ccConn) readLoop(r *ccRun) {
	defer close(c.frames)
	defer r.conns[c.node].Add(-1)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		f := &ccFrame{raw: b}
		if json.Unmarshal(b, f) != nil {
			f.Type = "(not JSON)"
		}
		c.frames <- f
	}
}

func (c *ccConn) write(typ flamingo.EventType, payload any) {
	b, err := json.Marshal(struct {
		Type    flamingo.EventType `json:"type"`
		Payload any                `json:"payload,omitempty"`
	}{typ, payload})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ccLimit)
	defer cancel()
	// A failed write means the connection is ending: its reader will tell.
	_ = c.ws.Write(ctx, websocket.MessageText, b)
}

// ccMsg is one send_message in the ledger.
type ccMsg struct {
	from   *ccUser
	n      int // the sender's number for it, from 1; its content is "u<from>-<n>"
	chatID string
	gseq   int64
	node   int // the node of the connection that sent it
	connNo int

	outcome ccOutcome
	code    flamingo.ErrorCode
	reads   int
}

type ccOutcome int

const (
	ccOpen       ccOutcome = iota // no answer yet
	ccAccepted                    // its pong came with no error before
	ccRefused                     // answered with an error
	ccUnanswered                  // the connection ended before the answer
)

func ccContent(u, n int) string { return "u" + strconv.Itoa(u) + "-" + strconv.Itoa(n) }

func ccParse(content string) (u, n int, ok bool) {
	a, b, found := strings.Cut(strings.TrimPrefix(content, "u"), "-")
	if !found || !strings.HasPrefix(content, "u") {
		return 0, 0, false
	}
	u, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return u, n, err1 == nil && err2 == nil
}

// ccRead is one message_received a user handled.
type ccRead struct {
	from, n int
	chatID  string
	conn    *ccConn
	replay  bool // it came in the replay after a resume's ready
}

// ccUser is one simulated user. Its fields belong to its goroutine while it runs; the
// checks read them after it has returned.
type ccUser struct {
	r      *ccRun
	id     int
	rng    *rand.Rand
	gender flamingo.Gender

	userID   string
	sessKey  string // the engine's handle of the session, in its Redis key
	conn     *ccConn
	conns    map[*ccConn]bool // every connection open, for the final hang-up
	connNo   int
	sessNode int                    // the node that holds the session
	cur      atomic.Pointer[ccConn] // conn, for the crash to cut

	chatID      string // the chat the user is in, as far as it knows
	queued      bool
	joinPending bool
	joinedAt    time.Time // when the user last sent join_queue
	resyncing   bool      // a resume's replay is not over (its ping has no pong yet)
	awaitEnd    string    // a chat that ready did not name: its chat_ended may be replayed
	readyChat   string    // a chat that only ready named so far
	awayChat    string    // the chat whose partner the user was last told is away, until partner_back
	stopped     bool
	synced      bool
	phase       int

	// Records for the checks.
	n       int
	sent    []*ccMsg
	reads   []ccRead
	read    map[[2]int]*ccConn // each message read (sender, number), and where first
	chats   map[string]bool    // every chat the user was told of
	matched map[string]int     // match_found per chat
	ends    map[string]flamingo.EndReason
	leaves  map[string]bool   // chats the user sent leave_chat for
	lost    map[string]string // chats that ended without a chat_ended reaching the user, and why
	// lossy are the chats in which the user may have missed frames, or had them
	// late: its connection dropped or its node crashed while it was in the chat (or
	// matched into it), or a resume's handover was slow.
	lossy    map[string]bool
	notices  []int64  // for each dropped connection, the last gseq when the node had seen it go
	victim   bool     // was on the crashed node
	trace    []string // what the user did and read, for the failure reports
	troubled bool     // the user saw a problem: its trace goes in the report

	// matchedAt and leftAt are when the user first read match_found for a chat and
	// when it sent leave_chat for it.
	matchedAt, leftAt map[string]time.Time

	resumes, crossResumes, takeovers, crossTakeovers, drops, lates, leaveErrs, unseenMatches, endOnly, crashRepeats, slowResumes, joinRaces, joinRacesSame int
	aways, backs, presenceOdd                                                                                                                              int
	finalChat                                                                                                                                              string
	finalQueued                                                                                                                                            bool
	finalNode                                                                                                                                              int
}

func (u *ccUser) bad(c *ccConn, f *ccFrame, format string, args ...any) {
	where := ""
	if c != nil {
		where = fmt.Sprintf(", connection %d (%s, node %d)", c.no, c.after, c.node)
	}
	raw := ""
	if f != nil {
		raw = ": " + string(f.raw)
	}
	u.r.problem("user %d%s: %s%s", u.id, where, fmt.Sprintf(format, args...), raw)
	u.troubled = true
}

// tracef notes what the user does or reads.
func (u *ccUser) tracef(format string, args ...any) {
	u.trace = append(u.trace, fmt.Sprintf("%8.3fs ", time.Since(u.r.began).Seconds())+fmt.Sprintf(format, args...))
}

func (u *ccUser) pass() {
	[]*sync.WaitGroup{&u.r.drained, &u.r.synced}[u.phase].Done()
	u.phase++
}

func (u *ccUser) run() {
	r := u.r
	defer r.actors.Done()
	defer func() {
		for u.phase < 2 {
			u.pass()
		}
	}()
	defer func() {
		for c := range u.conns {
			_ = c.ws.CloseNow()
			for f := range c.frames {
				// (as the users hang up, their partners are told they are away)
				away := f.Type == flamingo.EventPartnerAway && f.Payload.ChatID == u.chatID && u.chatID != ""
				if u.synced && !away {
					u.bad(c, f, "a frame after the last pong")
				}
			}
		}
	}()
	if err := u.live(); err != nil && !errors.Is(err, errCCAborted) {
		r.problem("user %d: %v", u.id, err)
		u.troubled = true
	}
}

// think is the time until the user's next move.
func (u *ccUser) think() time.Duration {
	return 140*time.Millisecond + time.Duration(u.rng.Int64N(int64(260*time.Millisecond)))
}

func (u *ccUser) live() error {
	r := u.r
	if err := u.connect("", -1, false, ccNew); err != nil {
		return err
	}
	next := time.NewTimer(u.think())
	defer next.Stop()
	stop, syncNow := r.stop, (<-chan struct{})(nil)
	for {
		select {
		case f, ok := <-u.conn.frames:
			if !ok {
				if err := u.connLost(); err != nil {
					return err
				}
				break
			}
			u.handle(u.conn, f)
		case <-next.C:
			if !u.stopped {
				if err := u.act(); err != nil {
					return err
				}
			}
			next.Reset(u.think())
		case <-stop:
			stop, u.stopped = nil, true
		case <-syncNow:
			syncNow = nil
			u.ping(u.conn, &ccPending{final: true})
		case <-r.closeAll:
			return nil
		case <-r.abort:
			return errCCAborted
		}
		if u.phase == 0 && u.stopped && len(u.conn.pending) == 0 {
			u.pass() // drained
			syncNow = r.syncNow
		}
		if u.phase == 1 && u.synced {
			u.finalChat, u.finalQueued, u.finalNode = u.chatID, u.queued, u.sessNode
			u.pass() // synced
		}
	}
}

// act makes the user's next move.
func (u *ccUser) act() error {
	if u.resyncing {
		return nil // the replay of a resume is not over
	}
	x := u.rng.Float64()
	switch {
	case u.chatID != "":
		var op func() error
		switch {
		case x < 0.05:
			op = u.dropAndResume
		case x < 0.09:
			op = func() error { return u.takeover(false) }
		case x < 0.13:
			op = u.leave
		}
		if op != nil && u.r.gate.TryRLock() {
			defer u.r.gate.RUnlock()
			if u.rng.IntN(2) == 0 {
				// Some messages are still on their way when the user moves.
				for range 1 + u.rng.IntN(3) {
					u.say()
				}
			}
			return op()
		}
		// Now and then a burst, so that frames queue up for the partner's socket.
		burst := 1
		if u.rng.IntN(8) == 0 {
			burst = 2 + u.rng.IntN(4)
		}
		for range burst {
			u.say()
		}
	case u.queued || u.joinPending:
		var op func() error
		switch {
		case x < 0.08:
			op = u.dropAndResume
		case x < 0.14:
			op = func() error { return u.takeover(false) }
		}
		if op != nil && u.r.gate.TryRLock() {
			defer u.r.gate.RUnlock()
			return op()
		}
	default:
		if u.r.gate.TryRLock() {
			defer u.r.gate.RUnlock()
			if x < 0.15 {
				// "Find someone" in one tab as another tab of the page opens.
				return u.takeover(true)
			}
			u.join()
			if x < 0.2 {
				return u.dropAndResume()
			}
		}
	}
	return nil
}

func (u *ccUser) join() {
	u.joinPending, u.joinedAt = true, time.Now()
	u.tracef("join_queue on conn %d", u.conn.no)
	u.conn.write(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: u.gender, Preference: flamingo.PreferAny})
}

func (u *ccUser) ping(c *ccConn, p *ccPending) {
	c.pending = append(c.pending, p)
	c.write(flamingo.EventPing, nil)
}

// say sends a numbered message into the user's chat, and a ping whose pong tells that
// the message was handled.
func (u *ccUser) say() {
	u.n++
	m := &ccMsg{from: u, n: u.n, chatID: u.chatID, gseq: u.r.gseq.Add(1), node: u.conn.node, connNo: u.conn.no}
	u.sent = append(u.sent, m)
	u.tracef("send %s in %s on conn %d", ccContent(u.id, u.n), u.chatID, u.conn.no)
	u.conn.write(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: u.chatID, Content: ccContent(u.id, u.n)})
	u.ping(u.conn, &ccPending{msg: m})
}

func (u *ccUser) leave() error {
	u.leaves[u.chatID] = true
	u.leftAt[u.chatID] = time.Now()
	u.tracef("leave_chat %s on conn %d", u.chatID, u.conn.no)
	u.conn.write(flamingo.EventLeaveChat, flamingo.LeaveChatPayload{ChatID: u.chatID})
	return nil
}

// dial opens a connection to a live node, another than avoid if other is set.
func (u *ccUser) dial(avoid int, other bool, after ccAfter) (*ccConn, error) {
	r := u.r
	for attempt := 0; ; attempt++ {
		k := r.pick(u.rng, avoid, other)
		c, err := (*ccConn)(nil), errors.New("every live node has its fill of connections")
		if k >= 0 {
			c, err = u.dialNode(k, after)
		}
		if err == nil {
			return c, nil
		}
		// A node may have just crashed, or still count connections that have
		// ended: try again, anywhere.
		if attempt >= 10 {
			return nil, fmt.Errorf("dial node %d: %w", k, err)
		}
		other = false
		r.mu.Lock()
		r.dialRetries++
		r.mu.Unlock()
		select {
		case <-time.After(time.Duration(20*(attempt+1)) * time.Millisecond):
		case <-r.abort:
			return nil, errCCAborted
		}
	}
}

// dialNode opens a connection to node k.
func (u *ccUser) dialNode(k int, after ccAfter) (*ccConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ccLimit)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, u.r.nodes[k].url, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	u.connNo++
	c := &ccConn{ws: ws, node: k, no: u.connNo, after: after, frames: make(chan *ccFrame, 1024)}
	u.conns[c] = true
	u.tracef("conn %d (%s) to node %d", c.no, after, k)
	u.r.conns[k].Add(1)
	go c.readLoop(u.r)
	return c, nil
}

// hangUp closes c at once (no close handshake) and handles what its reader had read.
func (u *ccUser) hangUp(c *ccConn) {
	_ = c.ws.CloseNow()
	u.finish(c)
}

// finish handles what is left of c, whose frames are closed or about to be.
func (u *ccUser) finish(c *ccConn) {
	for f := range c.frames {
		u.handle(c, f)
	}
	delete(u.conns, c)
	for _, p := range c.pending {
		if p.msg != nil && p.msg.outcome == ccOpen {
			p.msg.outcome = ccUnanswered
		}
	}
	c.pending = nil
}

// open dials a node and sends init with askID ("" for a new user).
func (u *ccUser) open(askID string, avoid int, other bool, after ccAfter) (*ccConn, error) {
	c, err := u.dial(avoid, other, after)
	if err != nil {
		return nil, err
	}
	c.write(flamingo.EventInit, flamingo.InitPayload{UserID: askID})
	return c, nil
}

// first waits for the first frame on c, which must be ready.
func (u *ccUser) first(c *ccConn) (*ccFrame, error) {
	timer := time.NewTimer(ccLimit)
	defer timer.Stop()
	select {
	case f, ok := <-c.frames:
		switch {
		case !ok:
			return nil, fmt.Errorf("%w before ready: %v", errCCConnEnded, c.err)
		case f.Type != flamingo.EventReady:
			return nil, fmt.Errorf("connection %d (%s, node %d): first frame %s, want ready", c.no, c.after, c.node, f.raw)
		}
		return f, nil
	case <-timer.C:
		return nil, fmt.Errorf("connection %d (%s, node %d): no ready in time", c.no, c.after, c.node)
	case <-u.r.abort:
		return nil, errCCAborted
	}
}

// connect opens a connection, sends init with askID and handles ready. If the node
// crashes meanwhile, it tries another.
func (u *ccUser) connect(askID string, avoid int, other bool, after ccAfter) error {
	for {
		c, err := u.open(askID, avoid, other, after)
		if err != nil {
			return err
		}
		sent := time.Now()
		f, err := u.first(c)
		if errors.Is(err, errCCConnEnded) && u.r.dead[c.node].Load() {
			u.finish(c)
			avoid, other = c.node, true
			continue
		}
		if err != nil {
			u.hangUp(c)
			return err
		}
		if after == ccDrop && c.node == avoid {
			// A frame whose write to the dropped connection fails only after this
			// resume goes here after the replay (FRONTEND_GUIDE.md, "What is
			// replayed"): the one ordering exception, on one node.
			c.lateOK = true
		}
		u.slowCheck(c, sent)
		u.ready(c, f, askID)
		return nil
	}
}

// slowCheck notes a resume on another node whose ready came after HandoverWait: the
// old node did not hand the session over in time (it stalled), and what it held may
// follow late.
func (u *ccUser) slowCheck(c *ccConn, sent time.Time) {
	if c.after == ccDrop || c.after == ccTakeover {
		if c.node != u.sessNode && time.Since(sent) >= u.r.nodes[c.node].cl.opts.HandoverWait {
			c.slow = true
			u.slowResumes++
			u.tracef("conn %d: ready %v after init: a slow handover", c.no, time.Since(sent).Round(time.Millisecond))
		}
	}
}

// ready handles the ready that answered init(askID) on c, which becomes the user's
// connection, and asks with a ping where the replay that follows ends.
func (u *ccUser) ready(c *ccConn, f *ccFrame, askID string) {
	p := f.Payload
	prevNode := u.sessNode
	switch {
	case askID == "":
		if p.Resumed || p.UserID == "" || p.ChatID != "" {
			u.bad(c, f, "bad ready for a new user")
		}
		u.chatID = ""
	case !p.Resumed:
		// Back too late: the grace ran out and the engine forgot the session. The
		// new identity starts idle; the old chat is over for the partner.
		if p.UserID == askID || p.ChatID != "" {
			u.bad(c, f, "bad ready for an unknown user_id")
		}
		if u.chatID != "" {
			u.lost[u.chatID] = "identity expired"
		}
		u.lates++
		u.chatID, u.awaitEnd = "", ""
	default:
		if p.UserID != askID {
			u.bad(c, f, "resumed with another user_id")
		}
		if c.after == ccTakeover {
			u.takeovers++
			if c.node != prevNode {
				u.crossTakeovers++
			}
		} else {
			u.resumes++
			if c.node != prevNode {
				u.crossResumes++
			}
		}
		switch {
		case p.ChatID == u.chatID:
		case p.ChatID == "":
			// The chat ended while the user was away: its chat_ended should be in
			// the replay.
			u.awaitEnd = u.chatID
		case u.chatID == "":
			// Matched while away (match_found was held or lost in the old socket).
			u.chatID, u.readyChat = p.ChatID, p.ChatID
			u.chats[p.ChatID] = true
		default:
			u.bad(c, f, "resumed into chat %s, but the user was in %s", p.ChatID, u.chatID)
			u.chatID = p.ChatID
			u.chats[p.ChatID] = true
		}
	}
	if c.after == ccDrop || c.after == ccCrash || c.slow {
		for _, ch := range []string{u.chatID, p.ChatID, u.awaitEnd} {
			if ch != "" {
				u.lossy[ch] = true
			}
		}
	}
	u.userID = p.UserID
	d := sha256.Sum256([]byte(u.userID))
	u.sessKey = hex.EncodeToString(d[:16])
	u.conn, u.sessNode = c, c.node
	u.cur.Store(c)
	// A connection that ends leaves the queue: the user joins again when idle.
	u.queued, u.joinPending = false, false
	u.resyncing = true
	u.ping(c, &ccPending{resume: true})
}

// replayed runs at the pong that follows a resume's replay.
func (u *ccUser) replayed(c *ccConn) {
	u.resyncing = false
	if ch := u.awaitEnd; ch != "" {
		// ready did not name the chat and no chat_ended came for it: it ended
		// while its chat_ended was on its way into the old connection.
		if c.after == ccTakeover || c.after == ccNew {
			u.bad(c, nil, "chat %s ended with no chat_ended across a %s", ch, c.after)
		}
		u.lost[ch] = "chat_ended lost with the " + c.after.String()
		u.chatID, u.awaitEnd = "", ""
	}
	if ch := u.readyChat; ch != "" {
		if u.matched[ch] == 0 {
			if c.after == ccTakeover {
				u.bad(c, nil, "chat %s named by ready, but its match_found never came across a takeover", ch)
			}
			u.unseenMatches++
		}
		u.readyChat = ""
	}
}

// waitSession waits until Redis has the user's session on its node, away or not.
func (u *ccUser) waitSession(away bool) error {
	r := u.r
	want := "0"
	if away {
		want = "1"
	}
	deadline := time.Now().Add(ccLimit)
	for {
		v, err := r.client.HMGet(context.Background(), r.keys.session(u.sessKey), sessNode, sessAway).Result()
		if err == nil && len(v) == 2 && v[0] == r.nodeID(u.sessNode) && v[1] == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("session on node %d (away %s) not in Redis in time: %v %v", u.sessNode, want, v, err)
		}
		select {
		case <-time.After(3 * time.Millisecond):
		case <-r.abort:
			return errCCAborted
		}
	}
}

// dropAndResume cuts the connection, as a network failure would, waits until the node
// has seen the user go, and resumes, usually on another node.
func (u *ccUser) dropAndResume() error {
	// Redis first has the session as the node holds it (not away), so that the
	// away below is news.
	if err := u.waitSession(false); err != nil {
		return err
	}
	old := u.conn
	u.tracef("drop conn %d", old.no)
	u.hangUp(old)
	u.drops++
	if err := u.waitSession(true); err != nil {
		return err
	}
	// What the partner sends from now on is held for the user; what was sent
	// before may have gone into the dead socket.
	u.notices = append(u.notices, u.r.gseq.Load())
	select {
	case <-time.After(time.Duration(u.rng.Int64N(int64(150 * time.Millisecond)))):
	case <-u.r.abort:
		return errCCAborted
	}
	return u.connect(u.userID, old.node, u.rng.IntN(2) > 0, ccDrop)
}

// takeover opens a second tab, on any node, with the user's id: the first tab gets
// session_replaced and close 4001, and everything it got comes before what the second
// one gets. With join, the first tab sends join_queue just as the second sends init.
func (u *ccUser) takeover(join bool) error {
	if err := u.waitSession(false); err != nil {
		return err
	}
	old := u.conn
	var c *ccConn
	var err error
	if join && u.rng.IntN(2) == 0 && !u.r.dead[old.node].Load() && u.r.conns[old.node].Load() < ccRoomy {
		// Two tabs of one page often land on the same node.
		c, err = u.dialNode(old.node, ccTakeover)
	} else {
		c, err = u.dial(old.node, u.rng.IntN(2) > 0, ccTakeover)
	}
	if err != nil {
		return err
	}
	old.replacing = true
	u.tracef("takeover of conn %d", old.no)
	if join {
		// Both tabs at the same moment: the first one's join_queue and the second
		// one's init are written at once.
		u.joinRaces++
		if c.node == old.node {
			u.joinRacesSame++
		}
		u.joinPending, u.joinedAt = true, time.Now()
		u.tracef("join_queue on conn %d", old.no)
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			old.write(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: u.gender, Preference: flamingo.PreferAny})
		}()
		c.write(flamingo.EventInit, flamingo.InitPayload{UserID: u.userID})
		<-wrote
	} else {
		c.write(flamingo.EventInit, flamingo.InitPayload{UserID: u.userID})
	}
	sent := time.Now()
	timer := time.NewTimer(ccLimit)
	defer timer.Stop()
	for done := false; !done; {
		select {
		case f, ok := <-old.frames:
			if !ok {
				done = true
				break
			}
			u.handle(old, f)
		case <-timer.C:
			u.bad(old, nil, "the old tab was not closed in time")
			_ = old.ws.CloseNow()
		case <-u.r.abort:
			return errCCAborted
		}
	}
	if !old.replacedSeen {
		u.bad(old, nil, "the old tab ended without session_replaced: %v", old.err)
	} else if st := websocket.CloseStatus(old.err); st != websocket.StatusCode(flamingo.CloseSessionReplaced) {
		u.bad(old, nil, "the old tab closed with %d, want %d: %v", st, flamingo.CloseSessionReplaced, old.err)
	}
	u.finish(old)
	f, err := u.first(c)
	if err != nil {
		u.hangUp(c)
		return err
	}
	u.slowCheck(c, sent)
	u.ready(c, f, u.userID)
	if join {
		// The takeover took the user out of the queue: its ticket must go too, or
		// it stays there for a session that is not waiting.
		return u.noTicket()
	}
	return nil
}

// noTicket checks that the user, who is not queued, has no ticket in the queue once
// the node's cancel is done (within 2 seconds, generously).
func (u *ccUser) noTicket() error {
	key := u.r.keys.ticket(u.sessKey)
	deadline := time.Now().Add(2 * time.Second)
	for {
		n, err := u.r.client.Exists(context.Background(), key).Result()
		if err == nil && n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			tk, _ := u.r.client.HGetAll(context.Background(), key).Result()
			u.bad(u.conn, nil, "not queued after the takeover, but its ticket stays in the queue: %v", tk)
			return nil
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-u.r.abort:
			return errCCAborted
		}
	}
}

// connLost handles the end of the user's connection, which only a crash of its node
// may cause: the user resumes on a live node.
func (u *ccUser) connLost() error {
	c := u.conn
	u.finish(c)
	if !u.r.dead[c.node].Load() {
		return fmt.Errorf("connection %d (%s) to node %d ended: %v", c.no, c.after, c.node, c.err)
	}
	u.victim = true
	u.tracef("conn %d lost with its node: %v", c.no, c.err)
	defer u.r.victimsDone.Add(1)
	return u.connect(u.userID, c.node, true, ccCrash)
}

// crashRepeat reports whether a frame on c may repeat one the user had before: after
// a crash, entries the dead node handled just before it died are still in its inbox,
// and the claim replays them (SCALING.md, "After a crash, a few events may come
// twice").
func (u *ccUser) crashRepeat(c *ccConn) bool {
	return c.after == ccCrash && u.resyncing
}

// handle records one frame that c read, and follows it.
func (u *ccUser) handle(c *ccConn, f *ccFrame) {
	p := &f.Payload
	switch f.Type {
	case flamingo.EventPong:
	case flamingo.EventReady:
		u.tracef("conn %d: ready resumed=%v chat_id=%q", c.no, p.Resumed, p.ChatID)
	case flamingo.EventMessageReceived:
		u.tracef("conn %d: message %s in %s", c.no, p.Content, p.ChatID)
	default:
		u.tracef("conn %d: %s", c.no, f.raw)
	}
	if c.replacedSeen {
		u.bad(c, f, "a frame after session_replaced")
		return
	}
	switch f.Type {
	case flamingo.EventQueueJoined:
		if !u.joinPending {
			u.bad(c, f, "queue_joined for no join_queue")
		}
		u.joinPending, u.queued = false, true
	case flamingo.EventMatchFound:
		u.matched[p.ChatID]++
		if _, ok := u.matchedAt[p.ChatID]; !ok {
			u.matchedAt[p.ChatID] = time.Now()
		}
		u.chats[p.ChatID] = true
		switch {
		case u.matched[p.ChatID] > 1 && u.crashRepeat(c):
			u.crashRepeats++
		case u.matched[p.ChatID] > 1:
			u.bad(c, f, "a second match_found for the chat")
		case u.chatID == p.ChatID: // replayed after a ready that named the chat
		case u.chatID != "":
			u.bad(c, f, "match_found while in chat %s", u.chatID)
		default:
			u.chatID = p.ChatID
		}
		u.queued = false
	case flamingo.EventMessageReceived:
		from, n, ok := ccParse(p.Content)
		if !ok {
			u.bad(c, f, "a message no one sent")
			return
		}
		first := u.read[[2]int{from, n}]
		switch {
		case first != nil && u.crashRepeat(c) && u.r.dead[first.node].Load():
			// Read on the crashed node, replayed by the claim: the ledger checks it.
		case p.ChatID != u.chatID:
			u.bad(c, f, "a message for chat %s while in chat %q", p.ChatID, u.chatID)
		}
		if first == nil {
			u.read[[2]int{from, n}] = c
		}
		u.reads = append(u.reads, ccRead{from: from, n: n, chatID: p.ChatID, conn: c, replay: u.resyncing})
	case flamingo.EventChatEnded:
		if _, dup := u.ends[p.ChatID]; dup {
			if u.crashRepeat(c) {
				u.crashRepeats++
			} else {
				u.bad(c, f, "a second chat_ended for the chat")
			}
			return
		}
		if p.ChatID != u.chatID && !u.chats[p.ChatID] && u.resyncing && (c.after == ccDrop || c.after == ccCrash) && p.Reason != flamingo.ReasonLeft {
			// Matched as the connection died, with match_found lost in the dead
			// socket: the chat's end, held meanwhile, comes in the replay.
			u.chats[p.ChatID] = true
			u.endOnly++
			u.ends[p.ChatID] = p.Reason
			return
		}
		if p.ChatID != u.chatID {
			u.bad(c, f, "chat_ended for a chat the user is not in (in %q)", u.chatID)
		}
		u.ends[p.ChatID] = p.Reason
		switch p.Reason {
		case flamingo.ReasonLeft:
			if !u.leaves[p.ChatID] {
				u.bad(c, f, "reason left, but the user did not leave")
			}
		case flamingo.ReasonPartnerLeft, flamingo.ReasonPartnerDisconnected:
		default:
			u.bad(c, f, "unknown reason")
		}
		if p.ChatID == u.chatID {
			u.chatID = ""
		}
		if p.ChatID == u.awayChat {
			u.awayChat = ""
		}
		if p.ChatID == u.awaitEnd {
			u.awaitEnd = ""
		}
	case flamingo.EventPartnerAway, flamingo.EventPartnerBack:
		u.presence(c, f)
	case flamingo.EventPong:
		if len(c.pending) == 0 {
			u.bad(c, f, "a pong for no ping")
			return
		}
		q := c.pending[0]
		c.pending = c.pending[1:]
		switch {
		case q.msg != nil && q.code != "":
			q.msg.outcome, q.msg.code = ccRefused, q.code
		case q.msg != nil:
			q.msg.outcome = ccAccepted
		case q.resume:
			u.replayed(c)
		case q.final:
			u.synced = true
		}
	case flamingo.EventError:
		switch {
		case p.Code == flamingo.CodeSessionReplaced && c.replacing:
			c.replacedSeen = true
		case p.Ref == flamingo.EventSendMessage && len(c.pending) > 0 && c.pending[0].msg != nil && c.pending[0].code == "":
			q := c.pending[0]
			q.code = p.Code
			if p.Code != flamingo.CodeNotInChat {
				u.bad(c, f, "message %d refused", q.msg.n)
			} else if u.chatID == q.msg.chatID {
				u.bad(c, f, "message %d refused with not_in_chat before the sender was told the chat ended", q.msg.n)
			}
		case p.Ref == flamingo.EventLeaveChat && p.Code == flamingo.CodeNotInChat:
			// The chat ended before the leave, and its chat_ended came first.
			if u.chatID != "" {
				u.bad(c, f, "leave_chat refused while in chat %s", u.chatID)
			}
			u.leaveErrs++
		default:
			u.bad(c, f, "unexpected error")
		}
	default:
		u.bad(c, f, "unexpected frame")
	}
}

// presence checks a partner_away or partner_back: for the user's current chat, away
// and back in turn. Where the user may have missed or had late frames of the chat
// (lossy), a break of the rule is counted instead.
func (u *ccUser) presence(c *ccConn, f *ccFrame) {
	away := f.Type == flamingo.EventPartnerAway
	ch := f.Payload.ChatID
	var wrong string
	switch {
	case ch != u.chatID:
		wrong = fmt.Sprintf("%s for a chat the user is not in (in %q)", f.Type, u.chatID)
	case away && u.awayChat == ch:
		wrong = "a second partner_away with no partner_back between"
	case !away && u.awayChat != ch:
		wrong = "partner_back with no partner_away before it"
	case away && f.Payload.GraceMs != testGrace.Milliseconds():
		wrong = fmt.Sprintf("partner_away with grace_ms %d, want %d", f.Payload.GraceMs, testGrace.Milliseconds())
	}
	if away {
		u.aways++
	} else {
		u.backs++
	}
	switch {
	case wrong == "":
	case u.lossy[ch] || u.crashRepeat(c):
		u.presenceOdd++
		u.tracef("conn %d: (tolerated: %s)", c.no, wrong)
	default:
		u.bad(c, f, "%s", wrong)
	}
	if ch == u.chatID {
		if away {
			u.awayChat = ch
		} else {
			u.awayChat = ""
		}
	}
}

// runClusterChaos is one run of TestClusterChaos on client.
func runClusterChaos(t *testing.T, client redis.UniversalClient, seed uint64, p ccParams) {
	prefix := freshPrefix(t, client)
	r := &ccRun{
		client: client, abort: make(chan struct{}), stop: make(chan struct{}), syncNow: make(chan struct{}),
		closeAll: make(chan struct{}),
	}
	for range 3 {
		r.nodes = append(r.nodes, startClusterNode(t, client, prefix))
	}
	r.dead = make([]atomic.Bool, len(r.nodes))
	r.conns = make([]atomic.Int32, len(r.nodes))
	r.keys = r.nodes[0].cl.keys
	// Registered after the nodes, so it runs before they stop.
	t.Cleanup(func() {
		r.abortOnce.Do(func() { close(r.abort) })
		r.actors.Wait()
	})
	rng := rand.New(rand.NewPCG(seed, 0))
	genders := []flamingo.Gender{flamingo.GenderMale, flamingo.GenderFemale, flamingo.GenderOther}
	users := make([]*ccUser, p.users)
	r.actors.Add(len(users))
	r.drained.Add(len(users))
	r.synced.Add(len(users))
	began := time.Now()
	r.began = began
	for i := range users {
		u := &ccUser{
			r: r, id: i, rng: rand.New(rand.NewPCG(seed, uint64(i)+1)), gender: genders[rng.IntN(len(genders))],
			conns: map[*ccConn]bool{}, chats: map[string]bool{}, matched: map[string]int{},
			ends: map[string]flamingo.EndReason{}, leaves: map[string]bool{}, lost: map[string]string{},
			matchedAt: map[string]time.Time{}, leftAt: map[string]time.Time{},
			read: map[[2]int]*ccConn{}, lossy: map[string]bool{},
		}
		users[i] = u
		go u.run()
	}
	monitorDone := sync.OnceFunc(r.monitor())
	t.Cleanup(monitorDone)

	crashNode := -1
	if p.crashAfter > 0 {
		ccSleep(r, p.crashAfter)
		crashNode = r.crash(t, rng, users)
	}
	ccSleep(r, time.Until(began.Add(p.duration)))
	close(r.stop)
	ccWait(t, &r.drained, 2*ccLimit, "every user to have its answers")
	r.waitQuiet(t)
	close(r.syncNow)
	ccWait(t, &r.synced, ccLimit, "every user's last pong")
	// Before anyone hangs up: a connection that ends takes its user out of the queue.
	queueProblems := r.checkQueue(users)
	close(r.closeAll)
	ccWait(t, &r.actors, ccLimit, "every user to hang up")
	monitorDone()
	elapsed := time.Since(began)

	r.mu.Lock()
	problems := slices.Clone(r.problems)
	r.mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("%d problems seen by the users, the first ones:\n%s", len(problems), strings.Join(problems[:min(len(problems), 30)], "\n"))
		n := 0
		for _, u := range users {
			if u.troubled && n < 3 {
				n++
				t.Logf("trace of user %d (user ids elided):\n%s", u.id, strings.Join(u.trace, "\n"))
			}
		}
	}
	if len(queueProblems) > 0 {
		t.Errorf("the queue at the end:\n%s", strings.Join(queueProblems, "\n"))
		for _, u := range users {
			if u.finalQueued {
				t.Logf("trace of user %d (user ids elided):\n%s", u.id, strings.Join(u.trace, "\n"))
			}
		}
	}
	ccCheck(t, r, users, crashNode, elapsed)
}

// ccSleep sleeps for d unless the run is aborted.
func ccSleep(r *ccRun, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-time.After(d):
	case <-r.abort:
	}
}

// ccWait waits for wg, failing the test after limit.
func ccWait(t *testing.T, wg *sync.WaitGroup, limit time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("timed out after %v waiting for %s", limit, what)
	}
}

// monitor watches for disturbances of the cluster that the test does not cause: a
// live node taken for dead (it stalled, or Redis did, longer than DeadAfter), which
// then resyncs and ends its chats across nodes with partner_disconnected on both sides
// (SCALING.md, "What is guaranteed"). It notes a live node missing from the node list,
// orphans of a live node (the reaper's mark, which the resync removes), and a Redis
// round trip or a tick of its own late by DeadAfter - Heartbeat. It returns a function
// that stops it.
func (r *ccRun) monitor() func() {
	stop, done := make(chan struct{}), make(chan struct{})
	const every = 20 * time.Millisecond
	note := func(what string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if n := len(r.disturbances); n == 0 || r.disturbances[n-1] != what {
			r.disturbances = append(r.disturbances, what)
		}
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		ctx := context.Background()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			at := time.Since(r.began).Round(time.Millisecond)
			if late := time.Since(last) - every; late >= testDeadAfter-testHeartbeat {
				note(fmt.Sprintf("%v: the test process stalled for %v", at, late.Round(time.Millisecond)))
			}
			last = time.Now()
			pipe := r.client.Pipeline()
			scores := make([]*redis.FloatCmd, len(r.nodes))
			for k := range r.nodes {
				scores[k] = pipe.ZScore(ctx, r.keys.nodes(), r.nodeID(k))
			}
			orphans := pipe.ZRange(ctx, r.keys.orphans(), 0, -1)
			_, _ = pipe.Exec(ctx)
			rtt := time.Since(last)
			r.mu.Lock()
			r.maxRTT = max(r.maxRTT, rtt)
			r.mu.Unlock()
			if rtt >= testDeadAfter-testHeartbeat {
				note(fmt.Sprintf("%v: a Redis round trip took %v", at, rtt.Round(time.Millisecond)))
			}
			for k := range r.nodes {
				if r.dead[k].Load() {
					continue
				}
				if errors.Is(scores[k].Err(), redis.Nil) {
					note(fmt.Sprintf("%v: node %d was taken for dead", at, k))
				}
				for _, o := range orphans.Val() {
					if strings.HasPrefix(o, r.nodeID(k)+":") && !r.dead[k].Load() {
						note(fmt.Sprintf("%v: node %d was taken for dead (its sessions are orphans)", at, k))
						break
					}
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// disturbed reports whether the monitor saw a disturbance.
func (r *ccRun) disturbed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.disturbances) > 0
}

// crash kills a node in a calm: control operations stop (messages go on) until what
// they set off is in Redis, the node crashes, its users come back on the live nodes,
// and the others have reaped it.
func (r *ccRun) crash(t *testing.T, rng *rand.Rand, users []*ccUser) int {
	r.gate.Lock()
	defer r.gate.Unlock()
	ccSleep(r, 300*time.Millisecond)
	k := rng.IntN(len(r.nodes))
	r.dead[k].Store(true)
	start := time.Now()
	r.nodes[k].crash()
	// A killed process takes its sockets along; crash leaves the WebSockets up
	// (httptest forgets hijacked connections), so they are cut here, as a reset.
	var victims int32
	for _, u := range users {
		if c := u.cur.Load(); c != nil && c.node == k {
			victims++
			_ = c.ws.CloseNow()
		}
	}
	r.crashSeq.Store(r.gseq.Load())
	deadline := time.Now().Add(ccLimit)
	for {
		_, err := r.client.ZScore(context.Background(), r.keys.nodes(), r.nodeID(k)).Result()
		reaped := errors.Is(err, redis.Nil)
		if reaped && r.victimsDone.Load() >= victims {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after the crash of node %d: reaped %v, %d of %d users back", k, reaped, r.victimsDone.Load(), victims)
			break
		}
		ccSleep(r, 20*time.Millisecond)
	}
	t.Logf("node %d crashed with %d users; reaped and all back after %v", k, victims, time.Since(start).Round(time.Millisecond))
	return k
}

// waitQuiet waits until no live node has ops to write or entries to read.
func (r *ccRun) waitQuiet(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(ccLimit)
	for stable := 0; stable < 5; {
		quiet := true
		for k, n := range r.nodes {
			if r.dead[k].Load() {
				continue
			}
			n.cl.mu.Lock()
			ops := len(n.cl.ops)
			n.cl.mu.Unlock()
			xlen, err := r.client.XLen(context.Background(), r.keys.inbox(r.nodeID(k))).Result()
			if ops > 0 || err != nil || xlen > 0 {
				quiet = false
			}
		}
		if quiet {
			stable++
		} else {
			stable = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not become quiet in %v", ccLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkQueue checks, once every user has had its last pong and before they hang up,
// that matching goes on: with every preference "any", at most one user waits, and a
// user told queue_joined has its ticket in the shared queue, from its last join_queue,
// on the node of its session.
func (r *ccRun) checkQueue(users []*ccUser) []string {
	var problems, waiting []string
	for _, u := range users {
		if !u.finalQueued {
			continue
		}
		waiting = append(waiting, strconv.Itoa(u.id))
		tk, err := r.client.HGetAll(context.Background(), r.keys.ticket(u.sessKey)).Result()
		joined, _ := strconv.ParseInt(tk[ticketJoinedAt], 10, 64)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("user %d: reading its ticket: %v", u.id, err))
		case len(tk) == 0:
			problems = append(problems, fmt.Sprintf("user %d (handle %s) is queued on node %d, but has no ticket in Redis: nobody can meet them",
				u.id, u.sessKey, u.finalNode))
		case tk[ticketNode] != r.nodeID(u.finalNode) || joined < u.joinedAt.UnixNano():
			problems = append(problems, fmt.Sprintf("user %d (handle %s) is queued on node %d since %s, but its ticket in Redis is an older one: %v",
				u.id, u.sessKey, u.finalNode, u.joinedAt.Format(time.StampMicro), tk))
		}
	}
	if len(waiting) > 1 {
		problems = append(problems, fmt.Sprintf("%d users still wait in the queue at the end: %v", len(waiting), waiting))
	}
	if len(problems) > 0 {
		problems = append(problems, "the queue in Redis:\n"+r.dumpQueue(users))
	}
	return problems
}

// dumpQueue describes the queue as Redis and the nodes hold it, for failure reports.
func (r *ccRun) dumpQueue(users []*ccUser) string {
	ctx := context.Background()
	byKey := map[string]int{}
	for _, u := range users {
		byKey[u.sessKey] = u.id
	}
	var b strings.Builder
	keys, _ := r.client.Keys(ctx, r.keys.ticketPrefix+"*").Result()
	for _, k := range keys {
		tk, _ := r.client.HGetAll(ctx, k).Result()
		u, known := byKey[strings.TrimPrefix(k, r.keys.ticketPrefix)]
		fmt.Fprintf(&b, "  ticket of user %d (known %v): %v\n", u, known, tk)
	}
	for _, row := range r.keys.buckets {
		for _, k := range row {
			if m, _ := r.client.ZRange(ctx, k, 0, -1).Result(); len(m) > 0 {
				fmt.Fprintf(&b, "  %s: %d waiting\n", strings.TrimPrefix(k, r.keys.base), len(m))
			}
		}
	}
	for k := range r.nodes {
		set, _ := r.client.SMembers(ctx, r.keys.tickets(r.nodeID(k))).Result()
		fmt.Fprintf(&b, "  node %d (%s, dead %v): %d in its ticket set; its own counts %+v\n",
			k, r.nodeID(k), r.dead[k].Load(), len(set), r.nodes[k].cl.host.LocalStats())
	}
	return b.String()
}

// ccCheck checks the ledger and the chats once every user has returned, and reports
// the counts.
func ccCheck(t *testing.T, r *ccRun, users []*ccUser, crashNode int, elapsed time.Duration) {
	t.Helper()
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var involved []*ccUser // whose traces go in the report
	involve := func(us ...*ccUser) {
		for _, u := range us {
			if u != nil && !slices.Contains(involved, u) {
				involved = append(involved, u)
			}
		}
	}
	counts := map[string]int{}
	crashSeq := r.crashSeq.Load()
	// How long after match_found a half-made pair's partner_left may still be on its
	// way: the partner's node publishes it when the pair reaches it, and this node
	// reads it, a round trip or two each, with room for the slowest the monitor saw.
	r.mu.Lock()
	partnerLeftWithin := 500*time.Millisecond + 4*r.maxRTT
	r.mu.Unlock()

	// Who was in each chat.
	members := map[string][]*ccUser{}
	for _, u := range users {
		for ch := range u.chats {
			members[ch] = append(members[ch], u)
		}
	}
	partner := func(u *ccUser, ch string) *ccUser {
		for _, v := range members[ch] {
			if v != u {
				return v
			}
		}
		return nil
	}

	// resynced reports whether chat ch ended as a node taken for dead ends its chats
	// across nodes: partner_disconnected on both sides, while the monitor saw a
	// disturbance.
	disturbed := r.disturbed()
	resynced := func(ch string) bool {
		mem := members[ch]
		return disturbed && len(mem) == 2 &&
			mem[0].ends[ch] == flamingo.ReasonPartnerDisconnected && mem[1].ends[ch] == flamingo.ReasonPartnerDisconnected
	}

	// Deliveries: once, to the partner, in order.
	type stream struct {
		from *ccUser
		chat string
	}
	maxRead := map[*ccUser]map[stream]int{}
	for _, u := range users {
		last := map[stream]int{}
		seen := map[[2]int]*ccConn{}
		for _, rd := range u.reads {
			if rd.from < 0 || rd.from >= len(users) || rd.n < 1 || rd.n > len(users[rd.from].sent) {
				fail("user %d read u%d-%d, which was never sent", u.id, rd.from, rd.n)
				continue
			}
			s := users[rd.from]
			m := s.sent[rd.n-1]
			if first := seen[[2]int{rd.from, rd.n}]; first != nil {
				if rd.conn.after == ccCrash && rd.replay && first.node == crashNode && m.gseq <= crashSeq {
					counts["delivered again after the crash (documented)"]++
					continue
				}
			} else {
				seen[[2]int{rd.from, rd.n}] = rd.conn
			}
			m.reads++
			switch {
			case m.chatID != rd.chatID:
				involve(u, s)
				fail("user %d read u%d-%d with chat %s; it was sent into chat %s", u.id, s.id, m.n, rd.chatID, m.chatID)
			case s == u || !slices.Contains(members[m.chatID], u):
				involve(u, s)
				fail("user %d read u%d-%d of chat %s, not theirs", u.id, s.id, m.n, m.chatID)
			}
			if m.outcome == ccRefused {
				involve(u, s)
				fail("user %d read u%d-%d, which was refused with %s", u.id, s.id, m.n, m.code)
			}
			k := stream{s, m.chatID}
			switch {
			case m.n > last[k]:
				last[k] = m.n
			case rd.conn.lateOK && !rd.conn.late:
				rd.conn.late = true
				counts["delivered late after a resume on the same node (documented)"]++
			case rd.conn.slow:
				counts["delivered late after a slow handover (documented)"]++
			default:
				involve(u, s)
				fail("user %d read u%d-%d after u%d-%d (connection %d, %s, node %d)", u.id, s.id, m.n, s.id, last[k], rd.conn.no, rd.conn.after, rd.conn.node)
			}
		}
		maxRead[u] = last
	}

	// Every message accepted arrived, unless a documented loss explains it.
	var sent, accepted, delivered, unanswered, unansweredDelivered int
	refused := map[flamingo.ErrorCode]int{}
	for _, s := range users {
		for _, m := range s.sent {
			sent++
			if m.reads > 1 {
				involve(s, partner(s, m.chatID))
				fail("u%d-%d (chat %s) delivered %d times", s.id, m.n, m.chatID, m.reads)
			}
			if m.reads > 0 {
				delivered++
			}
			switch m.outcome {
			case ccOpen:
				fail("u%d-%d never answered though its connection lived", s.id, m.n)
			case ccUnanswered:
				unanswered++
				if m.reads > 0 {
					unansweredDelivered++
				}
			case ccRefused:
				refused[m.code]++
			case ccAccepted:
				accepted++
				if m.reads > 0 {
					break
				}
				rcv := partner(s, m.chatID)
				crashLoss := crashNode >= 0 && m.gseq <= crashSeq && (m.node == crashNode || rcv != nil && rcv.victim)
				switch {
				case rcv == nil:
					counts["lost: the partner never heard of the chat"]++
				case rcv.lost[m.chatID] != "":
					counts["lost: the receiver lost the chat ("+rcv.lost[m.chatID]+")"]++
				case rcv.ends[m.chatID] == flamingo.ReasonLeft && m.n > maxRead[rcv][stream{s, m.chatID}]:
					counts["lost: in flight as the receiver left"]++
				case crashLoss:
					counts["lost to the crash"]++
				case resynced(m.chatID):
					counts["lost: the chat was ended by a resync"]++
				case slices.ContainsFunc(rcv.notices, func(g int64) bool { return m.gseq <= g }):
					counts["lost: maybe in the receiver's dropped socket"]++
				default:
					involve(rcv, s)
					fail("u%d-%d (chat %s, node %d, gseq %d) accepted, never delivered to user %d (end %q, victim %v, notices %v)",
						s.id, m.n, m.chatID, m.node, m.gseq, rcv.id, rcv.ends[m.chatID], rcv.victim, rcv.notices)
				}
			}
		}
	}

	// Chats: one chat_ended each, with reasons that match, or still on for both.
	dump := involve
	var chats, single, ongoing, bothLeft int
	ends := map[flamingo.EndReason]int{}
	// A user who went away for good from a chat: back too late, or back to find
	// its end lost in a dead socket. (A user of the crashed node claims its session
	// at once, within the grace: its chat goes on.)
	wentAway := func(u *ccUser, ch string) bool { return u.lost[ch] != "" }
	for ch, mem := range members {
		chats++
		if len(mem) > 2 {
			fail("chat %s has %d users", ch, len(mem))
			continue
		}
		if len(mem) == 1 {
			// The partner left the queue as the pair was made: match_found then
			// partner_left (SCALING.md, "Chats across nodes"). Or the user left
			// the chat while that partner_left was still on its way, and its own
			// leave ended the chat first, with "left" (the reader checked that the
			// user did leave). The partner's node ends such a chat as soon as the
			// pair reaches it, so partner_left is a few Redis round trips behind
			// match_found: a leave later than that is no excuse for a partner_left
			// that never came.
			single++
			u := mem[0]
			why := u.ends[ch]
			leftFirst := why == flamingo.ReasonLeft && u.leaves[ch] && u.leftAt[ch].Sub(u.matchedAt[ch]) <= partnerLeftWithin
			if leftFirst {
				counts["left before a half-made pair's partner_left came (documented)"]++
			}
			if why != flamingo.ReasonPartnerLeft && why != flamingo.ReasonPartnerDisconnected && !leftFirst && u.lost[ch] == "" {
				fail("user %d alone in chat %s, which ended with %q", u.id, ch, why)
				dump(u)
			}
			continue
		}
		if mem[0].ends[ch] == flamingo.ReasonLeft && mem[1].ends[ch] == flamingo.ReasonLeft {
			bothLeft++
		}
		for i, u := range mem {
			p := mem[1-i]
			reason, ended := u.ends[ch]
			if ended {
				ends[reason]++
			}
			switch {
			case !ended && u.lost[ch] != "":
			case !ended && u.finalChat == ch:
				if p.finalChat != ch && !wentAway(p, ch) {
					fail("chat %s: user %d is still in it, user %d not (end %q)", ch, u.id, p.id, p.ends[ch])
					dump(u, p)
				}
				// Every user is connected at the end, and the cluster was quiet
				// before the last pings: a partner_back must have come.
				if u.awayChat == ch && p.finalChat == ch {
					if u.lossy[ch] {
						counts["partner_back missed where frames may be lost (documented)"]++
					} else {
						fail("chat %s: user %d still sees user %d away at the end", ch, u.id, p.id)
						dump(u, p)
					}
				}
				if i == 0 {
					ongoing++
				}
			case !ended:
				fail("chat %s: user %d was never told it ended (now in %q)", ch, u.id, u.finalChat)
				dump(u, p)
			case reason == flamingo.ReasonPartnerLeft && !p.leaves[ch]:
				fail("chat %s: user %d got partner_left, but user %d did not leave", ch, u.id, p.id)
				dump(u, p)
			case reason == flamingo.ReasonPartnerDisconnected && !wentAway(p, ch):
				// Both sides told partner_disconnected: a node taken for dead
				// resynced (SCALING.md), which the monitor must have seen.
				if !resynced(ch) {
					fail("chat %s: user %d got partner_disconnected, but user %d never went away for long (end %q)", ch, u.id, p.id, p.ends[ch])
					dump(u, p)
				} else if i == 0 {
					counts["chats ended by a resync (partner_disconnected on both sides)"]++
				}
			}
		}
	}

	var resumes, cross, takeovers, crossTake, drops, lates, victims, leaveErrs, unseen, endOnly, repeats, slow, joinRaces, joinRacesSame, leaves int
	var aways, backs, odd int
	for _, u := range users {
		aways += u.aways
		backs += u.backs
		odd += u.presenceOdd
		resumes += u.resumes
		cross += u.crossResumes
		takeovers += u.takeovers
		crossTake += u.crossTakeovers
		drops += u.drops
		lates += u.lates
		leaveErrs += u.leaveErrs
		unseen += u.unseenMatches
		endOnly += u.endOnly
		repeats += u.crashRepeats
		slow += u.slowResumes
		joinRaces += u.joinRaces
		joinRacesSame += u.joinRacesSame
		leaves += len(u.leaves)
		if u.victim {
			victims++
		}
	}
	r.mu.Lock()
	dialRetries, disturbances := r.dialRetries, slices.Clone(r.disturbances)
	r.mu.Unlock()
	t.Logf("%d users on 3 nodes, %v: %d messages sent, %d accepted, %d delivered, refused %v, %d unanswered (%d of them delivered)",
		len(users), elapsed.Round(time.Millisecond), sent, accepted, delivered, refused, unanswered, unansweredDelivered)
	t.Logf("%d chats (%d with one user only, %d still on, %d left by both), ends %v; %d leaves (%d refused: already over)",
		chats, single, ongoing, bothLeft, ends, leaves, leaveErrs)
	t.Logf("%d drops, %d resumes (%d on another node, %d after the grace), %d takeovers (%d on another node; %d as the first tab joined the queue, %d of them on its node), %d crash victims, %d matches known from ready only, %d from chat_ended only, %d match_found/chat_ended repeated after the crash, %d slow handovers, %d dial retries",
		drops, resumes, cross, lates, takeovers, crossTake, joinRaces, joinRacesSame, victims, unseen, endOnly, repeats, slow, dialRetries)
	t.Logf("%d partner_away and %d partner_back, %d of them out of turn where frames may be lost", aways, backs, odd)
	if len(disturbances) > 0 {
		t.Logf("disturbances of the cluster (the machine or Redis stalled): %s", strings.Join(disturbances, "; "))
	}
	t.Logf("losses and exceptions: %v", counts)
	if len(problems) > 0 {
		t.Errorf("%d ledger problems, the first ones:\n%s", len(problems), strings.Join(problems[:min(len(problems), 30)], "\n"))
		for _, u := range involved[:min(len(involved), 4)] {
			t.Logf("trace of user %d (user ids elided):\n%s", u.id, strings.Join(u.trace, "\n"))
		}
	}
}
