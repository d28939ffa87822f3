package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// The rolling restart's sizes and bounds. The nodes keep the library's defaults, as
// main.go does, so each user sends under the default MessageRate (5 a second per
// connection).
const (
	rollNodes = 3
	rollUsers = 100 // in 50 chats
	// rollSendEvery is each user's pace: 4 messages a second, 400 in all.
	rollSendEvery = 250 * time.Millisecond
	// rollSteady is how many messages every user must receive before each restart
	// (and after the last): the chats flow again on every node between two restarts.
	rollSteady = 8
	// rollDrain is the nodes' -drain. A node whose users do not all move within it
	// logs so instead of "drained in", which fails the test.
	rollDrain = 20 * time.Second
	// rollWait bounds each wait of the test for something that takes a moment: the
	// steady state, a node's exit, the users' resumes, delivery after the last send.
	rollWait = 30 * time.Second
)

// TestRollingRestart restarts each of three nodes in turn, as a deploy does, while 100
// users chat in 50 chats spread over them, and keeps a ledger of every message.
//
// Each node in turn gets SIGTERM: it drains, so its users are closed with 1012 and
// reconnect at once to one of the other two nodes, where they must resume with the same
// chat; the node must then exit with status 0 and is started again on its address,
// which must answer /readyz. Messages flow throughout: each user sends to the partner
// every 250 ms while it has a ready connection.
//
// The users are clients as flamingo.js is: each message goes with a client_msg_id and
// stays pending until its message_sent; after a resume, the client sends every
// pending message again, in order, with the same ids, before any new one. A message
// written while the node's 1012 close frame is on its way is discarded by the close
// handshake (nothing tells the client), and one whose ack was on its way arrives and
// is acknowledged again: the re-send covers the first, the server's de-duplication
// the second. So the ledger is strict: every message the client meant to send
// reached the partner exactly once and in the order of first sending, was
// acknowledged with one message_id, no chat ended, every user resumed after each
// restart of the node they were on, and each partner saw each move as partner_away
// then partner_back.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: restarts three node processes under load")
	}
	began := time.Now()
	raddr := redisClient(t).Options().Addr
	bin := buildNode(t)
	t.Logf("built the node (race detector %v) in %v", raceEnabled(), since(began))

	r := &rolling{t: t, bin: bin, redisAddr: raddr, stopSend: make(chan struct{}), stopRead: make(chan struct{})}
	for i := range r.nodes {
		r.addrs[i] = freeAddr(t)
		r.nodes[i] = r.launch(i)
		r.live[i].Store(true)
	}
	r.meet()
	t.Logf("%d users in %d chats (%d across two nodes) at %v", rollUsers, rollUsers/2, r.across, since(began))

	trafficFrom := time.Now()
	var senders, receivers sync.WaitGroup
	defer func() { // also when the test fails half-way: no goroutine outlives it
		r.stop()
		senders.Wait()
		receivers.Wait()
	}()
	for _, u := range r.users {
		senders.Add(1)
		receivers.Add(1)
		go func() { defer senders.Done(); r.send(u) }()
		go func() { defer receivers.Done(); r.receive(u) }()
	}
	r.waitSteady()

	for k := range r.nodes {
		r.restart(k)
		r.waitSteady()
	}

	// Stop sending (a write under way completes), then wait until everything written
	// has arrived.
	close(r.stopSend)
	senders.Wait()
	stopped := time.Now()
	sendTime := stopped.Sub(trafficFrom)
	settled := assert.Eventually(t, r.delivered, rollWait, 20*time.Millisecond,
		"every message sent is acknowledged and delivered within %v of the last send", rollWait)
	if settled {
		t.Logf("delivery settled %v after the last send", since(stopped))
	}
	r.stop()
	receivers.Wait()
	r.check(sendTime)
	t.Logf("test took %v", since(began))
}

// TestReadyzWhileDraining: /readyz answers 200 while a node serves and 503, saying
// why, from SIGTERM until it stops; the node drains until its user has moved with the
// chat to the other node, then exits with status 0.
func TestReadyzWhileDraining(t *testing.T) {
	raddr := redisClient(t).Options().Addr
	bin := buildNode(t)
	n1 := launchNode(t, bin, "node1", freeAddr(t), raddr)
	n2 := launchNode(t, bin, "node2", freeAddr(t), raddr)

	alice, bob := n1.dial(), n2.dial()
	flamingotest.Match(t, alice, bob)
	code, body := n1.get("/readyz")
	assert.Equal(t, http.StatusOK, code, "ready before SIGTERM: %s", body)

	require.NoError(t, n1.cmd.Process.Signal(syscall.SIGTERM))
	alice.ExpectClosed(flamingo.CloseServiceRestart)
	// alice has not come back yet, so node 1 still holds her session: it drains.
	code, body = n1.get("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code, "not ready while draining")
	assert.Contains(t, body, "draining")
	code, _ = n2.get("/readyz")
	assert.Equal(t, http.StatusOK, code, "the other node is ready")

	alice2 := n2.dial()
	ready := alice2.Init(alice.UserID)
	assert.True(t, ready.Resumed, "alice resumes on node 2")
	assert.Equal(t, alice.ChatID, ready.ChatID, "with her chat")
	select {
	case <-n1.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("node 1 did not exit within %v of alice's move", stopTimeout)
	}
	require.NoError(t, n1.err, "node 1 exits with status 0")
	assert.Regexp(t, drainedRe, n1.stderr.String(), "node 1's drain ended: every session moved")
	alice2.Say("moved")
	bob.Expect(flamingo.EventPartnerAway)
	bob.Expect(flamingo.EventPartnerBack)
	assert.Equal(t, "moved", bob.ExpectMessage().Content)
}

// TestInterruptEndsDrain: SIGINT during a drain that waits for a user with nowhere to
// go (a single node) stops the node at once, with status 0.
func TestInterruptEndsDrain(t *testing.T) {
	raddr := redisClient(t).Options().Addr
	bin := buildNode(t)
	n := launchNode(t, bin, "node1", freeAddr(t), raddr)
	alice := n.dial()
	alice.Init("")

	require.NoError(t, n.cmd.Process.Signal(syscall.SIGTERM))
	alice.ExpectClosed(flamingo.CloseServiceRestart)
	code, _ := n.get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "draining: alice's session is still here")
	require.NoError(t, n.cmd.Process.Signal(os.Interrupt))
	select {
	case <-n.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("node did not exit within %v of SIGINT", stopTimeout)
	}
	require.NoError(t, n.err, "exits with status 0")
	assert.Contains(t, n.stderr.String(), "drain: context canceled")
}

// rolling is the test's cluster and its users.
type rolling struct {
	t         *testing.T
	bin       string
	redisAddr string
	addrs     [rollNodes]string
	nodes     [rollNodes]*node
	live      [rollNodes]atomic.Bool // a node users may reconnect to
	users     []*rollUser
	across    int // chats across two nodes

	stopSend chan struct{} // closed: the users stop sending
	stopRead chan struct{} // closed: the users stop reading and close their connections
	stopOnce sync.Once

	rounds []rollRound
}

// rollRound is what one node's restart measured.
type rollRound struct {
	node      int
	users     int           // on the node at SIGTERM
	moved     time.Duration // SIGTERM to the last of them ready elsewhere
	drained   string        // what the node logged: how long Drain took
	exited    time.Duration // SIGTERM to the process's exit
	restarted time.Duration // start to /readyz 200
}

// rollUser is one simulated user: a sender and a receiver sharing a ledger.
type rollUser struct {
	idx     int
	partner *rollUser
	userID  string
	chatID  string

	mu      sync.Mutex
	conn    *websocket.Conn // ready; nil between a close and the resume
	node    int             // the node of conn
	gen     int             // counts conn's: 0 is the first
	nextSeq int
	sent    []sentMsg         // in order of first sending: sent[i].seq == i
	pending []int             // sequence numbers sent and not acknowledged yet, in order
	acks    map[int]string    // the message_id each acknowledged message got
	resent  []resentMsg       // what was sent again after a resume
	got     []int             // the partner's sequence numbers, as they arrived
	gotAt   map[int]time.Time // when each first arrived
	lastGot time.Time
	maxGap  time.Duration
	moves   []rollMove
	away    bool // told partner_away, and not partner_back since
	aways   int
	backs   int
	// problems: anything a chatting user should never see.
	problems []string
}

// sentMsg is one message the user sent, as first sent.
type sentMsg struct {
	seq int
	ok  bool // the first write succeeded
	gen int  // on which connection
	at  time.Time
}

// resentMsg is a message sent again after a resume, because it had no ack.
type resentMsg struct {
	seq int
	gen int // the connection it was sent again on
	at  time.Time
}

// clientMsgID is the client_msg_id of u's message seq.
func clientMsgID(u *rollUser, seq int) string { return fmt.Sprintf("u%d-%d", u.idx, seq) }

// rollMove is one close with 1012 and what followed it.
type rollMove struct {
	from, to int
	gen      int       // the connection that was closed
	closedAt time.Time // when the client read the close frame
	readyAt  time.Time // when it read ready on the next node
}

// launch starts node i on its address (see launchNode).
func (r *rolling) launch(i int) *node {
	r.t.Helper()
	return launchNode(r.t, r.bin, fmt.Sprintf("node%d", i+1), r.addrs[i], r.redisAddr)
}

// launchNode starts bin as a node on addr with Redis at redisAddr and a -drain of
// rollDrain, and waits until its /readyz answers 200. The test's cleanup kills it if it
// still runs (at the end, its users would have nowhere to move: a drain would wait for
// them in vain) and logs its output if the test failed.
func launchNode(t *testing.T, bin, name, addr, redisAddr string) *node {
	t.Helper()
	n := &node{t: t, name: name, addr: addr, stderr: &syncBuffer{}, exited: make(chan struct{})}
	n.cmd = exec.Command(bin, "-addr", addr, "-redis", redisAddr, "-drain", rollDrain.String())
	n.cmd.Stdout = n.stderr
	n.cmd.Stderr = n.stderr
	require.NoError(t, n.cmd.Start(), "starting %s", name)
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		<-n.exited
		if strings.Contains(n.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector found a data race", name)
		}
		if t.Failed() {
			t.Logf("%s (%s, pid %d) output:\n%s", name, addr, n.cmd.Process.Pid, n.stderr.String())
		}
	})

	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		code, _, err := readyz(client, addr)
		if code == http.StatusOK {
			return n
		}
		select {
		case <-n.exited:
			t.Fatalf("%s exited before it was ready (%v); output:\n%s", name, n.err, n.stderr.String())
		case <-deadline.C:
			t.Fatalf("%s: /readyz on %s not 200 after %v (last: %d, %v)", name, addr, startTimeout, code, err)
		case <-tick.C:
		}
	}
}

// readyz returns the status and body of GET /readyz on addr.
func readyz(client *http.Client, addr string) (int, string, error) {
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// meet connects the users and matches them two by two: in chat p, the first user is on
// node p mod 3, the second on the same node for even p and on the next one for odd p.
// One pair at a time, so that each newcomer can only be matched with its partner.
func (r *rolling) meet() {
	t := r.t
	t.Helper()
	for i := range rollUsers {
		r.users = append(r.users, &rollUser{idx: i, acks: map[int]string{}, gotAt: map[int]time.Time{}})
	}
	for p := range rollUsers / 2 {
		a, b := r.users[2*p], r.users[2*p+1]
		a.partner, b.partner = b, a
		a.node, b.node = p%rollNodes, (p+p%2)%rollNodes
		if a.node != b.node {
			r.across++
		}
		ctx, cancel := context.WithTimeout(context.Background(), rollWait)
		err := r.match(ctx, a, b)
		cancel()
		require.NoError(t, err, "matching users %d and %d", a.idx, b.idx)
	}
}

// match connects a and b to their nodes as new users and matches them.
func (r *rolling) match(ctx context.Context, a, b *rollUser) error {
	for _, u := range []*rollUser{a, b} {
		c, ready, err := connect(ctx, r.addrs[u.node], "")
		if err != nil {
			return err
		}
		u.conn, u.userID = c, ready.UserID
	}
	for _, j := range []struct {
		u *rollUser
		p flamingo.JoinQueuePayload
	}{{a, flamingo.JoinQueuePayload{Gender: flamingo.GenderFemale, Preference: flamingo.PreferAny}},
		{b, flamingo.JoinQueuePayload{Gender: flamingo.GenderMale, Preference: flamingo.PreferFemale}}} {
		if err := writeEvent(ctx, j.u.conn, flamingo.EventJoinQueue, j.p); err != nil {
			return err
		}
		if err := readEvent(ctx, j.u.conn, flamingo.EventQueueJoined, nil); err != nil {
			return err
		}
	}
	for _, u := range []*rollUser{a, b} {
		var m flamingo.MatchFoundPayload
		if err := readEvent(ctx, u.conn, flamingo.EventMatchFound, &m); err != nil {
			return err
		}
		u.chatID = m.ChatID
	}
	if a.chatID == "" || a.chatID != b.chatID {
		return fmt.Errorf("matched into chats %q and %q", a.chatID, b.chatID)
	}
	return nil
}

// connect dials the node at addr, sends init with userID and returns the connection
// and its ready payload.
func connect(ctx context.Context, addr, userID string) (*websocket.Conn, flamingo.ReadyPayload, error) {
	var ready flamingo.ReadyPayload
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		return nil, ready, err
	}
	c.SetReadLimit(1 << 20)
	if err := writeEvent(ctx, c, flamingo.EventInit, flamingo.InitPayload{UserID: userID}); err != nil {
		_ = c.CloseNow()
		return nil, ready, err
	}
	if err := readEvent(ctx, c, flamingo.EventReady, &ready); err != nil {
		_ = c.CloseNow()
		return nil, ready, err
	}
	return c, ready, nil
}

// writeEvent sends one client event.
func writeEvent(ctx context.Context, c *websocket.Conn, typ flamingo.EventType, payload any) error {
	b, err := json.Marshal(struct {
		Type    flamingo.EventType `json:"type"`
		Payload any                `json:"payload"`
	}{typ, payload})
	if err != nil {
		return err
	}
	return c.Write(ctx, websocket.MessageText, b)
}

// readEvent reads the next event, which must be of type typ, into v (if not nil).
func readEvent(ctx context.Context, c *websocket.Conn, typ flamingo.EventType, v any) error {
	_, b, err := c.Read(ctx)
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", typ, err)
	}
	var env flamingo.Envelope
	if err := json.Unmarshal(b, &env); err != nil || env.Type != typ {
		return fmt.Errorf("got %s, want %s", b, typ)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(env.Payload, v)
}

// send writes a message to the partner every rollSendEvery while u has a ready
// connection, until stopSend. Each message's content names u and a sequence number,
// and so does its client_msg_id; it is pending until acknowledged.
func (r *rolling) send(u *rollUser) {
	// Spread the users over the period, so that the nodes see a steady flow.
	first := time.NewTimer(rollSendEvery * time.Duration(u.idx) / rollUsers)
	select {
	case <-r.stopSend:
		first.Stop()
		return
	case <-first.C:
	}
	tick := time.NewTicker(rollSendEvery)
	defer tick.Stop()
	for {
		u.mu.Lock()
		c, gen, seq := u.conn, u.gen, u.nextSeq
		if c != nil {
			u.nextSeq++
			// Pending before it is written: a resume that begins meanwhile sends it
			// again.
			u.sent = append(u.sent, sentMsg{seq: seq, gen: gen, at: time.Now()})
			u.pending = append(u.pending, seq)
		}
		u.mu.Unlock()
		if c != nil {
			err := u.write(c, seq)
			u.mu.Lock()
			u.sent[seq].ok = err == nil
			u.mu.Unlock()
		}
		select {
		case <-r.stopSend:
			return
		case <-tick.C:
		}
	}
}

// write sends u's message seq on c.
func (u *rollUser) write(c *websocket.Conn, seq int) error {
	ctx, cancel := context.WithTimeout(context.Background(), rollWait)
	defer cancel()
	return writeEvent(ctx, c, flamingo.EventSendMessage, flamingo.SendMessagePayload{
		ChatID: u.chatID, Content: fmt.Sprintf("u%d#%d", u.idx, seq), ClientMsgID: clientMsgID(u, seq)})
}

// receive reads u's connection until it ends; after a close with 1012 it reconnects at
// once to another live node, resumes and sends again what has no ack yet, until
// stopRead.
func (r *rolling) receive(u *rollUser) {
	u.mu.Lock()
	c, from := u.conn, u.node
	u.mu.Unlock()
	for {
		err := r.readAll(u, c)
		closedAt := time.Now()
		u.mu.Lock()
		u.conn = nil
		gen := u.gen
		u.mu.Unlock()
		_ = c.CloseNow()
		if r.stopping() {
			return
		}
		if websocket.CloseStatus(err) != websocket.StatusServiceRestart {
			u.problem("connection %d to node %d ended: %v", gen, from+1, err)
			return
		}
		to, next, err := r.resume(u, from)
		if err != nil {
			u.problem("resuming after node %d's 1012: %v", from+1, err)
			return
		}
		// What has no ack goes again, in order, before anything new: the sender
		// sends nothing until next is u's connection.
		u.mu.Lock()
		again := slices.Clone(u.pending)
		u.mu.Unlock()
		for _, seq := range again {
			if err := u.write(next, seq); err != nil {
				u.problem("sending u%d#%d again on node %d: %v", u.idx, seq, to+1, err)
			}
			u.mu.Lock()
			u.resent = append(u.resent, resentMsg{seq: seq, gen: gen + 1, at: time.Now()})
			u.mu.Unlock()
		}
		u.mu.Lock()
		if r.stopping() { // stopRead came while resuming: it did not see next
			u.mu.Unlock()
			_ = next.CloseNow()
			return
		}
		u.conn, u.node, u.gen = next, to, gen+1
		u.moves = append(u.moves, rollMove{from: from, to: to, gen: gen, closedAt: closedAt, readyAt: time.Now()})
		u.mu.Unlock()
		c, from = next, to
	}
}

// resume connects u at once to a live node other than from and resumes its session,
// which must come back with its chat. A failed attempt is a problem, and the next live
// node is tried.
func (r *rolling) resume(u *rollUser, from int) (int, *websocket.Conn, error) {
	var errs []error
	for range 2 * rollNodes {
		to := r.pick(from)
		if to < 0 {
			return 0, nil, errors.New("no live node")
		}
		ctx, cancel := context.WithTimeout(context.Background(), rollWait)
		c, ready, err := connect(ctx, r.addrs[to], u.userID)
		cancel()
		switch {
		case err != nil:
			u.problem("reconnecting to node %d: %v", to+1, err)
			errs = append(errs, err)
			continue
		case !ready.Resumed || ready.ChatID != u.chatID:
			_ = c.CloseNow()
			return 0, nil, fmt.Errorf("node %d: ready %+v, want resumed with chat %s", to+1, ready, u.chatID)
		}
		return to, c, nil
	}
	return 0, nil, errors.Join(errs...)
}

// pick returns a random live node other than not, or -1.
func (r *rolling) pick(not int) int {
	var live []int
	for i := range r.live {
		if i != not && r.live[i].Load() {
			live = append(live, i)
		}
	}
	if len(live) == 0 {
		return -1
	}
	return live[rand.IntN(len(live))]
}

// readAll handles u's events on c until the connection ends, and returns why.
func (r *rolling) readAll(u *rollUser, c *websocket.Conn) error {
	for {
		_, b, err := c.Read(context.Background())
		if err != nil {
			return err
		}
		var env flamingo.Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			u.problem("a frame that is not JSON: %s", b)
			continue
		}
		switch env.Type {
		case flamingo.EventMessageReceived:
		case flamingo.EventMessageSent:
			u.acked(env.Payload, b)
			continue
		case flamingo.EventPartnerAway, flamingo.EventPartnerBack:
			if !r.stopping() { // (the users hanging up at the end are away for good)
				u.presence(env.Type, env.Payload, b)
			}
			continue
		default:
			u.problem("unexpected event %s", b)
			continue
		}
		var m flamingo.MessageReceivedPayload
		var from, seq int
		if err := json.Unmarshal(env.Payload, &m); err != nil {
			u.problem("message_received %s: %v", b, err)
			continue
		}
		if _, err := fmt.Sscanf(m.Content, "u%d#%d", &from, &seq); err != nil || from != u.partner.idx || m.ChatID != u.chatID {
			u.problem("a message not from the partner in the chat: %s", b)
			continue
		}
		now := time.Now()
		u.mu.Lock()
		if !u.lastGot.IsZero() && !r.sendStopped() {
			u.maxGap = max(u.maxGap, now.Sub(u.lastGot))
		}
		u.got, u.lastGot = append(u.got, seq), now
		if _, ok := u.gotAt[seq]; !ok {
			u.gotAt[seq] = now
		}
		u.mu.Unlock()
	}
}

// acked handles message_sent: the message is no longer pending, and an ack that
// comes again (the first was replayed after a resume that had already sent it again)
// must carry the same message_id.
func (u *rollUser) acked(payload json.RawMessage, raw []byte) {
	var p flamingo.MessageSentPayload
	var idx, seq int
	if err := json.Unmarshal(payload, &p); err != nil || p.ChatID != u.chatID || p.MessageID == "" {
		u.problem("a bad message_sent: %s", raw)
		return
	}
	if _, err := fmt.Sscanf(p.ClientMsgID, "u%d-%d", &idx, &seq); err != nil || idx != u.idx {
		u.problem("message_sent for a message not sent: %s", raw)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if seq < 0 || seq >= len(u.sent) {
		u.problems = append(u.problems, fmt.Sprintf("user %d: message_sent for a message not sent: %s", u.idx, raw))
		return
	}
	if first, ok := u.acks[seq]; ok && first != p.MessageID {
		u.problems = append(u.problems, fmt.Sprintf("user %d: u%d#%d acknowledged as %s, then as %s", u.idx, u.idx, seq, first, p.MessageID))
	}
	u.acks[seq] = p.MessageID
	if i := slices.Index(u.pending, seq); i >= 0 {
		u.pending = slices.Delete(u.pending, i, i+1)
	}
}

// presence handles partner_away and partner_back, which must come in turn, in u's
// chat.
func (u *rollUser) presence(typ flamingo.EventType, payload json.RawMessage, raw []byte) {
	var p struct {
		ChatID string `json:"chat_id"`
	}
	if err := json.Unmarshal(payload, &p); err != nil || p.ChatID != u.chatID {
		u.problem("%s not for the user's chat: %s", typ, raw)
		return
	}
	away := typ == flamingo.EventPartnerAway
	u.mu.Lock()
	defer u.mu.Unlock()
	if away == u.away {
		u.problems = append(u.problems, fmt.Sprintf("user %d: %s twice in a row", u.idx, typ))
	}
	u.away = away
	if away {
		u.aways++
	} else {
		u.backs++
	}
}

// problem records something u should never have seen.
func (u *rollUser) problem(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.problems = append(u.problems, fmt.Sprintf("user %d: ", u.idx)+fmt.Sprintf(format, args...))
}

func (r *rolling) sendStopped() bool {
	select {
	case <-r.stopSend:
		return true
	default:
		return false
	}
}

func (r *rolling) stopping() bool {
	select {
	case <-r.stopRead:
		return true
	default:
		return false
	}
}

// stop ends the users' goroutines: they stop sending, and their connections close,
// which ends the reads. (A user between two connections sees stopRead before it
// would keep the next one.)
func (r *rolling) stop() {
	r.stopOnce.Do(func() {
		if !r.sendStopped() {
			close(r.stopSend)
		}
		close(r.stopRead)
		for _, u := range r.users {
			u.mu.Lock()
			if u.conn != nil {
				_ = u.conn.CloseNow()
			}
			u.mu.Unlock()
		}
	})
}

// waitSteady waits until every user has a ready connection and has received
// rollSteady messages more than when it was called.
func (r *rolling) waitSteady() {
	r.t.Helper()
	from := make([]int, len(r.users))
	for i, u := range r.users {
		u.mu.Lock()
		from[i] = len(u.got)
		u.mu.Unlock()
	}
	require.Eventually(r.t, func() bool {
		for i, u := range r.users {
			u.mu.Lock()
			ok := u.conn != nil && len(u.got) >= from[i]+rollSteady && len(u.problems) == 0
			u.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	}, rollWait, 10*time.Millisecond, "every user chatting, with %d messages more, and no problem:\n%s", rollSteady, r.problemList)
}

// drainedRe finds how long the node's Drain took, as main.go logs it.
var drainedRe = regexp.MustCompile(`drained in (\S+)`)

// restart drains node k with SIGTERM, checks that its users moved with their chats and
// that it exited with status 0, and starts it again on its address.
func (r *rolling) restart(k int) {
	t := r.t
	t.Helper()
	n := r.nodes[k]
	var on []*rollUser
	for _, u := range r.users {
		u.mu.Lock()
		if u.node == k {
			on = append(on, u)
		}
		u.mu.Unlock()
	}
	round := rollRound{node: k, users: len(on)}
	r.live[k].Store(false) // from now on users reconnect to the other two
	sent := time.Now()
	require.NoError(t, n.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-n.exited:
		round.exited = time.Since(sent)
	case <-time.After(rollDrain + stopTimeout):
		t.Fatalf("%s did not exit within %v of SIGTERM", n.name, rollDrain+stopTimeout)
	}
	require.NoError(t, n.err, "%s exits with status 0 after SIGTERM; output:\n%s", n.name, n.stderr.String())
	m := drainedRe.FindStringSubmatch(n.stderr.String())
	require.NotNil(t, m, "%s drained (every session moved) before it stopped; output:\n%s", n.name, n.stderr.String())
	round.drained = m[1]

	// Each of its users got 1012 and is now ready on another node, with its chat.
	require.Eventually(t, func() bool {
		for _, u := range on {
			u.mu.Lock()
			ok := len(u.moves) > 0 && u.moves[len(u.moves)-1].from == k && u.moves[len(u.moves)-1].closedAt.After(sent)
			u.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	}, rollWait, 10*time.Millisecond, "the %d users of %s resumed on another node:\n%s", len(on), n.name, r.problemList)
	for _, u := range on {
		u.mu.Lock()
		round.moved = max(round.moved, u.moves[len(u.moves)-1].readyAt.Sub(sent))
		u.mu.Unlock()
	}

	began := time.Now()
	r.nodes[k] = r.launch(k)
	round.restarted = time.Since(began)
	r.live[k].Store(true)
	r.rounds = append(r.rounds, round)
	t.Logf("%s: %d users moved within %v of SIGTERM; drained in %s; exited after %v; restarted and ready in %v",
		n.name, round.users, round.moved.Round(time.Millisecond), round.drained,
		round.exited.Round(time.Millisecond), round.restarted.Round(time.Millisecond))
}

// problemList lists the users' problems, for a failure message.
func (r *rolling) problemList() string {
	var all []string
	for _, u := range r.users {
		u.mu.Lock()
		all = append(all, u.problems...)
		u.mu.Unlock()
	}
	if len(all) > 30 {
		all = append(all[:30], fmt.Sprintf("... and %d more", len(all)-30))
	}
	return strings.Join(all, "\n")
}

// delivered reports whether every message sent has been acknowledged and has reached
// the partner, and every partner_away has been followed by partner_back.
func (r *rolling) delivered() bool {
	for _, u := range r.users {
		u.mu.Lock()
		want, pending, away := len(u.sent), len(u.pending), u.away
		u.mu.Unlock()
		p := u.partner
		p.mu.Lock()
		got := len(p.gotAt)
		p.mu.Unlock()
		if pending > 0 || got < want || away {
			return false
		}
	}
	return true
}

// check audits the ledger and logs the figures.
func (r *rolling) check(sendTime time.Duration) {
	t := r.t
	t.Helper()
	var (
		sent, failed, received, unacked int
		lost, dup, disorder, phantom    []string
		resent, resentLate              int // sent again; of those, the ones that arrived only after it
		resumes, closes, presenceOff    int
		gaps                            []time.Duration
		worstGap                        time.Duration
		worstGapUser                    int
	)
	for _, u := range r.users {
		p := u.partner
		for _, m := range u.sent {
			sent++
			if !m.ok {
				failed++
			}
			if _, ok := u.acks[m.seq]; !ok {
				unacked++
			}
		}
		seen := make(map[int]int)
		last := -1
		for _, seq := range p.got {
			received++
			seen[seq]++
			switch {
			case seq < 0 || seq >= len(u.sent):
				phantom = append(phantom, fmt.Sprintf("u%d#%d", u.idx, seq))
			case seen[seq] > 1:
				dup = append(dup, fmt.Sprintf("u%d#%d", u.idx, seq))
			case seq < last:
				disorder = append(disorder, fmt.Sprintf("u%d#%d after #%d", u.idx, seq, last))
			}
			last = max(last, seq)
		}
		for _, m := range u.sent {
			if seen[m.seq] == 0 {
				lost = append(lost, fmt.Sprintf("u%d#%d (first sent on connection %d)", u.idx, m.seq, m.gen))
			}
		}
		for _, rs := range u.resent {
			resent++
			if at, ok := p.gotAt[rs.seq]; ok && at.After(rs.at) {
				// Most likely the first sending never reached the node (the close
				// handshake discarded it): without the re-send, it would be lost.
				resentLate++
			}
		}
		for _, mv := range u.moves {
			closes++
			if !mv.readyAt.IsZero() {
				resumes++
			}
		}
		// The partner saw each of u's moves as one partner_away and one partner_back.
		if p.aways != len(u.moves) || p.backs != len(u.moves) {
			presenceOff++
			t.Errorf("user %d moved %d times; its partner got %d partner_away and %d partner_back", u.idx, len(u.moves), p.aways, p.backs)
		}
		gaps = append(gaps, p.maxGap)
		if p.maxGap > worstGap {
			worstGap, worstGapUser = p.maxGap, p.idx
		}
	}
	slices.Sort(gaps)
	var drains []string
	for _, rd := range r.rounds {
		drains = append(drains, rd.drained)
	}

	t.Logf("messages: %d sent (%.0f a second for %v), %d received, %d acknowledged; %d first writes failed",
		sent, float64(sent)/sendTime.Seconds(), sendTime.Round(time.Millisecond), received, sent-unacked, failed)
	t.Logf("moves: %d closes with 1012, %d resumes with the same chat; drains took %s", closes, resumes, strings.Join(drains, ", "))
	t.Logf("ledger: %d lost, %d duplicated, %d out of order; %d sent again after a resume, %d of them delivered only after that (the others were acknowledged again)",
		len(lost), len(dup), len(disorder), resent, resentLate)
	t.Logf("longest gap in delivery per user: median %v, 90th percentile %v, max %v (user %d)",
		gaps[len(gaps)/2].Round(time.Millisecond), gaps[len(gaps)*9/10].Round(time.Millisecond),
		worstGap.Round(time.Millisecond), worstGapUser)

	assert.Empty(t, r.problemList(), "no chat ended, no error, no unexpected close, every resume with its chat")
	assert.Empty(t, lost, "messages lost")
	assert.Empty(t, dup, "messages delivered twice")
	assert.Empty(t, disorder, "messages out of their sender's order")
	assert.Empty(t, phantom, "messages delivered that were never sent")
	assert.Zero(t, unacked, "messages never acknowledged")
	assert.Zero(t, presenceOff, "partners who saw a move other than as partner_away then partner_back")
	assert.Equal(t, closes, resumes, "every close with 1012 followed by a resume")

	// Every user was on each drained node at its SIGTERM, and only those moved: each
	// user moved once per restart of the node it was on, and at least once.
	moved := 0
	for _, rd := range r.rounds {
		moved += rd.users
	}
	assert.Equal(t, moved, closes, "moves: one per user of each drained node")
	for _, u := range r.users {
		assert.NotEmpty(t, u.moves, "user %d moved at least once", u.idx)
	}
}
