package flamingotest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/flamingochat/flamingo"
)

// DefaultTimeout bounds each wait of a [Client]: generous, since it is only reached when
// a test is about to fail.
const DefaultTimeout = 5 * time.Second

// Event is one server event as a [Client] received it.
type Event struct {
	Type    flamingo.EventType
	Payload json.RawMessage
	// Raw is the whole frame as it arrived.
	Raw []byte
}

// Decode unmarshals the event's payload into v.
func (ev Event) Decode(v any) error {
	if len(ev.Payload) == 0 {
		return nil
	}
	return json.Unmarshal(ev.Payload, v)
}

// Client is a scripted protocol client for tests. Its methods report problems through
// the testing.TB it was made with, so call them from the test's goroutine only (as
// with t.Fatal).
type Client struct {
	t       testing.TB
	conn    flamingo.Transport
	timeout time.Duration

	// UserID is the user_id from the last ready event.
	UserID string
	// ChatID is the chat_id from the last match_found, or ready on resume; cleared by
	// chat_ended.
	ChatID string
}

// NewClient returns a Client that speaks over conn.
func NewClient(t testing.TB, conn flamingo.Transport) *Client {
	return &Client{t: t, conn: conn, timeout: DefaultTimeout}
}

// Connect serves a new in-memory [Pipe] with e and returns a Client on its other end.
// The test's cleanup closes the pipe and waits for Serve to return.
func Connect(t testing.TB, e *flamingo.Engine) *Client {
	t.Helper()
	server, client := Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Serve(context.Background(), server)
	}()
	t.Cleanup(func() {
		_ = client.Close(flamingo.CloseNormal, "")
		<-done
	})
	return NewClient(t, client)
}

// Dial opens a WebSocket to url (ws:// or wss://) and returns a Client over it. The
// test's cleanup closes the connection.
func Dial(t testing.TB, url string, header http.Header) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		t.Fatalf("flamingotest: dial %s: %v", url, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return NewClient(t, flamingo.NewWebSocketTransport(c))
}

// Conn returns the transport the client speaks over.
func (c *Client) Conn() flamingo.Transport { return c.conn }

// SendRaw sends frame exactly as given.
func (c *Client) SendRaw(frame []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.conn.Write(ctx, frame); err != nil {
		c.t.Fatalf("flamingotest: send: %v", err)
	}
}

// Send sends an event of type typ with payload (nil for none) encoded as JSON.
func (c *Client) Send(typ flamingo.EventType, payload any) {
	c.t.Helper()
	env := struct {
		Type    flamingo.EventType `json:"type"`
		Payload any                `json:"payload,omitempty"`
	}{typ, payload}
	b, err := json.Marshal(env)
	if err != nil {
		c.t.Fatalf("flamingotest: encode %s: %v", typ, err)
	}
	c.SendRaw(b)
}

// Next returns the next event, failing the test if none arrives in time or the
// connection ends.
func (c *Client) Next() Event {
	c.t.Helper()
	ev, err := c.read()
	if err != nil {
		c.t.Fatalf("flamingotest: waiting for an event: %v", err)
	}
	return ev
}

func (c *Client) read() (Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	b, err := c.conn.Read(ctx)
	if err != nil {
		return Event{}, err
	}
	raw := append([]byte(nil), b...)
	var env flamingo.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return Event{}, errors.New("flamingotest: server sent a frame that is not JSON: " + string(raw))
	}
	ev := Event{Type: env.Type, Payload: env.Payload, Raw: raw}
	c.track(ev)
	return ev, nil
}

// track keeps UserID and ChatID up to date.
func (c *Client) track(ev Event) {
	switch ev.Type {
	case flamingo.EventReady:
		var p flamingo.ReadyPayload
		if ev.Decode(&p) == nil {
			c.UserID, c.ChatID = p.UserID, p.ChatID
		}
	case flamingo.EventMatchFound:
		var p flamingo.MatchFoundPayload
		if ev.Decode(&p) == nil {
			c.ChatID = p.ChatID
		}
	case flamingo.EventChatEnded:
		c.ChatID = ""
	}
}

// Expect returns the next event, failing the test unless it is of type typ.
func (c *Client) Expect(typ flamingo.EventType) Event {
	c.t.Helper()
	ev := c.Next()
	if ev.Type != typ {
		c.t.Fatalf("flamingotest: got %s, want %s", ev.Raw, typ)
	}
	return ev
}

// ExpectPayload expects an event of type typ and decodes its payload into v.
func (c *Client) ExpectPayload(typ flamingo.EventType, v any) {
	c.t.Helper()
	ev := c.Expect(typ)
	if err := ev.Decode(v); err != nil {
		c.t.Fatalf("flamingotest: decode %s: %v", ev.Raw, err)
	}
}

// ExpectError expects an error event with the given code and returns its payload.
func (c *Client) ExpectError(code flamingo.ErrorCode) flamingo.ErrorPayload {
	c.t.Helper()
	var p flamingo.ErrorPayload
	c.ExpectPayload(flamingo.EventError, &p)
	if p.Code != code {
		c.t.Fatalf("flamingotest: got error %q (%s), want %q", p.Code, p.Message, code)
	}
	return p
}

// ExpectClosed reads until the connection ends and fails the test unless it was closed
// with code. Events that arrive before the close are returned.
func (c *Client) ExpectClosed(code flamingo.CloseCode) []Event {
	c.t.Helper()
	var events []Event
	for {
		ev, err := c.read()
		if err == nil {
			events = append(events, ev)
			continue
		}
		var ce *CloseError
		switch {
		case errors.As(err, &ce):
			if ce.Code != code {
				c.t.Fatalf("flamingotest: closed with %d %q, want %d", ce.Code, ce.Reason, code)
			}
		case websocket.CloseStatus(err) != -1:
			if got := websocket.CloseStatus(err); got != websocket.StatusCode(code) {
				c.t.Fatalf("flamingotest: closed with %d, want %d (%v)", got, code, err)
			}
		default:
			c.t.Fatalf("flamingotest: want close %d, got %v", code, err)
		}
		return events
	}
}

// Sync sends ping and fails the test unless the very next event is pong. Since a
// connection's events are handled and answered in order, it proves that nothing else
// was sent to this client before the ping was answered.
func (c *Client) Sync() {
	c.t.Helper()
	c.Send(flamingo.EventPing, nil)
	c.Expect(flamingo.EventPong)
}

// Init sends init with userID ("" for a new identity) and returns the ready payload.
func (c *Client) Init(userID string) flamingo.ReadyPayload {
	c.t.Helper()
	c.Send(flamingo.EventInit, flamingo.InitPayload{UserID: userID})
	var p flamingo.ReadyPayload
	c.ExpectPayload(flamingo.EventReady, &p)
	return p
}

// Join sends join_queue and expects queue_joined.
func (c *Client) Join(g flamingo.Gender, p flamingo.Preference) {
	c.t.Helper()
	c.Send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: g, Preference: p})
	c.Expect(flamingo.EventQueueJoined)
}

// Say sends content into the client's current chat.
func (c *Client) Say(content string) {
	c.t.Helper()
	c.Send(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: c.ChatID, Content: content})
}

// ExpectMessage expects message_received and returns its payload.
func (c *Client) ExpectMessage() flamingo.MessageReceivedPayload {
	c.t.Helper()
	var p flamingo.MessageReceivedPayload
	c.ExpectPayload(flamingo.EventMessageReceived, &p)
	return p
}

// Close closes the client's connection with code 1000.
func (c *Client) Close() {
	_ = c.conn.Close(flamingo.CloseNormal, "")
}

// Pair connects two new clients to e and returns them matched by [Match]. The engine
// must have no other compatible users waiting.
func Pair(t testing.TB, e *flamingo.Engine) (a, b *Client) {
	t.Helper()
	a, b = Connect(t, e), Connect(t, e)
	Match(t, a, b)
	return a, b
}

// Match initialises a and b as new users, queues them with compatible choices (a
// female looking for anyone, b male looking for a female) and waits until both have
// match_found with the same ChatID.
func Match(t testing.TB, a, b *Client) {
	t.Helper()
	a.Init("")
	b.Init("")
	a.Join(flamingo.GenderFemale, flamingo.PreferAny)
	b.Join(flamingo.GenderMale, flamingo.PreferFemale)
	a.Expect(flamingo.EventMatchFound)
	b.Expect(flamingo.EventMatchFound)
	if a.ChatID == "" || a.ChatID != b.ChatID {
		t.Fatalf("flamingotest: matched clients got chat ids %q and %q", a.ChatID, b.ChatID)
	}
}
