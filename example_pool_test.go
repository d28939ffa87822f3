package flamingo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/flamingochat/flamingo"
)

// langKey is the request context key under which the handler below keeps the user's
// language.
type langKey struct{}

// wsStranger is a bare WebSocket client for the example.
type wsStranger struct{ t flamingo.Transport }

func dialStranger(url string) *wsStranger {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	return &wsStranger{t: flamingo.NewWebSocketTransport(c)}
}

// leave closes the connection, as a page that is closed does.
func (s *wsStranger) leave() { _ = s.t.Close(flamingo.CloseNormal, "") }

func (s *wsStranger) send(frame string) {
	if err := s.t.Write(context.Background(), []byte(frame)); err != nil {
		log.Fatal(err)
	}
}

// next reads the next event and decodes its payload into v (if v is not nil).
func (s *wsStranger) next(v any) flamingo.EventType {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := s.t.Read(ctx)
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

// Users meet only within their pool. Here the pool is the language a page asks for
// with ?lang= on the WebSocket URL: the handler puts it in the request's context,
// which is the context Config.OnJoin gets, and OnJoin refuses a join without one.
func ExampleConfig_OnJoin_pools() {
	engine, err := flamingo.New(flamingo.Config{
		OnJoin: func(ctx context.Context, j *flamingo.JoinRequest) error {
			lang, _ := ctx.Value(langKey{}).(string)
			if lang != "en" && lang != "fr" {
				return &flamingo.Error{Code: "unsupported_language", Message: "choose en or fr"}
			}
			j.Pool = lang
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	chat := flamingo.NewWebSocketHandler(engine, nil)
	withLang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), langKey{}, r.URL.Query().Get("lang"))
		chat.ServeHTTP(w, r.WithContext(ctx))
	})
	srv := httptest.NewServer(withLang)
	defer srv.Close()
	defer engine.Shutdown(context.Background()) // first: it closes the WebSockets
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	join := func(lang string) *wsStranger {
		s := dialStranger(url + "/?lang=" + lang)
		s.send(`{"type":"init"}`)
		s.next(nil) // ready
		s.send(`{"type":"join_queue","payload":{"gender":"other"}}`)
		var refused flamingo.ErrorPayload
		if typ := s.next(&refused); typ != flamingo.EventQueueJoined {
			fmt.Println(lang+":", typ, refused.Code)
		}
		return s
	}
	ann, bruno := join("en"), join("fr")
	join("de").leave()
	fmt.Println("ann and bruno wait apart:", engine.Stats().InQueue == 2)

	carla := join("en")
	var a, c flamingo.MatchFoundPayload
	ann.next(&a)
	carla.next(&c)
	fmt.Println("carla meets ann:", a.ChatID == c.ChatID)

	bruno.send(`{"type":"ping"}`)
	fmt.Println("bruno still waits:", bruno.next(nil))

	dora := join("fr")
	var b, d flamingo.MatchFoundPayload
	bruno.next(&b)
	dora.next(&d)
	fmt.Println("dora meets bruno:", b.ChatID == d.ChatID)
	for _, s := range []*wsStranger{ann, bruno, carla, dora} {
		s.leave()
	}
	// Output:
	// de: error unsupported_language
	// ann and bruno wait apart: true
	// carla meets ann: true
	// bruno still waits: pong
	// dora meets bruno: true
}
