package flamingo_test

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// stranger is a bare client for the examples: one end of an in-memory pipe that the
// engine serves, speaking raw protocol frames.
type stranger struct {
	conn   *flamingotest.PipeEnd
	served chan struct{} // closed when Serve returns
}

func connect(e *flamingo.Engine) *stranger {
	server, client := flamingotest.Pipe()
	s := &stranger{conn: client, served: make(chan struct{})}
	go func() {
		defer close(s.served)
		_ = e.Serve(context.Background(), server)
	}()
	return s
}

func (s *stranger) send(frame string) {
	if err := s.conn.Write(context.Background(), []byte(frame)); err != nil {
		log.Fatal(err)
	}
}

// next reads the next event and decodes its payload into v (if v is not nil).
func (s *stranger) next(v any) flamingo.EventType {
	b, err := s.conn.Read(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	var env flamingo.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		log.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(env.Payload, v); err != nil {
			log.Fatal(err)
		}
	}
	return env.Type
}

// leave closes the connection and waits until the engine has seen it go.
func (s *stranger) leave() {
	_ = s.conn.Close(flamingo.CloseNormal, "")
	<-s.served
}

// Two strangers meet and talk over in-memory connections, exactly as they would over
// WebSocket.
func Example() {
	engine, err := flamingo.New(flamingo.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Shutdown(context.Background())

	alice, bob := connect(engine), connect(engine)
	alice.send(`{"type":"init"}`)
	bob.send(`{"type":"init"}`)
	fmt.Println(alice.next(nil), bob.next(nil))

	alice.send(`{"type":"join_queue","payload":{"gender":"female","preference":"any"}}`)
	bob.send(`{"type":"join_queue","payload":{"gender":"male","preference":"female"}}`)
	fmt.Println(alice.next(nil), bob.next(nil))

	var match flamingo.MatchFoundPayload
	fmt.Println(bob.next(&match), "with a stranger who is", match.Partner.Gender)
	alice.next(&match)

	alice.send(`{"type":"send_message","payload":{"chat_id":"` + match.ChatID + `","content":"hi stranger"}}`)
	var msg flamingo.MessageReceivedPayload
	fmt.Println(bob.next(&msg), msg.Content)

	bob.send(`{"type":"leave_chat"}`)
	var ended flamingo.ChatEndedPayload
	fmt.Println(alice.next(&ended), ended.Reason)
	fmt.Printf("%+v\n", engine.Stats())
	// Output:
	// ready ready
	// queue_joined queue_joined
	// match_found with a stranger who is female
	// message_received hi stranger
	// chat_ended partner_left
	// {Online:2 InQueue:0 InChat:0}
}

// Bad input is answered with an error event; the connection stays usable.
func Example_errors() {
	engine, err := flamingo.New(flamingo.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Shutdown(context.Background())

	c := connect(engine)
	var e flamingo.ErrorPayload
	c.send(`{"type":"ping"}`)
	c.next(&e)
	fmt.Println(e.Code, e.Ref)
	c.send(`{"type":"init"}`)
	c.next(nil)
	c.send(`{"type":`)
	c.next(&e)
	fmt.Println(e.Code)
	c.send(`{"type":"join_queue","payload":{"gender":"robot"}}`)
	c.next(&e)
	fmt.Println(e.Code, e.Ref)
	c.send(`{"type":"ping"}`)
	fmt.Println(c.next(nil))
	// Output:
	// not_initialized ping
	// bad_json
	// invalid_payload join_queue
	// pong
}

// Serve the chat over WebSocket beside the rest of an application.
func ExampleNewWebSocketHandler() {
	engine, err := flamingo.New(flamingo.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.Handle("/ws", flamingo.NewWebSocketHandler(engine, &flamingo.WebSocketOptions{
		OriginPatterns: []string{"chat.example.com"}, // pages allowed besides this host
	}))
	// http.ListenAndServe(":8080", mux)
}

// A moderation hook refuses messages with a code of its own.
func ExampleConfig_moderation() {
	engine, err := flamingo.New(flamingo.Config{
		OnMessage: func(m flamingo.Message) error {
			if m.Content == "buy cheap pills" {
				return &flamingo.Error{Code: "spam", Message: "that looks like spam"}
			}
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Shutdown(context.Background())

	a, b := connect(engine), connect(engine)
	for _, s := range []*stranger{a, b} {
		s.send(`{"type":"init"}`)
		s.send(`{"type":"join_queue","payload":{"gender":"other"}}`)
		s.next(nil) // ready
		s.next(nil) // queue_joined
	}
	var match flamingo.MatchFoundPayload
	a.next(&match)
	b.next(nil)

	a.send(`{"type":"send_message","payload":{"chat_id":"` + match.ChatID + `","content":"buy cheap pills"}}`)
	var refused flamingo.ErrorPayload
	a.next(&refused)
	fmt.Println(refused.Code, "-", refused.Message)
	// Output:
	// spam - that looks like spam
}

// A user reloads the page mid-chat: init with the stored user_id resumes the chat, and
// what the partner said meanwhile is delivered.
func ExampleEngine_Serve_resume() {
	engine, err := flamingo.New(flamingo.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Shutdown(context.Background())

	a, b := connect(engine), connect(engine)
	var first flamingo.ReadyPayload
	a.send(`{"type":"init"}`)
	a.next(&first) // a page keeps first.UserID in localStorage
	b.send(`{"type":"init"}`)
	b.next(nil)
	for _, s := range []*stranger{a, b} {
		s.send(`{"type":"join_queue","payload":{"gender":"other"}}`)
		s.next(nil) // queue_joined
	}
	var match flamingo.MatchFoundPayload
	a.next(&match)
	b.next(nil)

	a.leave() // the page reloads
	b.send(`{"type":"send_message","payload":{"chat_id":"` + match.ChatID + `","content":"are you there?"}}`)

	again := connect(engine)
	again.send(`{"type":"init","payload":{"user_id":"` + first.UserID + `"}}`)
	var ready flamingo.ReadyPayload
	again.next(&ready)
	fmt.Println("resumed:", ready.Resumed, "same chat:", ready.ChatID == match.ChatID)
	var msg flamingo.MessageReceivedPayload
	again.next(&msg)
	fmt.Println("held for a:", msg.Content)
	// Output:
	// resumed: true same chat: true
	// held for a: are you there?
}

// An admin endpoint that kicks a user out, behind a bearer token. Handles are what
// hooks and logs name users by; here OnMatch records them.
func ExampleEngine_Kick() {
	handles := make(chan [2]string, 1)
	engine, err := flamingo.New(flamingo.Config{OnMatch: func(c flamingo.ChatInfo) { handles <- c.Users }})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Shutdown(context.Background())

	const token = "s3cret" // in production: from the environment or a secret store
	admin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, []byte("Bearer "+token)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if err := engine.Kick(r.FormValue("user"), "kicked by a moderator"); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	alice, bob := connect(engine), connect(engine)
	alice.send(`{"type":"init"}`)
	bob.send(`{"type":"init"}`)
	alice.next(nil)
	bob.next(nil)
	alice.send(`{"type":"join_queue","payload":{"gender":"female","preference":"any"}}`)
	alice.next(nil)
	bob.send(`{"type":"join_queue","payload":{"gender":"male","preference":"female"}}`)
	bob.next(nil)
	alice.next(nil)
	bob.next(nil)
	alice1 := (<-handles)[0] // alice waited longer

	kick := func(auth string) int {
		req := httptest.NewRequest(http.MethodPost, "/admin/kick?user="+alice1, nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, req)
		return rec.Code
	}
	fmt.Println("without the token:", kick("Bearer guess"))
	fmt.Println("with it:", kick("Bearer "+token))
	var ended flamingo.ChatEndedPayload
	fmt.Println("bob sees:", bob.next(&ended), ended.Reason)
	fmt.Println("again:", kick("Bearer "+token))
	// Output:
	// without the token: 401
	// with it: 204
	// bob sees: chat_ended partner_left
	// again: 404
}
