package flamingo_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// stallTransport is the server end of a pipe whose writes can be held: write number n
// (counted from 1) waits until hold[n] is closed. If the transport was closed
// meanwhile, a held write fails, or with through set it succeeds (its bytes were on
// their way); any other write after Close fails. Closing gone makes Read fail, as
// when the reader sees the peer go.
type stallTransport struct {
	p       *flamingotest.PipeEnd
	hold    map[int]chan struct{}
	gone    chan struct{}
	through bool

	mu     sync.Mutex
	writes int
	closed bool
}

func (s *stallTransport) Read(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.gone:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.p.Read(ctx)
}

func (s *stallTransport) Write(ctx context.Context, b []byte) error {
	s.mu.Lock()
	s.writes++
	hold := s.hold[s.writes]
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		if hold != nil && s.through {
			return nil
		}
		return errors.New("closed")
	}
	return s.p.Write(ctx, b)
}

func (s *stallTransport) Close(code flamingo.CloseCode, reason string) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return s.p.Close(code, reason)
}

// midBatch matches a (whose writes go through a stallTransport) with b and leaves a's
// writer stuck on m3, the first frame of its batch [m3 m4 m5]. Writes to a: ready 1,
// queue_joined 2, match_found 3, m1 4, m2 5, m3 6.
func midBatch(t *testing.T) (e *flamingo.Engine, st *stallTransport, a, b *flamingotest.Client, releaseM3 func()) {
	e = newEngine(t, flamingo.Config{MessageRate: unlimited, EventRate: unlimited})
	server, client := flamingotest.Pipe()
	m2, m3 := make(chan struct{}), make(chan struct{})
	st = &stallTransport{p: server, hold: map[int]chan struct{}{5: m2, 6: m3}, gone: make(chan struct{})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = e.Serve(context.Background(), st)
	}()
	t.Cleanup(func() {
		_ = client.Close(flamingo.CloseNormal, "")
		<-served
	})
	a = flamingotest.NewClient(t, client)
	b = flamingotest.Connect(t, e)
	flamingotest.Match(t, a, b)
	b.Say("m1")
	require.Equal(t, "m1", a.ExpectMessage().Content)
	b.Say("m2")
	synctest.Wait() // a's writer waits on m2
	for _, m := range []string{"m3", "m4", "m5"} {
		b.Say(m)
	}
	b.Sync()
	close(m2)
	synctest.Wait() // ... and now on m3, with m4 and m5 in its batch
	var once sync.Once
	return e, st, a, b, func() { once.Do(func() { close(m3) }) }
}

// messages returns the contents of the message_received events among evs.
func messages(evs []flamingotest.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == flamingo.EventMessageReceived {
			var p flamingo.MessageReceivedPayload
			if ev.Decode(&p) == nil {
				out = append(out, p.Content)
			}
		}
	}
	return out
}

// untilPong sends ping on c and returns the events before the pong.
func untilPong(c *flamingotest.Client) []flamingotest.Event {
	c.Send(flamingo.EventPing, nil)
	var evs []flamingotest.Event
	for {
		ev := c.Next()
		if ev.Type == flamingo.EventPong {
			return evs
		}
		evs = append(evs, ev)
	}
}

// TestTakeoverMidBatch: a second tab takes the session over while the old tab's writer
// is in the middle of a batch. The old tab gets the frame being written and no more;
// the new tab gets the rest: each message once.
func TestTakeoverMidBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _, a, _, releaseM3 := midBatch(t)
		defer releaseM3()
		a2 := flamingotest.Connect(t, e)
		a2.Send(flamingo.EventInit, flamingo.InitPayload{UserID: a.UserID})
		newTab := messages(untilPong(a2))
		releaseM3()
		oldTab := messages(a.ExpectClosed(flamingo.CloseSessionReplaced))
		assert.Equal(t, []string{"m2", "m3"}, oldTab, "old tab, after m1")
		assert.Equal(t, []string{"m4", "m5"}, newTab, "new tab")
	})
}

// TestDropMidBatch: the reader sees the peer go while the writer is in the middle of a
// batch. The resume replays what the client cannot have had, each frame once: after
// the frame under way if its write got through, from it if it failed.
func TestDropMidBatch(t *testing.T) {
	for _, tt := range []struct {
		name    string
		through bool
		want    []string
	}{
		{"write under way gets through", true, []string{"m4", "m5"}},
		{"write under way fails", false, []string{"m3", "m4", "m5"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, st, a, _, releaseM3 := midBatch(t)
				st.mu.Lock()
				st.through = tt.through
				st.mu.Unlock()
				close(st.gone)
				synctest.Wait() // the engine has seen the user go
				releaseM3()
				synctest.Wait() // the writer has finished
				a2 := flamingotest.Connect(t, e)
				a2.Send(flamingo.EventInit, flamingo.InitPayload{UserID: a.UserID})
				assert.Equal(t, tt.want, messages(untilPong(a2)))
			})
		})
	}
}

// gatedMatcher is a MemoryMatcher whose next Enqueue, once armed, waits until the
// gate opens: a join whose ticket is slow to reach the matcher.
type gatedMatcher struct {
	*flamingo.MemoryMatcher
	mu   sync.Mutex
	gate chan struct{}
}

func (m *gatedMatcher) arm() (open func()) {
	gate := make(chan struct{})
	m.mu.Lock()
	m.gate = gate
	m.mu.Unlock()
	return func() { close(gate) }
}

func (m *gatedMatcher) Enqueue(ctx context.Context, t flamingo.Ticket) error {
	m.mu.Lock()
	gate := m.gate
	m.gate = nil
	m.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return m.MemoryMatcher.Enqueue(ctx, t)
}

// TestJoinRacingTakeover: a second tab takes the session over while the first tab's
// join_queue is on its way to the matcher, so the takeover's cancel reaches the matcher
// first. The late ticket must not stay waiting for a user who is no longer queued: the
// user joins again with other choices and is matched by those, not by the old ticket.
func TestJoinRacingTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &gatedMatcher{MemoryMatcher: flamingo.NewMemoryMatcher()}
		e := newEngine(t, flamingo.Config{Matcher: m, JoinRate: unlimited})
		a := flamingotest.Connect(t, e)
		a.Init("")
		open := m.arm()
		a.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderMale, Preference: flamingo.PreferFemale})
		synctest.Wait() // the ticket waits at the gate
		a2 := flamingotest.Connect(t, e)
		assert.True(t, a2.Init(a.UserID).Resumed)
		synctest.Wait() // the takeover's cancel has been and gone
		open()
		synctest.Wait()
		assert.Equal(t, 0, m.Len(), "tickets left in the matcher")

		// Joining again as other/any: a female looking for a male must not be paired
		// with the stale male/female ticket.
		a2.Join(flamingo.GenderOther, flamingo.PreferAny)
		f := flamingotest.Connect(t, e)
		f.Init("")
		f.Join(flamingo.GenderFemale, flamingo.PreferMale)
		synctest.Wait()
		f.Sync()
		a2.Sync()
		o := flamingotest.Connect(t, e)
		o.Init("")
		o.Join(flamingo.GenderOther, flamingo.PreferOther)
		a2.Expect(flamingo.EventMatchFound)
		o.Expect(flamingo.EventMatchFound)
	})
}

// TestGatheredBatchLost: on a transport that gathers a batch into one write, frames
// written to it are not on their way until the flush. When the flush fails, they are
// held like a failed write, and the resume replays them: each message once.
func TestGatheredBatchLost(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	server, client := flamingotest.Pipe()
	gt := &flamingo.GatheringTransport{Transport: server}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = e.Serve(context.Background(), gt)
	}()
	t.Cleanup(func() {
		_ = client.Close(flamingo.CloseNormal, "")
		<-served
	})
	a := flamingotest.NewClient(t, client)
	b := flamingotest.Connect(t, e)
	flamingotest.Match(t, a, b)
	b.Say("m1")
	require.Equal(t, "m1", a.ExpectMessage().Content, "a flushed batch arrives")

	gt.FailFlushes()
	b.Say("m2")
	assert.Empty(t, messages(a.ExpectClosed(flamingo.CloseGoingAway)), "the failed batch did not arrive")
	a2 := flamingotest.Connect(t, e)
	a2.Send(flamingo.EventInit, flamingo.InitPayload{UserID: a.UserID})
	assert.Equal(t, []string{"m2"}, messages(untilPong(a2)), "the resume replays the lost batch")
}
