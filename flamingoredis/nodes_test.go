package flamingoredis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

const stopWait = 10 * time.Second

// recorder collects the pairs one node reports.
type recorder struct {
	mu    sync.Mutex
	pairs []flamingo.Pair
}

func (r *recorder) report(p flamingo.Pair) {
	r.mu.Lock()
	r.pairs = append(r.pairs, p)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []flamingo.Pair {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pairs)
}

// node is one started Matcher with its recorder.
type node struct {
	m   *Matcher
	rec *recorder
}

// startNode starts a matcher with the given node id on prefix, and stops it when the
// test ends unless the test has stopped it already.
func startNode(t *testing.T, client redis.UniversalClient, prefix, id string) *node {
	t.Helper()
	n := &node{m: New(client, Options{Prefix: prefix, NodeID: id}), rec: &recorder{}}
	require.NoError(t, n.m.Start(n.rec.report))
	t.Cleanup(func() { n.stop(t) })
	return n
}

func (n *node) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	require.NoError(t, n.m.Stop(ctx), "Stop(%s)", n.m.NodeID())
}

func (n *node) enqueue(t *testing.T, tk flamingo.Ticket) {
	t.Helper()
	require.NoError(t, n.m.Enqueue(t.Context(), tk), "Enqueue(%s) on %s", tk.User, n.m.NodeID())
}

func (n *node) cancel(t *testing.T, user string) bool {
	t.Helper()
	ok, err := n.m.Cancel(t.Context(), user)
	require.NoError(t, err, "Cancel(%q) on %s", user, n.m.NodeID())
	return ok
}

type pairKey struct{ a, b string }

func keyOf(p flamingo.Pair) pairKey { return pairKey{p.A.User, p.B.User} }

func assertSamePair(t *testing.T, want, got flamingo.Pair, msgAndArgs ...any) {
	t.Helper()
	view := func(tk flamingo.Ticket) string {
		return fmt.Sprintf("%s/%s/%s@%d", tk.User, tk.Gender, tk.Preference, tk.JoinedAt.UnixNano())
	}
	assert.Equal(t, [2]string{view(want.A), view(want.B)}, [2]string{view(got.A), view(got.B)}, msgAndArgs...)
}

// TestTwoNodes checks who hears of a pair when two matchers share a queue: each node
// that owns one of the pair's tickets (enqueued it) reports the pair once, and no
// other node does. Stop returns only after its node has reported every such pair, so
// the recorders are read right after Stop, without waiting.
func TestTwoNodes(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	woman := func(u string, ms int) flamingo.Ticket {
		return flamingo.Ticket{User: u, Gender: flamingo.GenderFemale, Preference: flamingo.PreferMale, JoinedAt: at(ms)}
	}
	man := func(u string, ms int) flamingo.Ticket {
		return flamingo.Ticket{User: u, Gender: flamingo.GenderMale, Preference: flamingo.PreferFemale, JoinedAt: at(ms)}
	}
	tests := []struct {
		name           string
		waiter, joiner flamingo.Ticket
		waiterOn       string // node that enqueues the waiter: "a" or "b"
		joinerOn       string
		wantAIsWaiter  bool
		wantReportedOn []string
	}{
		{"waiter on a, paired by b", woman("w", 1), man("j", 2), "a", "b", true, []string{"a", "b"}},
		{"waiter on b, paired by a", man("w", 1), woman("j", 2), "b", "a", true, []string{"a", "b"}},
		{"both on a", woman("w", 1), man("j", 2), "a", "a", true, []string{"a"}},
		{"both on b", woman("w", 1), man("j", 2), "b", "b", true, []string{"b"}},
		{"joiner put back with an older JoinedAt", woman("w", 5), man("j", 2), "a", "b", false, []string{"a", "b"}},
	}
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				prefix := freshPrefix(t, client)
				nodes := map[string]*node{
					"a": startNode(t, client, prefix, "node-a"),
					"b": startNode(t, client, prefix, "node-b"),
				}
				nodes[tt.waiterOn].enqueue(t, tt.waiter)
				nodes[tt.joinerOn].enqueue(t, tt.joiner)
				for _, n := range nodes {
					n.stop(t)
				}

				want := flamingo.Pair{A: tt.waiter, B: tt.joiner}
				if !tt.wantAIsWaiter {
					want = flamingo.Pair{A: tt.joiner, B: tt.waiter}
				}
				for _, id := range []string{"a", "b"} {
					got := nodes[id].rec.snapshot()
					if !slices.Contains(tt.wantReportedOn, id) {
						assert.Empty(t, got, "node %s owns neither ticket but reported", id)
						continue
					}
					if assert.Len(t, got, 1, "pairs reported on node %s", id) {
						assertSamePair(t, want, got[0], "pair reported on node %s", id)
					}
				}
			})
		}
	})
}

// TestTwoNodes_CancelAnywhere checks that a ticket waiting for node a can be cancelled
// through node b, once, and is then never paired.
func TestTwoNodes_CancelAnywhere(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		prefix := freshPrefix(t, client)
		a := startNode(t, client, prefix, "node-a")
		b := startNode(t, client, prefix, "node-b")
		now := time.Now()
		a.enqueue(t, flamingo.Ticket{User: "w", Gender: flamingo.GenderOther, Preference: flamingo.PreferAny, JoinedAt: now})
		assert.ErrorIs(t, b.m.Enqueue(t.Context(), flamingo.Ticket{User: "w", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, JoinedAt: now}),
			flamingo.ErrAlreadyQueued, "the same user through the other node")
		assert.True(t, b.cancel(t, "w"), "Cancel through node b")
		assert.False(t, a.cancel(t, "w"), "second Cancel through node a")
		b.enqueue(t, flamingo.Ticket{User: "j", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, JoinedAt: now.Add(time.Millisecond)})
		assert.True(t, b.cancel(t, "j"), "j must still be waiting")
		a.stop(t)
		b.stop(t)
		assert.Empty(t, a.rec.snapshot())
		assert.Empty(t, b.rec.snapshot())
	})
}

// TestTwoNodes_StopDropsTickets checks that a stopped node's waiting tickets leave the
// shared queue, and that a stopped node leaves no keys behind but the counter.
func TestTwoNodes_StopDropsTickets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		prefix := freshPrefix(t, client)
		a := startNode(t, client, prefix, "node-a")
		b := startNode(t, client, prefix, "node-b")
		now := time.Now()
		for i := range 10 {
			a.enqueue(t, flamingo.Ticket{User: fmt.Sprintf("a%d", i), Gender: flamingo.GenderFemale, Preference: flamingo.PreferMale, JoinedAt: now})
		}
		a.stop(t)
		j := flamingo.Ticket{User: "j", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, JoinedAt: now.Add(time.Millisecond)}
		b.enqueue(t, j)
		assert.True(t, b.cancel(t, "j"), "j met a ticket of the stopped node")
		b.stop(t)
		assert.Empty(t, a.rec.snapshot())
		assert.Empty(t, b.rec.snapshot())

		keys, err := client.Keys(t.Context(), prefix+"*").Result()
		require.NoError(t, err)
		assert.Equal(t, []string{newKeys(prefix, "").seq}, keys, "keys left after both nodes stopped")
	})
}

// TestRestartDropsLeftovers checks that a matcher started with the NodeID of one that
// ended without Stop (a crash) drops the tickets it left waiting.
func TestRestartDropsLeftovers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		prefix := freshPrefix(t, client)
		crashed := New(client, Options{Prefix: prefix, NodeID: "node-a", ReadBlock: 50 * time.Millisecond})
		require.NoError(t, crashed.Start(func(flamingo.Pair) { t.Error("the crashed node reported a pair") }))
		now := time.Now()
		require.NoError(t, crashed.Enqueue(t.Context(), flamingo.Ticket{User: "ghost", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, JoinedAt: now}))
		crashed.cancel() // the process dies: its reader ends, nothing is cleaned up
		<-crashed.done

		a := startNode(t, client, prefix, "node-a") // the same node comes back
		b := startNode(t, client, prefix, "node-b")
		b.enqueue(t, flamingo.Ticket{User: "j", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, JoinedAt: now.Add(time.Millisecond)})
		assert.True(t, b.cancel(t, "j"), "j met the crashed node's leftover ticket")
		assert.False(t, a.cancel(t, "ghost"), "the leftover ticket is still waiting")
	})
}

// TestTwoNodes_Concurrent has two nodes enqueue 2,500 tickets each, with mixed kinds
// and some cancels through either node, from several goroutines per node. A
// flamingotest.Ledger audits the run: every ticket ends in exactly one pair, one
// successful Cancel, or still waiting; every pair is compatible, ordered by JoinedAt,
// fair where the order of the calls shows it, and reported exactly once on each node
// owning one of its tickets and on no other; and no two compatible tickets are left
// waiting.
func TestTwoNodes_Concurrent(t *testing.T) {
	const (
		perNode   = 2500 // 5,000 joins in all
		workers   = 10   // per node
		perWorker = perNode / workers
	)
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		prefix := freshPrefix(t, client)
		led := flamingotest.NewLedger()
		var (
			nodes [2]flamingo.Matcher
			recs  [2]*recorder
		)
		for ni := range nodes {
			m := New(client, Options{Prefix: prefix, NodeID: fmt.Sprintf("node-%d", ni)})
			nodes[ni], recs[ni] = led.Matcher(m.NodeID(), m), &recorder{}
			require.NoError(t, nodes[ni].Start(recs[ni].report))
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), stopWait)
				defer cancel()
				assert.NoError(t, m.Stop(ctx), "Stop(%s)", m.NodeID())
			})
		}
		ctx := t.Context()

		var (
			accepted atomic.Int64
			wg       sync.WaitGroup
		)
		for ni, n := range nodes {
			for w := range workers {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(seed, uint64(ni*workers+w)))
					var mine []string
					for i := range perWorker {
						tk := flamingo.Ticket{
							User:       fmt.Sprintf("n%d-w%d-%03d", ni, w, i),
							Gender:     genders[rnd.IntN(len(genders))],
							Preference: preferences[rnd.IntN(len(preferences))],
							JoinedAt:   time.Now(),
						}
						if n.Enqueue(ctx, tk) != nil {
							continue // the ledger has it
						}
						accepted.Add(1)
						mine = append(mine, tk.User)
						if rnd.IntN(5) == 0 { // cancel one of ours, through either node
							u := mine[len(mine)-1] // the likeliest to be waiting
							if rnd.IntN(2) == 0 {
								u = mine[rnd.IntN(len(mine))]
							}
							_, _ = nodes[rnd.IntN(2)].Cancel(ctx, u)
						}
					}
				})
			}
		}
		wg.Wait()
		assert.NoError(t, led.Check(stopWait), "seed %d", seed)
		t.Log(led)

		onBoth := make(map[pairKey]bool)
		for _, p := range recs[0].snapshot() {
			onBoth[keyOf(p)] = true
		}
		crossNode := 0
		for _, p := range recs[1].snapshot() {
			if onBoth[keyOf(p)] {
				crossNode++
			}
		}
		assert.Equal(t, int64(2*perNode), accepted.Load(), "tickets accepted")
		assert.Positive(t, crossNode, "no pair across nodes")
	})
}

// TestReaderSurvivesDisconnect drops every client connection of a real redis-server
// (miniredis cannot do that) while a node's reader is blocked on its stream: the reader
// reconnects, and a pair made afterwards is still reported there.
func TestReaderSurvivesDisconnect(t *testing.T) {
	client := realRedisClient(t)
	prefix := freshPrefix(t, client)
	a := startNode(t, client, prefix, "node-a")
	b := startNode(t, client, prefix, "node-b")
	now := time.Now()
	w := flamingo.Ticket{User: "w", Gender: flamingo.GenderOther, Preference: flamingo.PreferOther, JoinedAt: now}
	j := flamingo.Ticket{User: "j", Gender: flamingo.GenderOther, Preference: flamingo.PreferAny, JoinedAt: now.Add(time.Millisecond)}
	a.enqueue(t, w)

	// Wait for both readers to block on their streams.
	require.Eventually(t, func() bool {
		list, err := client.ClientList(t.Context()).Result()
		return err == nil && strings.Count(list, "cmd=xread") >= 2
	}, 5*time.Second, time.Millisecond, "the two readers never blocked in XREAD")
	killed, err := client.ClientKillByFilter(t.Context(), "TYPE", "normal", "SKIPME", "yes").Result()
	require.NoError(t, err)
	require.GreaterOrEqual(t, killed, int64(2), "connections killed (the two blocked readers at least)")

	b.enqueue(t, j)
	require.Eventually(t, func() bool { return len(a.rec.snapshot()) == 1 && len(b.rec.snapshot()) == 1 },
		5*time.Second, time.Millisecond, "the pair was not reported on both nodes")
	a.stop(t)
	b.stop(t)
	want := flamingo.Pair{A: w, B: j}
	assertSamePair(t, want, a.rec.snapshot()[0])
	assertSamePair(t, want, b.rec.snapshot()[0])
}
