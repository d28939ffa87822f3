package flamingo_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// Tests of the engine core's contracts: configuration errors, matcher failures and
// deadlines, hook errors, and Shutdown's bounds.

func TestNew_RejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		give flamingo.Config
		want string // the field the error must name
	}{
		{"negative grace", flamingo.Config{ResumeGrace: -time.Second}, "ResumeGrace"},
		{"negative init timeout", flamingo.Config{InitTimeout: -1}, "InitTimeout"},
		{"negative write timeout", flamingo.Config{WriteTimeout: -1}, "WriteTimeout"},
		{"negative heartbeat", flamingo.Config{HeartbeatInterval: -1}, "HeartbeatInterval"},
		{"negative heartbeat timeout", flamingo.Config{HeartbeatTimeout: -1}, "HeartbeatTimeout"},
		{"negative matcher timeout", flamingo.Config{MatcherTimeout: -1}, "MatcherTimeout"},
		{"negative queue", flamingo.Config{MaxQueuedEvents: -1}, "MaxQueuedEvents"},
		{"negative queue bytes", flamingo.Config{MaxQueuedBytes: -1}, "MaxQueuedBytes"},
		{"negative frame", flamingo.Config{MaxFrameBytes: -5}, "MaxFrameBytes"},
		{"negative message bytes", flamingo.Config{MaxMessageBytes: -1}, "MaxMessageBytes"},
		{"negative message runes", flamingo.Config{MaxMessageRunes: -1}, "MaxMessageRunes"},
		{"negative burst", flamingo.Config{MessageRate: flamingo.RateLimit{Rate: 1, Burst: -1}}, "MessageRate.Burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := flamingo.New(tt.give)
			require.Error(t, err)
			assert.Nil(t, e)
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	// A negative Rate still means "no limit", as RateLimit documents.
	e := newEngine(t, flamingo.Config{EventRate: flamingo.RateLimit{Rate: -1}})
	assert.NotNil(t, e)
}

// failingMatcher is a MemoryMatcher whose Enqueue fails, as a matcher whose store is
// down would.
type failingMatcher struct{ *flamingo.MemoryMatcher }

func (failingMatcher) Enqueue(context.Context, flamingo.Ticket) error {
	return errors.New("store unreachable")
}

func TestJoin_EnqueueFails_ErrorInsteadOfQueueJoined(t *testing.T) {
	e := newEngine(t, flamingo.Config{Matcher: failingMatcher{flamingo.NewMemoryMatcher()}})
	a := flamingotest.Connect(t, e)
	a.Init("")
	a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
	ev := a.Next()
	require.Equal(t, flamingo.EventError, ev.Type, "the error comes instead of queue_joined")
	var p flamingo.ErrorPayload
	require.NoError(t, ev.Decode(&p))
	assert.Equal(t, flamingo.CodeInternal, p.Code)
	assert.Equal(t, flamingo.EventJoinQueue, p.Ref)
	a.Sync() // and nothing else came
	assert.Equal(t, 0, e.Stats().InQueue)

	// The user is not left half-queued: joining again is allowed (and fails again).
	a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
	a.ExpectError(flamingo.CodeInternal)
}

// stuckMatcher is a MemoryMatcher whose Enqueue waits until its context ends.
type stuckMatcher struct {
	*flamingo.MemoryMatcher
	calls atomic.Int32
}

func (m *stuckMatcher) Enqueue(ctx context.Context, _ flamingo.Ticket) error {
	m.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

func TestJoin_MatcherTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &stuckMatcher{MemoryMatcher: flamingo.NewMemoryMatcher()}
		e := newEngine(t, flamingo.Config{Matcher: m, MatcherTimeout: 3 * time.Second})
		a, b := flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		a.Init("")
		b.Init("")
		start := time.Now()
		a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
		synctest.Wait()
		// The engine is not held up by the call under way: b is served meanwhile.
		b.Sync()
		assert.Equal(t, 1, e.Stats().InQueue)

		a.ExpectError(flamingo.CodeInternal)
		assert.Equal(t, 3*time.Second, time.Since(start), "the call ends at Config.MatcherTimeout")
		assert.Equal(t, 0, e.Stats().InQueue)
	})
}

func TestShutdown_EndsMatcherCallsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &stuckMatcher{MemoryMatcher: flamingo.NewMemoryMatcher()}
		e, err := flamingo.New(flamingo.Config{Matcher: m, MatcherTimeout: time.Hour})
		require.NoError(t, err)
		a := flamingotest.Connect(t, e)
		a.Init("")
		a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
		synctest.Wait()
		require.EqualValues(t, 1, m.calls.Load())

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		assert.ErrorIs(t, e.Shutdown(ctx), context.DeadlineExceeded)
		synctest.Wait() // every goroutine of the engine has returned: none waits an hour
		assert.Equal(t, time.Second, time.Since(start))
		assert.NoError(t, e.Shutdown(context.Background()))
	})
}

func TestOnMessage_ErrorWithoutCode_IsMessageRejected(t *testing.T) {
	e := newEngine(t, flamingo.Config{OnMessage: func(m flamingo.Message) error {
		switch m.Content {
		case "no code":
			return &flamingo.Error{Message: "not here"}
		case "plain":
			return errors.New("a plain error")
		}
		return &flamingo.Error{Code: "off_topic", Message: "stay on topic"}
	}})
	a, b := flamingotest.Pair(t, e)

	a.Say("no code")
	p := a.ExpectError(flamingo.CodeMessageRejected)
	assert.Equal(t, "not here", p.Message)
	a.Say("plain")
	p = a.ExpectError(flamingo.CodeMessageRejected)
	assert.Equal(t, "the message was refused", p.Message, "a plain error's text stays on the server")
	a.Say("own code")
	p = a.ExpectError("off_topic")
	assert.Equal(t, "stay on topic", p.Message)
	b.Sync() // b got none of them
}

func TestShutdown_FromAHook(t *testing.T) {
	var e *flamingo.Engine
	returned := make(chan error, 1)
	e = newEngine(t, flamingo.Config{OnMessage: func(flamingo.Message) error {
		returned <- e.Shutdown(context.Background())
		return nil
	}})
	a, _ := flamingotest.Pair(t, e)
	a.Say("shut it down")
	select {
	case err := <-returned:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown called from a hook did not return")
	}
	// The shutdown it began goes on: the connections are closed.
	a.ExpectClosed(flamingo.CloseGoingAway)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	assert.NoError(t, e.Shutdown(ctx), "a second call waits for the whole shutdown")
	assert.ErrorIs(t, e.Serve(context.Background(), pipeEnd()), flamingo.ErrEngineClosed)
}

func pipeEnd() flamingo.Transport {
	s, _ := flamingotest.Pipe()
	return s
}

// A WebSocket peer that never reads would hold each close handshake for its full
// timeout (5 s in coder/websocket); Shutdown's context bounds that.
func TestShutdown_PeersThatDoNotRead(t *testing.T) {
	e, err := flamingo.New(flamingo.Config{})
	require.NoError(t, err)
	url := wsServer(t, e, nil)
	for range 5 {
		c := rawDial(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"type":"init"}`)))
		_, b, err := c.Read(ctx)
		cancel()
		require.NoError(t, err)
		require.True(t, strings.Contains(string(b), `"ready"`))
		// From here on the peer reads nothing, so it never answers the close.
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, e.Shutdown(ctx), context.DeadlineExceeded)
	// Once its context was done, Shutdown closed what was left without waiting for
	// the peers: everything ends well before one close handshake's timeout.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	assert.NoError(t, e.Shutdown(ctx2))
}

// fakeBroker records what the engine tells its cluster. onStop runs inside Stop, as
// flamingoredis's Stop reads its inbox (handover requests, pairs) there.
type fakeBroker struct {
	mu     sync.Mutex
	host   flamingo.BrokerHost
	saved  []flamingo.SessionState
	ended  []string
	onStop func(ctx context.Context, h flamingo.BrokerHost)
}

func (b *fakeBroker) Start(h flamingo.BrokerHost) error { b.host = h; return nil }
func (b *fakeBroker) NodeID() string                    { return "n1" }
func (b *fakeBroker) Save(st flamingo.SessionState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.saved = append(b.saved, st)
}
func (b *fakeBroker) Forget(string)                      {}
func (b *fakeBroker) Kick(string, string)                {}
func (b *fakeBroker) Send(string, flamingo.ClusterEvent) {}
func (b *fakeBroker) EndChat(id string, _ [2]string, _ string, _ flamingo.EndReason) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended = append(b.ended, id)
}
func (b *fakeBroker) Claim(context.Context, string, [sha256.Size]byte) (flamingo.SessionState, error) {
	return flamingo.SessionState{}, flamingo.ErrSessionNotFound
}
func (b *fakeBroker) Stats() flamingo.Stats { return flamingo.Stats{} }
func (b *fakeBroker) Stop(ctx context.Context) error {
	if b.onStop != nil {
		b.onStop(ctx, b.host)
	}
	return nil
}

func (b *fakeBroker) lastSaved() flamingo.SessionState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.saved[len(b.saved)-1]
}

// A release the broker asks for while it stops is answered, with the session.
func TestShutdown_ReleaseWhileTheBrokerStops(t *testing.T) {
	b := &fakeBroker{}
	replied := make(chan flamingo.SessionState, 1)
	b.onStop = func(_ context.Context, h flamingo.BrokerHost) {
		h.Release(b.lastSaved().User, func(st flamingo.SessionState) { replied <- st })
	}
	e, err := flamingo.New(flamingo.Config{Broker: b})
	require.NoError(t, err)
	a := flamingotest.Connect(t, e)
	a.Init("")
	// The broker learns of the session from the flusher, after ready.
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.saved) > 0
	}, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.Shutdown(ctx))
	select {
	case st := <-replied:
		assert.True(t, st.Found)
	default:
		t.Fatal("the release was never answered: the session is lost")
	}
}

// reportingMatcher lets a test report pairs of its own.
type reportingMatcher struct {
	*flamingo.MemoryMatcher
	report func(flamingo.Pair)
}

func (m *reportingMatcher) Start(r func(flamingo.Pair)) error {
	m.report = r
	return m.MemoryMatcher.Start(r)
}

// A pair that arrives while the broker stops, for a user of this node who is gone,
// still tells the other node that the chat ended.
func TestShutdown_PairWhileTheBrokerStops(t *testing.T) {
	b := &fakeBroker{}
	m := &reportingMatcher{MemoryMatcher: flamingo.NewMemoryMatcher()}
	b.onStop = func(context.Context, flamingo.BrokerHost) {
		m.report(flamingo.Pair{
			A:      flamingo.Ticket{User: "x", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, JoinedAt: time.Now(), Node: "n2"},
			B:      flamingo.Ticket{User: "y", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, JoinedAt: time.Now(), Node: "n1"},
			ChatID: "c1",
		})
	}
	e, err := flamingo.New(flamingo.Config{Broker: b, Matcher: m})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.Shutdown(ctx))
	b.mu.Lock()
	defer b.mu.Unlock()
	assert.Contains(t, b.ended, "c1")
}

// Each Shutdown call is bounded by its own context, whichever call began the shutdown.
func TestShutdown_EachCallHasItsOwnBound(t *testing.T) {
	stopping, stopped := make(chan struct{}), make(chan struct{})
	b := &fakeBroker{onStop: func(ctx context.Context, _ flamingo.BrokerHost) {
		close(stopping)
		<-ctx.Done() // a broker that cannot reach its store
		close(stopped)
	}}
	e, err := flamingo.New(flamingo.Config{Broker: b})
	require.NoError(t, err)
	first := make(chan error, 1)
	go func() { first <- e.Shutdown(context.Background()) }()
	<-stopping

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, e.Shutdown(ctx), context.DeadlineExceeded)
	// The call whose context ended ended the waits of the shutdown, for every caller.
	<-stopped
	assert.NoError(t, <-first)
}

// slowEnqueueMatcher takes the ticket but answers only after the deadline, as a Redis
// script that ran while its reply was lost.
type slowEnqueueMatcher struct {
	*flamingo.MemoryMatcher
}

func (m slowEnqueueMatcher) Enqueue(ctx context.Context, t flamingo.Ticket) error {
	if err := m.MemoryMatcher.Enqueue(ctx, t); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestJoin_EnqueueTimeout_TakesTheTicketOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mm := flamingo.NewMemoryMatcher()
		e := newEngine(t, flamingo.Config{Matcher: slowEnqueueMatcher{mm}, MatcherTimeout: time.Second})
		a := flamingotest.Connect(t, e)
		a.Init("")
		a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderFemale})
		a.ExpectError(flamingo.CodeInternal)
		synctest.Wait()
		assert.Equal(t, 0, e.Stats().InQueue)
		assert.Equal(t, 0, mm.Len(), "no ticket waits for a user who is not queued")
	})
}

func TestOnMessage_TypedNilError(t *testing.T) {
	e := newEngine(t, flamingo.Config{OnMessage: func(flamingo.Message) error {
		var refuse *flamingo.Error
		return refuse // a non-nil error holding a nil *Error
	}})
	a, b := flamingotest.Pair(t, e)
	a.Say("hi")
	a.ExpectError(flamingo.CodeMessageRejected)
	b.Sync()
}

// stickyTransport's Close waits for its peer unless CloseNow is called, as a WebSocket
// close handshake with a peer that does not read.
type stickyTransport struct {
	in      chan []byte
	closing chan struct{}
	now     chan struct{}
	once1   sync.Once
	once2   sync.Once
}

func newSticky() *stickyTransport {
	return &stickyTransport{in: make(chan []byte, 4), closing: make(chan struct{}), now: make(chan struct{})}
}

func (s *stickyTransport) Read(context.Context) ([]byte, error) {
	select {
	case b := <-s.in:
		return b, nil
	case <-s.closing:
		return nil, errors.New("closed")
	}
}
func (s *stickyTransport) Write(context.Context, []byte) error { return nil }
func (s *stickyTransport) Close(flamingo.CloseCode, string) error {
	s.once1.Do(func() { close(s.closing) })
	<-s.now
	return nil
}
func (s *stickyTransport) CloseNow() error {
	s.once2.Do(func() { close(s.now) })
	s.once1.Do(func() { close(s.closing) })
	return nil
}

// A connection whose close began before Shutdown (here, after a frame too big) is
// closed at once too when Shutdown's context ends.
func TestShutdown_ConnsAlreadyClosing(t *testing.T) {
	e, err := flamingo.New(flamingo.Config{MaxFrameBytes: 16})
	require.NoError(t, err)
	tr := newSticky()
	served := make(chan struct{})
	go func() { defer close(served); _ = e.Serve(context.Background(), tr) }()
	tr.in <- []byte(`{"type":"init","payload":{"user_id":"xxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	<-served // Serve has returned; the transport's Close is under way

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, e.Shutdown(ctx), context.DeadlineExceeded)
	<-tr.now // CloseNow was called
	assert.NoError(t, e.Shutdown(context.Background()))
}

// gatedBroker's Save waits until the gate opens, as a broker far behind would.
type gatedBroker struct {
	fakeBroker
	gate chan struct{}
}

func (b *gatedBroker) Save(st flamingo.SessionState) {
	<-b.gate
	b.fakeBroker.Save(st)
}

// savedMatcher records, for each Enqueue, whether the broker had saved the user's
// session by then.
type savedMatcher struct {
	*flamingo.MemoryMatcher
	b        *gatedBroker
	enqueued atomic.Int32
	unsaved  atomic.Int32
}

func (m *savedMatcher) Enqueue(ctx context.Context, t flamingo.Ticket) error {
	m.enqueued.Add(1)
	m.b.mu.Lock()
	saved := len(m.b.saved) > 0 && m.b.saved[0].User == t.User
	m.b.mu.Unlock()
	if !saved {
		m.unsaved.Add(1)
	}
	return m.MemoryMatcher.Enqueue(ctx, t)
}

// A user's first Enqueue comes after the Broker calls decided before it: the cluster
// must know the session before anyone can be paired with it.
func TestJoin_EnqueueAfterTheSessionIsSaved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &gatedBroker{gate: make(chan struct{})}
		m := &savedMatcher{MemoryMatcher: flamingo.NewMemoryMatcher(), b: b}
		e := newEngine(t, flamingo.Config{Broker: b, Matcher: m})
		a := flamingotest.Connect(t, e)
		a.Init("")
		a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
		synctest.Wait()
		assert.Zero(t, m.enqueued.Load(), "the Enqueue waits for the session's Save")
		close(b.gate)
		a.Expect(flamingo.EventQueueJoined)
		assert.EqualValues(t, 1, m.enqueued.Load())
		assert.Zero(t, m.unsaved.Load())
	})
}

// slowCancelMatcher holds each Cancel until its gate opens, as a matcher far away would.
type slowCancelMatcher struct {
	*flamingo.MemoryMatcher
	gate chan struct{}
}

func (m *slowCancelMatcher) Cancel(ctx context.Context, user string) (bool, error) {
	<-m.gate
	return m.MemoryMatcher.Cancel(ctx, user)
}

// The reply to a release of a waiting user goes only once the Cancel of their ticket
// has been made here: after the reply the user may join on the other node, and a late
// Cancel from here would take out that ticket.
func TestRelease_ReplyWaitsForTheCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &fakeBroker{}
		m := &slowCancelMatcher{MemoryMatcher: flamingo.NewMemoryMatcher(), gate: make(chan struct{})}
		e := newEngine(t, flamingo.Config{Broker: b, Matcher: m})
		a := flamingotest.Connect(t, e)
		a.Init("")
		a.Join(flamingo.GenderOther, flamingo.PreferAny)
		replied := make(chan flamingo.SessionState, 1)
		b.host.Release(b.lastSaved().User, func(st flamingo.SessionState) { replied <- st })
		synctest.Wait()
		assert.Empty(t, replied, "no reply while the Cancel is under way")
		assert.Equal(t, 1, m.Len())

		close(m.gate)
		synctest.Wait()
		require.Len(t, replied, 1)
		assert.True(t, (<-replied).Found)
		assert.Equal(t, 0, m.Len())
	})
}

// An Enqueue whose Broker calls before it are not made in time is not made at all: the
// join gets an error rather than a pair that the cluster could not route.
func TestJoin_ClusterTooSlow_NoEnqueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &gatedBroker{gate: make(chan struct{})}
		m := &savedMatcher{MemoryMatcher: flamingo.NewMemoryMatcher(), b: b}
		e := newEngine(t, flamingo.Config{Broker: b, Matcher: m, MatcherTimeout: time.Second})
		a := flamingotest.Connect(t, e)
		a.Init("")
		a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderOther})
		a.ExpectError(flamingo.CodeInternal)
		assert.Zero(t, m.enqueued.Load())
		assert.Equal(t, 0, e.Stats().InQueue)
		close(b.gate)
	})
}
