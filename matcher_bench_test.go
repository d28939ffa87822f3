//go:build unix

package flamingo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the CPU time the process has used, user and system: on a shared
// machine the wall clock also counts the time other programs held the cores.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// zipfInterests makes n interest lists of 0 to 5 words each (uniformly many), the
// words drawn from a vocabulary of 1,000 with a Zipf distribution (s = 1.1): a few
// words are on most lists, most words on few. Each list is sorted and without
// duplicates, as the Engine makes them.
func zipfInterests(r *rand.Rand, n int) [][]string {
	vocab := make([]string, 1000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("topic%03d", i)
	}
	z := rand.NewZipf(r, 1.1, 1, uint64(len(vocab)-1))
	lists := make([][]string, n)
	for i := range lists {
		var l []string
		for range r.IntN(6) {
			l = append(l, vocab[z.Uint64()])
		}
		slices.Sort(l)
		lists[i] = slices.Compact(l)
	}
	return lists
}

// BenchmarkMemoryMatcher_Interests measures matching with interests against a queue of
// a given size. The waiters are women looking for men, each with 0 to 5 Zipf-drawn
// interests, half of them relaxed; each operation is one newcomer, a man looking for a
// woman with 0 to 5 interests of his own, half of them relaxed. He meets the oldest
// woman sharing an interest with him, else (if he is relaxed) the oldest relaxed one;
// a fresh waiter then takes her place, so the queue keeps its size. A newcomer who
// finds nobody waits, and is cancelled. The refills and cancels are timed too:
// matches/s counts the whole loop, by the wall clock, and matches/cpu-s by the CPU
// time the process used meanwhile (garbage collection included).
func BenchmarkMemoryMatcher_Interests(b *testing.B) {
	for _, waiting := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("waiting=%d", waiting), func(b *testing.B) {
			benchmarkInterests(b, waiting)
		})
	}
}

func benchmarkInterests(b *testing.B, waiting int) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	interests := zipfInterests(r, 1<<14)
	base := time.Now()
	strict := base.Add(time.Hour) // RelaxAt of those not relaxed: not reached in the run
	relaxed := base.Add(-time.Hour)
	clock := 0
	ticket := func(user string, g Gender, p Preference, i int) Ticket {
		clock++
		t := Ticket{User: user, Gender: g, Preference: p, JoinedAt: base.Add(time.Duration(clock) * time.Microsecond),
			Interests: interests[i%len(interests)], RelaxAt: strict}
		if i%2 == 0 {
			t.RelaxAt = relaxed
		}
		return t
	}

	var (
		left    Ticket // the waiter taken by the last pair
		matches int
	)
	m := NewMemoryMatcher()
	if err := m.Start(func(p Pair) { left, matches = p.A, matches+1 }); err != nil {
		b.Fatal(err)
	}
	defer m.Stop(ctx)
	k := 0 // the next interest list
	for i := range waiting {
		k++
		if err := m.Enqueue(ctx, ticket(fmt.Sprintf("w%d", i), GenderFemale, PreferMale, k*7)); err != nil {
			b.Fatal(err)
		}
	}
	if m.Len() != waiting || matches != 0 {
		b.Fatalf("%d waiting and %d pairs after filling, want %d and 0", m.Len(), matches, waiting)
	}

	b.ReportAllocs()
	n := 0
	cpu0 := cpuTime(b)
	for b.Loop() {
		n++
		k++
		before := matches
		if err := m.Enqueue(ctx, ticket("newcomer", GenderMale, PreferFemale, k*7+3)); err != nil {
			b.Fatal(err)
		}
		if matches == before { // nobody for him: he leaves
			if ok, _ := m.Cancel(ctx, "newcomer"); !ok {
				b.Fatal("the newcomer neither paired nor waiting")
			}
			continue
		}
		k++
		if err := m.Enqueue(ctx, ticket(left.User, GenderFemale, PreferMale, k*7)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	if m.Len() != waiting {
		b.Fatalf("%d waiting at the end, want %d", m.Len(), waiting)
	}
	b.ReportMetric(float64(matches)/b.Elapsed().Seconds(), "matches/s")
	b.ReportMetric(float64(matches)/cpu.Seconds(), "matches/cpu-s")
	b.ReportMetric(float64(matches)/float64(n), "matches/op")
}

// BenchmarkMemoryMatcher_Relax measures one relaxation: a waiter whose RelaxAt has
// come leaves the relax heap and looks for the oldest relaxed waiter it may meet, as
// the matcher's timer does for each waiter due. The queue holds the given number of
// women with interests, none relaxed, due one after the other.
//   - alone: nobody relaxed waits for her; she joins the relaxed list;
//   - pairs: a relaxed man waits; she is paired with him, and another man comes.
//
// Each operation relaxes one waiter and adds one (and a man, in pairs), so the heap
// keeps its size; ns/relax is the wall time of the relaxation alone, the refills left
// out, and cpu-ns/op the CPU time of a whole operation, refills included.
// A timer call that finds k waiters due costs about k relaxations.
func BenchmarkMemoryMatcher_Relax(b *testing.B) {
	for _, waiting := range []int{10_000, 100_000} {
		for _, mode := range []string{"alone", "pairs"} {
			b.Run(fmt.Sprintf("waiting=%d/%s", waiting, mode), func(b *testing.B) {
				benchmarkRelax(b, waiting, mode == "pairs")
			})
		}
	}
}

func benchmarkRelax(b *testing.B, waiting int, pairs bool) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	interests := zipfInterests(r, 1<<14)
	for i, l := range interests {
		if len(l) == 0 {
			interests[i] = []string{"topic999"}
		}
	}
	// RelaxAt values far ahead, so that the real timer never fires in the run: the
	// benchmark moves its own clock.
	base := time.Now().Add(time.Hour)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Microsecond) }
	m := NewMemoryMatcher()
	if err := m.Start(func(Pair) {}); err != nil {
		b.Fatal(err)
	}
	defer m.Stop(ctx)
	for i := range waiting {
		t := Ticket{User: fmt.Sprintf("w%d", i), Gender: GenderFemale, Preference: PreferMale,
			JoinedAt: at(i), RelaxAt: at(i), Interests: interests[i%len(interests)]}
		if err := m.Enqueue(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	man := func(i int) Ticket {
		return Ticket{User: fmt.Sprintf("m%d", i), Gender: GenderMale, Preference: PreferFemale, JoinedAt: at(i)}
	}
	if pairs {
		if err := m.Enqueue(ctx, man(-1)); err != nil {
			b.Fatal(err)
		}
	}

	b.ReportAllocs()
	made := 0
	i := 0
	var relaxing time.Duration // in relaxDueLocked alone, without the refills
	cpu0 := cpuTime(b)
	for b.Loop() {
		start := time.Now()
		m.mu.Lock()
		got := m.relaxDueLocked(at(i), nil)
		m.mu.Unlock()
		relaxing += time.Since(start)
		made += len(got)
		j := waiting + i
		t := Ticket{User: fmt.Sprintf("w%d", j), Gender: GenderFemale, Preference: PreferMale,
			JoinedAt: at(j), RelaxAt: at(j), Interests: interests[j%len(interests)]}
		if err := m.Enqueue(ctx, t); err != nil {
			b.Fatal(err)
		}
		if pairs {
			if err := m.Enqueue(ctx, man(j)); err != nil {
				b.Fatal(err)
			}
		}
		i++
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	if pairs && made != i {
		b.Fatalf("%d pairs in %d relaxations", made, i)
	}
	if !pairs && made != 0 {
		b.Fatalf("%d pairs, want none", made)
	}
	b.ReportMetric(float64(relaxing.Nanoseconds())/float64(i), "ns/relax")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(i), "cpu-ns/op")
}
