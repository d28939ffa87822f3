package flamingoredis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flamingochat/flamingo"
)

var _ flamingo.Broker = (*Cluster)(nil)

// ClusterOptions configures a [Cluster]. A zero ClusterOptions consists entirely of
// default values.
type ClusterOptions struct {
	// Options configures the cluster's [Matcher]: the key Prefix the nodes share,
	// this node's NodeID, and the Logger.
	Options

	// Heartbeat is how often the node tells the cluster it is alive, shares its
	// counts and looks for dead nodes. The default is 1 second.
	Heartbeat time.Duration
	// DeadAfter is how long a node may miss its heartbeats before the others take it
	// for dead: its waiting users leave the queue and its sessions can only be
	// resumed elsewhere, within the resume grace counted from its last heartbeat.
	// The default is 3 seconds. It must exceed Heartbeat.
	DeadAfter time.Duration
	// HandoverWait bounds how long a claim waits for the live node that holds a
	// session to hand it over (with the events it holds for the user) before it
	// resumes the session from what Redis has. The default is 2 seconds.
	HandoverWait time.Duration
	// MaxHeld bounds the events kept in Redis for a user whose node is gone. The
	// default is 256.
	MaxHeld int
	// MaxPending bounds the operations waiting to be written to Redis while it
	// cannot be reached; past it, new ones are dropped (and logged). The default
	// is 100000.
	MaxPending int
}

// Cluster makes flamingo nodes that share one Redis behave as one: it is the
// [flamingo.Broker] of each node's Engine and owns the node's [Matcher]. See the
// package documentation and SCALING.md for the design. Create it with [NewCluster].
type Cluster struct {
	client redis.UniversalClient
	m      *Matcher
	opts   ClusterOptions
	keys   *keys // the Matcher's
	log    *slog.Logger

	host  flamingo.BrokerHost
	grace time.Duration

	stats clusterStats // what the writer did, for BrokerMetrics

	mu         sync.Mutex
	started    bool
	stopping   bool // Stop has begun
	stopped    bool // the writer may end once it has written everything
	writerDone bool
	ops        []pending     // waiting for the writer, in order
	spare      []pending     // the writer's last batch, emptied, for ops to reuse
	wake       chan struct{} // nudges the writer; capacity 1
	waiters    map[string]chan handover
	published  uint64        // ops publish has queued, ever
	written    uint64        // of those, the ops the writer is done with
	progress   chan struct{} // if not nil, closed when written next grows (see flushed)

	// args are script arguments that never change, boxed once.
	args struct{ base, maxHeld, ttl any }
	// sendsKeys is the KEYS of the sends script: a key of the hash tag, so that a
	// Redis Cluster runs it on the right shard (the script derives its keys).
	sendsKeys []string
	// The writer's buffers for the sends of a pipeline, reused from one pipeline to
	// the next: the encoded events, the arguments that point into it, and the
	// arguments of one script call.
	sendBuf  []byte
	sendArgs []bytesArg
	argv     []any

	others   atomic.Pointer[flamingo.Stats] // the other live nodes' counts
	cancel   context.CancelFunc             // ends the writer
	hbCancel context.CancelFunc             // ends the heartbeat
	hbDone   chan struct{}                  // closed when the heartbeat has ended
	workers  sync.WaitGroup
	drained  chan struct{} // closed when the writer has written everything and stopped
}

// handover is a reply to a handover request.
type handover struct {
	st  flamingo.SessionState
	err error
}

// NewCluster returns a Cluster for one node on client. It does not talk to Redis until
// the Engine starts it. Use it as both the Matcher and the Broker of the node's Engine:
//
//	cl := flamingoredis.NewCluster(client, flamingoredis.ClusterOptions{})
//	engine, err := flamingo.New(flamingo.Config{Matcher: cl.Matcher(), Broker: cl})
func NewCluster(client redis.UniversalClient, opts ClusterOptions) *Cluster {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	if opts.DeadAfter <= opts.Heartbeat {
		opts.DeadAfter = max(3*time.Second, 3*opts.Heartbeat)
	}
	if opts.HandoverWait <= 0 {
		opts.HandoverWait = 2 * time.Second
	}
	if opts.MaxHeld <= 0 {
		opts.MaxHeld = 256
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 100000
	}
	m := New(client, opts.Options)
	m.clustered = true
	c := &Cluster{
		client:  client,
		m:       m,
		opts:    opts,
		keys:    &m.keys,
		log:     m.log,
		wake:    make(chan struct{}, 1),
		waiters: make(map[string]chan handover),
		drained: make(chan struct{}),
	}
	c.others.Store(&flamingo.Stats{})
	c.args.base, c.args.maxHeld, c.args.ttl = c.keys.base, opts.MaxHeld, tombstoneTTL.Milliseconds()
	c.sendsKeys = []string{c.keys.nodes()}
	m.inbound = c.inbound
	m.beforeEnqueue = c.flushed
	return c
}

// Matcher returns the node's Matcher, to be the Engine's [flamingo.Config.Matcher].
func (c *Cluster) Matcher() *Matcher { return c.m }

// NodeID implements [flamingo.Broker].
func (c *Cluster) NodeID() string { return c.m.node }

// Start implements [flamingo.Broker]: it registers the node (its first heartbeat) and
// starts the heartbeat and the writer of published ops. The node's stream is read by
// its Matcher, which the Engine starts next.
func (c *Cluster) Start(host flamingo.BrokerHost) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("flamingoredis: cluster already started")
	}
	c.started = true
	c.host, c.grace = host, host.Grace()
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	hbCtx, hbCancel := context.WithCancel(context.Background())
	c.cancel, c.hbCancel, c.hbDone = cancel, hbCancel, make(chan struct{})
	err := c.loadScripts(ctx)
	if err == nil {
		_, err = c.beat(ctx)
	}
	if err != nil {
		cancel()
		hbCancel()
		c.mu.Lock()
		c.started = false
		c.mu.Unlock()
		return fmt.Errorf("flamingoredis: start: %w", err)
	}
	c.workers.Add(2)
	go c.heartbeat(hbCtx)
	go c.writer(ctx)
	return nil
}

// maxStopWait bounds Stop when its context has no deadline, so that a node whose Redis
// is gone still stops.
const maxStopWait = 10 * time.Second

// Stop implements [flamingo.Broker]. It takes the node out of the cluster at once, so
// that events for its users are held in Redis from then on and claims do not wait for
// it; handles what its inbox already holds (handover requests included) and stops
// reading it; writes the sessions the engine holds, with their held events, for other
// nodes to resume; and stops once everything published is written, or after 10
// seconds if ctx has no earlier deadline.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	if !c.started || c.stopping {
		c.stopping = true
		c.mu.Unlock()
		return nil
	}
	c.stopping = true
	c.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxStopWait)
		defer cancel()
	}

	var errs []error
	c.hbCancel() // no heartbeat may put the node back
	<-c.hbDone
	deadline := time.Now().Add(c.grace).UnixMilli()
	if err := leaveScript.Run(ctx, c.client, []string{c.keys.nodeTickets}, c.keys.base, c.m.node, deadline, c.keepInbox()).Err(); err != nil {
		errs = append(errs, fmt.Errorf("flamingoredis: stop: leave the cluster: %w", err))
	}
	if err := c.m.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, st := range c.host.Held() {
		c.publish(pending{o: &saveOp{st: st, handoff: true}})
	}

	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.nudge()
	select {
	case <-c.drained:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("flamingoredis: stop: writing what was published: %w", ctx.Err()))
	}
	c.cancel()
	done := make(chan struct{})
	go func() {
		c.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// Kick implements [flamingo.Broker]. A user whose node is dead is not kicked: the
// kick waits in their held list and is dropped when they resume.
func (c *Cluster) Kick(user, reason string) {
	c.publish(pending{o: &kickOp{user: user, reason: reason}})
}

// Ping reports whether Redis answers, for [flamingo.Engine.Ready].
func (c *Cluster) Ping(ctx context.Context) error { return c.client.Ping(ctx).Err() }

// Save implements [flamingo.Broker].
func (c *Cluster) Save(st flamingo.SessionState) { c.publish(pending{o: &saveOp{st: st}}) }

// Forget implements [flamingo.Broker].
func (c *Cluster) Forget(user string) { c.publish(pending{o: &forgetOp{user: user}}) }

// Send implements [flamingo.Broker].
func (c *Cluster) Send(user string, ev flamingo.ClusterEvent) {
	c.publish(pending{user: user, ev: ev})
}

// EndChat implements [flamingo.Broker].
func (c *Cluster) EndChat(chatID string, users [2]string, notify string, reason flamingo.EndReason) {
	c.publish(pending{o: &endChatOp{chatID: chatID, users: users, notify: notify, reason: reason}})
}

// publish queues o for the writer. Ops are written to Redis in order by one writer
// goroutine, in pipelines. While Redis cannot be reached they wait (up to
// [ClusterOptions.MaxPending]) and are retried; an op whose reply was lost may be
// applied twice, so after a Redis failure a message can arrive twice.
func (c *Cluster) publish(o pending) {
	c.mu.Lock()
	if c.writerDone {
		c.mu.Unlock()
		return // stopped: nothing writes any more
	}
	if len(c.ops) >= c.opts.MaxPending {
		c.mu.Unlock()
		c.log.Error("flamingoredis: too many ops waiting for Redis; dropping one", "node", c.m.node, "op", o.name())
		return
	}
	if c.ops == nil {
		c.ops, c.spare = c.spare, nil
	}
	c.ops = append(c.ops, o)
	c.published++
	first := len(c.ops) == 1
	c.mu.Unlock()
	if first {
		c.nudge()
	}
}

func (c *Cluster) nudge() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Stats implements [flamingo.Broker].
func (c *Cluster) Stats() flamingo.Stats { return *c.others.Load() }

// Claim implements [flamingo.Broker].
func (c *Cluster) Claim(ctx context.Context, user string, digest [32]byte) (flamingo.SessionState, error) {
	res, err := claimScript.Run(ctx, c.client, []string{c.keys.session(user)},
		c.keys.base, c.m.node, user, hex.EncodeToString(digest[:])).StringSlice()
	if err != nil {
		return flamingo.SessionState{}, fmt.Errorf("flamingoredis: claim: %w", err)
	}
	if len(res) < 12 {
		return flamingo.SessionState{}, flamingo.ErrSessionNotFound
	}
	prev, alive := res[0], res[1] == "1"
	st := flamingo.SessionState{Found: true, User: user, Digest: digest, Gender: flamingo.Gender(res[2]), Away: res[7] == "1"}
	criteria(&st, res[8], res[9], res[10])
	st.Chat = chatState(res[3], res[4], res[5], res[6], res[11])
	for _, s := range res[12:] {
		if ev, ok := decodeEvent(s); ok {
			st.Events = append(st.Events, ev)
		}
	}
	if prev == c.m.node {
		return st, nil
	}
	if !alive {
		return c.salvage(ctx, prev, st), nil
	}
	// The session's node is alive: it hands the session over with what it holds.
	id := randomHex(8)
	ch := make(chan handover, 1)
	c.mu.Lock()
	c.waiters[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
	}()
	err = c.client.XAdd(ctx, &redis.XAddArgs{
		Stream: c.keys.inbox(prev),
		Values: []string{entryKind, kindHandover, entryUser, user, entryTo, c.m.node, entryID, id},
	}).Err()
	if err != nil {
		c.log.Warn("flamingoredis: asking for a handover failed; resuming from Redis", "node", c.m.node, "from", prev, "err", err)
		return c.salvage(ctx, prev, st), nil
	}
	t := time.NewTimer(c.opts.HandoverWait)
	defer t.Stop()
	select {
	case h := <-ch:
		if h.err != nil || !h.st.Found {
			// The node no longer held it: it expired there just now (then its chat
			// has ended too), or the node restarted under the same id.
			if st.Chat != nil {
				if n, err := c.client.Exists(ctx, c.keys.ended(st.Chat.ID)).Result(); err == nil && n == 1 {
					st.Chat = nil
				}
			}
			return st, nil
		}
		h.st.User, h.st.Digest = user, digest
		h.st.Events = append(st.Events, h.st.Events...)
		if h.st.Gender == "" {
			h.st.Gender = st.Gender
		}
		return h.st, nil
	case <-t.C:
		c.log.Warn("flamingoredis: no handover in time; resuming from Redis", "node", c.m.node, "from", prev)
		return c.salvage(ctx, prev, st), nil
	case <-ctx.Done():
		return st, nil
	}
}

// salvageScan bounds the entries of a dead node's inbox that a claim looks through.
const salvageScan = 10000

// salvage puts in front of st's events those for st's user that are still unread in
// the inbox of node, which did not hand the session over (it is dead, or seems so).
// Its reader deletes each entry it has handled, so what is left is what it never saw.
func (c *Cluster) salvage(ctx context.Context, node string, st flamingo.SessionState) flamingo.SessionState {
	stream := c.keys.inbox(node)
	msgs, err := c.client.XRangeN(ctx, stream, "-", "+", salvageScan).Result()
	if err != nil {
		c.log.Warn("flamingoredis: reading a dead node's inbox failed", "node", c.m.node, "from", node, "err", err)
		return st
	}
	var (
		evs []flamingo.ClusterEvent
		ids []string
	)
	for _, msg := range msgs {
		if user, events, ok := batchEntry(msg.Values); ok {
			n := len(evs)
			if user == st.User {
				evs = appendEvents(evs, events)
			}
			if len(evs) > n {
				ids = append(ids, msg.ID)
			}
			continue
		}
		str := func(k string) string { return field(msg.Values, k) }
		if str(entryUser) != st.User {
			continue
		}
		switch kind := str(entryKind); kind {
		case kindFrame, kindMessage, kindEnded:
			if ev, ok := makeEvent(kind, str(entryChat), str(entryPayload)); ok {
				evs = append(evs, ev)
				ids = append(ids, msg.ID)
			}
		}
	}
	if len(ids) == 0 {
		return st
	}
	if err := c.client.XDel(ctx, stream, ids...).Err(); err != nil {
		c.log.Warn("flamingoredis: deleting salvaged events failed", "node", c.m.node, "from", node, "err", err)
	}
	st.Events = append(evs, st.Events...)
	return st
}

// inbound handles an entry of the node's stream that is not a pair. It runs on the
// Matcher's reader goroutine, in stream order.
func (c *Cluster) inbound(id string, v map[string]any) {
	str := func(k string) string { return field(v, k) }
	host := c.host
	if host == nil {
		return
	}
	if user, events, ok := batchEntry(v); ok {
		if !eachEvent(events, func(ev flamingo.ClusterEvent) { host.Deliver(user, ev) }) {
			c.log.Error("flamingoredis: skipping the rest of a malformed entry of events", "node", c.m.node, "id", id)
		}
		return
	}
	switch kind := str(entryKind); kind {
	case kindFrame, kindMessage, kindEnded:
		ev, ok := makeEvent(kind, str(entryChat), str(entryPayload))
		if !ok {
			c.log.Error("flamingoredis: skipping a malformed event", "node", c.m.node, "id", id)
			return
		}
		host.Deliver(str(entryUser), ev)
	case kindKick:
		host.Kick(str(entryUser), str(entryPayload))
	case kindHandover:
		to, reqID := str(entryTo), str(entryID)
		host.Release(str(entryUser), func(st flamingo.SessionState) {
			c.publish(pending{o: &replyOp{toNode: to, requestID: reqID, st: st}})
		})
	case kindReply:
		c.mu.Lock()
		ch := c.waiters[str(entryID)]
		c.mu.Unlock()
		st := flamingo.SessionState{Found: str(entryFound) == "1", Gender: flamingo.Gender(str(entryGender)), Away: str(sessAway) == "1"}
		criteria(&st, str(sessPreference), str(sessInterests), str(sessAvoid))
		st.Chat = chatState(str(sessChat), str(sessPeer), str(sessPeerGender), str(sessStarted), str(sessAcked))
		n, _ := strconv.Atoi(str(entryEvents))
		for i := range n {
			if ev, ok := decodeEvent(str(entryEvent + strconv.Itoa(i))); ok {
				st.Events = append(st.Events, ev)
			}
		}
		select {
		case ch <- handover{st: st}:
		default: // (no claim waits for it any more, or a retried reply came twice)
			ch = nil
		}
		if ch == nil && len(st.Events) > 0 {
			// The claim gave up waiting: what the old node held still goes to the
			// user, late rather than never.
			c.log.Warn("flamingoredis: a handover came late; sending its events on", "node", c.m.node, "events", len(st.Events))
			c.forward(str(entryUser), st.Events)
		}
	default:
		c.log.Error("flamingoredis: skipping an unknown stream entry", "node", c.m.node, "id", id)
	}
}

// forward sends events to user wherever the user's session is now.
func (c *Cluster) forward(user string, evs []flamingo.ClusterEvent) {
	for _, ev := range evs {
		c.publish(pending{user: user, ev: ev})
	}
}

// field returns the string value of k in a stream entry, or "".
func field(v map[string]any, k string) string {
	s, _ := v[k].(string)
	return s
}

// chatState reads a chat as Redis keeps it (started in Unix ms, acked encoded); nil if
// there is none.
func chatState(id, peer, peerGender, started, acked string) *flamingo.ChatState {
	if id == "" {
		return nil
	}
	ms, _ := strconv.ParseInt(started, 10, 64)
	return &flamingo.ChatState{ID: id, Peer: peer, PeerGender: flamingo.Gender(peerGender), StartedAt: time.UnixMilli(ms),
		Acked: decodeAcked(acked)}
}

// criteria sets st's join criteria and users to avoid from their encodings.
func criteria(st *flamingo.SessionState, preference, interests, avoid string) {
	st.Preference = flamingo.Preference(preference)
	st.Interests = decodeInterests(interests)
	st.Avoid = decodeAvoid(avoid)
}

// kindLetter names an event kind in Redis: f frame, m message, e chat ended.
func kindLetter(ev flamingo.ClusterEvent) string {
	switch {
	case ev.Frame == nil:
		return kindEnded
	case ev.ChatID == "":
		return kindFrame
	}
	return kindMessage
}

// encodeEvent encodes an event for a held list or a handover: the kind letter, the
// chat id, a NUL byte and the payload.
func encodeEvent(ev flamingo.ClusterEvent) string {
	payload := string(ev.Frame)
	if ev.Frame == nil {
		payload = string(ev.Ended)
	}
	return kindLetter(ev) + ev.ChatID + "\x00" + payload
}

func decodeEvent(s string) (flamingo.ClusterEvent, bool) {
	sep := strings.IndexByte(s, 0)
	if len(s) < 1 || sep < 1 {
		return flamingo.ClusterEvent{}, false
	}
	return makeEvent(s[:1], s[1:sep], s[sep+1:])
}

// batchEntry returns the user and the events of an entry of events; ok is false if v
// is not one (or its user is malformed).
func batchEntry(v map[string]any) (user, events string, ok bool) {
	b, found := v[entryBatch].(string)
	if !found {
		return "", "", false
	}
	return readStateString(b)
}

// eachEvent calls f with each event of an entry of events (see batchEntry), in order, and
// reports whether the whole entry was well formed (f has seen the events before the
// first that is not). The frames share one copy of the entry, and the chat ids are
// substrings of it: an entry costs one allocation, whatever its number of events.
func eachEvent(events string, f func(flamingo.ClusterEvent)) bool {
	var frames []byte // the copy, made at the first frame
	for at := 0; at < len(events); {
		// The length prefix: decimal digits, then a colon.
		n, i := 0, at
		for i < len(events) && i-at < 9 && events[i] >= '0' && events[i] <= '9' {
			n = 10*n + int(events[i]-'0')
			i++
		}
		if i == at || i == len(events) || events[i] != ':' || n > len(events)-i-1 {
			return false
		}
		start, end := i+1, i+1+n // the encoded event: kind, chat id, NUL, payload
		at = end
		sep := strings.IndexByte(events[start:end], 0)
		if sep < 1 {
			return false
		}
		sep += start
		chat, from := events[start+1:sep], sep+1
		var ev flamingo.ClusterEvent
		switch events[start : start+1] {
		case kindFrame, kindMessage:
			if frames == nil {
				frames = []byte(events)
			}
			ev.Frame = frames[from:end:end]
			if events[start:start+1] == kindMessage {
				ev.ChatID = chat
			}
		case kindEnded:
			ev = flamingo.ClusterEvent{ChatID: chat, Ended: flamingo.EndReason(events[from:end])}
		default:
			return false
		}
		f(ev)
	}
	return true
}

// appendEvents appends the events of an entry of events (see batchEntry) to evs, up to
// the first malformed one.
func appendEvents(evs []flamingo.ClusterEvent, events string) []flamingo.ClusterEvent {
	eachEvent(events, func(ev flamingo.ClusterEvent) { evs = append(evs, ev) })
	return evs
}

// makeEvent builds an event from its kind letter, chat id and payload.
func makeEvent(kind, chat, payload string) (flamingo.ClusterEvent, bool) {
	switch kind {
	case kindFrame:
		return flamingo.ClusterEvent{Frame: []byte(payload)}, true
	case kindMessage:
		return flamingo.ClusterEvent{ChatID: chat, Frame: []byte(payload)}, true
	case kindEnded:
		return flamingo.ClusterEvent{ChatID: chat, Ended: flamingo.EndReason(payload)}, true
	}
	return flamingo.ClusterEvent{}, false
}

// heartbeat renews the node's alive key and shares its counts every Heartbeat, and
// reaps dead nodes and expired orphans. A beat that finds the alive key lapsed (Redis
// lost its data, or the node was taken for dead) makes the Engine resync.
func (c *Cluster) heartbeat(ctx context.Context) {
	defer c.workers.Done()
	defer close(c.hbDone)
	t := time.NewTicker(c.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fresh, err := c.beat(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("flamingoredis: heartbeat failed", "node", c.m.node, "err", err)
			}
			continue
		}
		if fresh {
			c.log.Warn("flamingoredis: this node's registration had lapsed; resynchronising", "node", c.m.node)
			c.host.Resync()
		}
		if err := reapScript.Run(ctx, c.client, []string{c.keys.nodes()}, c.keys.base, time.Now().UnixMilli(),
			c.grace.Milliseconds(), c.opts.MaxHeld, tombstoneTTL.Milliseconds(), 1000, c.keepInbox()).Err(); err != nil && ctx.Err() == nil {
			c.log.Warn("flamingoredis: reaping failed", "node", c.m.node, "err", err)
		}
	}
}

// keepInbox is how long a dead node's inbox is kept for claims to salvage (ms).
func (c *Cluster) keepInbox() int64 { return (c.grace + c.opts.DeadAfter + time.Minute).Milliseconds() }

// tombstoneTTL is how long an ended chat is remembered, and the longest a held list
// or an away session is kept.
const tombstoneTTL = time.Hour

// beat runs one heartbeat; it reports whether the node's alive key had lapsed.
func (c *Cluster) beat(ctx context.Context) (bool, error) {
	var local flamingo.Stats
	if c.host != nil {
		local = c.host.LocalStats()
	}
	counts := fmt.Sprintf("%d %d %d", local.Online, local.InQueue, local.InChat)
	res, err := beatScript.Run(ctx, c.client, []string{c.keys.nodes()}, c.keys.base, c.m.node,
		time.Now().UnixMilli(), c.opts.DeadAfter.Milliseconds(), counts).Slice()
	if err != nil {
		return false, err
	}
	var others flamingo.Stats
	for i := 1; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		v, _ := res[i+1].(string)
		if id == c.m.node {
			continue
		}
		var s flamingo.Stats
		if _, err := fmt.Sscanf(v, "%d %d %d", &s.Online, &s.InQueue, &s.InChat); err == nil {
			others.Online += s.Online
			others.InQueue += s.InQueue
			others.InChat += s.InChat
		}
	}
	c.others.Store(&others)
	fresh, _ := res[0].(int64)
	return fresh == 1, nil
}

// writer writes published ops to Redis in order, in pipelines of what has gathered.
func (c *Cluster) writer(ctx context.Context) {
	defer c.workers.Done()
	defer func() {
		c.mu.Lock()
		c.writerDone = true
		c.mu.Unlock()
		close(c.drained)
	}()
	backoff := minBackoff
	for {
		c.mu.Lock()
		batch := c.ops
		c.ops = nil
		stopped := c.stopped
		c.mu.Unlock()
		all := batch
		if len(batch) == 0 {
			if stopped {
				return
			}
			select {
			case <-c.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		for len(batch) > 0 {
			n, err := c.write(ctx, batch)
			batch = batch[n:]
			c.wrote(n)
			if err == nil {
				backoff = minBackoff
				continue
			}
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("flamingoredis: writing to Redis failed; retrying", "node", c.m.node, "pending", len(batch), "retry_in", backoff, "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, maxBackoff)
		}
		c.recycle(all)
	}
}

// maxSpare bounds the batch the writer keeps for publish to reuse: a burst of ops
// while Redis was away does not pin its memory.
const maxSpare = 4096

// recycle gives batch, which the writer is done with, back to publish, emptied.
func (c *Cluster) recycle(batch []pending) {
	if cap(batch) > maxSpare {
		return
	}
	clear(batch) // (the frames go to the garbage collector now)
	c.mu.Lock()
	c.spare = batch[:0]
	c.mu.Unlock()
}

// wrote records that the writer is done with n more ops, and wakes those who wait
// for them (flushed).
func (c *Cluster) wrote(n int) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	c.written += uint64(n)
	if c.progress != nil {
		close(c.progress)
		c.progress = nil
	}
	c.mu.Unlock()
}

// flushWait bounds how long an Enqueue waits for the ops published before it.
const flushWait = 5 * time.Second

// flushed waits until the writer is done with every op published before the call, or
// the writer has stopped. The Matcher calls it first in each Enqueue, so that a pair is
// never made before the user's session is in Redis: the session's node field is how
// the partner's node routes events to the user (the send script drops an event for a
// user without a session), and the save that creates it goes through the writer,
// while Enqueue talks to Redis directly. Without the wait, a writer a few
// milliseconds behind let a partner on another node match the user, and its first
// messages to the user were lost.
func (c *Cluster) flushed(ctx context.Context) error {
	c.mu.Lock()
	target := c.published
	if c.written >= target || c.writerDone {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, flushWait)
	defer cancel()
	for {
		c.mu.Lock()
		if c.written >= target || c.writerDone {
			c.mu.Unlock()
			return nil
		}
		if c.progress == nil {
			c.progress = make(chan struct{})
		}
		progress := c.progress
		c.mu.Unlock()
		select {
		case <-progress:
		case <-c.drained:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for this node's earlier writes: %w", ctx.Err())
		}
	}
}

// maxSendBytes bounds the encoded events of one call of the sends script; past it, the
// next send starts another call.
const maxSendBytes = 1 << 20

// written is one command of a pipeline: ops[start:end] of the batch, a run of sends
// or a single other op.
type written struct {
	start, end int
	cmd        redis.Cmder
}

// write runs ops in one pipeline: each run of sends is one call of the sends script,
// each other op one command. It returns how many ops were done (the first of the rest
// failed and is to be retried, with the rest of its run) and the error.
//
// A send costs no allocation here: its user goes to Redis as a pointer to the string
// in ops, and its event as a pointer to a bytesArg over the writer's buffer (both
// stay put until Exec has written them).
func (c *Cluster) write(ctx context.Context, ops []pending) (int, error) {
	const maxBatch = 512
	ops = ops[:min(len(ops), maxBatch)]
	pipe := c.client.Pipeline()
	cmds := make([]written, 0, len(ops))
	// Every event's bytes first, so that buf no longer moves once args point into it.
	buf, args := c.sendBuf[:0], c.sendArgs[:0]
	for i := range ops {
		if ops[i].o == nil {
			from := len(buf)
			buf = appendEvent(buf, ops[i].ev)
			args = append(args, bytesArg{})
			args[len(args)-1].b = buf[from:len(buf):len(buf)]
		}
	}
	// (args is only appended to above, so its elements stay put from here on.)
	for i, a := 0, 0; i < len(ops); {
		if o := ops[i].o; o != nil {
			cmds = append(cmds, written{i, i + 1, o.queue(ctx, c, pipe)})
			i++
			continue
		}
		argv := append(c.argv[:0], c.args.base, c.args.maxHeld, c.args.ttl)
		j, size := i, 0
		for j < len(ops) && ops[j].o == nil && (j == i || size < maxSendBytes) {
			argv = append(argv, &ops[j].user, &args[a])
			size += len(args[a].b)
			a++
			j++
		}
		cmds = append(cmds, written{i, j, pipe.EvalSha(ctx, sendsScript.Hash(), c.sendsKeys, argv...)})
		clear(argv) // (EvalSha copied them)
		c.argv = argv
		i = j
	}
	start := time.Now()
	_, _ = pipe.Exec(ctx)
	c.stats.roundTrip(time.Since(start))
	clear(args)
	if cap(buf) <= maxSendBytes {
		c.sendBuf, c.sendArgs = buf, args
	}
	for _, w := range cmds {
		err := w.cmd.Err()
		if err == nil || errors.Is(err, redis.Nil) {
			c.stats.op(ops[w.start].name(), w.end-w.start)
			if s, ok := ops[w.start].o.(*saveOp); ok {
				c.saved(s, w.cmd)
			}
			continue
		}
		if strings.HasPrefix(err.Error(), "NOSCRIPT") {
			// Redis restarted and forgot the scripts: load them and go on from here.
			return w.start, c.loadScripts(ctx)
		}
		var rerr redis.Error
		if errors.As(err, &rerr) && !transient(err) {
			// Redis refused this op (a bug, not an outage): retrying cannot help.
			c.log.Error("flamingoredis: Redis refused an op; dropping it", "node", c.m.node, "op", ops[w.start].name(),
				"ops", w.end-w.start, "err", err)
			continue
		}
		return w.start, err
	}
	return len(ops), nil
}

// transient reports whether an error reply from Redis means "not now": the op is
// retried, as after a lost connection.
func transient(err error) bool {
	for _, p := range []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "OOM"} {
		if strings.HasPrefix(err.Error(), p) {
			return true
		}
	}
	return false
}

// saved acts on the reply of a save: events that Redis held for a session of this
// node go to the engine; a session that another node took meanwhile (this node was
// taken for dead) is given up here, and the events that went with the save follow the
// user.
func (c *Cluster) saved(op *saveOp, cmd redis.Cmder) {
	res, err := cmd.(*redis.Cmd).StringSlice()
	if err != nil || len(res) == 0 {
		return
	}
	var evs []flamingo.ClusterEvent
	for _, v := range res[1:] {
		if ev, ok := decodeEvent(v); ok {
			evs = append(evs, ev)
		}
	}
	user := op.st.User
	switch {
	case res[0] == "1":
		for _, ev := range evs {
			c.host.Deliver(user, ev)
		}
	case op.handoff:
		c.forward(user, evs)
	default:
		c.host.Release(user, func(st flamingo.SessionState) { c.forward(user, st.Events) })
	}
}

func (c *Cluster) loadScripts(ctx context.Context) error {
	for _, s := range clusterScripts {
		if err := s.Load(ctx, c.client).Err(); err != nil {
			return fmt.Errorf("load scripts: %w", err)
		}
	}
	return nil
}
