package flamingoredis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// BenchmarkMatch measures one match: a waiter's Enqueue, a compatible newcomer's
// Enqueue that pairs them, and the report on the waiter's node. ns/op is the wall time
// per match as seen by one client; on a real redis-server it also reports the server's
// own time per match (redis-µs/match: the enqueue script twice plus the stream reads
// and deletes, from INFO commandstats; see nodeUsec) and per enqueue script call.
//
//	same-node:  both tickets on one node; the pair goes to one stream
//	cross-node: the newcomer on a second node; the pair goes to both streams
//	parallel:   same-node, from GOMAXPROCS goroutines at once
func BenchmarkMatch(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			client := be.client(b)
			b.Run("same-node", func(b *testing.B) { benchmarkMatch(b, client, false, false) })
			b.Run("cross-node", func(b *testing.B) { benchmarkMatch(b, client, true, false) })
			b.Run("parallel", func(b *testing.B) { benchmarkMatch(b, client, false, true) })
		})
	}
}

func benchmarkMatch(b *testing.B, client redis.UniversalClient, cross, parallel bool) {
	prefix := freshPrefix(b, client)
	var reported atomic.Int64
	count := func(flamingo.Pair) { reported.Add(1) }
	a := New(client, Options{Prefix: prefix, NodeID: "bench-a"})
	other := New(client, Options{Prefix: prefix, NodeID: "bench-b"})
	for _, m := range []*Matcher{a, other} {
		if err := m.Start(count); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := m.Stop(context.Background()); err != nil {
				b.Error(err)
			}
		})
	}
	joiner := a
	if cross {
		joiner = other
	}
	perMatch := int64(1)
	if cross {
		perMatch = 2 // reported on both nodes
	}
	_, isRedis := client.(*redis.Client)
	realServer := isRedis && client.ConfigResetStat(b.Context()).Err() == nil && hasCommandStats(b, client)

	ctx := context.Background()
	var seq atomic.Int64
	match := func() error {
		i := seq.Add(1)
		now := time.Now()
		w := flamingo.Ticket{User: "w" + strconv.FormatInt(i, 10), Gender: flamingo.GenderFemale, Preference: flamingo.PreferMale, JoinedAt: now}
		j := flamingo.Ticket{User: "j" + strconv.FormatInt(i, 10), Gender: flamingo.GenderMale, Preference: flamingo.PreferFemale, JoinedAt: now}
		if err := a.Enqueue(ctx, w); err != nil {
			return err
		}
		return joiner.Enqueue(ctx, j)
	}
	if realServer {
		if err := client.ConfigResetStat(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := match(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for range b.N {
			if err := match(); err != nil {
				b.Fatal(err)
			}
		}
	}
	want := perMatch * seq.Load()
	deadline := time.Now().Add(10 * time.Second)
	for reported.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d reports arrived", reported.Load(), want)
		}
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	if realServer {
		stats := commandStats(b, client)
		n := float64(seq.Load())
		b.ReportMetric(float64(nodeUsec(stats))/n, "redis-µs/match")
		if s := stats["evalsha"]; s.calls > 0 {
			b.ReportMetric(float64(s.usec)/float64(s.calls), "script-µs/call")
		}
	}
	reported.Store(0)
}

type commandStat struct{ calls, usec int64 }

func hasCommandStats(tb testing.TB, client redis.UniversalClient) bool {
	s, err := client.Info(tb.Context(), "commandstats").Result()
	return err == nil && strings.Contains(s, "cmdstat_")
}

// commandStats parses INFO commandstats: lines like
// "cmdstat_evalsha:calls=10,usec=300,usec_per_call=30.00,...".
func commandStats(tb testing.TB, client redis.UniversalClient) map[string]commandStat {
	s, err := client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	stats := make(map[string]commandStat)
	for line := range strings.Lines(s) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		var st commandStat
		for field := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "calls":
				st.calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				st.usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		stats[name] = st
	}
	if len(stats) == 0 {
		tb.Fatal(fmt.Errorf("no command stats in %q", s))
	}
	return stats
}

// BenchmarkMessage measures one chat message between two users of a cluster, over
// in-memory connections, sent in windows of 64 and read by the partner. ns/op is the
// wall time per message; on a real redis-server it also reports the server's time per
// message: redis-µs/msg is the time of the commands the nodes send (see nodeUsec), from
// INFO commandstats, heartbeats included; redis-cpu-µs/msg is the CPU time of the
// Redis process (INFO cpu), which adds what commandstats leave out: reading
// requests, writing replies, the event loop.
//
//	same-node:  both users on one node: Redis is not involved
//	cross-node: the users on two nodes: the send script, the stream read and delete
//	cross-node-pairs-raw: 64 pairs across the two nodes, each window one message
//	            from each pair, as many users talking at once make them: each call
//	            of the send script carries events for many users
//
// allocs/op counts every allocation of the process per message: both nodes, and the
// test clients, which encode each message as JSON and decode what they receive. The
// -raw variants leave the clients out of it: they write a frame encoded once and only
// look at the type of what they read, so their allocs/op is what the nodes allocate
// per message (plus one copy of each frame in the in-memory pipe, each way).
func BenchmarkMessage(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			client := be.client(b)
			b.Run("same-node", func(b *testing.B) { benchmarkMessage(b, client, false, false, 1) })
			b.Run("cross-node", func(b *testing.B) { benchmarkMessage(b, client, true, false, 1) })
			b.Run("same-node-raw", func(b *testing.B) { benchmarkMessage(b, client, false, true, 1) })
			b.Run("cross-node-raw", func(b *testing.B) { benchmarkMessage(b, client, true, true, 1) })
			b.Run("cross-node-pairs-raw", func(b *testing.B) { benchmarkMessage(b, client, true, true, 64) })
		})
	}
}

// benchmarkMessage sends from the first user of each of pairs pairs to the second;
// pairs > 1 needs raw.
func benchmarkMessage(b *testing.B, client redis.UniversalClient, cross, raw bool, pairs int) {
	prefix := freshPrefix(b, client)
	n1 := startClusterNode(b, client, prefix)
	n2 := n1
	if cross {
		n2 = startClusterNode(b, client, prefix)
	}
	says, expects := make([]func(string), pairs), make([]func(), pairs)
	for i := range pairs {
		alice, bob := flamingotest.Connect(b, n1.e), flamingotest.Connect(b, n2.e)
		alice.Init("")
		bob.Init("")
		match(b, alice, bob)
		says[i], expects[i] = alice.Say, func() { bob.ExpectMessage() }
		if raw {
			says[i], expects[i] = rawSay(b, alice), rawExpectMessage(b, bob)
		}
	}
	_, isRedis := client.(*redis.Client)
	realServer := isRedis && client.ConfigResetStat(b.Context()).Err() == nil && hasCommandStats(b, client)
	content := strings.Repeat("x", 64)
	var cpu float64 // (seconds)
	if realServer {
		cpu = redisCPU(b, client)
	}

	b.ReportAllocs()
	b.ResetTimer()
	const window = 64
	for sent := 0; sent < b.N; sent += window {
		k := min(window, b.N-sent)
		for j := range k {
			says[j%pairs](content)
		}
		for j := range k {
			expects[j%pairs]()
		}
	}
	b.StopTimer()
	if realServer {
		cpu = redisCPU(b, client) - cpu
		b.ReportMetric(float64(nodeUsec(commandStats(b, client)))/float64(b.N), "redis-µs/msg")
		b.ReportMetric(cpu*1e6/float64(b.N), "redis-cpu-µs/msg")
	}
}

// nodeUsec sums the time of the commands that nodes send Redis in the benchmarks:
// the scripts (whose time includes the commands they call, which commandstats also
// count on their own: summing every line counts those twice), and the reads and
// deletes of the node's stream.
func nodeUsec(stats map[string]commandStat) int64 {
	var usec int64
	for _, name := range []string{"evalsha", "eval", "xread", "xdel", "xtrim"} {
		usec += stats[name].usec
	}
	return usec
}

// rawSay returns a function that sends content into c's chat as a frame encoded once,
// straight to c's transport: it allocates nothing but the pipe's copy of the frame.
func rawSay(b *testing.B, c *flamingotest.Client) func(content string) {
	ctx := context.Background()
	var (
		frame []byte
		last  string
	)
	return func(content string) {
		if frame == nil || content != last {
			var err error
			frame, err = json.Marshal(map[string]any{"type": flamingo.EventSendMessage,
				"payload": flamingo.SendMessagePayload{ChatID: c.ChatID, Content: content}})
			if err != nil {
				b.Fatal(err)
			}
			last = content
		}
		if err := c.Conn().Write(ctx, frame); err != nil {
			b.Fatal(err)
		}
	}
}

// rawExpectMessage returns a function that reads the next frame from c's transport
// and fails unless it is a message_received, without decoding it.
func rawExpectMessage(b *testing.B, c *flamingotest.Client) func() {
	want := []byte(`"type":"` + string(flamingo.EventMessageReceived) + `"`)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	return func() {
		frame, err := c.Conn().Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Contains(frame, want) {
			b.Fatalf("got %s, want a message_received", frame)
		}
	}
}
