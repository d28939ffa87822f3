package flamingoredis

import (
	"sync"
	"time"

	"github.com/flamingochat/flamingo"
)

// roundTripBounds are the buckets of the Redis round-trip histogram, in seconds.
var roundTripBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1}

// clusterStats counts what the node's writer did: the ops Redis applied, by kind, and
// the time each pipeline took.
type clusterStats struct {
	mu     sync.Mutex
	ops    map[string]uint64
	counts [11]uint64 // by bucket of roundTripBounds, and one beyond
	count  uint64
	sum    time.Duration
}

// op counts n ops of the kind name that Redis applied.
func (s *clusterStats) op(name string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		s.ops = make(map[string]uint64)
	}
	s.ops[name] += uint64(n)
}

func (s *clusterStats) roundTrip(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	for i < len(roundTripBounds) && d.Seconds() > roundTripBounds[i] {
		i++
	}
	s.counts[i]++
	s.count++
	s.sum += d
}

// BrokerMetrics returns what this node has written to Redis: the operations Redis
// applied, by kind ("save", "forget", "send", "end_chat", "kick", "handover_reply"),
// and how long each pipeline of them took. [flamingo.Engine.Metrics] reports them.
func (c *Cluster) BrokerMetrics() (ops map[string]uint64, roundTrip flamingo.Histogram) {
	s := &c.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	ops = make(map[string]uint64, len(s.ops))
	for k, v := range s.ops {
		ops[k] = v
	}
	return ops, flamingo.Histogram{
		Bounds: roundTripBounds,
		Counts: append([]uint64(nil), s.counts[:len(roundTripBounds)]...),
		Count:  s.count,
		Sum:    s.sum.Seconds(),
	}
}
