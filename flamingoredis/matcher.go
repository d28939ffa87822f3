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
	// it skips). The default, nil, discards them.
	Logger *slog.Logger
}

const (
	defaultPrefix    = "flamingo:"
	defaultReadBlock = 2 * time.Second
	readCount        = 256 // stream entries per read
	minBackoff       = 10 * time.Millisecond
	maxBackoff       = time.Second
)

// Matcher is a [flamingo.Matcher] whose waiting queue lives in Redis, shared by every
// Matcher with the same [Options.Prefix]: a ticket enqueued on one node can be paired
// by an Enqueue on any other. See the package documentation for its keys, scripts and
// guarantees. Create it with [New].
type Matcher struct {
	client redis.UniversalClient
	node   string
	block  time.Duration
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
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Matcher{
		client: client,
		node:   opts.NodeID,
		block:  opts.ReadBlock,
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
// reads this node's pair stream and calls report for each pair. Pairs already in the
// stream are from that earlier matcher and are skipped. If Redis cannot be reached,
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
	go m.read(ctx, last, report, m.done)
	return nil
}

// prepare drops this node's leftover tickets and returns the id of the last entry in
// its pair stream, from which the reader starts.
func (m *Matcher) prepare(ctx context.Context) (string, error) {
	if err := dropScript.Run(ctx, m.client, []string{m.keys.nodeTickets}, m.keys.ticketPrefix, m.node).Err(); err != nil {
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

// Enqueue implements [flamingo.Matcher]. It runs one script that either takes the
// oldest compatible waiter out of the queue or adds t. A pair it makes is not reported
// from within Enqueue: it is appended to the pair stream of each node that owns one of
// the two tickets, and each of those nodes reports it from its stream reader, usually
// a fraction of a millisecond later.
//
// The Matcher of a [Cluster] first waits, for at most 5 seconds and within ctx, until
// the node has written to Redis everything its Engine published before the call (the
// session of t's user among it), and fails with ctx's error if that takes longer: a
// partner's node finds where to send the user events from that session.
//
// Besides [flamingo.ErrAlreadyQueued] and [flamingo.ErrInvalidTicket], which it also
// returns for a JoinedAt that [time.Time.UnixNano] cannot represent (before 1678 or
// after 2261), it returns [flamingo.ErrMatcherNotStarted] before Start and after Stop,
// and wrapped Redis errors. After a Redis error the ticket may or may not have been
// queued or paired, as with any call whose reply was lost; a pair it made is still
// reported.
func (m *Matcher) Enqueue(ctx context.Context, t flamingo.Ticket) error {
	if t.User == "" || !t.Gender.Valid() || !t.Preference.Valid() {
		return flamingo.ErrInvalidTicket
	}
	if t.JoinedAt.Before(minJoinedAt) || t.JoinedAt.After(maxJoinedAt) {
		return fmt.Errorf("%w: JoinedAt %v is outside the years 1678 to 2261", flamingo.ErrInvalidTicket, t.JoinedAt)
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

	ns := t.JoinedAt.UnixNano()
	var order [8]byte
	u := uint64(ns) ^ 1<<63 // flipping the sign bit makes the byte order the numeric order
	for i := range order {
		order[i] = byte(u >> (56 - 8*i))
	}
	ks := make([]string, 4, 10)
	ks[0] = m.keys.ticket(t.User)
	ks[1] = m.keys.seq
	ks[2] = m.keys.nodeTickets
	ks[3] = m.keys.bucket(t.Gender, t.Preference)
	for _, g := range genders {
		if !t.Preference.Accepts(g) {
			continue
		}
		for _, p := range preferences {
			if p.Accepts(t.Gender) {
				ks = append(ks, m.keys.bucket(g, p))
			}
		}
	}
	res, err := enqueueScript.Run(ctx, m.client, ks,
		m.keys.ticketPrefix, m.keys.nodePrefix, t.User, string(t.Gender), string(t.Preference),
		strconv.FormatInt(ns, 10), hex.EncodeToString(order[:]), m.node, randomHex(16)).Text()
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

// Cancel implements [flamingo.Matcher]. It may cancel a ticket enqueued on any node.
// Before Start and after Stop it returns false and [flamingo.ErrMatcherNotStarted],
// without asking Redis.
func (m *Matcher) Cancel(ctx context.Context, user string) (bool, error) {
	if !m.begin() {
		return false, flamingo.ErrMatcherNotStarted
	}
	defer m.inflight.Done()
	n, err := cancelScript.Run(ctx, m.client, []string{m.keys.ticket(user)}, m.keys.nodePrefix).Int()
	if err != nil {
		return false, fmt.Errorf("flamingoredis: cancel: %w", err)
	}
	return n == 1, nil
}

// Stop implements [flamingo.Matcher]. It waits for the Enqueue and Cancel calls in
// progress, takes this node's waiting tickets out of the queue, lets the stream reader
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
	cancel, done := m.cancel, m.done
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

	var errs []error
	if err := dropScript.Run(ctx, m.client, []string{m.keys.nodeTickets}, m.keys.ticketPrefix, m.node).Err(); err != nil {
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
			ids  []string
			stop bool
		)
		for _, s := range streams {
			for _, msg := range s.Messages {
				last = msg.ID
				ids = append(ids, msg.ID)
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
		if len(ids) > 0 {
			if err := m.client.XDel(ctx, m.keys.nodePairs, ids...).Err(); err != nil && ctx.Err() == nil {
				m.log.Warn("flamingoredis: deleting reported pair entries failed",
					"node", m.node, "stream", m.keys.nodePairs, "err", err)
			}
		}
		if stop {
			return
		}
	}
}

// parsePair reads a pair entry written by the enqueue script. A is the ticket with the
// earlier JoinedAt; on a tie it is the waiter, which came first.
//
// In a [Cluster] (clustered set), the pair carries the chat id the script chose and
// each ticket the node that owns it.
func parsePair(v map[string]any, clustered bool) (flamingo.Pair, error) {
	waiter, err := parseTicket(v, pairWaiter, clustered)
	if err != nil {
		return flamingo.Pair{}, err
	}
	newcomer, err := parseTicket(v, pairNewcomer, clustered)
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

func parseTicket(v map[string]any, prefix string, clustered bool) (flamingo.Ticket, error) {
	field := func(name string) string {
		s, _ := v[prefix+name].(string)
		return s
	}
	ns, err := strconv.ParseInt(field(ticketJoinedAt), 10, 64)
	if err != nil {
		return flamingo.Ticket{}, fmt.Errorf("field %s%s: %w", prefix, ticketJoinedAt, err)
	}
	t := flamingo.Ticket{
		User:       field(ticketUser),
		Gender:     flamingo.Gender(field(ticketGender)),
		Preference: flamingo.Preference(field(ticketPreference)),
		JoinedAt:   time.Unix(0, ns),
	}
	if clustered {
		t.Node = field(ticketNode)
	}
	if t.User == "" || !t.Gender.Valid() || !t.Preference.Valid() {
		return flamingo.Ticket{}, fmt.Errorf("fields %s*: invalid ticket %+v", prefix, t)
	}
	return t, nil
}
