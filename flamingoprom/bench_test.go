package flamingoprom_test

import (
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingoprom"
	"github.com/flamingochat/flamingo/flamingotest"
)

// BenchmarkCollect measures one scrape of an engine with every metric present:
// Metrics is the engine's snapshot (the only part under the engine's lock), Collect
// adds building the constant metrics, Gather adds the registry's checks and sorting
// (everything but encoding the text), Scrape is a whole /metrics request without the
// network.
func BenchmarkCollect(b *testing.B) {
	e, err := flamingo.New(flamingo.Config{
		JoinRate:  flamingo.RateLimit{Rate: 0.001, Burst: 1},
		OnMatch:   func(flamingo.ChatInfo) {},
		OnMessage: func(flamingo.Message) error { return nil },
		OnChatEnd: func(flamingo.ChatEnd) {},
	})
	require.NoError(b, err)
	b.Cleanup(func() { _ = e.Shutdown(b.Context()) })
	alice, bob := flamingotest.Pair(b, e)
	alice.Say("hello")
	bob.ExpectMessage()
	alice.Send(flamingo.EventLeaveQueue, nil)
	alice.ExpectError(flamingo.CodeNotInQueue)
	alice.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: flamingo.GenderFemale})
	alice.ExpectError(flamingo.CodeRateLimited)
	bob.SendRaw([]byte{0xff})
	bob.ExpectClosed(flamingo.CloseInvalidPayload)
	alice.Expect(flamingo.EventPartnerAway)
	alice.Send(flamingo.EventLeaveChat, nil)
	alice.Expect(flamingo.EventChatEnded)

	c := flamingoprom.NewCollector(e, flamingoprom.Options{})
	b.Run("Metrics", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = e.Metrics()
		}
	})
	b.Run("Collect", func(b *testing.B) {
		b.ReportAllocs()
		ch := make(chan prometheus.Metric, 64) // more than one scrape's metrics
		for b.Loop() {
			c.Collect(ch)
			for len(ch) > 0 {
				<-ch
			}
		}
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	b.Run("Gather", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Scrape", func(b *testing.B) {
		h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		req := httptest.NewRequest("GET", "/metrics", nil)
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	})
}
