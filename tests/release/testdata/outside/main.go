// Command outside is what a new user of flamingo writes in their own module. The release
// test builds it against module zips made from this repository, fetched through a module
// proxy as a user's go command would fetch the tagged versions, and checks what it prints.
//
// It pairs two strangers through an Engine whose Matcher is flamingoredis on an
// in-process miniredis, over flamingotest pipes, walks one chat from start to end, and
// reads two of the counters that flamingoprom exports.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingoprom"
	"github.com/flamingochat/flamingo/flamingoredis"
	"github.com/flamingochat/flamingo/flamingotest"
)

func main() {
	// Only a failing run ever waits this long: every wait below ends on an event.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	redisServer, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer redisServer.Close()
	rdb := redis.NewClient(&redis.Options{Addr: redisServer.Addr()})
	defer rdb.Close()

	engine, err := flamingo.New(flamingo.Config{
		Matcher: flamingoredis.New(rdb, flamingoredis.Options{}),
	})
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(flamingoprom.NewCollector(engine, flamingoprom.Options{}))

	served := make(chan error, 2)
	connect := func(name string) *stranger {
		server, client := flamingotest.Pipe()
		go func() { served <- engine.Serve(ctx, server) }()
		return &stranger{name: name, conn: client}
	}
	a, b := connect("a"), connect("b")

	a.send(ctx, `{"type":"init"}`)
	a.await(ctx, "ready")
	b.send(ctx, `{"type":"init"}`)
	b.await(ctx, "ready")

	a.send(ctx, `{"type":"join_queue","payload":{"gender":"female","preference":"any"}}`)
	a.await(ctx, "queue_joined")
	b.send(ctx, `{"type":"join_queue","payload":{"gender":"male","preference":"female"}}`)
	a.await(ctx, "match_found")
	chatID := b.await(ctx, "match_found").ChatID

	a.send(ctx, fmt.Sprintf(`{"type":"send_message","payload":{"chat_id":%q,"content":"hello from outside"}}`, chatID))
	b.await(ctx, "message_received")
	a.send(ctx, `{"type":"leave_chat"}`)
	b.await(ctx, "chat_ended")

	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		if name := f.GetName(); name == "flamingo_matches_total" || name == "flamingo_messages_total" {
			fmt.Println(name, f.GetMetric()[0].GetCounter().GetValue())
		}
	}

	if err := engine.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	for range 2 {
		if err := <-served; err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("engine shut down")
}

// stranger is one client of the engine, on the client end of a flamingotest pipe.
type stranger struct {
	name string
	conn *flamingotest.PipeEnd
}

// payload holds the fields of the events that main prints.
type payload struct {
	ChatID  string `json:"chat_id"`
	Resumed bool   `json:"resumed"`
	Partner struct {
		Gender string `json:"gender"`
	} `json:"partner"`
	Content string `json:"content"`
	Reason  string `json:"reason"`
}

func (s *stranger) send(ctx context.Context, frame string) {
	if err := s.conn.Write(ctx, []byte(frame)); err != nil {
		log.Fatalf("%s: send: %v", s.name, err)
	}
}

// await reads events until one of type want arrives, prints it, and returns its payload.
// Events of other types are skipped, since some arrive in an order the protocol leaves
// open (queue_joined and match_found for the second stranger to join); an error event
// ends the program.
func (s *stranger) await(ctx context.Context, want string) payload {
	for {
		frame, err := s.conn.Read(ctx)
		if err != nil {
			log.Fatalf("%s: waiting for %s: %v", s.name, want, err)
		}
		var ev struct {
			Type    string  `json:"type"`
			Payload payload `json:"payload"`
		}
		if err := json.Unmarshal(frame, &ev); err != nil {
			log.Fatalf("%s: %v in %s", s.name, err, frame)
		}
		if ev.Type == "error" {
			log.Fatalf("%s: waiting for %s: %s", s.name, want, frame)
		}
		if ev.Type != want {
			continue
		}
		p := ev.Payload
		switch want {
		case "ready":
			fmt.Printf("%s: ready, resumed=%t\n", s.name, p.Resumed)
		case "match_found":
			fmt.Printf("%s: matched with a %s stranger\n", s.name, p.Partner.Gender)
		case "message_received":
			fmt.Printf("%s: received %q\n", s.name, p.Content)
		case "chat_ended":
			fmt.Printf("%s: chat ended, %s\n", s.name, p.Reason)
		default:
			fmt.Printf("%s: %s\n", s.name, want)
		}
		return p
	}
}
