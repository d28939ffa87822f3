package flamingoredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flamingochat/flamingo"
)

var _ flamingo.Matcher = (*Matcher)(nil)

// Options configures a [Matcher]. A zero Options consists entirely of default values.
type Options struct {
	// Prefix is put in front of every key the matcher uses. Matchers that share a queue
	// must use the same Prefix; different prefixes make separate queues on one Redis.
	// The default is "flamingo:".
	Prefix string

	// NodeID names this node. It must be unique among the matchers sharing a queue at
	// one time: tickets are owned by the node that enqueued them, and each node reads
	// the pairs of its own tickets from a stream named by its NodeID. A matcher started
	// with the NodeID of an earlier one drops that one's leftover tickets, as if it had
	// been stopped. The default is 16 random hex digits, new for each [New].
	NodeID string

	// ReadBlock bounds how long one blocking read of the node's pair stream waits
	// before it is repeated. It only matters when [Matcher.Stop] cannot reach Redis:
	// the background reader then notices within ReadBlock that it must end. The
	// default is 2 seconds.
	ReadBlock time.Duration

	// Logger receives the errors that the background reader cannot return to anyone
	// (a failed read from Redis, which it retries, or a malformed stream entry, which
	// it skips), and those of the tick. The default, nil, discards them.
	Logger *slog.Logger

	// RelaxTick is how often the matcher's tick runs the relaxation pass: it pairs
	// the waiters whose RelaxAt has come with acceptable relaxed waiters, without
	// waiting for a new arrival. Two acceptable tickets are left waiting together for
	// at most about RelaxTick after the later of them becomes relaxed. Every node's
	// matcher ticks, so with n nodes the queue is looked at about n times per
	// RelaxTick; a pass with nothing due costs Redis a few microseconds. The default
	// is 100 milliseconds.
	RelaxTick time.Duration
}

const (
	defaultPrefix    = "flamingo:"
	defaultReadBlock = 2 * time.Second
	defaultRelaxTick = 100 * time.Millisecond
	// enqueueRelaxLimit bounds the waiters an Enqueue relaxes before it looks for a
	// partner (the tick relaxes the rest), and relaxLimit those of one run of the
	// relaxation pass, which the tick repeats up to relaxRuns times while more are
	// due: no script keeps Redis busy for long.
	enqueueRelaxLimit = 64
	relaxLimit        = 256
	relaxRuns         = 16
	dropBatch         = 500 // tickets per run of the drop script
	readCount         = 256 // stream entries per read
	minBackoff        = 10 * time.Millisecond
	maxBackoff        = time.Second
)

// Matcher is a [flamingo.Matcher] whose waiting queue lives in Redis, shared by every
// Matcher with the same [Options.Prefix]: a ticket enqueued on one node can be paired
// by an Enqueue on any other, and by the tick of any node. See the package
// documentation for its keys, scripts and guarantees. Create it with [New].
//
// It applies the matching rules of [flamingo.Matcher] to every field of the
// tickets, which it keeps in Redis: Pool, Interests, RelaxAt and Avoid (so the users a
// ticket avoids travel with it to whichever node pairs it), and carries all of them,
// Labels too, unchanged into the Pair. Whether a ticket is relaxed is decided by the
// Redis server's clock (see [Matcher.Enqueue]).
//
// # The tick
//
// Start starts a goroutine, the tick, that every [Options.RelaxTick] runs the
// relaxation pass: one Lua script that takes the waiters whose RelaxAt has come, in
// RelaxAt order, and pairs each with the oldest acceptable relaxed waiter, or lists
// it as relaxed. Each Enqueue runs the same pass first. So "complete" holds within the
// tick: two acceptable tickets are not left waiting together longer than about
// RelaxTick (plus a script's run) after the later one becomes relaxed; pairs that
// need no relaxing are made by the Enqueue of the later ticket. Stop ends the tick
// and waits for it.
type Matcher struct {
	client redis.UniversalClient
	node   string
	block  time.Duration
	tick   time.Duration
	log    *slog.Logger
	keys   keys
	token  string // marks this matcher's own stop entry in its pair stream

	// inbound, if set (by a Cluster, before Start), receives the stream entries that
	// are not pairs, in order, on the reader goroutine.
	inbound func(id string, v map[string]any)
	// clustered makes reported pairs carry ChatID and each Ticket's Node.
	clustered bool
	// beforeEnqueue, if set (by a Cluster, before Start), runs first in each Enqueue:
	// the ticket goes to Redis after what it returns, or not at all if it fails.
	beforeEnqueue func(ctx context.Context) error

	mu       sync.Mutex
	state    int
	report   func(flamingo.Pair)
	inflight sync.WaitGroup // Enqueue and Cancel calls in progress, while running
	cancel   context.CancelFunc
	done     chan struct{} // closed when the stream reader returns
	tickStop context.CancelFunc
	tickDone chan struct{} // closed when the tick returns
}

const (
	stateNew = iota
	stateStarting
	stateRunning
	stateStopped
)

// New returns a Matcher that keeps its queue in Redis through client. It does not talk
// to Redis until [Matcher.Start]. The caller keeps ownership of client: Stop does not
// close it.
func New(client redis.UniversalClient, opts Options) *Matcher {
	if opts.Prefix == "" {
		opts.Prefix = defaultPrefix
	}
	if opts.NodeID == "" {
		opts.NodeID = randomHex(8)
	}
	if opts.ReadBlock <= 0 {
		opts.ReadBlock = defaultReadBlock
	}
	if opts.RelaxTick <= 0 {
		opts.RelaxTick = defaultRelaxTick
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Matcher{
		client: client,
		node:   opts.NodeID,
		block:  opts.ReadBlock,
		tick:   opts.RelaxTick,
		log:    log,
		keys:   newKeys(opts.Prefix, opts.NodeID),
		token:  randomHex(16),
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails, as crypto/rand documents
	return hex.EncodeToString(b)
}

// NodeID returns the node id the matcher owns its tickets under.
func (m *Matcher) NodeID() string { return m.node }

// Start implements [flamingo.Matcher]. It drops any tickets left waiting under this
// node's id by an earlier matcher that was not stopped, and starts the goroutine that
// reads this node's pair stream and calls report for each pair, and the tick. Pairs
// already in the stream are from that earlier matcher and are skipped. If Redis cannot be reached,
// Start returns the error and may be called again. After Stop, even a Stop that ran
// while Start was under way, it returns [flamingo.ErrMatcherStopped].
func (m *Matcher) Start(report func(flamingo.Pair)) error {
	if report == nil {
		return errors.New("flamingoredis: Start needs a report function")
	}
	m.mu.Lock()
	switch m.state {
	case stateStopped:
		m.mu.Unlock()
		return flamingo.ErrMatcherStopped
	case stateStarting, stateRunning:
		m.mu.Unlock()
		return errors.New("flamingoredis: matcher already started; a matcher serves one Engine")
	}
	m.state = stateStarting
	m.mu.Unlock()

	last, err := m.prepare(context.Background())

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == stateStopped {
		return flamingo.ErrMatcherStopped
	}
	if err != nil {
		m.state = stateNew
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.state, m.report, m.cancel, m.done = stateRunning, report, cancel, make(chan struct{})
	tickCtx, tickStop := context.WithCancel(ctx)
	m.tickStop, m.tickDone = tickStop, make(chan struct{})
	go m.read(ctx, last, report, m.done)
	go m.ticks(tickCtx, m.tickDone)
	return nil
}

// prepare drops this node's leftover tickets and returns the id of the last entry in
// its pair stream, from which the reader starts.
func (m *Matcher) prepare(ctx context.Context) (string, error) {
	if err := m.drop(ctx); err != nil {
		return "", fmt.Errorf("flamingoredis: start: drop leftover tickets: %w", err)
	}
	// With no ticket of this node waiting, nothing can be appended to its stream until
	// Enqueue runs, so every entry there now is stale.
	last := "0-0"
	msgs, err := m.client.XRevRangeN(ctx, m.keys.nodePairs, "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("flamingoredis: start: read pair stream: %w", err)
	}
	if len(msgs) > 0 {
		last = msgs[0].ID
	}
	return last, nil
}

// drop takes this node's waiting tickets out of the queue, dropBatch at a time. It
// ends: only this node adds to its ticket set, from Enqueue, which Start and Stop
// call it before and after.
func (m *Matcher) drop(ctx context.Context) error {
	for {
		left, err := dropScript.Run(ctx, m.client, []string{m.keys.nodeTickets}, m.keys.base, m.node, dropBatch).Int()
		if err != nil || left == 0 {
			return err
		}
	}
}

// begin registers an Enqueue or Cancel call; it reports false if the matcher is not
// running. A true result must be followed by m.inflight.Done.
func (m *Matcher) begin() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != stateRunning {
		return false
	}
	m.inflight.Add(1)
	return true
}

var (
	minJoinedAt = time.Unix(0, math.MinInt64)
	maxJoinedAt = time.Unix(0, math.MaxInt64)
)

// Enqueue implements [flamingo.Matcher]. It runs one script that first relaxes the
// waiters whose RelaxAt has come (as the tick does), then takes out of the queue the
// oldest acceptable waiter that shares an interest with t, else, if t is relaxed,
// the oldest acceptable relaxed waiter; or adds t. A pair it makes is not reported
// from within Enqueue: it is appended to the pair stream of each node that owns one of
// the two tickets, and each of those nodes reports it from its stream reader, usually
// a fraction of a millisecond later.
//
// Time is the Redis server's: the script reads TIME, and t relaxes at that time plus
// what is left until t.RelaxAt by this node's clock when Enqueue is called. So every
// node's scripts judge every ticket by one clock, and a node whose clock is off does
// not shorten or lengthen its users' wait; t relaxes no earlier than its RelaxAt (by
// this node's clock), and later by at most the time the call takes to reach Redis.
//
// The Matcher of a [Cluster] first waits, for at most 5 seconds and within ctx, until
// the node has written to Redis everything its Engine published before the call (the
// session of t's user among it), and fails with ctx's error if that takes longer: a
// partner's node finds where to send the user events from that session.
//
// Besides [flamingo.ErrAlreadyQueued] and [flamingo.ErrInvalidTicket], which it also
// returns for a JoinedAt that [time.Time.UnixNano] cannot represent (before 1678 or
// after 2261) and for a User, Pool or interest that holds a NUL byte (the engine
// makes none), it returns [flamingo.ErrMatcherNotStarted] before Start and after
// Stop, and wrapped Redis errors. After a Redis error the ticket may or may not have
// been queued or paired, as with any call whose reply was lost; a pair it made is
// still reported.
func (m *Matcher) Enqueue(ctx context.Context, t flamingo.Ticket) error {
	if err := checkTicket(t); err != nil {
		return err
	}
	if !m.begin() {
		return flamingo.ErrMatcherNotStarted
	}
	defer m.inflight.Done()
	if m.beforeEnqueue != nil {
		if err := m.beforeEnqueue(ctx); err != nil {
			return fmt.Errorf("flamingoredis: enqueue: %w", err)
		}
	}

	ks, args := m.enqueueCall(t)
	res, err := enqueueScript.Run(ctx, m.client, ks, args...).Text()
	if err != nil {
		return fmt.Errorf("flamingoredis: enqueue: %w", err)
	}
	switch res {
	case "waiting", "paired":
		return nil
	case "dup":
		return flamingo.ErrAlreadyQueued
	}
	return fmt.Errorf("flamingoredis: enqueue: unexpected script result %q", res)
}

// checkTicket returns an error wrapping [flamingo.ErrInvalidTicket] for a ticket the
// matcher cannot queue.
func checkTicket(t flamingo.Ticket) error {
	if t.User == "" || !t.Gender.Valid() || !t.Preference.Valid() {
		return flamingo.ErrInvalidTicket
	}
	if t.JoinedAt.Before(minJoinedAt) || t.JoinedAt.After(maxJoinedAt) {
		return fmt.Errorf("%w: JoinedAt %v is outside the years 1678 to 2261", flamingo.ErrInvalidTicket, t.JoinedAt)
	}
	// NUL separates the users of an avoid field and the keys of an index field.
	if strings.IndexByte(t.User, 0) >= 0 || strings.IndexByte(t.Pool, 0) >= 0 {
		return fmt.Errorf("%w: a NUL byte in User or Pool", flamingo.ErrInvalidTicket)
	}
	for _, in := range t.Interests {
		if strings.IndexByte(in, 0) >= 0 {
			return fmt.Errorf("%w: a NUL byte in an interest", flamingo.ErrInvalidTicket)
		}
	}
	return nil
}

// enqueueCall returns the KEYS and ARGV of the enqueue script for t.
func (m *Matcher) enqueueCall(t flamingo.Ticket) (ks []string, args []any) {
	ks, nr := m.enqueueKeys(t)
	relaxIn := ""
	if len(t.Interests) > 0 && !t.RelaxAt.IsZero() {
		// Rounded up, so that the ticket never relaxes before its RelaxAt.
		relaxIn = strconv.FormatInt(int64((time.Until(t.RelaxAt)+time.Microsecond-1)/time.Microsecond), 10)
	}
	return ks, []any{m.keys.base, randomHex(12), enqueueRelaxLimit, t.User, orderHex(t.JoinedAt), m.node,
		appendTicket(make([]byte, 0, 64), t), avoidField(t.Avoid), relaxIn, nr, len(t.Interests),
		strconv.FormatInt(t.JoinedAt.UnixNano(), 10)}
}

// enqueueKeys returns the KEYS of the enqueue script for t, and how many of them are
// wait: buckets t may take a waiter from.
func (m *Matcher) enqueueKeys(t flamingo.Ticket) (ks []string, nr int) {
	var compatible [len(genders) * len(preferences)][2]int // (gender, preference) indexes
	nc := 0
	for gi, g := range genders {
		if !t.Preference.Accepts(g) {
			continue
		}
		for pi, p := range preferences {
			if p.Accepts(t.Gender) {
				compatible[nc] = [2]int{gi, pi}
				nc++
			}
		}
	}
	ni := len(t.Interests)
	ks = make([]string, 4, 4+nc+ni*(1+nc))
	ks[0] = m.keys.ticket(t.User)
	ks[1] = m.keys.seq
	ks[2] = m.keys.nodeTickets
	tag := poolTag(t.Pool)
	ks[3] = m.keys.bucket(t.Gender, t.Preference) + tag
	for _, c := range compatible[:nc] {
		ks = append(ks, m.keys.buckets[c[0]][c[1]]+tag)
	}
	for _, in := range t.Interests {
		ks = append(ks, m.keys.interest(t.Gender, t.Preference, t.Pool, in))
	}
	for _, in := range t.Interests {
		for _, c := range compatible[:nc] {
			ks = append(ks, m.keys.interest(genders[c[0]], preferences[c[1]], t.Pool, in))
		}
	}
	return ks, nc
}

// orderHex returns the first 16 bytes of a ticket's member: JoinedAt in UnixNano with
// the sign bit flipped, which makes the byte order the numeric order, in hex.
func orderHex(joined time.Time) string {
	u := uint64(joined.UnixNano()) ^ 1<<63
	var order [8]byte
	for i := range order {
		order[i] = byte(u >> (56 - 8*i))
	}
	return hex.EncodeToString(order[:])
}

// avoidField returns the avoid field of a ticket that avoids users: NUL, then each
// user and a NUL; or "" if it avoids none. A user with a NUL byte is left out: no
// ticket can have it.
func avoidField(avoid []string) string {
	if len(avoid) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte(0)
	for _, u := range avoid {
		if u == "" || strings.IndexByte(u, 0) >= 0 {
			continue
		}
		b.WriteString(u)
		b.WriteByte(0)
	}
	if b.Len() == 1 {
		return ""
	}
	return b.String()
}

// Cancel implements [flamingo.Matcher]. It may cancel a ticket enqueued on any node.
// Before Start and after Stop it returns false and [flamingo.ErrMatcherNotStarted],
// without asking Redis.
func (m *Matcher) Cancel(ctx context.Context, user string) (bool, error) {
	if !m.begin() {
		return false, flamingo.ErrMatcherNotStarted
	}
	defer m.inflight.Done()
	n, err := cancelScript.Run(ctx, m.client, []string{m.keys.ticket(user)}, m.keys.base).Int()
	if err != nil {
		return false, fmt.Errorf("flamingoredis: cancel: %w", err)
	}
	return n == 1, nil
}

// Stop implements [flamingo.Matcher]. It waits for the Enqueue and Cancel calls in
// progress, ends the tick and waits for it, takes this node's waiting tickets out of
// the queue, lets the stream reader
// report every pair made before that, and waits for the reader to end; so once Stop
// returns nil, every pair involving a ticket of this node has been reported. It
// returns ctx's error if ctx ends first (the reader then ends on its own within
// [Options.ReadBlock]). Stop before Start, or a second Stop, does nothing but mark the
// matcher stopped: it cannot be started again. Stop must not be called from the report
// function, which runs on the reader it waits for.
func (m *Matcher) Stop(ctx context.Context) error {
	m.mu.Lock()
	if m.state != stateRunning {
		m.state = stateStopped
		m.mu.Unlock()
		return nil
	}
	m.state = stateStopped
	cancel, done, tickStop, tickDone := m.cancel, m.done, m.tickStop, m.tickDone
	m.mu.Unlock()
	defer cancel()

	idle := make(chan struct{})
	go func() {
		m.inflight.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
		return fmt.Errorf("flamingoredis: stop: waiting for calls in progress: %w", ctx.Err())
	}
	tickStop()
	select {
	case <-tickDone:
	case <-ctx.Done():
		return fmt.Errorf("flamingoredis: stop: waiting for the tick: %w", ctx.Err())
	}

	var errs []error
	if err := m.drop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("flamingoredis: stop: drop tickets: %w", err))
	}
	// The reader reports everything before this entry and then returns.
	if err := m.client.XAdd(ctx, &redis.XAddArgs{Stream: m.keys.nodePairs, Values: []string{entryStop, m.token}}).Err(); err != nil {
		errs = append(errs, fmt.Errorf("flamingoredis: stop: wake the reader: %w", err))
		cancel()
	}
	select {
	case <-done:
	case <-ctx.Done():
		return errors.Join(append(errs, fmt.Errorf("flamingoredis: stop: waiting for the reader: %w", ctx.Err()))...)
	}
	if len(errs) == 0 && !m.clustered { // (a Cluster's inbox expires on its own)
		if err := m.client.Del(ctx, m.keys.nodePairs).Err(); err != nil {
			errs = append(errs, fmt.Errorf("flamingoredis: stop: delete pair stream: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ticks is the tick: every RelaxTick it runs the relaxation pass, until ctx ends. It
// closes done when it returns.
func (m *Matcher) ticks(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(m.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := m.relaxPass(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("flamingoredis: the relaxation pass failed; retrying at the next tick",
				"node", m.node, "err", err)
		}
	}
}

// relaxPass runs the relax script until no waiter is left whose RelaxAt has come, or
// relaxRuns times, and returns the number of pairs it made.
func (m *Matcher) relaxPass(ctx context.Context) (int, error) {
	pairs := 0
	for range relaxRuns {
		res, err := relaxScript.Run(ctx, m.client, nil, m.keys.base, randomHex(12), relaxLimit).Int64Slice()
		if err != nil {
			return pairs, fmt.Errorf("flamingoredis: relaxation pass: %w", err)
		}
		if len(res) != 2 {
			return pairs, fmt.Errorf("flamingoredis: relaxation pass: unexpected script result %v", res)
		}
		pairs += int(res[0])
		if res[1] == 0 {
			break
		}
	}
	return pairs, nil
}

// read is the stream reader: it reports the pairs appended to this node's stream after
// the entry last, deletes the entries it has reported, and returns when it meets its own
// stop entry or ctx ends. It closes done when it returns.
func (m *Matcher) read(ctx context.Context, last string, report func(flamingo.Pair), done chan<- struct{}) {
	defer close(done)
	backoff := minBackoff
	for ctx.Err() == nil {
		streams, err := m.client.XRead(ctx, &redis.XReadArgs{
			Streams: []string{m.keys.nodePairs, last},
			Count:   readCount,
			Block:   m.block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue // nothing within ReadBlock
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.log.Warn("flamingoredis: reading the pair stream failed; retrying",
				"node", m.node, "stream", m.keys.nodePairs, "retry_in", backoff, "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		var (
			read bool
			stop bool
		)
		for _, s := range streams {
			for _, msg := range s.Messages {
				last, read = msg.ID, true
				if tok, ok := msg.Values[entryStop]; ok {
					stop = stop || tok == m.token
					continue
				}
				if _, ok := msg.Values[pairWaiter+ticketUser]; !ok && m.inbound != nil {
					m.inbound(msg.ID, msg.Values)
					continue
				}
				p, err := parsePair(msg.Values, m.clustered)
				if err != nil {
					m.log.Error("flamingoredis: skipping a malformed pair entry",
						"node", m.node, "stream", m.keys.nodePairs, "id", msg.ID, "err", err)
					continue
				}
				report(p)
			}
		}
		if read {
			// Delete what was read: every entry up to last, since entries are only
			// ever added at the end (with ids that grow) and the reader reads them
			// in order. One trim costs Redis less than a delete of each id.
			if err := m.client.XTrimMinID(ctx, m.keys.nodePairs, nextStreamID(last)).Err(); err != nil && ctx.Err() == nil {
				m.log.Warn("flamingoredis: deleting reported pair entries failed",
					"node", m.node, "stream", m.keys.nodePairs, "err", err)
			}
		}
		if stop {
			return
		}
	}
}

// nextStreamID returns the smallest stream entry id greater than id ("<ms>-<seq>"),
// or id itself if it is malformed (a trim to it then keeps the entry id).
func nextStreamID(id string) string {
	ms, seq, ok := strings.Cut(id, "-")
	m, err1 := strconv.ParseUint(ms, 10, 64)
	s, err2 := strconv.ParseUint(seq, 10, 64)
	switch {
	case !ok || err1 != nil || err2 != nil:
		return id
	case s < math.MaxUint64:
		return ms + "-" + strconv.FormatUint(s+1, 10)
	case m < math.MaxUint64:
		return strconv.FormatUint(m+1, 10) + "-0"
	}
	return id
}

// parsePair reads a pair entry written by the enqueue or relax script. A is the
// ticket with the earlier JoinedAt; on a tie it is the waiter, which came first.
//
// In a [Cluster] (clustered set), the pair carries the chat id the script chose.
func parsePair(v map[string]any, clustered bool) (flamingo.Pair, error) {
	waiter, err := parseTicket(v, pairWaiter)
	if err != nil {
		return flamingo.Pair{}, err
	}
	newcomer, err := parseTicket(v, pairNewcomer)
	if err != nil {
		return flamingo.Pair{}, err
	}
	p := flamingo.Pair{A: waiter, B: newcomer}
	if newcomer.JoinedAt.Before(waiter.JoinedAt) {
		p = flamingo.Pair{A: newcomer, B: waiter}
	}
	if clustered {
		p.ChatID, _ = v[pairChat].(string)
		if p.ChatID == "" {
			return flamingo.Pair{}, fmt.Errorf("field %s: missing", pairChat)
		}
	}
	return p, nil
}

func parseTicket(v map[string]any, prefix string) (flamingo.Ticket, error) {
	s, _ := v[prefix+ticketBlob].(string)
	t, err := decodeTicket(s)
	if err != nil {
		return flamingo.Ticket{}, fmt.Errorf("field %s%s: %w", prefix, ticketBlob, err)
	}
	if t.User == "" {
		return flamingo.Ticket{}, fmt.Errorf("field %s%s: a ticket without a user", prefix, ticketBlob)
	}
	return t, nil
}
