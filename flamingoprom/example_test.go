package flamingoprom_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingoprom"
	"github.com/flamingochat/flamingo/flamingotest"
)

// Register the engine's collector, let two strangers meet and talk, and scrape
// /metrics as Prometheus would.
func Example() {
	engine, err := flamingo.New(flamingo.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Shutdown(context.Background())

	reg := prometheus.NewRegistry()
	reg.MustRegister(flamingoprom.NewCollector(engine, flamingoprom.Options{}))
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{}) // serve it at /metrics

	// Two strangers meet, and one says hello twice.
	alice, bob := connect(engine), connect(engine)
	alice.send(`{"type":"init"}`)
	bob.send(`{"type":"init"}`)
	alice.await("ready")
	bob.await("ready")
	alice.send(`{"type":"join_queue","payload":{"gender":"female","preference":"any"}}`)
	bob.send(`{"type":"join_queue","payload":{"gender":"male","preference":"female"}}`)
	chat := alice.await("match_found")
	for range 2 {
		alice.send(`{"type":"send_message","payload":{"chat_id":` + chat + `,"content":"hello"}}`)
		bob.await("message_received")
	}

	rec := httptest.NewRecorder()
	metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	lines := bufio.NewScanner(rec.Body)
	for lines.Scan() {
		for _, name := range []string{"flamingo_online", "flamingo_in_chat", "flamingo_matches_total", "flamingo_messages_total", "flamingo_match_wait_seconds_count"} {
			if strings.HasPrefix(lines.Text(), name+" ") {
				fmt.Println(lines.Text())
			}
		}
	}
	// Output:
	// flamingo_in_chat 2
	// flamingo_match_wait_seconds_count 2
	// flamingo_matches_total 1
	// flamingo_messages_total 2
	// flamingo_online 2
}

// stranger is a bare client for the example: one end of an in-memory pipe that the
// engine serves, speaking raw protocol frames.
type stranger struct{ conn *flamingotest.PipeEnd }

func connect(e *flamingo.Engine) *stranger {
	server, client := flamingotest.Pipe()
	go func() { _ = e.Serve(context.Background(), server) }()
	return &stranger{conn: client}
}

func (s *stranger) send(frame string) {
	if err := s.conn.Write(context.Background(), []byte(frame)); err != nil {
		log.Fatal(err)
	}
}

// await reads events until one of type typ, and returns its "chat_id" as a JSON
// string, if it has one.
func (s *stranger) await(typ flamingo.EventType) string {
	for {
		b, err := s.conn.Read(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		var ev struct {
			Type    flamingo.EventType
			Payload struct {
				ChatID json.RawMessage `json:"chat_id"`
			}
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			log.Fatal(err)
		}
		if ev.Type == typ {
			return string(ev.Payload.ChatID)
		}
	}
}
