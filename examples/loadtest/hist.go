package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histSub is the number of buckets per power of two: values are kept to within
// 1/histSub (about 1.6%).
const histSub = 64

// hist is a log-linear latency histogram in microseconds that many goroutines may
// record into at once.
type hist struct {
	counts [40 * histSub]atomic.Uint64
	max    atomic.Int64 // nanoseconds
	n      atomic.Uint64
}

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	exp := bits.Len64(us) - 7 // us >> exp lies in [64, 128)
	i := (exp+1)*histSub + int(us>>uint(exp)) - histSub
	if i >= len(hist{}.counts) {
		i = len(hist{}.counts) - 1
	}
	return i
}

// histValue is the lower bound, in microseconds, of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	exp := i/histSub - 1
	return uint64(i%histSub+histSub) << uint(exp)
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d/time.Microsecond))].Add(1)
	h.n.Add(1)
	storeMax(&h.max, int64(d))
}

// quantile returns the q-quantile (0 < q ≤ 1) in milliseconds, or 0 when empty.
func (h *hist) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			// The middle of the bucket.
			lo, hi := histValue(i), histValue(i+1)
			return (float64(lo) + float64(hi)) / 2 / 1000
		}
	}
	return h.maxMS()
}

func (h *hist) maxMS() float64 {
	return float64(h.max.Load()) / 1e6
}

// latency is the summary of a histogram that a report prints.
type latency struct {
	N   uint64  `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func (h *hist) summary() latency {
	return latency{N: h.n.Load(), P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99), Max: h.maxMS()}
}

// storeMax raises a to v if v is larger, without a lock.
func storeMax(a *atomic.Int64, v int64) {
	for {
		m := a.Load()
		if v <= m || a.CompareAndSwap(m, v) {
			return
		}
	}
}
