package flamingoredis

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flamingochat/flamingo"
)

// BenchmarkMatchV2 measures one match under the v2 rules on a real redis-server: a
// waiter's Enqueue, a newcomer's Enqueue that pairs them, and the report. Besides
// ns/op (wall time per match, one client) it reports the server's time per match
// (redis-µs/match: every EVALSHA, the stream reads and deletes, from INFO
// commandstats), to set beside BenchmarkMatch/redis/same-node (the same for tickets
// without interests, which costs what the v1 script cost).
//
//	interests:   5 interests each, one shared, preference "any": the newcomer looks
//	             at 5 × 6 int: heads and takes the sharing waiter
//	relaxed:     5 interests each, none shared, both relaxed: 30 int: heads, then the
//	             6 wait: heads
//	backlog-N:   N relaxed women wait, each with 0–5 interests from a Zipf-distributed
//	             vocabulary of 1,000; each match is a woman and then a man, with
//	             interests drawn the same way: he takes the oldest woman sharing one,
//	             else the oldest, so N women keep waiting (N = 0, 10k, 100k)
func BenchmarkMatchV2(b *testing.B) {
	client := realRedisClient(b)
	if !hasCommandStats(b, client) {
		b.Skip("needs INFO commandstats")
	}
	five := func(offset int) []string {
		ss := make([]string, 5)
		for i := range ss {
			ss[i] = "topic" + strconv.Itoa(offset+i)
		}
		return ss
	}
	b.Run("interests", func(b *testing.B) {
		benchmarkMatchV2(b, client, 0, func(int, *rand.Rand) (w, n flamingo.Ticket) {
			w = flamingo.Ticket{Gender: flamingo.GenderFemale, Preference: flamingo.PreferAny, Interests: five(0)}
			n = flamingo.Ticket{Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, Interests: five(4)}
			w.RelaxAt, n.RelaxAt = time.Now().Add(time.Hour), time.Now().Add(time.Hour)
			return w, n
		})
	})
	b.Run("relaxed", func(b *testing.B) {
		benchmarkMatchV2(b, client, 0, func(int, *rand.Rand) (w, n flamingo.Ticket) {
			w = flamingo.Ticket{Gender: flamingo.GenderFemale, Preference: flamingo.PreferAny, Interests: five(0)}
			n = flamingo.Ticket{Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, Interests: five(10)}
			return w, n
		})
	})
	for _, backlog := range []int{0, 10000, 100000} {
		b.Run("backlog-"+strconv.Itoa(backlog), func(b *testing.B) {
			benchmarkMatchV2(b, client, backlog, func(_ int, rng *rand.Rand) (w, n flamingo.Ticket) {
				w = flamingo.Ticket{Gender: flamingo.GenderFemale, Preference: flamingo.PreferMale, Interests: zipfInterests(rng)}
				n = flamingo.Ticket{Gender: flamingo.GenderMale, Preference: flamingo.PreferFemale, Interests: zipfInterests(rng)}
				return w, n
			})
		})
	}
}

// zipfVocabulary draws interests from 1,000 words, word k with probability about
// proportional to 1/(k+1).
var zipfVocabulary = func() []string {
	v := make([]string, 1000)
	for i := range v {
		v[i] = "w" + strconv.Itoa(i)
	}
	return v
}()

// zipfInterests returns 0 to 5 distinct interests, sorted as in a Ticket.
func zipfInterests(rng *rand.Rand) []string {
	z := rand.NewZipf(rng, 1.07, 1, uint64(len(zipfVocabulary)-1))
	n := rng.IntN(6)
	if n == 0 {
		return nil
	}
	seen := make(map[uint64]bool, n)
	for len(seen) < n {
		seen[z.Uint64()] = true
	}
	out := make([]string, 0, n)
	for k := range seen {
		out = append(out, zipfVocabulary[k])
	}
	// (sorted by the word, as the engine gives them)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// benchmarkMatchV2 fills the queue with backlog waiters made by the first ticket of
// pair, then runs b.N matches of the two tickets pair returns (users and JoinedAt are
// set here) and waits until all are reported.
func benchmarkMatchV2(b *testing.B, client redis.UniversalClient, backlog int, pair func(i int, rng *rand.Rand) (w, n flamingo.Ticket)) {
	prefix := freshPrefix(b, client)
	var reported atomic.Int64
	m := New(client, Options{Prefix: prefix, NodeID: "bench", RelaxTick: time.Hour})
	if err := m.Start(func(flamingo.Pair) { reported.Add(1) }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			b.Error(err)
		}
	})
	ctx := context.Background()
	start := time.Now().Add(-time.Hour)
	var seq atomic.Int64
	ticket := func(t flamingo.Ticket, prefix string) flamingo.Ticket {
		i := seq.Add(1)
		t.User = prefix + strconv.FormatInt(i, 10)
		t.JoinedAt = start.Add(time.Duration(i) * time.Microsecond)
		return t
	}
	if backlog > 0 {
		var wg sync.WaitGroup
		const fillers = 32
		for f := range fillers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(f), 1))
				for range backlog / fillers {
					w, _ := pair(0, rng)
					if err := m.Enqueue(ctx, ticket(w, "b")); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	rng := rand.New(rand.NewPCG(7, 7))
	if err := client.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		w, n := pair(i, rng)
		if err := m.Enqueue(ctx, ticket(w, "w")); err != nil {
			b.Fatal(err)
		}
		if err := m.Enqueue(ctx, ticket(n, "n")); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for reported.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d reports arrived", reported.Load(), b.N)
		}
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	stats := commandStats(b, client)
	b.ReportMetric(float64(nodeUsec(stats))/float64(b.N), "redis-µs/match")
	if s := stats["evalsha"]; s.calls > 0 {
		b.ReportMetric(float64(s.usec)/float64(s.calls), "script-µs/call")
	}
}

// BenchmarkRelaxPass measures the relaxation pass on a real redis-server: idle, with
// no waiter whose RelaxAt has come (what most ticks cost), and busy, relaxing b.N
// waiters that each meet a relaxed waiter (redis-µs/pair). The idle pass runs with one
// waiter in relax (the script then reads TIME; with relax empty it does even less).
func BenchmarkRelaxPass(b *testing.B) {
	client := realRedisClient(b)
	if !hasCommandStats(b, client) {
		b.Skip("needs INFO commandstats")
	}
	ctx := context.Background()
	newMatcher := func(b *testing.B) *Matcher {
		m := New(client, Options{Prefix: freshPrefix(b, client), NodeID: "bench", RelaxTick: time.Hour})
		if err := m.Start(func(flamingo.Pair) {}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := m.Stop(context.Background()); err != nil {
				b.Error(err)
			}
		})
		return m
	}
	b.Run("idle", func(b *testing.B) {
		m := newMatcher(b)
		t := flamingo.Ticket{User: "later", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny,
			JoinedAt: time.Now(), Interests: []string{"x"}, RelaxAt: time.Now().Add(time.Hour)}
		if err := m.Enqueue(ctx, t); err != nil {
			b.Fatal(err)
		}
		if err := client.ConfigResetStat(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if _, err := m.relaxPass(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(commandStats(b, client)["evalsha"].usec)/float64(b.N), "redis-µs/pass")
	})
	b.Run("pairs", func(b *testing.B) {
		m := newMatcher(b)
		// Women wait relaxed; men with an interest nobody shares relax at once after
		// the last Enqueue. Filling takes well under 250 µs per ticket.
		relaxAt := time.Now().Add(100*time.Millisecond + time.Duration(b.N)*500*time.Microsecond)
		joined := time.Now().Add(-time.Hour)
		for i := range b.N {
			s := strconv.Itoa(i)
			w := flamingo.Ticket{User: "w" + s, Gender: flamingo.GenderFemale, Preference: flamingo.PreferMale, JoinedAt: joined}
			n := flamingo.Ticket{User: "n" + s, Gender: flamingo.GenderMale, Preference: flamingo.PreferFemale, JoinedAt: joined,
				Interests: []string{"x"}, RelaxAt: relaxAt}
			if err := m.Enqueue(ctx, w); err != nil {
				b.Fatal(err)
			}
			if err := m.Enqueue(ctx, n); err != nil {
				b.Fatal(err)
			}
		}
		if time.Now().After(relaxAt) {
			b.Fatal("filling the queue took longer than planned: the Enqueues relaxed some")
		}
		time.Sleep(time.Until(relaxAt) + time.Millisecond)
		if err := client.ConfigResetStat(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		made := 0
		for made < b.N {
			n, err := m.relaxPass(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				b.Fatalf("the pass made %d of %d pairs", made, b.N)
			}
			made += n
		}
		b.StopTimer()
		b.ReportMetric(float64(commandStats(b, client)["evalsha"].usec)/float64(b.N), "redis-µs/pair")
	})
}
