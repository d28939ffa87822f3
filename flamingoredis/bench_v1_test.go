package flamingoredis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flamingochat/flamingo"
)

// v1EnqueueScript is the enqueue script of the v1 matcher (commit 647cca0, its
// names written out), kept only so that BenchmarkScriptV1V2 can measure the v2
// scripts against it on the same redis-server at the same time.
var v1EnqueueScript = redis.NewScript(`
local function older(a, b)
  for i = 1, 32, 8 do
    local x = tonumber(string.sub(a, i, i + 7), 16)
    local y = tonumber(string.sub(b, i, i + 7), 16)
    if x ~= y then return x < y end
  end
  return false
end

if redis.call('EXISTS', KEYS[1]) == 1 then return 'dup' end

while true do
  local best, bestKey
  for i = 5, #KEYS do
    local m = redis.call('ZRANGE', KEYS[i], 0, 0)[1]
    if m and (best == nil or older(m, best)) then best, bestKey = m, KEYS[i] end
  end
  if best == nil then break end
  redis.call('ZREM', bestKey, best)
  local user = string.sub(best, 33)
  local tkey = ARGV[1] .. user
  local w = redis.call('HMGET', tkey, 'gender', 'preference', 'joined_at', 'node', 'member')
  if w[5] == best then
    redis.call('DEL', tkey)
    redis.call('SREM', ARGV[2] .. w[4] .. ':tickets', user)
    local entry = {
      'w_user', user, 'w_gender', w[1], 'w_preference', w[2], 'w_joined_at', w[3], 'w_node', w[4],
      'n_user', ARGV[3], 'n_gender', ARGV[4], 'n_preference', ARGV[5], 'n_joined_at', ARGV[6],
      'n_node', ARGV[8], 'chat', ARGV[9],
    }
    redis.call('XADD', ARGV[2] .. w[4] .. ':inbox', '*', unpack(entry))
    if w[4] ~= ARGV[8] then
      redis.call('XADD', ARGV[2] .. ARGV[8] .. ':inbox', '*', unpack(entry))
    end
    return 'paired'
  end
end

local seq = tostring(redis.call('INCR', KEYS[2]))
local member = ARGV[7] .. string.rep('0', 16 - #seq) .. seq .. ARGV[3]
redis.call('ZADD', KEYS[4], 0, member)
redis.call('HSET', KEYS[1], 'user', ARGV[3], 'gender', ARGV[4], 'preference', ARGV[5],
  'joined_at', ARGV[6], 'node', ARGV[8], 'bucket', KEYS[4], 'member', member)
redis.call('SADD', KEYS[3], ARGV[3])
return 'waiting'
`)

// v1Enqueue runs v1EnqueueScript as the v1 Matcher.Enqueue did.
func v1Enqueue(ctx context.Context, client redis.UniversalClient, k *keys, node string, t flamingo.Ticket) error {
	ks := []string{k.ticket(t.User), k.seq, k.nodeTickets, k.bucket(t.Gender, t.Preference)}
	for _, g := range genders {
		if !t.Preference.Accepts(g) {
			continue
		}
		for _, p := range preferences {
			if p.Accepts(t.Gender) {
				ks = append(ks, k.bucket(g, p))
			}
		}
	}
	return v1EnqueueScript.Run(ctx, client, ks, k.ticketPrefix, k.nodePrefix, t.User, string(t.Gender),
		string(t.Preference), strconv.FormatInt(t.JoinedAt.UnixNano(), 10), orderHex(t.JoinedAt), node,
		randomHex(16)).Err()
}

// BenchmarkScriptV1V2 measures the Redis time of the enqueue scripts per match, v1's
// against v2's, on one real redis-server that nothing else uses, in alternating
// rounds of 1,000 matches each, so that both see the same load on the machine. Both
// run the script directly, as their Enqueue would (no stream reader runs: the pairs
// stay in the inbox streams). It reports, per match (two script calls):
//
//	v1-cpu-µs/match, v2-cpu-µs/match  the redis-server's CPU time (INFO cpu, user +
//	                                  sys): parsing, the script, the reply
//	v1-µs/match, v2-µs/match          EVALSHA's time in INFO commandstats: the
//	                                  script alone, but wall time, so it grows with
//	                                  the load of the machine
//	v2/v1-cpu, v2/v1                  the ratios
//
// Workloads:
//
//	plain:     a woman and a man without interests (what BenchmarkMatch does)
//	interests: the same with 5 interests each, one shared, not relaxed, for v2 (v1
//	           ignores them): the man looks at 5 × 2 int: heads
//	relaxed:   5 interests each, none shared, both relaxed: 10 int: heads, then the
//	           2 wait: heads
//
// ns/op counts both versions' matches and means nothing here.
func BenchmarkScriptV1V2(b *testing.B) {
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
	tests := []struct {
		name      string
		wi, ni    []string
		unrelaxed bool
	}{
		{name: "plain"},
		{name: "interests", wi: five(0), ni: five(4), unrelaxed: true},
		{name: "relaxed", wi: five(0), ni: five(10)},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			ctx := context.Background()
			v1Keys := newKeys(freshPrefix(b, client), "v1")
			m := New(client, Options{Prefix: freshPrefix(b, client), NodeID: "v2"}) // never started: its scripts are run directly
			var seq int
			pair := func() (w, n flamingo.Ticket) {
				seq++
				s := strconv.Itoa(seq)
				now := time.Now()
				w = flamingo.Ticket{User: "w" + s, Gender: flamingo.GenderFemale, Preference: flamingo.PreferMale, JoinedAt: now, Interests: tt.wi}
				n = flamingo.Ticket{User: "n" + s, Gender: flamingo.GenderMale, Preference: flamingo.PreferFemale, JoinedAt: now, Interests: tt.ni}
				if tt.unrelaxed {
					w.RelaxAt, n.RelaxAt = now.Add(time.Hour), now.Add(time.Hour)
				}
				return w, n
			}
			round := func(v1 bool, n int) (usec int64, cpu float64) {
				if err := client.ConfigResetStat(ctx).Err(); err != nil {
					b.Fatal(err)
				}
				cpu0 := redisCPU(b, client)
				for range n {
					w, j := pair()
					for _, t := range []flamingo.Ticket{w, j} {
						var res string
						var err error
						if v1 {
							err = v1Enqueue(ctx, client, &v1Keys, "v1", t)
						} else {
							ks, args := m.enqueueCall(t)
							res, err = enqueueScript.Run(ctx, client, ks, args...).Text()
							if t.User == j.User && res != "paired" {
								b.Fatalf("v2 enqueue of %s: %q, want paired", t.User, res)
							}
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				return commandStats(b, client)["evalsha"].usec, redisCPU(b, client) - cpu0
			}
			const per = 1000
			var usec [2]int64
			var cpu [2]float64
			b.ResetTimer()
			for done := 0; done < b.N; done += per {
				n := min(per, b.N-done)
				for i, v1 := range []bool{true, false} {
					u, c := round(v1, n)
					usec[i] += u
					cpu[i] += c
				}
			}
			b.StopTimer()
			perMatch := func(x float64) float64 { return x / float64(b.N) }
			b.ReportMetric(perMatch(cpu[0]*1e6), "v1-cpu-µs/match")
			b.ReportMetric(perMatch(cpu[1]*1e6), "v2-cpu-µs/match")
			b.ReportMetric(cpu[1]/cpu[0], "v2/v1-cpu")
			b.ReportMetric(perMatch(float64(usec[0])), "v1-µs/match")
			b.ReportMetric(perMatch(float64(usec[1])), "v2-µs/match")
			b.ReportMetric(float64(usec[1])/float64(usec[0]), "v2/v1")
		})
	}
}

// redisCPU returns the CPU time the redis-server has used, in seconds.
func redisCPU(tb testing.TB, client redis.UniversalClient) float64 {
	s, err := client.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var total float64
	for line := range strings.Lines(s) {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (name == "used_cpu_user" || name == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			total += f
		}
	}
	return total
}
