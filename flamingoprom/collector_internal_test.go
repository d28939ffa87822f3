package flamingoprom

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// TestHistogram checks the conversion of the engine's per-bucket counts into
// Prometheus's cumulative ones.
func TestHistogram(t *testing.T) {
	tests := []struct {
		name string
		give flamingo.Histogram
		want map[float64]uint64 // cumulative count by upper bound, +Inf included
	}{
		{
			name: "empty",
			give: flamingo.Histogram{Bounds: []float64{1, 2}, Counts: []uint64{0, 0}},
			want: map[float64]uint64{1: 0, 2: 0, math.Inf(1): 0},
		},
		{
			name: "summed up, with two above the last bound",
			give: flamingo.Histogram{Bounds: []float64{1, 2, 5}, Counts: []uint64{1, 0, 2}, Count: 5, Sum: 12.5},
			want: map[float64]uint64{1: 1, 2: 1, 5: 3, math.Inf(1): 5},
		},
		{
			name: "no bounds",
			give: flamingo.Histogram{Count: 3, Sum: 1},
			want: map[float64]uint64{math.Inf(1): 3},
		},
		{
			name: "a torn snapshot: buckets ahead of Count",
			give: flamingo.Histogram{Bounds: []float64{1, 2}, Counts: []uint64{3, 1}, Count: 2},
			want: map[float64]uint64{1: 3, 2: 4, math.Inf(1): 4},
		},
	}
	d := prometheus.NewDesc("h_seconds", "help", nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m dto.Metric
			require.NoError(t, histogram(d, tt.give).Write(&m))
			h := m.GetHistogram()
			require.NotNil(t, h)
			got := map[float64]uint64{math.Inf(1): h.GetSampleCount()}
			for _, b := range h.GetBucket() {
				got[b.GetUpperBound()] = b.GetCumulativeCount()
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.give.Sum, h.GetSampleSum())
		})
	}
}

// TestByLabel checks that label values are valid UTF-8 and never appear twice.
func TestByLabel(t *testing.T) {
	give := map[flamingo.ErrorCode]uint64{"spam": 1, "bad\xff": 2, "bad\xfe": 3, "": 4}
	want := map[string]uint64{"spam": 1, "bad\uFFFD": 5, "none": 4}
	assert.Equal(t, want, byLabel(give, "none"))
}
