package flamingo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// benchContent is a typical chat line, the same size as the load tool's default.
const benchContent = "Hey! Where are you writing from? I'm in Lisbon, it's sunny."

// benchChat is two users of one engine, matched and chatting over in-memory pipes.
type benchChat struct {
	e      *flamingo.Engine
	a, b   *flamingotest.PipeEnd // the client ends
	frame  []byte                // a send_message frame from a into the chat
	served sync.WaitGroup
}

// newBenchChat starts an engine, connects two users, and matches them. Its stop method
// closes both pipes and shuts the engine down, waiting for every goroutine.
func newBenchChat(b *testing.B) *benchChat {
	b.Helper()
	// No rate limits: a benchmark sends far more than a person would.
	e, err := flamingo.New(flamingo.Config{MessageRate: unlimited, EventRate: unlimited})
	if err != nil {
		b.Fatal(err)
	}
	bc := &benchChat{e: e}
	ctx := context.Background()
	dial := func() *flamingotest.PipeEnd {
		server, client := flamingotest.Pipe()
		bc.served.Add(1)
		go func() {
			defer bc.served.Done()
			_ = e.Serve(ctx, server)
		}()
		return client
	}
	bc.a, bc.b = dial(), dial()
	for _, c := range []*flamingotest.PipeEnd{bc.a, bc.b} {
		benchWrite(b, c, `{"type":"init"}`)
		benchExpect(b, c, flamingo.EventReady)
		benchWrite(b, c, `{"type":"join_queue","payload":{"gender":"other","preference":"any"}}`)
		benchExpect(b, c, flamingo.EventQueueJoined)
	}
	var chatID string
	for _, c := range []*flamingotest.PipeEnd{bc.a, bc.b} {
		var p flamingo.MatchFoundPayload
		if err := benchExpect(b, c, flamingo.EventMatchFound).Decode(&p); err != nil {
			b.Fatal(err)
		}
		chatID = p.ChatID
	}
	bc.frame = []byte(`{"type":"send_message","payload":{"chat_id":` + strconv.Quote(chatID) +
		`,"content":` + strconv.Quote(benchContent) + `}}`)
	return bc
}

func (bc *benchChat) stop(b *testing.B) {
	b.Helper()
	_ = bc.a.Close(flamingo.CloseNormal, "")
	_ = bc.b.Close(flamingo.CloseNormal, "")
	bc.served.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bc.e.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
}

func benchWrite(b *testing.B, c *flamingotest.PipeEnd, frame string) {
	b.Helper()
	if err := c.Write(context.Background(), []byte(frame)); err != nil {
		b.Fatal(err)
	}
}

func benchExpect(b *testing.B, c *flamingotest.PipeEnd, typ flamingo.EventType) flamingotest.Event {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), flamingotest.DefaultTimeout)
	defer cancel()
	raw, err := c.Read(ctx)
	if err != nil {
		b.Fatal(err)
	}
	ev, err := decodeBenchEvent(raw)
	if err != nil {
		b.Fatal(err)
	}
	if ev.Type != typ {
		b.Fatalf("got %s, want %s", raw, typ)
	}
	return ev
}

func decodeBenchEvent(raw []byte) (flamingotest.Event, error) {
	var env flamingo.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return flamingotest.Event{}, err
	}
	return flamingotest.Event{Type: env.Type, Payload: env.Payload, Raw: raw}, nil
}

// BenchmarkEngineRelay measures one message relayed by the engine over the in-memory
// pipe: a send_message frame read from one user, checked, and written to the partner
// as message_received. One op is one relayed message, so allocs/op and B/op are per
// message. They include the pipe's own copy of each frame (one allocation per
// direction); the "pipe" sub-benchmarks measure the pipe alone, so the engine's share
// is the difference.
//
//   - pingpong: one message in flight; the writer goroutine starts and exits for each.
//   - stream: the sender keeps the pipe full; the writer drains batches.
func BenchmarkEngineRelay(b *testing.B) {
	b.Run("engine/pingpong", func(b *testing.B) {
		bc := newBenchChat(b)
		defer bc.stop(b)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := bc.a.Write(ctx, bc.frame); err != nil {
				b.Fatal(err)
			}
			if _, err := bc.b.Read(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("engine/stream", func(b *testing.B) {
		bc := newBenchChat(b)
		defer bc.stop(b)
		b.ReportAllocs()
		benchStream(b, bc.a, bc.b, bc.frame)
	})
	// stream, with Engine.Metrics taken every millisecond meanwhile: the engine's
	// side of a Prometheus scrape (flamingoprom reads Metrics), at ten thousand
	// times the rate of a 10 s scrape interval.
	b.Run("engine/stream-scraped", func(b *testing.B) {
		bc := newBenchChat(b)
		defer bc.stop(b)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					_ = bc.e.Metrics()
				}
			}
		}()
		b.ReportAllocs()
		benchStream(b, bc.a, bc.b, bc.frame)
		close(stop)
		<-done
	})
	// stream, with every message acknowledged: each carries a new client_msg_id,
	// and the sender reads message_sent for it (conversation v2).
	b.Run("engine/stream-acked", func(b *testing.B) {
		bc := newBenchChat(b)
		defer bc.stop(b)
		b.ReportAllocs()
		benchStreamAcked(b, bc)
	})
	b.Run("pipe/pingpong", func(b *testing.B) {
		a, peer := flamingotest.Pipe()
		frame := []byte(`{"type":"send_message","payload":{"chat_id":"9f86d081884c7d659a2feaa0c55ad015","content":` + strconv.Quote(benchContent) + `}}`)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := a.Write(ctx, frame); err != nil {
				b.Fatal(err)
			}
			if _, err := peer.Read(ctx); err != nil {
				b.Fatal(err)
			}
		}
		_ = a.Close(flamingo.CloseNormal, "")
	})
	b.Run("pipe/stream", func(b *testing.B) {
		a, peer := flamingotest.Pipe()
		frame := []byte(`{"type":"send_message","payload":{"chat_id":"9f86d081884c7d659a2feaa0c55ad015","content":` + strconv.Quote(benchContent) + `}}`)
		b.ReportAllocs()
		benchStream(b, a, peer, frame)
		_ = a.Close(flamingo.CloseNormal, "")
	})
}

// benchStream writes b.N frames to from on one goroutine and reads b.N from to on the
// benchmark's goroutine. The writer stays at most streamWindow frames ahead of the
// reader, as a client that waits for its echoes would, so the engine's per-connection
// queue bound is never reached.
func benchStream(b *testing.B, from, to *flamingotest.PipeEnd, frame []byte) {
	const streamWindow = 32
	ctx := context.Background()
	n := b.N
	window := make(chan struct{}, streamWindow)
	errc := make(chan error, 1)
	b.ResetTimer()
	go func() {
		for range n {
			window <- struct{}{}
			if err := from.Write(ctx, frame); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for range n {
		if _, err := to.Read(ctx); err != nil {
			b.Fatal(err)
		}
		<-window
	}
	b.StopTimer()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// benchStreamAcked is benchStream for messages with a client_msg_id: the reader takes
// each message from the partner and then its message_sent from the sender, so that
// neither queue grows past the window.
func benchStreamAcked(b *testing.B, bc *benchChat) {
	const streamWindow = 32
	ctx := context.Background()
	n := b.N
	window := make(chan struct{}, streamWindow)
	errc := make(chan error, 1)
	prefix := bytes.TrimSuffix(bc.frame, []byte("}}"))
	b.ResetTimer()
	go func() {
		frame := make([]byte, 0, len(prefix)+64)
		for i := range n {
			window <- struct{}{}
			frame = append(append(append(frame[:0], prefix...), `,"client_msg_id":"m`...), strconv.Itoa(i)...)
			frame = append(frame, `"}}`...)
			if err := bc.a.Write(ctx, frame); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for range n {
		if _, err := bc.b.Read(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := bc.a.Read(ctx); err != nil {
			b.Fatal(err)
		}
		<-window
	}
	b.StopTimer()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
