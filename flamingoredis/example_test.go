package flamingoredis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingoredis"
	"github.com/flamingochat/flamingo/flamingotest"
)

// node starts one flamingo node of a cluster on the Redis at addr.
func node(addr string) *flamingo.Engine {
	client := redis.NewClient(&redis.Options{Addr: addr})
	cluster := flamingoredis.NewCluster(client, flamingoredis.ClusterOptions{})
	engine, err := flamingo.New(flamingo.Config{Matcher: cluster.Matcher(), Broker: cluster})
	if err != nil {
		log.Fatal(err)
	}
	return engine
}

// user is a stranger connected to a node over an in-memory pipe: say sends a frame,
// next returns the type (and, for a message, the content) of the next event.
type user struct {
	conn *flamingotest.PipeEnd
	chat string // from the last match_found
}

func connect(e *flamingo.Engine) *user {
	server, client := flamingotest.Pipe()
	go func() { _ = e.Serve(context.Background(), server) }()
	return &user{conn: client}
}

func (u *user) say(frame string) {
	if err := u.conn.Write(context.Background(), []byte(frame)); err != nil {
		log.Fatal(err)
	}
}

func (u *user) next() string {
	b, err := u.conn.Read(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	var ev struct {
		Type    string
		Payload struct {
			ChatID  string `json:"chat_id"`
			Content string `json:"content"`
		}
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		log.Fatal(err)
	}
	if ev.Type == "match_found" {
		u.chat = ev.Payload.ChatID
	}
	if ev.Payload.Content != "" {
		return ev.Type + ": " + ev.Payload.Content
	}
	return ev.Type
}

// Two nodes share one Redis (here an in-process miniredis): a stranger on one meets a
// stranger on the other, and they talk across the nodes.
func ExampleNewCluster() {
	redisServer, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer redisServer.Close()
	nodeA, nodeB := node(redisServer.Addr()), node(redisServer.Addr())
	defer nodeA.Shutdown(context.Background())
	defer nodeB.Shutdown(context.Background())

	alice, bob := connect(nodeA), connect(nodeB)
	alice.say(`{"type":"init"}`)
	bob.say(`{"type":"init"}`)
	fmt.Println(alice.next(), bob.next())

	alice.say(`{"type":"join_queue","payload":{"gender":"female","preference":"any"}}`)
	fmt.Println(alice.next())
	bob.say(`{"type":"join_queue","payload":{"gender":"male","preference":"female"}}`)
	fmt.Println(bob.next())
	fmt.Println(alice.next(), bob.next(), alice.chat == bob.chat)

	bob.say(`{"type":"send_message","payload":{"chat_id":"` + bob.chat + `","content":"hi from node B"}}`)
	fmt.Println(alice.next())
	alice.say(`{"type":"send_message","payload":{"chat_id":"` + alice.chat + `","content":"hello from node A"}}`)
	fmt.Println(bob.next())
	// Output:
	// ready ready
	// queue_joined
	// queue_joined
	// match_found match_found true
	// message_received: hi from node B
	// message_received: hello from node A
}
