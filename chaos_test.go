package flamingo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// The tests in this file run the engine over real WebSockets on loopback, under load:
// hundreds of connections killed mid-chat and mid-queue while others chat
// (TestChaos_KillConnections), a churning soak that looks for user_ids where they must
// not be (TestSoak_NoUserIDLeak), and a flood beside a well-behaved pair
// (TestFlood_DoesNotHurtOthers). Each is bounded in time and count, stops by itself and
// is skipped under -short. The random choices come from a seed that each test logs;
// FLAMINGO_CHAOS_SEED repeats them (the timing of a run cannot be repeated).

// chaosLimit bounds every wait of these tests: generous, since it is reached only when
// a test is about to fail.
const chaosLimit = 15 * time.Second

// chaosUnlimited turns a rate limit off.
var chaosUnlimited = flamingo.RateLimit{Rate: -1}

var errChaosAborted = errors.New("aborted")

func chaosSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLAMINGO_CHAOS_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "FLAMINGO_CHAOS_SEED")
	}
	t.Logf("seed %d (FLAMINGO_CHAOS_SEED=%[1]d repeats the random choices)", seed)
	return seed
}

// chaosEngine returns a new engine that the test's cleanup shuts down, after the
// cleanups registered later (the clients') have run.
func chaosEngine(t *testing.T, cfg flamingo.Config) *flamingo.Engine {
	t.Helper()
	e, err := flamingo.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), chaosLimit)
		defer cancel()
		assert.NoError(t, e.Shutdown(ctx))
	})
	return e
}

// chaosDialer opens WebSockets to a test server serving an engine. Address 0 is the
// kernel's choice (127.0.0.1); address i > 0 is 127.0.0.(1+i), for tests that need
// clients with different addresses. Only address 0 suits many reconnections: binding a
// source address makes the kernel pick the port at bind time, blind to the TIME_WAIT
// sockets that loopback's server side keeps, and a reconnection that lands on one
// waits a second or more for a SYN retransmission.
type chaosDialer struct {
	url     string
	clients []*http.Client
}

func newChaosDialer(t *testing.T, e *flamingo.Engine, opts *flamingo.WebSocketOptions, addrs int) *chaosDialer {
	t.Helper()
	srv := httptest.NewServer(flamingo.NewWebSocketHandler(e, opts))
	t.Cleanup(srv.Close)
	d := &chaosDialer{url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	for i := range max(addrs, 1) {
		nd := &net.Dialer{}
		if i > 0 {
			nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		}
		tr := &http.Transport{DialContext: nd.DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		d.clients = append(d.clients, &http.Client{Transport: tr})
	}
	return d
}

// dial opens a connection from source address n (modulo the number of addresses).
func (d *chaosDialer) dial(n int) (*chaosConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), chaosLimit)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, d.url, &websocket.DialOptions{HTTPClient: d.clients[n%len(d.clients)]})
	if err != nil {
		return nil, err
	}
	c := &chaosConn{ws: ws, frames: make(chan *chaosFrame, 64)}
	go c.readLoop()
	return c, nil
}

// chaosFrame is one server event as a client read it.
type chaosFrame struct {
	Type    flamingo.EventType `json:"type"`
	Payload struct {
		UserID  string             `json:"user_id"`
		Resumed bool               `json:"resumed"`
		ChatID  string             `json:"chat_id"`
		Content string             `json:"content"`
		Reason  flamingo.EndReason `json:"reason"`
		Code    flamingo.ErrorCode `json:"code"`
		Ref     flamingo.EventType `json:"ref"`
	} `json:"payload"`
	raw []byte
	at  time.Time // when the client read it
}

// chaosConn is a client connection whose reader goroutine passes every frame it reads
// to frames, and closes frames once the connection has ended. Whoever owns a chaosConn
// must drain frames until it is closed (hangUp does), or the reader never returns.
type chaosConn struct {
	ws     *websocket.Conn
	frames chan *chaosFrame
	err    error // why the connection ended; read it after frames is closed
}

func (c *chaosConn) readLoop() {
	defer close(c.frames)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		f := &chaosFrame{raw: b, at: time.Now()}
		if json.Unmarshal(b, f) != nil {
			f.Type = "(not JSON)"
		}
		c.frames <- f
	}
}

func (c *chaosConn) write(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), chaosLimit)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, b)
}

// next returns the next frame, or an error if none comes within chaosLimit.
func (c *chaosConn) next() (*chaosFrame, error) {
	timer := time.NewTimer(chaosLimit)
	defer timer.Stop()
	select {
	case f, ok := <-c.frames:
		if !ok {
			return nil, fmt.Errorf("connection ended: %v", c.err)
		}
		return f, nil
	case <-timer.C:
		return nil, errors.New("no frame in time")
	}
}

// hangUp closes c at once (no close handshake) and returns the frames read before.
func (c *chaosConn) hangUp() []*chaosFrame {
	_ = c.ws.CloseNow()
	var rest []*chaosFrame
	for f := range c.frames {
		rest = append(rest, f)
	}
	return rest
}

func chaosEvent(typ flamingo.EventType, payload any) []byte {
	b, err := json.Marshal(struct {
		Type    flamingo.EventType `json:"type"`
		Payload any                `json:"payload,omitempty"`
	}{typ, payload})
	if err != nil {
		panic(err)
	}
	return b
}

var chaosPing = chaosEvent(flamingo.EventPing, nil)

// chaosWait waits for wg, failing the test after limit.
func chaosWait(t *testing.T, wg *sync.WaitGroup, limit time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", limit, what)
	}
}

// chaosPoll polls cond until it holds or limit has passed, and reports whether it held.
func chaosPoll(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// chaosEventually polls cond until it holds, failing the test with cond's last
// description of the state after limit.
func chaosEventually(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var state string
	if !chaosPoll(limit, func() (ok bool) { ok, state = cond(); return ok }) {
		t.Fatalf("after %v, still waiting for %s: %s", limit, what, state)
	}
}

// chaosRequireEmpty waits until e holds nothing: no users, sessions, chats or
// connections.
func chaosRequireEmpty(t *testing.T, e *flamingo.Engine, limit time.Duration) {
	t.Helper()
	chaosEventually(t, limit, "the engine to be empty", func() (bool, string) {
		st, sessions, chats, conns := e.Stats(), flamingo.SessionCount(e), flamingo.ChatCount(e), flamingo.ConnCount(e)
		return st == (flamingo.Stats{}) && sessions == 0 && chats == 0 && conns == 0,
			fmt.Sprintf("stats %+v, %d sessions, %d chats, %d connections", st, sessions, chats, conns)
	})
}

func chaosHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// chaosRequireBaseline waits until the goroutines and the heap are back near what
// they were before the clients came.
func chaosRequireBaseline(t *testing.T, goroutines int, heap uint64) {
	t.Helper()
	const goroutineSlack = 10
	const heapSlack = 8 << 20
	if !chaosPoll(chaosLimit, func() bool { return runtime.NumGoroutine() <= goroutines+goroutineSlack }) {
		var dump bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
		t.Fatalf("%d goroutines, %d before the clients came:\n%s", runtime.NumGoroutine(), goroutines, dump.String())
	}
	var now uint64
	chaosEventually(t, 5*time.Second, "the heap to shrink back", func() (bool, string) {
		now = chaosHeap()
		return now < heap+heapSlack, fmt.Sprintf("heap %d KiB, %d KiB before the clients came", now>>10, heap>>10)
	})
	t.Logf("goroutines %d (baseline %d); heap %d KiB (baseline %d KiB)", runtime.NumGoroutine(), goroutines, now>>10, heap>>10)
}

// chaosControl stops a run's users: the test's cleanup aborts them if the test
// ends early, and waits for them.
type chaosControl struct {
	abort  chan struct{}
	once   sync.Once
	actors sync.WaitGroup
}

func (c *chaosControl) stop() {
	c.once.Do(func() { close(c.abort) })
	c.actors.Wait()
}

// chaosStalls measures how late this process runs: a goroutine that ticks every few
// milliseconds notes every tick that comes late. On a shared machine (or under -race)
// the process can be descheduled for a second or more, and a bound on how soon
// something happens must allow for the time the test itself was not running.
type chaosStalls struct {
	mu     sync.Mutex
	stalls []chaosStall
	stop   chan struct{}
	done   chan struct{}
}

// chaosStall is a tick that came late: it came at at, d later than due.
type chaosStall struct {
	at time.Time
	d  time.Duration
}

const chaosStallTick = 5 * time.Millisecond

func startChaosStalls() *chaosStalls {
	s := &chaosStalls{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(chaosStallTick)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-tick.C:
				now := time.Now()
				if late := now.Sub(last) - chaosStallTick; late > 2*chaosStallTick {
					s.mu.Lock()
					s.stalls = append(s.stalls, chaosStall{at: now, d: late})
					s.mu.Unlock()
				}
				last = now
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

func (s *chaosStalls) close() {
	close(s.stop)
	<-s.done
}

// within returns how long the process stalled between from and to.
func (s *chaosStalls) within(from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum time.Duration
	for _, st := range s.stalls {
		if st.at.After(from) && !st.at.After(to.Add(st.d)) {
			sum += st.d
		}
	}
	return sum
}

// summary describes the stalls: how many, the longest and their sum.
func (s *chaosStalls) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var longest, sum time.Duration
	for _, st := range s.stalls {
		longest, sum = max(longest, st.d), sum+st.d
	}
	return fmt.Sprintf("%d stalls of the test process over %v, the longest %v, %v in all",
		len(s.stalls), 2*chaosStallTick, longest.Round(time.Millisecond), sum.Round(time.Millisecond))
}

// --- TestChaos_KillConnections ---

// chaosScenario is what happens to one chat during the chaos run. The "a" side of the
// chat is the one killed or leaving first.
type chaosScenario int

const (
	chaosUntouched      chaosScenario = iota // both chat all along
	chaosOneGone                             // a is killed and does not come back
	chaosOneGoneRace                         // as chaosOneGone, and b leaves about when the grace ends
	chaosOneResumed                          // a is killed and resumes within the grace
	chaosBothGone                            // both are killed, neither comes back
	chaosBothOneResumed                      // both are killed, b resumes
	chaosBothResumed                         // both are killed, both resume
	chaosBothLeave                           // both send leave_chat at once
	chaosOneLeaves                           // a sends leave_chat
)

var chaosScenarioNames = map[chaosScenario]string{
	chaosUntouched: "untouched", chaosOneGone: "one gone", chaosOneGoneRace: "one gone, leave races expiry",
	chaosOneResumed: "one resumed", chaosBothGone: "both gone", chaosBothOneResumed: "both killed, one resumed",
	chaosBothResumed: "both resumed", chaosBothLeave: "both leave at once", chaosOneLeaves: "one leaves",
}

// chaosRole is what a user does before the chaos: chat, or wait in the queue (with a
// preference that no one else in the run meets).
type chaosRole int

const (
	chaosChatter chaosRole = iota
	chaosWaiter
)

// chaosFate is what the test does with one user, set before the chaos starts.
type chaosFate struct {
	wave        int  // which wave of the chaos acts on the user
	kill        bool // the connection is killed, with no close handshake
	resume      bool // after a kill, the user comes back with init(user_id) ...
	resumeDelay time.Duration
	// ... this long after the engine has seen them go (under a quarter of the grace)
	leave      bool          // the user sends leave_chat
	raceLeave  bool          // the user sends leave_chat grace+raceOffset after the wave
	raceOffset time.Duration // within ±60 ms: either the leave or the expiry wins
}

// chaosMsg is one send_message in the ledger.
type chaosMsg struct {
	seq    int
	from   *chaosUser
	connNo int // which of the sender's connections sent it
	chatID string

	outcome  chaosOutcome
	code     flamingo.ErrorCode // the error, for chaosErrored
	errIndex int                // the sender's event index of the error
	reads    []chaosRead
}

type chaosOutcome int

const (
	chaosOpen       chaosOutcome = iota // no answer yet
	chaosAccepted                       // the pong after it came with no error before
	chaosErrored                        // answered with an error
	chaosUnanswered                     // the sender's connection was killed before the answer
)

// chaosRead is one message_received frame a client read.
type chaosRead struct {
	by     *chaosUser
	connNo int
	chatID string
}

// chaosLedger records every message sent and what became of it.
type chaosLedger struct {
	mu   sync.Mutex
	msgs []*chaosMsg
}

func (l *chaosLedger) add(from *chaosUser, chatID string) *chaosMsg {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := &chaosMsg{seq: len(l.msgs), from: from, connNo: from.connNo, chatID: chatID}
	l.msgs = append(l.msgs, m)
	return m
}

func (l *chaosLedger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs)
}

func (l *chaosLedger) settle(m *chaosMsg, outcome chaosOutcome, code flamingo.ErrorCode, errIndex int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m.outcome, m.code, m.errIndex = outcome, code, errIndex
}

func (l *chaosLedger) read(seq int, rd chaosRead) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq < 0 || seq >= len(l.msgs) {
		return false
	}
	m := l.msgs[seq]
	m.reads = append(m.reads, rd)
	return true
}

const chaosContentPrefix = "chaos message #"

func chaosContent(seq int) string { return chaosContentPrefix + strconv.Itoa(seq) }

func chaosSeqOf(content string) (int, bool) {
	s, ok := strings.CutPrefix(content, chaosContentPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

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
	default:
		u.r.problem("user %d: unexpected frame %s", u.idx, f.raw)
	}
}

// chaosChat is one chat of the run: its users (a first) and its scenario.
type chaosChat struct {
	id       string
	a, b     *chaosUser
	scenario chaosScenario
}

// TestChaos_KillConnections kills hundreds of connections, mid-chat and mid-queue,
// while the others chat, and checks with a ledger of every message that nothing was
// lost, repeated or misdelivered, that every partner was told exactly once and in
// time, and that the engine returns to empty.
func TestChaos_KillConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run over loopback WebSockets: skipped with -short")
	}
	seed := chaosSeed(t)
	const grace = 3 * time.Second
	e := chaosEngine(t, flamingo.Config{
		// A short grace, so that the users who do not come back expire within the
		// test. The resumes come within its first quarter: on a loaded machine
		// (and under -race) a reconnection can take a while.
		ResumeGrace: grace,
		// Every chatter follows each message with a ping: its pong tells that the
		// message was handled, so that each error is tied to its message. A
		// rate-limited ping would get no pong, so events are not limited; the
		// users send about 2 messages a second.
		EventRate:   chaosUnlimited,
		MessageRate: flamingo.RateLimit{Rate: 50, Burst: 50},
		// Hundreds of users init from one loopback address, and a resume that
		// comes too late counts as a guess.
		InitRate:        chaosUnlimited,
		ResumeGuessRate: chaosUnlimited,
	})
	d := newChaosDialer(t, e, &flamingo.WebSocketOptions{MaxConnsPerIP: -1}, 1)

	goroutines, heap := runtime.NumGoroutine(), chaosHeap()
	chaosKillRun(t, e, d, seed, grace)
	if t.Failed() {
		return
	}
	// Every client has closed: once their grace has passed, nothing is left.
	chaosRequireEmpty(t, e, grace+chaosLimit)
	chaosRequireBaseline(t, goroutines, heap)
}

func chaosKillRun(t *testing.T, e *flamingo.Engine, d *chaosDialer, seed uint64, grace time.Duration) {
	const (
		chatters  = 320
		waiters   = 80
		waves     = 4
		waveEvery = 250 * time.Millisecond
		warmUp    = time.Second
	)
	// How many chats end up in each scenario; the rest are untouched.
	scenarioCounts := []struct {
		scenario chaosScenario
		chats    int
	}{
		{chaosOneGone, 30}, {chaosOneGoneRace, 10}, {chaosOneResumed, 30}, {chaosBothGone, 15},
		{chaosBothOneResumed, 15}, {chaosBothResumed, 10}, {chaosBothLeave, 5}, {chaosOneLeaves, 5},
	}
	const waitersGone, waitersResumed = 40, 20

	ctl := &chaosControl{abort: make(chan struct{})}
	t.Cleanup(ctl.stop)
	r := &chaosRun{
		e: e, dialer: d, grace: grace, period: 500 * time.Millisecond, ctl: ctl, stalls: startChaosStalls(),
		start: make(chan struct{}), stop: make(chan struct{}), syncNow: make(chan struct{}), closeAll: make(chan struct{}),
	}
	defer r.stalls.close()
	for range waves {
		r.waves = append(r.waves, make(chan struct{}))
	}
	rng := rand.New(rand.NewPCG(seed, 0))

	// Everyone connects, inits and queues; the chatters are matched in pairs.
	users := make([]*chaosUser, chatters+waiters)
	for i := range chaosPhases {
		r.phase(i).Add(len(users))
	}
	ctl.actors.Add(len(users))
	for i := range users {
		u := &chaosUser{r: r, idx: i, role: chaosChatter, rng: rand.New(rand.NewPCG(seed, uint64(i)+1))}
		if i >= chatters {
			u.role = chaosWaiter
		}
		users[i] = u
		go u.run()
	}
	chaosWait(t, &r.ready, 2*chaosLimit, "every chatter to be matched and every waiter queued")
	r.requireNoProblems(t)
	require.Equal(t, flamingo.Stats{Online: chatters + waiters, InQueue: waiters, InChat: chatters}, e.Stats())

	// Each chat gets a scenario, each user a fate.
	byID := map[string]*chaosChat{}
	var chats []*chaosChat
	for _, u := range users[:chatters] {
		ch := byID[u.chatID]
		if ch == nil {
			ch = &chaosChat{id: u.chatID, a: u}
			byID[u.chatID] = ch
			chats = append(chats, ch)
			continue
		}
		require.Nil(t, ch.b, "three users in chat %s", u.chatID)
		ch.b, ch.a.partner, u.partner = u, u, ch.a
	}
	require.Len(t, chats, chatters/2)
	rng.Shuffle(len(chats), func(i, j int) { chats[i], chats[j] = chats[j], chats[i] })
	next := 0
	for _, sc := range scenarioCounts {
		for _, ch := range chats[next : next+sc.chats] {
			ch.scenario = sc.scenario
		}
		next += sc.chats
	}
	resumeDelay := func() time.Duration { return time.Duration(rng.Int64N(int64(grace / 4))) }
	for _, ch := range chats {
		if rng.IntN(2) == 0 {
			ch.a, ch.b = ch.b, ch.a
		}
		w := rng.IntN(waves)
		ch.a.fate.wave, ch.b.fate.wave = w, w
		a, b := &ch.a.fate, &ch.b.fate
		switch ch.scenario {
		case chaosOneGone:
			a.kill = true
		case chaosOneGoneRace:
			a.kill = true
			b.raceLeave, b.raceOffset = true, time.Duration(rng.Int64N(int64(120*time.Millisecond)))-60*time.Millisecond
		case chaosOneResumed:
			a.kill, a.resume, a.resumeDelay = true, true, resumeDelay()
		case chaosBothGone:
			a.kill, b.kill = true, true
		case chaosBothOneResumed:
			a.kill, b.kill = true, true
			b.resume, b.resumeDelay = true, resumeDelay()
		case chaosBothResumed:
			a.kill, a.resume, a.resumeDelay = true, true, resumeDelay()
			b.kill, b.resume, b.resumeDelay = true, true, resumeDelay()
		case chaosBothLeave:
			a.leave, b.leave = true, true
		case chaosOneLeaves:
			a.leave = true
		}
	}
	waiting := slices.Clone(users[chatters:])
	rng.Shuffle(len(waiting), func(i, j int) { waiting[i], waiting[j] = waiting[j], waiting[i] })
	for i, u := range waiting[:waitersGone+waitersResumed] {
		u.fate = chaosFate{wave: rng.IntN(waves), kill: true, resume: i >= waitersGone, resumeDelay: resumeDelay()}
	}

	var kills, resumes int
	for _, u := range users {
		if u.fate.kill {
			kills++
		}
		if u.fate.resume {
			resumes++
		}
	}
	// What the engine holds once the chaos is over and the grace has passed: every
	// user who was not killed for good is online (with a new identity if they came
	// back too late), the waiters who came back in time are queued again, and the
	// chats whose killed users all came back in time go on.
	expect := func(late []*chaosUser) (want flamingo.Stats, ongoing int) {
		for _, u := range users {
			if u.fate.kill && !u.fate.resume {
				continue
			}
			want.Online++
			if u.role == chaosWaiter && !slices.Contains(late, u) {
				want.InQueue++
			}
		}
		for _, ch := range chats {
			switch ch.scenario {
			case chaosUntouched, chaosOneResumed, chaosBothResumed:
				if !slices.Contains(late, ch.a) && !slices.Contains(late, ch.b) {
					ongoing++
				}
			}
		}
		want.InChat = 2 * ongoing
		return want, ongoing
	}

	// The chaos: everyone chats for a while, then the waves of kills and leaves come
	// while the others keep chatting. The timers pace the run; they synchronise
	// nothing.
	began := time.Now()
	close(r.start)
	<-time.After(warmUp)
	tick := time.NewTicker(waveEvery)
	for i, w := range r.waves {
		if i > 0 {
			<-tick.C
		}
		close(w)
	}
	tick.Stop()
	var late []*chaosUser
	chaosEventually(t, grace+chaosLimit, "the chaos to settle", func() (bool, string) {
		if r.hasProblems() {
			return true, "" // reported just below
		}
		if n := int(r.resumesDone.Load()); n < resumes {
			return false, fmt.Sprintf("%d of %d resumes done", n, resumes)
		}
		r.mu.Lock()
		late = slices.Clone(r.late)
		r.mu.Unlock()
		want, ongoing := expect(late)
		st, sessions, chatCount := e.Stats(), flamingo.SessionCount(e), flamingo.ChatCount(e)
		return st == want && sessions == want.Online && chatCount == ongoing,
			fmt.Sprintf("stats %+v (want %+v), %d sessions (want %d), %d chats (want %d)", st, want, sessions, want.Online, chatCount, ongoing)
	})
	r.requireNoProblems(t)

	// Stop sending; once every message has its answer, one more ping from everyone
	// proves that every message handled so far has been written to its reader.
	close(r.stop)
	chaosWait(t, &r.drained, chaosLimit, "every message to be answered")
	close(r.syncNow)
	chaosWait(t, &r.synced, chaosLimit, "the last pings to be answered")
	close(r.closeAll)
	chaosWait(t, &ctl.actors, chaosLimit, "every user to close")
	r.requireNoProblems(t)
	t.Logf("%d users (%d chatters in %d chats, %d waiters), %d connections opened, %d killed, %d resumed (%d of them too late), in %v; %s",
		len(users), chatters, len(chats), waiters, r.dials, kills, resumes, len(late), time.Since(began).Round(time.Millisecond), r.stalls.summary())

	chaosCheckMessages(t, r)
	chaosCheckEnds(t, r, chats, users[chatters:])
}

// chaosCheckMessages checks the ledger: each message was delivered at most once, only
// to its sender's partner, in order; each that the engine accepted reached the partner
// unless the partner never came back or it was on its way into a connection as that
// connection was killed; each error is one that the situation explains.
func chaosCheckMessages(t *testing.T, r *chaosRun) {
	t.Helper()
	r.ledger.mu.Lock()
	defer r.ledger.mu.Unlock()
	var (
		counts   = map[string]int{}
		codes    = map[flamingo.ErrorCode]int{}
		problems []string
	)
	fail := func(m *chaosMsg, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("message %d (user %d, connection %d, chat %s): %s",
			m.seq, m.from.idx, m.connNo, m.chatID, fmt.Sprintf(format, args...)))
	}
	readers := map[*chaosUser]bool{}
	for _, m := range r.ledger.msgs {
		s, p := m.from, m.from.partner
		if m.chatID != s.chatID || p == nil {
			fail(m, "sent into a chat that is not the sender's")
			continue
		}
		readers[p] = true
		perConn := map[int]int{}
		for _, rd := range m.reads {
			if rd.by != p {
				fail(m, "delivered to user %d, who is not the partner", rd.by.idx)
			}
			if rd.chatID != m.chatID {
				fail(m, "delivered with chat_id %s", rd.chatID)
			}
			perConn[rd.connNo]++
		}
		for connNo, n := range perConn {
			if n > 1 {
				fail(m, "delivered %d times to connection %d of the partner", n, connNo)
			}
		}
		if len(perConn) > 1 {
			// A resumed connection replays only what the old one had not been
			// given: a message the old connection read must not come again.
			fail(m, "delivered to %d connections of the partner", len(perConn))
		}
		switch m.outcome {
		case chaosOpen:
			fail(m, "never answered though its sender's connection lived")
		case chaosUnanswered:
			if len(m.reads) > 0 {
				counts["unanswered (sender killed), delivered"]++
			} else {
				counts["unanswered (sender killed), not delivered"]++
			}
		case chaosErrored:
			codes[m.code]++
			if len(m.reads) > 0 {
				fail(m, "delivered although the sender got error %s", m.code)
			}
			switch m.code {
			case flamingo.CodeNotInChat:
				// Only after the chat ended, which the sender was told first.
				told := slices.ContainsFunc(s.ends, func(e chaosEnd) bool { return e.chatID == m.chatID && e.index < m.errIndex })
				if !told {
					fail(m, "not_in_chat although the sender had not been told that the chat ended")
				}
			case flamingo.CodeRateLimited:
				// Only when the partner is away with their held events full.
				if !p.fate.kill {
					fail(m, "rate_limited although the partner never went away")
				}
			default:
				fail(m, "unexpected error %s", m.code)
			}
		case chaosAccepted:
			switch {
			case len(m.reads) > 0:
				counts["accepted, delivered"]++
			case chaosGone(p):
				// Held for a partner who never came back, who is then told the
				// chat ended (checked in chaosCheckEnds).
				counts["accepted, partner never came back"]++
			case p.fate.kill && m.seq < p.noticeSeq:
				// Sent before the engine had seen the partner's connection die,
				// so possibly written into the dead socket: no protocol without
				// acknowledgements can recover those bytes.
				counts["accepted, lost in the partner's killed socket"]++
			default:
				fail(m, "accepted, never delivered (partner user %d: killed %v, resumed %v)", p.idx, p.fate.kill, p.fate.resume)
			}
		}
	}
	// A sender's messages arrive in the order sent, over a resume too, but for one
	// case the engine documents: a frame whose write to the old connection fails
	// after the user is back on a new one goes there late, after the replay.
	for u := range readers {
		last, late := -1, map[int]int{}
		for _, rd := range u.reads {
			seq, connNo := rd[0], rd[1]
			switch {
			case seq > last:
				last = seq
			case connNo > 0 && late[connNo] == 0:
				late[connNo]++
				counts["delivered late after a resume, its write having failed"]++
			default:
				problems = append(problems, fmt.Sprintf("user %d read message %d after message %d", u.idx, seq, last))
			}
		}
	}
	t.Logf("%d messages sent: %v; errors %v", len(r.ledger.msgs), counts, codes)
	if len(problems) > 0 {
		t.Errorf("%d ledger problems, the first ones:\n%s", len(problems), strings.Join(problems[:min(len(problems), 30)], "\n"))
	}
}

// chaosGone reports whether u was killed and did not come back within the grace.
func chaosGone(u *chaosUser) bool { return u.fate.kill && (!u.fate.resume || u.late) }

// chaosCheckEnds checks chat_ended: at most one per user and chat, ever; exactly one,
// with reason partner_disconnected, within grace + 1 s of the kill, for every user
// who was there when their partner's grace ran out; none for the partner of a user
// who resumed; one each, with the right reasons, when users leave. It also checks that
// every resume the engine refused, or that found the chat over, came after the grace.
func chaosCheckEnds(t *testing.T, r *chaosRun, chats []*chaosChat, waiters []*chaosUser) {
	t.Helper()
	var (
		problems []string
		raced    = map[flamingo.EndReason]int{}
		told     int
		onReturn int
		slowest  time.Duration
		fastest  = time.Hour
	)
	for _, u := range waiters {
		if len(u.ends) > 0 || len(u.reads) > 0 {
			problems = append(problems, fmt.Sprintf("waiter %d read %d chat_ended and %d messages", u.idx, len(u.ends), len(u.reads)))
		}
		if u.late && u.resumedAt.Sub(u.killedAt) < r.grace {
			problems = append(problems, fmt.Sprintf("waiter %d got a new identity %v after the kill, within the grace", u.idx, u.resumedAt.Sub(u.killedAt)))
		}
	}
	for _, ch := range chats {
		name := chaosScenarioNames[ch.scenario]
		fail := func(format string, args ...any) {
			problems = append(problems, fmt.Sprintf("chat %s (%s): %s", ch.id, name, fmt.Sprintf(format, args...)))
		}
		none := func(u *chaosUser) {
			if len(u.ends) > 0 {
				fail("user %d was told the chat ended (%s)", u.idx, u.ends[0].reason)
			}
		}
		one := func(u *chaosUser, reasons ...flamingo.EndReason) (chaosEnd, bool) {
			if len(u.ends) != 1 {
				fail("user %d got %d chat_ended, want 1", u.idx, len(u.ends))
				return chaosEnd{}, false
			}
			if !slices.Contains(reasons, u.ends[0].reason) {
				fail("user %d got reason %s, want one of %v", u.idx, u.ends[0].reason, reasons)
				return chaosEnd{}, false
			}
			return u.ends[0], true
		}
		var reasons []flamingo.EndReason
		for _, pair := range [][2]*chaosUser{{ch.a, ch.b}, {ch.b, ch.a}} {
			u, p := pair[0], pair[1]
			for _, end := range u.ends {
				if end.chatID != ch.id {
					fail("user %d was told that chat %s ended, not theirs", u.idx, end.chatID)
				}
			}
			if u.late && u.resumedAt.Sub(u.killedAt) < r.grace {
				fail("user %d got a new identity %v after the kill, within the grace", u.idx, u.resumedAt.Sub(u.killedAt))
			}
			if u.chatGone && (!chaosGone(p) || u.resumedAt.Sub(p.killedAt) < r.grace) {
				fail("user %d resumed %v after the partner's kill and found the chat over", u.idx, u.resumedAt.Sub(p.killedAt))
			}
			switch {
			case chaosGone(u):
				none(u) // nothing had ended before the kill
			case ch.scenario == chaosBothLeave:
				if end, ok := one(u, flamingo.ReasonLeft, flamingo.ReasonPartnerLeft); ok {
					reasons = append(reasons, end.reason)
				}
			case ch.scenario == chaosOneLeaves && u == ch.a:
				one(u, flamingo.ReasonLeft)
			case ch.scenario == chaosOneLeaves:
				one(u, flamingo.ReasonPartnerLeft)
			case ch.scenario == chaosOneGoneRace && u == ch.b:
				if end, ok := one(u, flamingo.ReasonLeft, flamingo.ReasonPartnerDisconnected); ok {
					raced[end.reason]++
				}
			case chaosGone(p):
				end, ok := one(u, flamingo.ReasonPartnerDisconnected)
				if !ok {
					break
				}
				d := end.at.Sub(p.killedAt)
				if d < r.grace {
					fail("user %d was told %v after the kill, before the grace had passed", u.idx, d)
				}
				if u.fate.kill && !u.resumedAt.Before(p.killedAt.Add(r.grace)) {
					onReturn++ // away when the partner's grace ran out: told on return
					break
				}
				// Within grace + 1 s, and the time the test process itself was
				// not running meanwhile (see chaosStalls).
				if stalled := r.stalls.within(p.killedAt, end.at); d > r.grace+time.Second+stalled {
					fail("user %d was told %v after the kill, want within grace + 1 s + %v that the test process stalled meanwhile; the engine saw the kill after %v, the frame came %v after that",
						u.idx, d, stalled, p.noticedAt.Sub(p.killedAt), end.at.Sub(p.noticedAt))
				}
				told++
				slowest, fastest = max(slowest, d), min(fastest, d)
			default:
				none(u)
			}
		}
		if len(reasons) == 2 && reasons[0] == reasons[1] {
			fail("both users got reason %s", reasons[0])
		}
	}
	if told > 0 {
		t.Logf("%d users told of their partner's disconnect, %v to %v after the kill (grace %v); %d more told on their own return; leave raced expiry: %v",
			told, fastest.Round(time.Millisecond), slowest.Round(time.Millisecond), r.grace, onReturn, raced)
	}
	if len(problems) > 0 {
		t.Errorf("%d chat_ended problems, the first ones:\n%s", len(problems), strings.Join(problems[:min(len(problems), 30)], "\n"))
	}
}

// --- TestSoak_NoUserIDLeak ---

// soakMarker starts and ends every message of the soak, so that a log line holding
// any part of a message's content around it is easy to find.
const soakMarker = "SOAK-CONTENT"

// soakLog is a log destination for the engine that the test can read.
type soakLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *soakLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *soakLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// soakFrame is one frame a soak client read, with the user_id its connection had been
// given (empty before ready).
type soakFrame struct {
	owner string
	raw   []byte
	ready bool
}

// soakClient is one churning client of the soak: it connects, inits (as itself again,
// sometimes), queues with random choices, chats, leaves, queues again, and goes away
// (abruptly or not) after a while, over and over until the deadline.
type soakClient struct {
	idx      int
	rng      *rand.Rand
	dialer   *chaosDialer
	deadline time.Time
	abort    <-chan struct{}

	frames   []soakFrame
	chats    map[string]bool // every chat the client was matched into
	problems []string

	conns, resumes, matches, messages int
}

func (s *soakClient) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf("client %d: %s", s.idx, fmt.Sprintf(format, args...)))
}

func (s *soakClient) run() {
	prev := ""
	for time.Now().Before(s.deadline) && len(s.problems) == 0 {
		ask := ""
		if prev != "" && s.rng.IntN(3) > 0 {
			ask = prev // back as themselves: resumed within the grace, a new id after it
		}
		id, err := s.session(ask)
		if errors.Is(err, errChaosAborted) {
			return
		}
		if err != nil {
			s.problem("%v", err)
			return
		}
		prev = id
	}
}

var (
	soakGenders     = []flamingo.Gender{flamingo.GenderMale, flamingo.GenderFemale, flamingo.GenderOther}
	soakPreferences = []flamingo.Preference{flamingo.PreferMale, flamingo.PreferFemale, flamingo.PreferOther, flamingo.PreferAny}
)

// session runs one connection and returns the user_id it was given.
func (s *soakClient) session(ask string) (owner string, err error) {
	c, err := s.dialer.dial(s.idx)
	if err != nil {
		return "", err
	}
	s.conns++
	// record keeps f with the user_id of the connection, which ready gives.
	record := func(f *chaosFrame) {
		if f.Type == flamingo.EventReady && owner == "" {
			owner = f.Payload.UserID
		}
		s.frames = append(s.frames, soakFrame{owner: owner, raw: f.raw, ready: f.Type == flamingo.EventReady})
	}
	defer func() {
		// Go away abruptly, or with a close handshake.
		if s.rng.IntN(2) == 0 {
			_ = c.ws.Close(websocket.StatusNormalClosure, "")
		}
		for _, f := range c.hangUp() {
			record(f)
		}
	}()
	if err := c.write(chaosEvent(flamingo.EventInit, flamingo.InitPayload{UserID: ask})); err != nil {
		return "", err
	}
	var (
		chatID                   string
		queued, joining, leaving bool
		queuedAt                 time.Time
		resumed                  bool
		// Chats of a resumed connection that it had not been told of: their
		// match_found went into the connection that ended. Only the replay of
		// a chat that ended meanwhile may bring them, so each must end.
		unannounced = map[string]bool{}
	)
	defer func() {
		for id := range unannounced {
			s.problem("messages from chat %s, which the client was never told of and which did not end", id)
		}
	}()
	lifetime := 300*time.Millisecond + time.Duration(s.rng.Int64N(int64(2*time.Second)))
	life := time.NewTimer(min(lifetime, time.Until(s.deadline)))
	defer life.Stop()
	tick := time.NewTicker(40*time.Millisecond + time.Duration(s.rng.Int64N(int64(80*time.Millisecond))))
	defer tick.Stop()
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return owner, fmt.Errorf("connection ended: %v", c.err)
			}
			p := &f.Payload
			if f.Type == flamingo.EventReady && owner != "" {
				s.problem("a second ready: %s", f.raw)
			}
			record(f)
			if f.Type == flamingo.EventReady {
				if ask != "" && p.Resumed != (owner == ask) {
					s.problem("ready says resumed %v, with the id asked for %v", p.Resumed, owner == ask)
				}
				if p.Resumed {
					s.resumes++
					resumed = true
					// The chat's match_found may have gone into the connection
					// that ended: ready names the chat.
					if chatID = p.ChatID; chatID != "" {
						s.chats[chatID] = true
					}
				}
			}
			switch f.Type {
			case flamingo.EventReady:
			case flamingo.EventMessageReceived:
				switch {
				case s.chats[p.ChatID]:
				case resumed:
					unannounced[p.ChatID] = true
				default:
					s.problem("a message from a chat the client was never in: %s", f.raw)
				}
			case flamingo.EventQueueJoined:
				joining, queued, queuedAt = false, true, time.Now()
			case flamingo.EventQueueLeft:
				queued, leaving = false, false
			case flamingo.EventMatchFound:
				queued, chatID = false, p.ChatID
				s.chats[chatID] = true
				s.matches++
			case flamingo.EventChatEnded:
				delete(unannounced, p.ChatID)
				if !s.chats[p.ChatID] && !resumed {
					s.problem("the end of a chat the client was never in: %s", f.raw)
				}
				if p.ChatID == chatID {
					chatID = ""
				}
			case flamingo.EventError:
				switch p.Code {
				case flamingo.CodeNotInChat, flamingo.CodeRateLimited:
					// A message or leave_chat racing the end of the chat.
				case flamingo.CodeNotInQueue:
					leaving = false // leave_queue racing a match
				case flamingo.CodeAlreadyInChat, flamingo.CodeAlreadyInQueue:
					joining = false
				default:
					s.problem("unexpected error %s", f.raw)
				}
			default:
				s.problem("unexpected frame %s", f.raw)
			}
		case <-tick.C:
			var ev []byte
			switch {
			case owner == "":
			case chatID != "":
				switch n := s.rng.IntN(20); {
				case n == 0:
					ev = chaosEvent(flamingo.EventLeaveChat, flamingo.LeaveChatPayload{ChatID: chatID})
				case n < 14:
					s.messages++
					content := fmt.Sprintf("%s %d.%d: hi ✓ %s", soakMarker, s.idx, s.messages, soakMarker)
					ev = chaosEvent(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: chatID, Content: content})
				}
			case queued:
				if !leaving && time.Since(queuedAt) > 500*time.Millisecond && s.rng.IntN(4) == 0 {
					leaving = true
					ev = chaosEvent(flamingo.EventLeaveQueue, nil)
				}
			case !joining:
				joining = true
				ev = chaosEvent(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{
					Gender:     soakGenders[s.rng.IntN(len(soakGenders))],
					Preference: soakPreferences[s.rng.IntN(len(soakPreferences))],
				})
			}
			if ev != nil {
				if err := c.write(ev); err != nil {
					return owner, err
				}
			}
		case <-life.C:
			return owner, nil
		case <-s.abort:
			return owner, errChaosAborted
		}
	}
}

// soakFindIDs returns the user_ids of ids that occur in b, in any letter case.
func soakFindIDs(b []byte, ids map[string]bool) []string {
	const n = 32 // hex digits in a user_id
	lower := bytes.ToLower(b)
	var found []string
	for i := 0; i+n <= len(lower); i++ {
		if ids[string(lower[i:i+n])] {
			found = append(found, string(lower[i:i+n]))
		}
	}
	return found
}

// TestSoak_NoUserIDLeak churns a hundred clients for a few seconds and checks that no
// frame to anyone carries a user_id other than the one its connection was given (in
// ready), and that the engine's logs, at Debug level, hold no user_id and no message
// content.
func TestSoak_NoUserIDLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak over loopback WebSockets: skipped with -short")
	}
	seed := chaosSeed(t)
	const (
		clients  = 100
		duration = 8 * time.Second
		grace    = 2 * time.Second
	)
	logs := &soakLog{}
	e := chaosEngine(t, flamingo.Config{
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// A short grace, so that some clients come back within it (resumed) and
		// some after it (an unknown id, answered with a fresh one).
		ResumeGrace: grace,
		// The churn is faster than people: clients queue again many times a second,
		// and a hundred of them init (and come back with expired ids) from one
		// loopback address.
		JoinRate:        chaosUnlimited,
		InitRate:        chaosUnlimited,
		ResumeGuessRate: chaosUnlimited,
		MessageRate:     flamingo.RateLimit{Rate: 50, Burst: 50},
	})
	d := newChaosDialer(t, e, &flamingo.WebSocketOptions{MaxConnsPerIP: -1}, 1)

	ctl := &chaosControl{abort: make(chan struct{})}
	t.Cleanup(ctl.stop)
	deadline := time.Now().Add(duration)
	all := make([]*soakClient, clients)
	ctl.actors.Add(clients)
	for i := range all {
		s := &soakClient{idx: i, rng: rand.New(rand.NewPCG(seed, uint64(i))), dialer: d, deadline: deadline,
			abort: ctl.abort, chats: map[string]bool{}}
		all[i] = s
		go func() {
			defer ctl.actors.Done()
			s.run()
		}()
	}
	chaosWait(t, &ctl.actors, duration+chaosLimit, "the soak clients to finish")
	chaosRequireEmpty(t, e, grace+chaosLimit)

	ids := map[string]bool{}
	var problems []string
	var conns, resumes, matches, messages, frames int
	for _, s := range all {
		problems = append(problems, s.problems...)
		conns, resumes, matches, messages, frames = conns+s.conns, resumes+s.resumes, matches+s.matches, messages+s.messages, frames+len(s.frames)
		for _, f := range s.frames {
			if f.owner != "" {
				ids[f.owner] = true
			}
		}
	}
	require.Empty(t, problems)
	require.NotEmpty(t, ids)
	for _, s := range all {
		for _, f := range s.frames {
			found := soakFindIDs(f.raw, ids)
			if f.ready {
				// The scan finds what it looks for: ready carries its owner's id.
				assert.Equal(t, []string{f.owner}, found, "ready %s", f.raw)
				continue
			}
			for _, id := range found {
				t.Errorf("client %d (user_id %.8s…) got a user_id (%s) in %s", s.idx, f.owner, map[bool]string{true: "its own", false: "another user's"}[id == f.owner], f.raw)
			}
		}
	}
	out := logs.String()
	require.Contains(t, out, "new session", "the engine's logs were captured")
	assert.Empty(t, soakFindIDs([]byte(out), ids), "user_ids in the engine's logs")
	assert.NotContains(t, strings.ToUpper(out), soakMarker, "message content in the engine's logs")
	t.Logf("%d clients: %d connections, %d user_ids issued, %d resumed, %d chats, %d messages sent, %d frames scanned, %d KiB of logs",
		clients, conns, len(ids), resumes, matches/2, messages, frames, len(out)>>10)
}

// --- TestFlood_DoesNotHurtOthers ---

// floodConn is what one flooding connection saw.
type floodConn struct {
	sent, rateLimited int
	status            websocket.StatusCode
}

// flood sends first (if not nil) and then frames, over and over, on c, one every pace,
// until the connection ends, and reports what came back.
func flood(c *chaosConn, first []byte, frames [][]byte, pace time.Duration) floodConn {
	var res floodConn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range c.frames {
			if f.Type == flamingo.EventError && f.Payload.Code == flamingo.CodeRateLimited {
				res.rateLimited++
			}
		}
	}()
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; ; i++ {
		f := frames[i%len(frames)]
		if first != nil {
			f, first = first, nil
		}
		if c.write(f) != nil {
			break
		}
		res.sent++
		select {
		case <-tick.C:
		case <-done:
		}
	}
	<-done
	res.status = websocket.CloseStatus(c.err)
	_ = c.ws.CloseNow()
	return res
}

// TestFlood_DoesNotHurtOthers floods the engine from one address, with messages,
// pings and garbage, while a well-behaved pair chats: every flooding connection is
// answered rate_limited and closed with 1008, and every message of the pair arrives,
// once and in order.
func TestFlood_DoesNotHurtOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("flood over loopback WebSockets: skipped with -short")
	}
	// The default limits are what is under test; a short grace only shortens the
	// cleanup of the flooder's chat.
	e := chaosEngine(t, flamingo.Config{ResumeGrace: 2 * time.Second})
	d := newChaosDialer(t, e, nil, 2) // the pair comes from 127.0.0.1, the flooder from 127.0.0.2
	const (
		pairAddr, floodAddr = 0, 1
		perSide             = 25
		pace                = 100 * time.Millisecond // the pair's: 5 messages a second each, as allowed
		floodPace           = 2 * time.Millisecond   // the flooder's: 500 frames a second
	)

	dial := func(addr int) *chaosConn {
		c, err := d.dial(addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.hangUp() })
		return c
	}
	expect := func(c *chaosConn, typ flamingo.EventType) *chaosFrame {
		t.Helper()
		f, err := c.next()
		require.NoError(t, err)
		require.Equal(t, typ, f.Type, "got %s", f.raw)
		return f
	}
	write := func(c *chaosConn, typ flamingo.EventType, payload any) {
		t.Helper()
		require.NoError(t, c.write(chaosEvent(typ, payload)))
	}
	match := func(x, y *chaosConn, gx, gy flamingo.Gender, px, py flamingo.Preference) string {
		t.Helper()
		for _, c := range []*chaosConn{x, y} {
			write(c, flamingo.EventInit, nil)
			expect(c, flamingo.EventReady)
		}
		write(x, flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: gx, Preference: px})
		expect(x, flamingo.EventQueueJoined)
		write(y, flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: gy, Preference: py})
		expect(y, flamingo.EventQueueJoined)
		chatID := expect(x, flamingo.EventMatchFound).Payload.ChatID
		require.Equal(t, chatID, expect(y, flamingo.EventMatchFound).Payload.ChatID)
		return chatID
	}

	a, b := dial(pairAddr), dial(pairAddr)
	chatID := match(a, b, flamingo.GenderFemale, flamingo.GenderMale, flamingo.PreferAny, flamingo.PreferFemale)
	// The flooder starts in a chat of its own (users of gender other who want the
	// same, whom the pair would not accept), so that its messages are real.
	flooder, victim := dial(floodAddr), dial(floodAddr)
	floodChat := match(flooder, victim, flamingo.GenderOther, flamingo.GenderOther, flamingo.PreferOther, flamingo.PreferOther)
	var victimGot int
	victimDone := make(chan struct{})
	go func() {
		defer close(victimDone)
		for f := range victim.frames {
			if f.Type == flamingo.EventMessageReceived {
				victimGot++
			}
		}
	}()

	pairDone := make(chan struct{})
	floodDone := make(chan []floodConn, 1)
	go func() {
		var results []floodConn
		defer func() { floodDone <- results }()
		say := chaosEvent(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: floodChat, Content: "spam"})
		garbage := []byte("}{ not json")
		results = append(results, flood(flooder, nil, [][]byte{say, say, chaosPing, say, garbage, say, chaosPing, say, say, say}, floodPace))
		// Then again and again from new connections, as fast as it is refused, with
		// events that are valid but too many (and some garbage). Mostly valid ones:
		// invalid ones spend the error budget before the event rate is reached.
		stats := chaosEvent(flamingo.EventGetStats, nil)
		frames := [][]byte{chaosPing, stats, chaosPing, chaosPing, garbage, chaosPing, stats, chaosPing, chaosPing}
		for len(results) < 100 {
			select {
			case <-pairDone:
				return
			default:
			}
			c, err := d.dial(floodAddr)
			if err != nil {
				return
			}
			results = append(results, flood(c, chaosEvent(flamingo.EventInit, nil), frames, floodPace))
		}
	}()

	// The pair chats, taking turns, while the flood goes on.
	var latencies []time.Duration
	tick := time.NewTicker(pace)
	for i := range 2 * perSide {
		<-tick.C
		from, to := a, b
		if i%2 == 1 {
			from, to = b, a
		}
		content := fmt.Sprintf("pair message %d", i)
		sent := time.Now()
		write(from, flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: chatID, Content: content})
		f := expect(to, flamingo.EventMessageReceived)
		latencies = append(latencies, f.at.Sub(sent))
		assert.Equal(t, content, f.Payload.Content)
		assert.Equal(t, chatID, f.Payload.ChatID)
	}
	tick.Stop()
	close(pairDone)
	// Nothing else came to the pair: no error, no repeat.
	for _, c := range []*chaosConn{a, b} {
		write(c, flamingo.EventPing, nil)
		expect(c, flamingo.EventPong)
	}

	var results []floodConn
	select {
	case results = <-floodDone:
	case <-time.After(chaosLimit):
		t.Fatal("the flooder did not stop")
	}
	victim.hangUp()
	<-victimDone
	var sent, limited int
	for i, res := range results {
		sent, limited = sent+res.sent, limited+res.rateLimited
		assert.Positive(t, res.rateLimited, "flooding connection %d got no rate_limited", i)
		assert.Equal(t, websocket.StatusPolicyViolation, res.status, "flooding connection %d was closed with %d", i, res.status)
	}
	slices.Sort(latencies)
	t.Logf("flood: %d connections, %d frames, %d rate_limited, %d messages reached the flooder's partner; pair: %d messages, latency median %v, max %v",
		len(results), sent, limited, victimGot, len(latencies), latencies[len(latencies)/2], latencies[len(latencies)-1])
}
