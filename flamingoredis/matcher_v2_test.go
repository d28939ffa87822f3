package flamingoredis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// The tests of this file check each matching rule of the v2 contract on the Redis
// matcher, on miniredis and on a real redis-server: interests before age, relaxing
// (by the tick, by the pass, by the server's clock), pools, avoid lists in both
// directions, the fields carried into the Pair, and a model of the rules.

const v2Wait = 5 * time.Second // bounds each wait for a report; reached only by a failing test

// v2Rig is one started Matcher and the pairs it reported, with when each came.
type v2Rig struct {
	t      *testing.T
	m      *Matcher
	client redis.UniversalClient
	prefix string
	base   time.Time // JoinedAt of ticket 0: an hour ago, in whole milliseconds

	mu    sync.Mutex
	pairs []flamingo.Pair
	at    []time.Time
}

// newV2Rig starts a Matcher on client with opts (a fresh Prefix unless opts has one)
// and stops it when the test ends.
func newV2Rig(t *testing.T, client redis.UniversalClient, opts Options) *v2Rig {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = freshPrefix(t, client)
	}
	r := &v2Rig{t: t, client: client, prefix: opts.Prefix, base: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	r.m = New(client, opts)
	require.NoError(t, r.m.Start(r.report))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), v2Wait)
		defer cancel()
		assert.NoError(t, r.m.Stop(ctx))
	})
	return r
}

func (r *v2Rig) report(p flamingo.Pair) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pairs = append(r.pairs, p)
	r.at = append(r.at, now)
}

func (r *v2Rig) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pairs)
}

// waitPairs waits until n pairs have been reported and returns them, failing if more
// have been.
func (r *v2Rig) waitPairs(n int) []flamingo.Pair {
	r.t.Helper()
	require.Eventually(r.t, func() bool { return r.count() >= n }, v2Wait, time.Millisecond, "waiting for %d pairs", n)
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(r.t, r.pairs, n, "pairs: %v", pairUsers(r.pairs))
	return slices.Clone(r.pairs)
}

// ticket returns a ticket that joined at milliseconds after the rig's base, relaxed
// unless RelaxAt is set later.
func (r *v2Rig) ticket(user string, at int, interests ...string) flamingo.Ticket {
	return flamingo.Ticket{User: user, Gender: flamingo.GenderOther, Preference: flamingo.PreferAny,
		JoinedAt: r.base.Add(time.Duration(at) * time.Millisecond), Interests: interests}
}

// her makes t a woman who would meet men, him a man who would meet women: waiters
// that cannot meet each other, and a newcomer that can meet any of them.
func her(t flamingo.Ticket) flamingo.Ticket {
	t.Gender, t.Preference = flamingo.GenderFemale, flamingo.PreferMale
	return t
}

func him(t flamingo.Ticket) flamingo.Ticket {
	t.Gender, t.Preference = flamingo.GenderMale, flamingo.PreferFemale
	return t
}

// never makes t wait an hour before it relaxes.
func never(t flamingo.Ticket) flamingo.Ticket {
	t.RelaxAt = time.Now().Add(time.Hour)
	return t
}

func (r *v2Rig) enqueue(ts ...flamingo.Ticket) {
	r.t.Helper()
	for _, tk := range ts {
		require.NoError(r.t, r.m.Enqueue(r.t.Context(), tk), "Enqueue(%s)", tk.User)
	}
}

// waiting fails unless each user's ticket is still waiting, which it proves by
// cancelling it.
func (r *v2Rig) waiting(users ...string) {
	r.t.Helper()
	for _, u := range users {
		ok, err := r.m.Cancel(r.t.Context(), u)
		require.NoError(r.t, err)
		assert.True(r.t, ok, "%s should still be waiting", u)
	}
}

func pairUsers(ps []flamingo.Pair) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.A.User + "+" + p.B.User
	}
	return out
}

func assertUsers(t *testing.T, p flamingo.Pair, a, b string) {
	t.Helper()
	assert.Equal(t, a+"+"+b, p.A.User+"+"+p.B.User, "pair (A waited longer)")
}

// TestMatcherV2_Order: a newcomer is paired with the oldest acceptable waiter that
// shares an interest with it, even if an older one does not; if none shares one, with
// the oldest relaxed waiter, but only if the newcomer is relaxed too.
func TestMatcherV2_Order(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		tests := []struct {
			name     string
			waiters  func(r *v2Rig) []flamingo.Ticket
			newcomer func(r *v2Rig) flamingo.Ticket
			want     string // the waiter paired, or "" for none
		}{
			{
				name: "shared interest before age, newcomer not relaxed",
				waiters: func(r *v2Rig) []flamingo.Ticket {
					return []flamingo.Ticket{r.ticket("old", 0), never(r.ticket("young", 1, "music"))}
				},
				newcomer: func(r *v2Rig) flamingo.Ticket { return never(r.ticket("n", 2, "art", "music")) },
				want:     "young",
			},
			{
				name: "shared interest before age, newcomer relaxed",
				waiters: func(r *v2Rig) []flamingo.Ticket {
					return []flamingo.Ticket{r.ticket("old", 0), r.ticket("young", 1, "music")}
				},
				newcomer: func(r *v2Rig) flamingo.Ticket { return r.ticket("n", 2, "music") },
				want:     "young",
			},
			{
				name: "oldest of those sharing an interest, whichever interest",
				waiters: func(r *v2Rig) []flamingo.Ticket {
					return []flamingo.Ticket{never(r.ticket("w1", 0, "b")), never(r.ticket("w2", 1, "a")), never(r.ticket("w3", 2, "a", "b"))}
				},
				newcomer: func(r *v2Rig) flamingo.Ticket { return never(r.ticket("n", 3, "a", "b")) },
				want:     "w1",
			},
			{
				name: "no shared interest: the oldest relaxed waiter",
				waiters: func(r *v2Rig) []flamingo.Ticket {
					return []flamingo.Ticket{never(r.ticket("unrelaxed", 0, "x")), r.ticket("old", 1, "y"), r.ticket("young", 2)}
				},
				newcomer: func(r *v2Rig) flamingo.Ticket { return r.ticket("n", 3, "z") },
				want:     "old",
			},
			{
				name: "no shared interest and the newcomer not relaxed: it waits",
				waiters: func(r *v2Rig) []flamingo.Ticket {
					return []flamingo.Ticket{r.ticket("old", 0)}
				},
				newcomer: func(r *v2Rig) flamingo.Ticket { return never(r.ticket("n", 1, "z")) },
			},
			{
				name: "a waiter not relaxed is not taken by a relaxed newcomer",
				waiters: func(r *v2Rig) []flamingo.Ticket {
					return []flamingo.Ticket{never(r.ticket("w", 0, "x"))}
				},
				newcomer: func(r *v2Rig) flamingo.Ticket { return r.ticket("n", 1) },
			},
			{
				name: "RelaxAt zero means relaxed",
				waiters: func(r *v2Rig) []flamingo.Ticket {
					return []flamingo.Ticket{r.ticket("w", 0, "x")}
				},
				newcomer: func(r *v2Rig) flamingo.Ticket { return r.ticket("n", 1, "y") },
				want:     "w",
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := newV2Rig(t, client, Options{})
				ws := tt.waiters(r)
				for i := range ws {
					ws[i] = her(ws[i])
				}
				r.enqueue(ws...)
				r.enqueue(him(tt.newcomer(r)))
				users := []string{"n"}
				if tt.want != "" {
					assertUsers(t, r.waitPairs(1)[0], tt.want, "n")
					users = nil
				}
				for _, w := range ws {
					if w.User != tt.want {
						users = append(users, w.User)
					}
				}
				r.waiting(users...)
				assert.Equal(t, len(r.pairs), r.count(), "no pair but the one expected")
			})
		}
	})
}

// TestMatcherV2_Pools: tickets meet only within their pool, also when pool and
// interest names would run together in a key without the pool's length.
func TestMatcherV2_Pools(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		r := newV2Rig(t, client, Options{})
		in := func(tk flamingo.Ticket, pool string) flamingo.Ticket { tk.Pool = pool; return tk }
		r.enqueue(in(r.ticket("en1", 0), "en"), in(r.ticket("de1", 1), "de"), in(r.ticket("none1", 2), ""))
		r.enqueue(in(never(r.ticket("ab", 3, "c")), "a/b"), in(never(r.ticket("a", 4, "b/c")), "a"))
		r.enqueue(in(r.ticket("de2", 5), "de"))
		assertUsers(t, r.waitPairs(1)[0], "de1", "de2")
		r.enqueue(in(r.ticket("none2", 6), ""))
		assertUsers(t, r.waitPairs(2)[1], "none1", "none2")
		r.enqueue(in(never(r.ticket("ab2", 7, "c")), "a/b"))
		assertUsers(t, r.waitPairs(3)[2], "ab", "ab2")
		r.waiting("en1", "a")
	})
}

// TestMatcherV2_Avoid: a waiter that the newcomer avoids, or that avoids it, is
// passed over for the next one, in the interest search, the relaxed search and the
// relaxation pass.
func TestMatcherV2_Avoid(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		avoiding := func(tk flamingo.Ticket, users ...string) flamingo.Ticket { tk.Avoid = users; return tk }
		tests := []struct {
			name      string
			interests []string
			newAvoids bool // the newcomer avoids the first waiter, else the waiter it
		}{
			{name: "interest search, newcomer avoids", interests: []string{"x"}, newAvoids: true},
			{name: "interest search, waiter avoids", interests: []string{"x"}},
			{name: "relaxed search, newcomer avoids", newAvoids: true},
			{name: "relaxed search, waiter avoids"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := newV2Rig(t, client, Options{})
				w1, w2, n := her(never(r.ticket("w1", 0, tt.interests...))), her(never(r.ticket("w2", 1, tt.interests...))), him(never(r.ticket("n", 2, tt.interests...)))
				if len(tt.interests) == 0 {
					w1.RelaxAt, w2.RelaxAt, n.RelaxAt = time.Time{}, time.Time{}, time.Time{}
				}
				if tt.newAvoids {
					n = avoiding(n, "someone", "w1")
				} else {
					w1 = avoiding(w1, "n")
				}
				r.enqueue(w1, w2, n)
				assertUsers(t, r.waitPairs(1)[0], "w2", "n")
				r.waiting("w1")
			})
		}
		t.Run("relaxation pass", func(t *testing.T) {
			r := newV2Rig(t, client, Options{RelaxTick: time.Hour})
			soon := time.Now().Add(150 * time.Millisecond)
			w1, w2, n := her(r.ticket("w1", 0)), her(r.ticket("w2", 1)), him(r.ticket("n", 2, "x"))
			w1.Avoid, n.RelaxAt = []string{"n"}, soon
			r.enqueue(w1, w2, n)
			// (Should the machine stall past soon before n's Enqueue, n is relaxed there,
			// and the Enqueue makes the pair.)
			require.Eventually(t, func() bool {
				pairs, err := r.m.relaxPass(t.Context())
				require.NoError(t, err)
				return pairs == 1 || r.count() == 1
			}, v2Wait, 5*time.Millisecond)
			assertUsers(t, r.waitPairs(1)[0], "w2", "n")
			r.waiting("w1")
		})
	})
}

// TestMatcherV2_Relax: a waiter whose RelaxAt comes is paired by the tick, without
// a new arrival, and not before its RelaxAt.
func TestMatcherV2_Relax(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		tests := []struct {
			name       string
			wait, next time.Duration // until each one's RelaxAt; 0: relaxed at once
			interests  [2][]string
		}{
			{name: "disjoint interests", wait: 150 * time.Millisecond, next: 100 * time.Millisecond, interests: [2][]string{{"a"}, {"b"}}},
			{name: "a waiter without interests", next: 100 * time.Millisecond, interests: [2][]string{nil, {"b"}}},
			{name: "the waiter relaxes, the newcomer has none", wait: 100 * time.Millisecond, interests: [2][]string{{"a"}, nil}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := newV2Rig(t, client, Options{RelaxTick: 10 * time.Millisecond})
				now := time.Now()
				w, n := r.ticket("w", 0, tt.interests[0]...), r.ticket("n", 1, tt.interests[1]...)
				if tt.wait > 0 {
					w.RelaxAt = now.Add(tt.wait)
				}
				if tt.next > 0 {
					n.RelaxAt = now.Add(tt.next)
				}
				r.enqueue(w, n)
				p := r.waitPairs(1)[0]
				assertUsers(t, p, "w", "n")
				r.mu.Lock()
				at := r.at[0]
				r.mu.Unlock()
				assert.False(t, at.Before(w.RelaxAt), "reported at %v, before w's RelaxAt %v", at, w.RelaxAt)
				assert.False(t, at.Before(n.RelaxAt), "reported at %v, before n's RelaxAt %v", at, n.RelaxAt)
				assert.True(t, p.A.Acceptable(p.B, at), "the pair is acceptable when reported")
			})
		}
	})
}

// TestMatcherV2_RelaxPass: the pass pairs nothing while no RelaxAt has come, and
// relaxes earliest RelaxAt first: two waiters that relax in one pass meet each other.
func TestMatcherV2_RelaxPass(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		r := newV2Rig(t, client, Options{RelaxTick: time.Hour})
		r.enqueue(never(r.ticket("later", 0, "a")), r.ticket("old", 1))
		pairs, err := r.m.relaxPass(t.Context())
		require.NoError(t, err)
		assert.Zero(t, pairs, "nothing is due")

		soon := time.Now().Add(150 * time.Millisecond)
		x, y := r.ticket("x", 2, "b"), r.ticket("y", 3, "c")
		x.RelaxAt, y.RelaxAt = soon, soon
		x.Avoid = []string{"old"} // so that x, relaxed first, does not take old
		y.Avoid = []string{"old"}
		r.enqueue(x, y)
		require.Eventually(t, func() bool {
			pairs, err := r.m.relaxPass(t.Context())
			require.NoError(t, err)
			return pairs > 0 || r.count() > 0 // (or y's Enqueue, after a stall past soon)
		}, v2Wait, 5*time.Millisecond)
		assertUsers(t, r.waitPairs(1)[0], "x", "y")
		r.waiting("later", "old")
	})
}

// TestMatcherV2_ServerClock: relaxing follows the Redis server's clock from the
// Enqueue on: a ticket that has an hour left by the node's clock relaxes an hour of
// server time later, wherever the server's clock stands.
func TestMatcherV2_ServerClock(t *testing.T) {
	s := miniredis.RunT(t)
	client := newClient(t, s.Addr())
	serverNow := time.Now().Add(2 * time.Hour) // the server runs two hours ahead
	s.SetTime(serverNow)
	r := newV2Rig(t, client, Options{RelaxTick: time.Hour})
	w, n := r.ticket("w", 0, "a"), r.ticket("n", 1, "b")
	w.RelaxAt, n.RelaxAt = time.Now().Add(time.Hour), time.Now().Add(time.Hour)
	r.enqueue(w, n)
	pairs, err := r.m.relaxPass(t.Context())
	require.NoError(t, err)
	assert.Zero(t, pairs, "relaxed by comparing RelaxAt with the server's clock")

	s.SetTime(serverNow.Add(time.Hour + time.Second))
	pairs, err = r.m.relaxPass(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, pairs, "an hour of server time later")
	assertUsers(t, r.waitPairs(1)[0], "w", "n")
}

// TestMatcherV2_Fields: a Pair carries every field of both tickets as Enqueue got
// them, nil and empty alike, on the pairs of Enqueue and of the relaxation pass.
func TestMatcherV2_Fields(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		r := newV2Rig(t, client, Options{RelaxTick: 10 * time.Millisecond})
		w := flamingo.Ticket{
			User: "w", Gender: flamingo.GenderFemale, Preference: flamingo.PreferMale,
			JoinedAt: time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC), Node: "node-w",
			Interests: []string{"chess", "jazz"}, RelaxAt: time.Date(2025, 3, 1, 12, 0, 10, 987654321, time.UTC),
			Pool: "en", Labels: map[string]string{"tier": "gold", "": ""}, Avoid: []string{"x", "y"},
		}
		n := flamingo.Ticket{
			User: "n", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny,
			JoinedAt: time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC), Interests: []string{"jazz"},
			Pool: "en", Labels: map[string]string{}, Avoid: []string{},
		}
		r.enqueue(w, n)
		p := r.waitPairs(1)[0]
		assertTicket(t, w, p.A)
		assertTicket(t, n, p.B)

		// Through the relaxation pass, with Interests empty but not nil.
		x, y := w, n
		x.User, y.User = "x", "y"
		x.Interests, x.RelaxAt = []string{}, time.Time{}
		x.Avoid, y.Avoid = nil, nil
		y.Interests, y.RelaxAt = []string{"golf"}, time.Now().Add(30*time.Millisecond)
		r.enqueue(x, y)
		p = r.waitPairs(2)[1]
		assertTicket(t, x, p.A)
		assertTicket(t, y, p.B)
	})
}

func assertTicket(t *testing.T, want, got flamingo.Ticket) {
	t.Helper()
	assert.True(t, want.JoinedAt.Equal(got.JoinedAt), "JoinedAt %v, want %v", got.JoinedAt, want.JoinedAt)
	assert.True(t, want.RelaxAt.Equal(got.RelaxAt), "RelaxAt %v, want %v", got.RelaxAt, want.RelaxAt)
	assert.Equal(t, want.RelaxAt.IsZero(), got.RelaxAt.IsZero())
	want.JoinedAt, got.JoinedAt, want.RelaxAt, got.RelaxAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	assert.Equal(t, want, got)
}

// TestMatcherV2_NoLeftovers: a ticket leaves every key it was listed under when it
// is paired, cancelled, or dropped by Stop.
func TestMatcherV2_NoLeftovers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		prefix := freshPrefix(t, client)
		r := newV2Rig(t, client, Options{Prefix: prefix, RelaxTick: time.Hour})
		pooled := func(tk flamingo.Ticket) flamingo.Ticket { tk.Pool = "p"; tk.Avoid = []string{"z"}; return tk }
		r.enqueue(never(r.ticket("a", 0, "x", "y")), pooled(never(r.ticket("b", 1, "x"))), pooled(r.ticket("c", 2, "q")))
		r.enqueue(pooled(r.ticket("d", 3)), never(r.ticket("e", 4, "y")))
		r.waitPairs(2)
		r.enqueue(never(r.ticket("f", 5, "k")), r.ticket("g", 6, "k"), r.ticket("h", 7))
		r.waitPairs(3)
		r.waiting("b", "h")
		r.enqueue(never(r.ticket("i", 8, "m")), r.ticket("j", 9, "n"))
		ctx, cancel := context.WithTimeout(context.Background(), v2Wait)
		defer cancel()
		require.NoError(t, r.m.Stop(ctx))

		keys, err := client.Keys(t.Context(), prefix+"*").Result()
		require.NoError(t, err)
		assert.Equal(t, []string{r.m.keys.seq}, keys, "only the sequence counter is left")
	})
}

// TestMatcherV2_DeadNodeLeftovers: when the cluster's down function takes a dead
// node's tickets out (it knows only their wait: bucket), the members they leave in
// int: sets and relax are never paired, and are removed when a script meets them.
func TestMatcherV2_DeadNodeLeftovers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		prefix := freshPrefix(t, client)
		dead := newV2Rig(t, client, Options{Prefix: prefix, NodeID: "dead", RelaxTick: time.Hour})
		r := newV2Rig(t, client, Options{Prefix: prefix, NodeID: "live", RelaxTick: time.Hour})
		soon := time.Now().Add(30 * time.Millisecond)
		g1, g2 := never(r.ticket("ghost1", 0, "x")), r.ticket("ghost2", 1, "y")
		g2.RelaxAt = soon
		dead.enqueue(g1, g2)
		require.NoError(t, leaveScript.Run(t.Context(), client, []string{dead.m.keys.nodeTickets},
			dead.m.keys.base, "dead", time.Now().UnixMilli(), 1000).Err())

		r.enqueue(never(r.ticket("n1", 2, "x")), r.ticket("n2", 3))
		users := func(key string) []string {
			members, err := client.ZRange(t.Context(), key, 0, -1).Result()
			require.NoError(t, err)
			for i, m := range members {
				members[i] = m[32:]
			}
			slices.Sort(members)
			return members
		}
		assert.Equal(t, []string{"n1"}, users(r.m.keys.interest(flamingo.GenderOther, flamingo.PreferAny, "", "x")),
			"n1's Enqueue removed ghost1 from int:.../x")
		require.Eventually(t, func() bool {
			_, err := r.m.relaxPass(t.Context())
			require.NoError(t, err)
			return time.Now().After(soon) && !slices.Contains(users(r.m.keys.relax), "ghost2")
		}, v2Wait, 5*time.Millisecond, "the pass drops ghost2 from relax once it is due")
		assert.Equal(t, []string{"ghost1", "n1"}, users(r.m.keys.relax), "ghost1 is dropped when it is due, in an hour")
		assert.Zero(t, r.count()+dead.count(), "nobody was paired with a ghost")
		r.waiting("n1", "n2")
	})
}

// TestMatcherV2_AcrossNodes: a waiter of one node that relaxes is paired by the tick
// with a relaxed waiter of another node, and both nodes report the pair.
func TestMatcherV2_AcrossNodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		prefix := freshPrefix(t, client)
		a := newV2Rig(t, client, Options{Prefix: prefix, NodeID: "a", RelaxTick: 10 * time.Millisecond})
		b := newV2Rig(t, client, Options{Prefix: prefix, NodeID: "b", RelaxTick: time.Hour})
		w := a.ticket("w", 0) // (times from one rig's base)
		w.Avoid = []string{"blocked"}
		b.enqueue(w)
		x := a.ticket("blocked", 1, "a") // w avoids it, from another node
		x.RelaxAt = time.Time{}
		a.enqueue(x)
		n := a.ticket("n", 2, "a")
		n.RelaxAt = time.Now().Add(50 * time.Millisecond)
		n.Avoid = []string{"blocked"}
		a.enqueue(n)
		assertUsers(t, a.waitPairs(1)[0], "w", "n")
		assertUsers(t, b.waitPairs(1)[0], "w", "n")
		a.waiting("blocked")
	})
}

// TestMatcherV2_InvalidTicket: Enqueue refuses a NUL byte where the scripts use it
// as a separator.
func TestMatcherV2_InvalidTicket(t *testing.T) {
	r := newV2Rig(t, miniredisClient(t), Options{})
	for _, tk := range []flamingo.Ticket{
		r.ticket("a\x00b", 0),
		func() flamingo.Ticket { tk := r.ticket("u", 0); tk.Pool = "p\x00"; return tk }(),
		r.ticket("u", 0, "ok", "no\x00"),
	} {
		assert.ErrorIs(t, r.m.Enqueue(t.Context(), tk), flamingo.ErrInvalidTicket, "%q", tk.User)
	}
}

// TestMatcherV2_Model enqueues random tickets (pools, interests, avoid lists, relaxed
// or not for an hour) one at a time and checks every pair, and who is left waiting,
// against a model of the rules built on flamingo.Ticket.Acceptable.
func TestMatcherV2_Model(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		for seed := range uint64(4) {
			t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) { runV2Model(t, client, seed) })
		}
	})
}

func runV2Model(t *testing.T, client redis.UniversalClient, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	r := newV2Rig(t, client, Options{RelaxTick: time.Hour})
	vocab := []string{"a", "b", "c", "d", "e"}
	var waiting []flamingo.Ticket // in JoinedAt order
	var want []string
	now := time.Now()
	for i := range 150 {
		tk := r.ticket("u"+strconv.Itoa(i), rng.IntN(100000))
		tk.Gender = genders[rng.IntN(len(genders))]
		tk.Preference = preferences[rng.IntN(len(preferences))]
		tk.Pool = []string{"", "", "x"}[rng.IntN(3)]
		for _, in := range vocab {
			if rng.IntN(5) == 0 {
				tk.Interests = append(tk.Interests, in)
			}
		}
		if rng.IntN(2) == 0 {
			tk.RelaxAt = now.Add(time.Hour)
		}
		for range rng.IntN(3) {
			tk.Avoid = append(tk.Avoid, "u"+strconv.Itoa(rng.IntN(150))) // earlier users, and later ones
		}
		// The model: the oldest acceptable waiter sharing an interest, else the oldest
		// acceptable one.
		best := -1
		for j, w := range waiting {
			if !tk.Acceptable(w, now) {
				continue
			}
			shares := len(tk.CommonInterests(w)) > 0
			if best < 0 || (shares && len(tk.CommonInterests(waiting[best])) == 0) {
				best = j
			}
			if shares {
				break
			}
		}
		r.enqueue(tk)
		if best < 0 {
			// After the waiters that joined at the same time: they came first.
			at := len(waiting)
			for at > 0 && tk.JoinedAt.Before(waiting[at-1].JoinedAt) {
				at--
			}
			waiting = slices.Insert(waiting, at, tk)
			continue
		}
		w := waiting[best]
		waiting = slices.Delete(waiting, best, best+1)
		a, b := w, tk
		if tk.JoinedAt.Before(w.JoinedAt) {
			a, b = tk, w
		}
		want = append(want, a.User+"+"+b.User)
		got := r.waitPairs(len(want))
		require.Equal(t, want[len(want)-1], pairUsers(got)[len(want)-1], "pair %d (seed %d, ticket %s)", len(want), seed, describeV2(tk))
	}
	for _, w := range waiting {
		r.waiting(w.User)
	}
	assert.Len(t, r.waitPairs(len(want)), len(want))
	t.Logf("seed %d: %d pairs, %d left waiting", seed, len(want), len(waiting))
}

func describeV2(t flamingo.Ticket) string {
	return fmt.Sprintf("%s %s/%s pool %q interests %v relaxed %v avoid %v", t.User, t.Gender, t.Preference,
		t.Pool, t.Interests, t.Relaxed(time.Now()), t.Avoid)
}
