package flamingo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// The chaos tests run the engine over real WebSockets on loopback, under load, one
// scenario per file:
//   - chaos_kill_test.go: hundreds of connections killed mid-chat and mid-queue while
//     others chat (TestChaos_KillConnections), checked against a ledger of every message
//     (chaos_kill_ledger_test.go) sent by simulated users (chaos_kill_user_test.go);
//   - chaos_soak_test.go: a churning soak that looks for user_ids where they must not be
//     (TestSoak_NoUserIDLeak);
//   - chaos_flood_test.go: a flood beside a well-behaved pair (TestFlood_DoesNotHurtOthers).
//
// This file holds what they share: the dialer and client connection, waits that fail
// instead of hanging, the checks that the engine and the process return to empty, and
// the stall meter. Each test is bounded in time and count, stops by itself and is
// skipped under -short. The random choices come from a seed that each test logs;
// FLAMINGO_CHAOS_SEED repeats them (the timing of a run cannot be repeated).

// chaosLimit bounds every wait of these tests: generous, since it is reached only when
// a test is about to fail.
const chaosLimit = 15 * time.Second

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
	d := &chaosDialer{url: wsServer(t, e, opts)}
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
