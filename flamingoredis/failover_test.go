package flamingoredis

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
	"github.com/flamingochat/flamingo/internal/redistest"
)

// Timings of the failover test.
const (
	// sentinelDownAfter is how long Sentinel waits for an unanswered primary before it
	// takes it for down; sentinelFailoverTimeout is its failover-timeout.
	sentinelDownAfter       = 500 * time.Millisecond
	sentinelFailoverTimeout = 2 * time.Second
	// failoverBound bounds the outage: from the kill until messages cross the nodes
	// again (or the chat across them has ended on both sides). Generous: the figure
	// is measured and logged, not asserted.
	failoverBound = 30 * time.Second
	// afterRecovery is how long, at least, the users keep chatting once service is
	// back before the test stops and counts; it is two heartbeats if that is more, so
	// that each node has renewed its registration (or found it lapsed) by then.
	afterRecovery = time.Second
	// sayEvery is how often each chatting user sends a message.
	sayEvery = 20 * time.Millisecond
)

// TestClusterSentinelFailover runs two nodes on go-redis's failover client, on real
// processes: a primary redis-server, one replica and one Sentinel (quorum 1). Users
// chat across the nodes and within one node while the primary is killed (SIGKILL);
// Sentinel promotes the replica and the nodes follow it. It runs twice: with the
// library's default Heartbeat and DeadAfter, which outlast the failover, and with a
// DeadAfter shorter than the failover, so that the nodes' registrations lapse.
//
// It asserts that service comes back within failoverBound: messages cross the nodes
// again, or the chat across them has ended for both users, once; that such a chat
// ends only if a node's registration lapsed (and then with partner_disconnected); that
// the chat within one node loses nothing, repeats nothing and is not ended; that
// messages arrive in the order sent (a repeat aside); that a join sent during the
// outage is answered; and that after the failover a user who waited through it meets a
// newcomer on the other node, and a pair from scratch across the nodes chats.
//
// It measures and logs the figures of SCALING.md, "Redis failover (Sentinel)": when
// Sentinel switched and messages crossed again after the kill, which chats ended and
// how, and which messages were lost or delivered twice.
func TestClusterSentinelFailover(t *testing.T) {
	redistest.Require(t, "redis-sentinel", "redis-sentinel")
	tests := []struct {
		name      string
		heartbeat time.Duration // zero: the library's default
		deadAfter time.Duration
	}{
		{name: "default_timings"},
		{name: "dead_after_shorter_than_failover", heartbeat: testHeartbeat, deadAfter: testDeadAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testFailover(t, ClusterOptions{Heartbeat: tt.heartbeat, DeadAfter: tt.deadAfter})
		})
	}
}

func testFailover(t *testing.T, opts ClusterOptions) {
	// The primary starts a replica's first sync at once rather than after 5 s (its
	// default, to gather more replicas into one sync).
	primary := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port()))
	waitReplicaSynced(t, replica.Addr())
	sentinel := redistest.StartSentinel(t, redistest.SentinelOptions{
		Master:          "m",
		Primary:         primary.Addr(),
		Quorum:          1,
		DownAfter:       sentinelDownAfter,
		FailoverTimeout: sentinelFailoverTimeout,
	})
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr(), DisableIdentity: true})
	t.Cleanup(func() { _ = sc.Close() })
	waitSentinelKnowsReplica(t, sc, replica.Addr())

	logs := &logRecorder{}
	opts.Prefix = "flamingotest:failover:" // the Redis is the test's own
	opts.Logger = slog.New(logs)
	n1 := startFailoverNode(t, sentinel.Addr(), opts)
	n2 := startFailoverNode(t, sentinel.Addr(), opts)
	heartbeat, deadAfter := n1.cl.opts.Heartbeat, n1.cl.opts.DeadAfter

	alice, bob := chat(t, n1, n2)  // across the nodes
	carol, dave := chat(t, n1, n1) // within n1
	erin := n1.dial()              // waits in the queue through the failover
	erin.Init("")
	erin.Join(flamingo.GenderOther, flamingo.PreferOther)
	hank := n2.dial() // joins during the outage
	hank.Init("")
	for _, c := range []*flamingotest.Client{alice, bob, carol, dave} {
		c.Sync()
	}
	// A steady state: the sessions are in Redis and on the replica.
	n1.waitSaved(t, alice, carol, dave)
	n2.waitSaved(t, bob)
	waitReplicated(t, primary.Addr(), replica.Addr())

	// From here on the watch reads these users' events; the test only sends as them.
	w := newWatch(t, map[string]*flamingotest.Client{"alice": alice, "bob": bob, "carol": carol, "dave": dave, "hank": hank})
	flows := []*flow{
		newFlow("alice→bob", "a", "alice", "bob", alice),
		newFlow("bob→alice", "b", "bob", "alice", bob),
		newFlow("carol→dave", "c", "carol", "dave", carol),
	}
	for _, f := range flows {
		w.flows[f.letter] = f
	}
	say := func() {
		for _, f := range flows {
			if len(w.ended[f.from]) == 0 {
				f.say()
			}
		}
	}

	// Chat a little, then kill the primary mid-chat; hank joins at once.
	tick := time.NewTicker(sayEvery)
	defer tick.Stop()
	for range 5 {
		<-tick.C
		say()
	}
	killed := time.Now()
	require.NoError(t, primary.Kill())
	t.Logf("primary %s killed (SIGKILL)", primary.Addr())
	hank.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderFemale, Preference: flamingo.PreferFemale})

	// Everyone keeps chatting until every flow works again (a message sent after the
	// kill has arrived, or the receiver's chat has ended), and a while more.
	var switched, allBack time.Time
	settle := max(afterRecovery, 2*heartbeat)
	bound := time.NewTimer(failoverBound)
	defer bound.Stop()
	for allBack.IsZero() || time.Since(allBack) < settle {
		select {
		case e := <-w.events:
			w.handle(e)
			continue
		case <-bound.C:
			t.Fatalf("service did not come back within %v of the kill (Sentinel switched: %s)", failoverBound, after(switched, killed))
		case <-tick.C:
		}
		say()
		if switched.IsZero() {
			addr, err := sc.GetMasterAddrByName(t.Context(), "m").Result()
			if err == nil && net.JoinHostPort(addr[0], addr[1]) == replica.Addr() {
				switched = time.Now()
			}
		}
		if allBack.IsZero() && flows[0].isBack(killed, w) && flows[1].isBack(killed, w) && flows[2].isBack(killed, w) {
			allBack = time.Now()
		}
	}
	// Last words: each flow still in its chat sends a marker and the test waits for
	// it (or for the chat to end); what has not arrived before it is lost.
	for _, f := range flows {
		f.last = -1
		if len(w.ended[f.from]) == 0 && len(w.ended[f.to]) == 0 {
			f.last = f.say()
		}
	}
	w.await(t, "the last messages", func() bool {
		for _, f := range flows {
			if f.last >= 0 && len(f.got[f.last]) == 0 && len(w.ended[f.to]) == 0 {
				return false
			}
		}
		return true
	})
	// hank's join, sent during the outage, was answered: accepted, or refused with
	// internal once the engine's MatcherTimeout (5 s) was up.
	w.await(t, "hank's answer", func() bool { return len(w.other["hank"]) > 0 })
	answer := w.other["hank"][0]
	hankRefused := answer.ev.Type == flamingo.EventError
	if hankRefused {
		var p flamingo.ErrorPayload
		require.NoError(t, answer.ev.Decode(&p))
		assert.Equal(t, flamingo.CodeInternal, p.Code, "hank's join refused")
	} else {
		assert.Equal(t, flamingo.EventQueueJoined, answer.ev.Type, "hank's answer: %s", answer.ev.Raw)
	}

	// The figures. A node whose registration lapsed has resynchronised by now, and
	// ended its chats across the nodes.
	lapsed := logs.count("resynchronised with the cluster")
	if lapsed > 0 {
		w.await(t, "chat_ended for alice and bob", func() bool { return len(w.ended["alice"]) > 0 && len(w.ended["bob"]) > 0 })
	}
	t.Logf("node timings: heartbeat %v, dead after %v; Sentinel: down after %v", heartbeat, deadAfter, sentinelDownAfter)
	t.Logf("Sentinel switched to the replica %s after the kill", after(switched, killed))
	for _, f := range flows {
		lost, twice := f.lostAndTwice()
		t.Logf("%-10s back %s after the kill; longest silence %v; sent %d, %d of them during the outage; lost %d %v; delivered twice %d %v",
			f.name, after(f.back, killed), f.longestSilence(killed).Round(time.Millisecond),
			f.next, f.sentBetween(killed, f.back), len(lost), lost, len(twice), twice)
	}
	for _, who := range []string{"alice", "bob", "carol", "dave"} {
		for _, p := range w.ended[who] {
			t.Logf("%s: chat_ended %s", who, p.Reason)
		}
		if len(w.errs[who]) > 0 {
			t.Logf("%s: errors %v (messages sent after the chat had ended)", who, w.errs[who])
		}
	}
	t.Logf("hank's join during the outage: %s %s after the kill", answer.ev.Type, after(answer.at, killed))
	t.Logf("nodes resynchronised (registration lapsed): %d; the nodes logged: %s", lapsed, logs.summary())

	// Within n1, nothing touched Redis: nothing lost, nothing twice, nothing ended.
	lost, twice := flows[2].lostAndTwice()
	assert.Empty(t, lost, "carol→dave lost")
	assert.Empty(t, twice, "carol→dave delivered twice")
	assert.Empty(t, w.ended["carol"], "carol's chat ended")
	assert.Empty(t, w.ended["dave"], "dave's chat ended")
	for _, f := range flows {
		assert.True(t, f.inOrder(), "%s out of order: %v", f.name, f.order)
	}
	// Across the nodes, the chat ends only if a node's registration lapsed: then for
	// both users, once, with partner_disconnected.
	if lapsed == 0 {
		assert.Empty(t, w.ended["alice"], "alice's chat ended, though no node's registration lapsed")
		assert.Empty(t, w.ended["bob"], "bob's chat ended, though no node's registration lapsed")
	}
	for _, who := range []string{"alice", "bob"} {
		if lapsed > 0 {
			require.Len(t, w.ended[who], 1, "%s's chat_ended after the nodes resynchronised", who)
			assert.Equal(t, flamingo.ReasonPartnerDisconnected, w.ended[who][0].Reason, "%s's chat_ended", who)
		}
	}

	// Matching goes on across the nodes: hank meets gina, a newcomer on n1 (hank
	// joins again first if his join was refused), and they chat.
	gina := n1.dial()
	gina.Init("")
	if hankRefused {
		hank.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderFemale, Preference: flamingo.PreferFemale})
		w.awaitEvent(t, "hank", flamingo.EventQueueJoined)
	}
	gina.Join(flamingo.GenderFemale, flamingo.PreferFemale)
	gina.Expect(flamingo.EventMatchFound)
	w.awaitEvent(t, "hank", flamingo.EventMatchFound)
	gina.Say("after the failover")
	var got flamingo.MessageReceivedPayload
	require.NoError(t, w.awaitEvent(t, "hank", flamingo.EventMessageReceived).Decode(&got))
	assert.Equal(t, "after the failover", got.Content)
	hank.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: gina.ChatID, Content: "yes"})
	assert.Equal(t, "yes", gina.ExpectMessage().Content)
	// erin, who waited on n1 through the failover, meets fiona, a newcomer on n2.
	fiona := n2.dial()
	fiona.Init("")
	fiona.Join(flamingo.GenderOther, flamingo.PreferOther)
	fiona.Expect(flamingo.EventMatchFound)
	erin.Expect(flamingo.EventMatchFound)
	require.Equal(t, erin.ChatID, fiona.ChatID)
	erin.Say("hello from n1")
	assert.Equal(t, "hello from n1", fiona.ExpectMessage().Content)
	fiona.Say("hello from n2")
	assert.Equal(t, "hello from n2", erin.ExpectMessage().Content)
	for _, c := range []*flamingotest.Client{erin, fiona, gina} {
		c.Sync()
	}
	// Nothing more came for the chatting users: in particular no second chat_ended.
	for who, c := range map[string]*flamingotest.Client{"alice": alice, "bob": bob, "carol": carol, "dave": dave} {
		c.Send(flamingo.EventPing, nil)
		w.await(t, who+"'s pong", func() bool { return w.pongs[who] > 0 })
	}
	for _, who := range []string{"alice", "bob", "carol", "dave"} {
		assert.LessOrEqual(t, len(w.ended[who]), 1, "%s's chat_ended", who)
	}
	w.stop()
}

// startFailoverNode starts a node whose Redis client follows the primary that the
// Sentinel at sentinelAddr names (master "m").
func startFailoverNode(t *testing.T, sentinelAddr string, opts ClusterOptions) *clusterNode {
	t.Helper()
	client := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:      "m",
		SentinelAddrs:   []string{sentinelAddr},
		DisableIdentity: true,
		PoolSize:        64,
	})
	t.Cleanup(func() { _ = client.Close() })
	cl := NewCluster(client, opts)
	e, err := flamingo.New(flamingo.Config{
		Matcher:     cl.Matcher(),
		Broker:      cl,
		Logger:      opts.Logger,
		JoinRate:    flamingo.RateLimit{Rate: -1},
		InitRate:    flamingo.RateLimit{Rate: -1},
		EventRate:   flamingo.RateLimit{Rate: -1},
		MessageRate: flamingo.RateLimit{Rate: -1},
	})
	require.NoError(t, err)
	srv := httptest.NewServer(flamingo.NewWebSocketHandler(e, nil))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), stopWait)
		defer cancel()
		assert.NoError(t, e.Shutdown(ctx))
	})
	return &clusterNode{t: t, cl: cl, e: e, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// waitReplicaSynced waits until the replica at addr has its link to the primary up.
func waitReplicaSynced(t *testing.T, addr string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer c.Close()
	require.Eventually(t, func() bool {
		info, err := c.Info(t.Context(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, 15*time.Second, 10*time.Millisecond, "replica %s in sync with its primary", addr)
}

// waitSentinelKnowsReplica waits until the Sentinel lists the replica at addr as a
// healthy replica of master "m", one it can promote.
func waitSentinelKnowsReplica(t *testing.T, sc *redis.SentinelClient, addr string) {
	t.Helper()
	require.Eventually(t, func() bool {
		replicas, err := sc.Replicas(t.Context(), "m").Result()
		if err != nil {
			return false
		}
		for _, r := range replicas {
			if net.JoinHostPort(r["ip"], r["port"]) == addr && r["flags"] == "slave" && r["master-link-status"] == "ok" {
				return true
			}
		}
		return false
	}, 15*time.Second, 10*time.Millisecond, "Sentinel lists the replica %s", addr)
}

// waitReplicated waits until the replica has everything the primary has written so
// far, so that the kill loses only what comes after.
func waitReplicated(t *testing.T, primaryAddr, replicaAddr string) {
	t.Helper()
	p := redis.NewClient(&redis.Options{Addr: primaryAddr, DisableIdentity: true})
	defer p.Close()
	r := redis.NewClient(&redis.Options{Addr: replicaAddr, DisableIdentity: true})
	defer r.Close()
	offset := func(c *redis.Client, field string) int64 {
		info, err := c.Info(t.Context(), "replication").Result()
		require.NoError(t, err)
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				require.NoError(t, err)
				return n
			}
		}
		t.Fatalf("no %s in INFO replication", field)
		return 0
	}
	want := offset(p, "master_repl_offset")
	require.Eventually(t, func() bool { return offset(r, "slave_repl_offset") >= want },
		5*time.Second, 5*time.Millisecond, "replica caught up with offset %d", want)
}

// after says how long after from t was, or "never" if t is zero.
func after(t, from time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(from).Round(time.Millisecond).String()
}

// flow is one user's messages to another in their chat, numbered from 0: for the
// letter "a", "a-0", "a-1", ...
type flow struct {
	name, letter, from, to string
	sender                 *flamingotest.Client
	chat                   string

	next  int                 // the next number to send
	last  int                 // the end marker's number, or -1 if the chat ended first
	sent  []time.Time         // when each was sent
	got   map[int][]time.Time // when each arrived (twice, if it did)
	order []int               // the numbers in the order they arrived
	back  time.Time           // when the flow worked again after the kill
}

func newFlow(name, letter, from, to string, sender *flamingotest.Client) *flow {
	return &flow{name: name, letter: letter, from: from, to: to, sender: sender, chat: sender.ChatID, got: map[int][]time.Time{}}
}

// say sends the next message and returns its number.
func (f *flow) say() int {
	f.sent = append(f.sent, time.Now())
	f.sender.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{
		ChatID: f.chat, Content: f.letter + "-" + strconv.Itoa(f.next),
	})
	f.next++
	return f.next - 1
}

// isBack reports whether the flow works again after the kill: a message sent after it
// has arrived, or the receiver's chat has ended. It records when, the first time.
func (f *flow) isBack(killed time.Time, w *watch) bool {
	if !f.back.IsZero() {
		return true
	}
	for i, at := range f.got {
		if f.sent[i].After(killed) && (f.back.IsZero() || at[0].Before(f.back)) {
			f.back = at[0]
		}
	}
	if f.back.IsZero() && len(w.ended[f.to]) > 0 {
		f.back = w.endedAt[f.to]
	}
	return !f.back.IsZero()
}

// lostAndTwice returns the numbers never delivered and those delivered more than once.
func (f *flow) lostAndTwice() (lost, twice []int) {
	for i := range f.next {
		switch n := len(f.got[i]); {
		case n == 0:
			lost = append(lost, i)
		case n > 1:
			twice = append(twice, i)
		}
	}
	return lost, twice
}

// sentBetween counts the messages sent after from and before to.
func (f *flow) sentBetween(from, to time.Time) int {
	n := 0
	for _, s := range f.sent {
		if s.After(from) && s.Before(to) {
			n++
		}
	}
	return n
}

// inOrder reports whether the messages arrived in the order sent, a repeat of one
// that arrived before aside (lostAndTwice counts those).
func (f *flow) inOrder() bool {
	seen := map[int]bool{}
	prev := -1
	for _, i := range f.order {
		if seen[i] {
			continue
		}
		seen[i] = true
		if i < prev {
			return false
		}
		prev = i
	}
	return true
}

// longestSilence is the longest time after the kill without a delivery, until the
// flow was back (its chat ended, if that is how it came back).
func (f *flow) longestSilence(killed time.Time) time.Duration {
	ats := []time.Time{f.back}
	for _, a := range f.got {
		for _, at := range a {
			if at.After(killed) && at.Before(f.back) {
				ats = append(ats, at)
			}
		}
	}
	slices.SortFunc(ats, time.Time.Compare)
	prev := killed
	var gap time.Duration
	for _, at := range ats {
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return gap
}

// watchEvent is an event a watched user received, and when.
type watchEvent struct {
	who string
	ev  flamingotest.Event
	at  time.Time
}

// watch reads the events of several users at once, each connection on a goroutine of
// its own, so that the test can send and receive while time runs; the users' Clients
// must then only send. The test goroutine hands each event to handle, which files it.
type watch struct {
	t      *testing.T
	events chan watchEvent
	quit   chan struct{}
	done   chan struct{} // closed when every reader has ended
	conns  []flamingo.Transport

	flows   map[string]*flow // by letter: the messages of the flows
	ended   map[string][]flamingo.ChatEndedPayload
	endedAt map[string]time.Time
	errs    map[string][]flamingo.ErrorCode
	pongs   map[string]int
	other   map[string][]watchEvent // anything else, for hank, who is outside the flows
}

func newWatch(t *testing.T, users map[string]*flamingotest.Client) *watch {
	w := &watch{
		t: t, events: make(chan watchEvent), quit: make(chan struct{}), done: make(chan struct{}),
		flows: map[string]*flow{}, ended: map[string][]flamingo.ChatEndedPayload{}, endedAt: map[string]time.Time{},
		errs: map[string][]flamingo.ErrorCode{}, pongs: map[string]int{}, other: map[string][]watchEvent{},
	}
	var readers sync.WaitGroup
	for who, c := range users {
		conn := c.Conn()
		w.conns = append(w.conns, conn)
		readers.Go(func() {
			for {
				b, err := conn.Read(context.Background())
				if err != nil {
					return // closed by stop
				}
				e := watchEvent{who: who, at: time.Now()}
				var env flamingo.Envelope
				if json.Unmarshal(b, &env) != nil {
					env.Type = "(not JSON)"
				}
				e.ev = flamingotest.Event{Type: env.Type, Payload: env.Payload, Raw: append([]byte(nil), b...)}
				select {
				case w.events <- e:
				case <-w.quit:
					return
				}
			}
		})
	}
	go func() {
		readers.Wait()
		close(w.done)
	}()
	t.Cleanup(w.stop)
	return w
}

// handle files e: a flow's message, a chat_ended, an error, a pong, or (for hank,
// outside the flows) anything else.
func (w *watch) handle(e watchEvent) {
	t := w.t
	if e.who == "hank" {
		w.other[e.who] = append(w.other[e.who], e)
		return
	}
	switch e.ev.Type {
	case flamingo.EventMessageReceived:
		var p flamingo.MessageReceivedPayload
		require.NoError(t, e.ev.Decode(&p))
		letter, num, _ := strings.Cut(p.Content, "-")
		f := w.flows[letter]
		if f == nil || f.to != e.who {
			break
		}
		i, err := strconv.Atoi(num)
		require.NoError(t, err, "%s got %q", e.who, p.Content)
		require.Less(t, i, f.next, "%s got %q, which was never sent", e.who, p.Content)
		f.got[i] = append(f.got[i], e.at)
		f.order = append(f.order, i)
		return
	case flamingo.EventPong:
		w.pongs[e.who]++
		return
	case flamingo.EventChatEnded:
		var p flamingo.ChatEndedPayload
		require.NoError(t, e.ev.Decode(&p))
		w.ended[e.who] = append(w.ended[e.who], p)
		w.endedAt[e.who] = e.at
		return
	case flamingo.EventError:
		var p flamingo.ErrorPayload
		require.NoError(t, e.ev.Decode(&p))
		w.errs[e.who] = append(w.errs[e.who], p.Code)
		return
	}
	t.Errorf("%s got an unexpected event: %s", e.who, e.ev.Raw)
}

// await handles events until cond holds, for up to 10 s.
func (w *watch) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for !cond() {
		select {
		case e := <-w.events:
			w.handle(e)
		case <-timeout.C:
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// awaitEvent waits for the next event of hank (or another user filed in other) and
// checks its type.
func (w *watch) awaitEvent(t *testing.T, who string, typ flamingo.EventType) flamingotest.Event {
	t.Helper()
	n := len(w.other[who])
	w.await(t, fmt.Sprintf("%s's %s", who, typ), func() bool { return len(w.other[who]) > n })
	ev := w.other[who][n].ev
	require.Equal(t, typ, ev.Type, "%s's next event: %s", who, ev.Raw)
	return ev
}

// stop closes the watched connections and waits for the readers to end. It may be
// called again.
func (w *watch) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
		for _, c := range w.conns {
			_ = c.Close(flamingo.CloseNormal, "")
		}
	}
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		w.t.Errorf("the readers of %d watched connections did not end", len(w.conns))
	}
}

// logRecorder is a slog.Handler that keeps the messages of warnings and errors.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}

func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// summary lists the messages kept, each with how many times it came.
func (r *logRecorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	counts := map[string]int{}
	for _, m := range r.msgs {
		counts[m]++
	}
	var out []string
	for m, n := range counts {
		out = append(out, fmt.Sprintf("%q ×%d", m, n))
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "no warnings"
	}
	return strings.Join(out, ", ")
}

// count returns how many of the messages kept contain s.
func (r *logRecorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}
