package flamingo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// FuzzSession drives a whole engine with arbitrary frames from three in-memory
// clients, A, B and C, and checks what the engine sends back.
//
// An input is a script of lines separated by '\n'. The first byte of a line says what
// happens, the rest of the line is a frame:
//
//	A B C   the client sends the frame on its current connection
//	a b c   the same, without waiting for the engine to settle first (a burst)
//	1 2 3   client A, B or C closes its connection and opens a new one, then sends
//	        the frame (if any) on it: a reload, to resume
//	4 5 6   client A, B or C opens another connection without closing the old one,
//	        then sends the frame (if any) on it: a second tab, to take the session over
//	.       time passes: the frame is a number of seconds (at most 120, and at
//	        most 10 minutes in all)
//	other   the client (byte % 3) sends the frame
//
// To keep each run short, only the first 1000 lines count, and a client opens no
// more than 16 connections (after that, 1-6 send on the current one).
//
// Before a frame is sent, "$CHAT" in it becomes the id of the chat the connection
// was last told of, and "user_id":"$UID" the client's latest user_id, so that the
// fuzzer reaches chats and resumes. (Only there: a user_id the harness put into a
// message would travel legitimately.)
//
// Each input runs in a synctest bubble on a fresh engine with the default Config:
// after every line but a burst the test waits until every goroutine is idle, so a run
// takes no wall time, time passes only on ".", and only a burst leaves the order of
// events to the scheduler. At the end it checks that:
//   - nothing panicked, and the engine still serves: two new clients can match and
//     chat after the input;
//   - every frame the engine sent is valid UTF-8 and JSON, of a known server event
//     type, with a payload object; every error has a code; every ready a 32+ hex
//     user_id; every chat event a chat_id;
//   - user ids stay secret: a frame carries a user_id only if it is the ready that
//     gives that connection its own;
//   - message_received reaches only a member of the chat, never the sender, and
//     carries content that another member sent into that chat;
//   - nothing is repeated to a user: match_found and chat_ended once per chat,
//     each message_id once;
//   - every connection the engine closed, it closed with a documented code;
//   - Shutdown returns within 10 s (of bubble time) and leaves no goroutine behind
//     (synctest fails the input otherwise; goleak checks the whole run).
func FuzzSession(f *testing.F) {
	for _, seed := range fuzzSessionSeeds {
		f.Add([]byte(strings.Join(seed, "\n")))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		synctest.Test(t, func(t *testing.T) { runFuzzSession(t, input) })
	})
}

// Frames for the seeds.
const (
	fzInit       = `{"type":"init"}`
	fzResume     = `{"type":"init","payload":{"user_id":"$UID"}}`
	fzJoinFAny   = `{"type":"join_queue","payload":{"gender":"female","preference":"any"}}`
	fzJoinMF     = `{"type":"join_queue","payload":{"gender":"male","preference":"female"}}`
	fzJoinOther  = `{"type":"join_queue","payload":{"gender":"other","preference":"other"}}`
	fzLeaveQueue = `{"type":"leave_queue","payload":{}}`
	fzLeaveChat  = `{"type":"leave_chat","payload":{"chat_id":"$CHAT"}}`
	fzPing       = `{"type":"ping"}`
	fzStats      = `{"type":"get_stats","payload":{}}`
)

func fzSay(content string) string {
	return `{"type":"send_message","payload":{"chat_id":"$CHAT","content":"` + content + `"}}`
}

// fuzzSessionSeeds are realistic sessions and the abuse the engine must survive.
var fuzzSessionSeeds = [][]string{
	// A and B meet and talk; C waits alone; B leaves.
	{"A" + fzInit, "B" + fzInit, "C" + fzInit, "C" + fzJoinOther, "A" + fzJoinFAny, "B" + fzJoinMF,
		"A" + fzSay("hi"), "B" + fzSay(`hello \"you\" \u00e9 😀`), "C" + fzSay("nobody hears me"),
		"B" + fzLeaveChat, "A" + fzSay("gone?"), "A" + fzStats},
	// A reloads mid-chat and resumes; B's message while A is away is held for A.
	{"A" + fzInit, "B" + fzInit, "A" + fzJoinFAny, "B" + fzJoinMF, "1", "B" + fzSay("are you there"),
		".3", "1" + fzResume, "A" + fzSay("back"), "B" + fzPing},
	// A opens a second tab with its user_id: the first gets session_replaced.
	{"A" + fzInit, "B" + fzInit, "A" + fzJoinFAny, "B" + fzJoinMF, "4" + fzResume, "A" + fzSay("from tab 2"),
		"B" + fzSay("to whichever tab")},
	// A vanishes past the grace: B is told partner_disconnected; A's late resume
	// gets a fresh identity.
	{"A" + fzInit, "B" + fzInit, "A" + fzJoinFAny, "B" + fzJoinMF, "1", ".31", "B" + fzSay("still there?"),
		"1" + fzResume, "B" + fzJoinMF, "A" + fzJoinFAny},
	// Both leave at once, in a burst; then both join again and meet again.
	{"A" + fzInit, "B" + fzInit, "A" + fzJoinFAny, "B" + fzJoinMF, "a" + fzLeaveChat, "b" + fzLeaveChat,
		"A" + fzJoinFAny, "B" + fzJoinMF, "B" + fzSay("again")},
	// Queue games: leave, join twice, join while chatting, leave what was never joined.
	{"A" + fzInit, "A" + fzLeaveQueue, "A" + fzJoinMF, "A" + fzJoinMF, "A" + fzLeaveQueue, "B" + fzInit,
		"B" + fzJoinFAny, "A" + fzJoinMF, "A" + fzJoinMF, "B" + fzLeaveQueue, "C" + fzLeaveChat},
	// A burst of messages while the sender reloads: held, replayed, never twice.
	{"A" + fzInit, "B" + fzInit, "A" + fzJoinFAny, "B" + fzJoinMF,
		"b" + fzSay("1"), "b" + fzSay("2"), "b" + fzSay("3"), "b" + fzSay("4"), "1", "b" + fzSay("5"),
		"1" + fzResume, "A" + fzSay("got them")},
	// Events before init, a second init, C guessing a chat id.
	{"A" + fzPing, "A" + fzJoinFAny, "A" + fzInit, "A" + fzInit, "B" + fzInit, "A" + fzJoinFAny,
		"B" + fzJoinMF, "C" + fzInit, `C{"type":"send_message","payload":{"chat_id":"00000000000000000000000000000000","content":"x"}}`,
		"C" + fzLeaveChat},
	// Garbage and protocol errors.
	{"A" + fzInit, "Ahello", "A[1,2]", `A{"type":"fly"}`, `A{"type":"ready"}`, `A{"type":"ping","type":"ping"}`,
		`A{"type":"join_queue","payload":{"gender":"robot"}}`, `A{"type":"send_message","payload":{"chat_id":"x"}}`,
		`A{"type":"ping"} trailing`, "A" + fzPing, "A", "Z", "\x00\x01\x02"},
	// Content rules: empty, blank, control and bidi characters, too long.
	{"A" + fzInit, "B" + fzInit, "A" + fzJoinFAny, "B" + fzJoinMF, "A" + fzSay(""), "A" + fzSay(`  \t `),
		"A" + fzSay(`a\u0007b`), "A" + fzSay("a\u202eb"), "A" + fzSay(strings.Repeat("x", 4097)),
		"A" + fzSay(strings.Repeat("é", 1001)), "A" + fzSay("fine")},
	// Invalid UTF-8: closes the connection with 1007.
	{"A" + fzInit, "B" + fzInit, "A" + fzJoinFAny, "B" + fzJoinMF, "A" + fzSay("\xff\xfe"), "B" + fzSay("hello?")},
	// A frame over 32 KiB: closes the connection with 1009.
	{"A" + fzInit, "A" + fzSay(strings.Repeat("x", 33<<10))},
	// A flood: rate limits, then the error budget closes the connection.
	append([]string{"A" + fzInit}, strings.Split(strings.Repeat("A"+fzPing+"\n", 45)+strings.Repeat("anope\n", 30), "\n")...),
	// Silence: no init within the timeout.
	{".11", "A" + fzInit},
}

// Bounds of one input's run.
const (
	fuzzClients        = 3 // how many clients the script speaks for
	fuzzMaxLines       = 1000
	fuzzMaxConnsClient = 16
	fuzzMaxSleep       = 10 * time.Minute
)

// fuzzUIDField is where "$UID" is replaced.
var fuzzUIDField = regexp.MustCompile(`"user_id"\s*:\s*"\$UID"`)

// fzConn is one connection of a client.
type fzConn struct {
	client int // 0, 1 and 2 are A, B and C; 3 and 4 are D and E, who come after the script
	n      int // order of opening, for messages
	end    *flamingotest.PipeEnd
	served chan struct{} // closed when Serve returns
	read   chan struct{} // closed when the reader has seen the end of the pipe

	// Guarded by fzSession.mu:
	frames [][]byte // every frame the engine sent, in order
	uid    string   // from this connection's ready
	chat   string   // the chat this connection was last told of
	// closedBy is the code of the pipe's first Close, once the reader has seen it.
	closedBy flamingo.CloseCode
}

func (c *fzConn) String() string {
	return fmt.Sprintf("client %c connection #%d", "ABCDE"[c.client], c.n)
}

type fzSend struct {
	c     *fzConn
	frame []byte
}

type fzSession struct {
	t      *testing.T
	e      *flamingo.Engine
	script []string // the lines run so far, for failure messages
	slept  time.Duration
	opened [fuzzClients]int // connections per client

	mu    sync.Mutex
	conns []*fzConn
	cur   [fuzzClients + 2]*fzConn
	uid   [fuzzClients + 2]string // each client's latest user_id
	sends []fzSend
}

// runFuzzSession runs one input and checks it; it returns the session for tests that
// look further.
func runFuzzSession(t *testing.T, input []byte) *fzSession {
	e, err := flamingo.New(flamingo.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := &fzSession{t: t, e: e}
	t.Cleanup(func() {
		// Once a check has stopped the run, end everything, or the bubble never ends.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Shutdown(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			_ = c.end.Close(flamingo.CloseNormal, "")
		}
	})
	for i := range fuzzClients {
		s.connect(i)
	}
	lines := 0
	for line := range bytes.SplitSeq(input, []byte{'\n'}) {
		if lines++; lines > fuzzMaxLines {
			break
		}
		s.step(line)
	}
	synctest.Wait()

	// Everyone leaves; then two strangers must still be able to meet and talk.
	s.mu.Lock()
	conns := append([]*fzConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.end.Close(flamingo.CloseNormal, "")
	}
	for _, c := range conns {
		s.await(c.served, "Serve to return after the client closed "+c.String())
	}
	s.checkStillServing()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v%s", err, s.trace())
	}
	s.mu.Lock()
	conns = append([]*fzConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		s.await(c.served, "Serve to return after Shutdown ("+c.String()+")")
		s.await(c.read, "the end of "+c.String()+" after Shutdown")
	}
	s.check()
	return s
}

// await waits for ch, failing the input if it takes a minute of bubble time (which
// passes at once when nothing else can run).
func (s *fzSession) await(ch <-chan struct{}, what string) {
	s.t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		s.t.Fatalf("waited a minute for %s%s", what, s.trace())
	}
}

// connect opens a new connection for client i and makes it the client's current one.
func (s *fzSession) connect(i int) *fzConn {
	server, end := flamingotest.Pipe()
	c := &fzConn{client: i, end: end, served: make(chan struct{}), read: make(chan struct{})}
	s.mu.Lock()
	c.n = len(s.conns)
	s.conns = append(s.conns, c)
	s.cur[i] = c
	s.mu.Unlock()
	go func() {
		defer close(c.served)
		_ = s.e.Serve(context.Background(), server)
	}()
	go func() {
		defer close(c.read)
		for {
			b, err := end.Read(context.Background())
			if err != nil { // the pipe is closed and drained
				var ce *flamingotest.CloseError
				if errors.As(err, &ce) {
					s.mu.Lock()
					c.closedBy = ce.Code
					s.mu.Unlock()
				}
				return
			}
			s.received(c, bytes.Clone(b))
		}
	}()
	return c
}

// received keeps what the harness needs while the script runs: user and chat ids.
func (s *fzSession) received(c *fzConn, b []byte) {
	var ev struct {
		Type    flamingo.EventType `json:"type"`
		Payload struct {
			UserID string `json:"user_id"`
			ChatID string `json:"chat_id"`
		} `json:"payload"`
	}
	_ = json.Unmarshal(b, &ev) // checked at the end
	s.mu.Lock()
	defer s.mu.Unlock()
	c.frames = append(c.frames, b)
	switch ev.Type {
	case flamingo.EventReady:
		c.uid, s.uid[c.client] = ev.Payload.UserID, ev.Payload.UserID
		c.chat = ev.Payload.ChatID
	case flamingo.EventMatchFound:
		c.chat = ev.Payload.ChatID
	case flamingo.EventChatEnded:
		if c.chat == ev.Payload.ChatID {
			c.chat = ""
		}
	}
}

// send writes frame on c after replacing the placeholders, and records it.
func (s *fzSession) send(c *fzConn, frame []byte) {
	s.mu.Lock()
	if bytes.Contains(frame, []byte("$CHAT")) {
		frame = bytes.ReplaceAll(frame, []byte("$CHAT"), []byte(c.chat))
	}
	if bytes.Contains(frame, []byte("$UID")) {
		uid := []byte(`"user_id":"` + s.uid[c.client] + `"`)
		frame = fuzzUIDField.ReplaceAllLiteral(frame, uid)
	}
	s.sends = append(s.sends, fzSend{c, frame})
	s.mu.Unlock()
	// An error means the engine closed the connection, which it may.
	_ = c.end.Write(context.Background(), frame)
}

func (s *fzSession) step(line []byte) {
	if len(line) == 0 {
		return
	}
	s.script = append(s.script, strconv.Quote(string(line)))
	h, frame := line[0], line[1:]
	settle := true
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	switch {
	case h == '.':
		secs, err := strconv.Atoi(string(frame))
		if err != nil {
			secs = len(frame)
		}
		d := min(time.Duration(min(max(secs, 0), 120))*time.Second, fuzzMaxSleep-s.slept)
		s.slept += d
		time.Sleep(d)
	case h >= 'A' && h <= 'C':
		s.send(cur[h-'A'], frame)
	case h >= 'a' && h <= 'c':
		s.send(cur[h-'a'], frame)
		settle = false
	case h >= '1' && h <= '3':
		i := int(h - '1')
		c := cur[i]
		if s.opened[i]++; s.opened[i] < fuzzMaxConnsClient {
			_ = c.end.Close(flamingo.CloseNormal, "")
			synctest.Wait() // the engine sees the reload before the new connection
			c = s.connect(i)
		}
		if len(frame) > 0 {
			s.send(c, frame)
		}
	case h >= '4' && h <= '6':
		i := int(h - '4')
		c := cur[i]
		if s.opened[i]++; s.opened[i] < fuzzMaxConnsClient {
			c = s.connect(i)
		}
		if len(frame) > 0 {
			s.send(c, frame)
		}
	default:
		s.send(cur[int(h)%fuzzClients], frame)
	}
	if settle {
		synctest.Wait()
	}
}

// checkStillServing matches two new clients (D and E) and has them exchange a message.
func (s *fzSession) checkStillServing() {
	s.t.Helper()
	d, e := s.connect(fuzzClients), s.connect(fuzzClients+1)
	s.script = append(s.script, "(then D and E, two new clients, init, join, match and chat)")
	for _, c := range []*fzConn{d, e} {
		s.send(c, []byte(fzInit))
	}
	synctest.Wait()
	s.send(d, []byte(fzJoinFAny))
	s.send(e, []byte(fzJoinMF))
	synctest.Wait()
	s.send(d, []byte(fzSay("still serving")))
	synctest.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	if d.chat == "" || d.chat != e.chat {
		s.t.Errorf("the engine stopped serving: D and E got chats %q and %q%s", d.chat, e.chat, s.traceLocked())
		return
	}
	for _, b := range e.frames {
		if bytes.Contains(b, []byte(`"message_received"`)) && bytes.Contains(b, []byte(`"still serving"`)) {
			return
		}
	}
	s.t.Errorf("the engine stopped serving: E never got D's message%s", s.traceLocked())
}

func (s *fzSession) trace() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.traceLocked()
}

// traceLocked renders the script and every frame received, for a failure message.
func (s *fzSession) traceLocked() string {
	var b strings.Builder
	b.WriteString("\nscript:\n\t")
	b.WriteString(strings.Join(s.script, "\n\t"))
	b.WriteString("\nreceived:")
	for _, c := range s.conns {
		fmt.Fprintf(&b, "\n\t%s (user %.8s…, closed with %d):", c, c.uid, c.closedBy)
		for _, f := range c.frames {
			b.WriteString("\n\t\t")
			if len(f) > 300 {
				f = append(f[:300:300], "…"...)
			}
			b.Write(f)
		}
	}
	return b.String()
}

var (
	fuzzServerEvents = map[flamingo.EventType]bool{
		flamingo.EventReady: true, flamingo.EventQueueJoined: true, flamingo.EventQueueLeft: true,
		flamingo.EventMatchFound: true, flamingo.EventMessageReceived: true, flamingo.EventChatEnded: true,
		flamingo.EventPong: true, flamingo.EventStats: true, flamingo.EventError: true,
		flamingo.EventPartnerAway: true, flamingo.EventPartnerBack: true, flamingo.EventPartnerTyping: true,
		flamingo.EventMessageSent: true, flamingo.EventSignal: true, flamingo.EventBlocked: true,
		flamingo.EventReported: true,
	}
	fuzzEndReasons = map[string]bool{
		string(flamingo.ReasonLeft): true, string(flamingo.ReasonPartnerLeft): true,
		string(flamingo.ReasonPartnerDisconnected): true,
	}
	fuzzUserID     = regexp.MustCompile(`^[0-9a-f]{32,}$`)
	fuzzCloseCodes = map[flamingo.CloseCode]bool{
		flamingo.CloseNormal: true, flamingo.CloseGoingAway: true, flamingo.CloseUnsupportedData: true,
		flamingo.CloseInvalidPayload: true, flamingo.ClosePolicyViolation: true, flamingo.CloseMessageTooBig: true,
		flamingo.CloseInternalError: true, flamingo.CloseSessionReplaced: true, flamingo.CloseSlowConsumer: true,
	}
)

// fzFrame is a server frame as the checks read it.
type fzFrame struct {
	Type    flamingo.EventType `json:"type"`
	Payload json.RawMessage    `json:"payload"`
}

// fzPayload has the fields of every server payload that the checks look at.
type fzPayload struct {
	UserID    *string `json:"user_id"`
	ChatID    *string `json:"chat_id"`
	Code      *string `json:"code"`
	Message   *string `json:"message"`
	Reason    *string `json:"reason"`
	MessageID *string `json:"message_id"`
	Content   *string `json:"content"`
}

func fzStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// check runs the invariants over everything every connection received.
func (s *fzSession) check() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(c *fzConn, frame []byte, format string, args ...any) {
		s.t.Helper()
		s.t.Errorf("%s got %s: %s%s", c, frame, fmt.Sprintf(format, args...), s.traceLocked())
	}

	// Every user id given out, to look for it where it must not be.
	var uids []string
	for _, c := range s.conns {
		if c.uid != "" {
			uids = append(uids, c.uid)
		}
	}

	type delivery struct {
		c       *fzConn
		frame   []byte
		chat    string
		content string
	}
	var (
		members    = make(map[string]map[string]bool) // chat id → user ids told of it
		once       = make(map[string]bool)            // "kind user id" → already seen
		deliveries []delivery
	)
	join := func(chat, uid string) {
		if members[chat] == nil {
			members[chat] = make(map[string]bool)
		}
		members[chat][uid] = true
	}
	for _, c := range s.conns {
		if !fuzzCloseCodes[c.closedBy] {
			s.t.Errorf("%s was closed with %d, not a documented code%s", c, c.closedBy, s.traceLocked())
			return
		}
		uid := "" // the connection's user id once its ready has arrived
		for _, frame := range c.frames {
			if !utf8.Valid(frame) || !json.Valid(frame) {
				fail(c, frame, "not valid UTF-8 JSON")
				return
			}
			var ev fzFrame
			var p fzPayload
			if err := json.Unmarshal(frame, &ev); err != nil || !fuzzServerEvents[ev.Type] {
				fail(c, frame, "not a server event")
				return
			}
			if len(ev.Payload) > 0 {
				if ev.Payload[0] != '{' || json.Unmarshal(ev.Payload, &p) != nil {
					fail(c, frame, "payload is not an object")
					return
				}
			}
			for _, v := range uids {
				if bytes.Contains(frame, []byte(v)) && (ev.Type != flamingo.EventReady || fzStr(p.UserID) != v || uid != "") {
					fail(c, frame, "a user_id leaked: %.8s… is not this connection's own, given by its ready", v)
					return
				}
			}
			if ev.Type != flamingo.EventReady && ev.Type != flamingo.EventError && uid == "" {
				fail(c, frame, "%s before ready", ev.Type)
				return
			}
			chat := fzStr(p.ChatID)
			switch ev.Type {
			case flamingo.EventReady:
				if uid != "" {
					fail(c, frame, "a second ready on one connection")
					return
				}
				uid = fzStr(p.UserID)
				if !fuzzUserID.MatchString(uid) {
					fail(c, frame, "user_id is not 32+ lower-case hex")
					return
				}
				if chat != "" {
					join(chat, uid)
				}
			case flamingo.EventError:
				if fzStr(p.Code) == "" {
					fail(c, frame, "an error without a code")
					return
				}
			case flamingo.EventPartnerAway, flamingo.EventPartnerBack, flamingo.EventPartnerTyping,
				flamingo.EventMessageSent, flamingo.EventSignal, flamingo.EventBlocked, flamingo.EventReported:
				if chat == "" {
					fail(c, frame, "no chat_id")
					return
				}
			case flamingo.EventMatchFound, flamingo.EventChatEnded, flamingo.EventMessageReceived:
				if chat == "" {
					fail(c, frame, "no chat_id")
					return
				}
				key := string(ev.Type) + " " + uid + " " + chat
				switch ev.Type {
				case flamingo.EventMatchFound:
					join(chat, uid)
				case flamingo.EventChatEnded:
					if !fuzzEndReasons[fzStr(p.Reason)] {
						fail(c, frame, "unknown reason")
						return
					}
				case flamingo.EventMessageReceived:
					key = string(ev.Type) + " " + uid + " " + fzStr(p.MessageID)
					deliveries = append(deliveries, delivery{c, frame, chat, fzStr(p.Content)})
				}
				if once[key] {
					fail(c, frame, "the same %s again for this user", ev.Type)
					return
				}
				once[key] = true
			}
		}
	}
	for chat, us := range members {
		if len(us) > 2 {
			s.t.Errorf("chat %s has %d members%s", chat, len(us), s.traceLocked())
			return
		}
	}

	// Each message reached a member of its chat, from another member who sent it.
	for _, d := range deliveries {
		to := d.c.uid
		if !members[d.chat][to] {
			fail(d.c, d.frame, "a message for a chat this user was never told of")
			return
		}
		found := false
		for _, snd := range s.sends {
			from := snd.c.uid
			if from == "" || from == to || !members[d.chat][from] {
				continue
			}
			// Keys are matched exactly, as the engine matches them (a struct would
			// match "Content" too).
			var m map[string]any
			if json.Unmarshal(snd.frame, &m) != nil || m["type"] != string(flamingo.EventSendMessage) {
				continue
			}
			if p, ok := m["payload"].(map[string]any); ok && p["chat_id"] == d.chat && p["content"] == d.content {
				found = true
				break
			}
		}
		if !found {
			fail(d.c, d.frame, "a message that no other member of the chat sent into it")
			return
		}
	}
}

// TestFuzzSessionSeeds checks that the seeds take the engine where FuzzSession should
// start from: into chats, resumes, takeovers, every content rule and limit. Were the
// harness to stop filling in chat and user ids, the fuzzer would be left at the door.
func TestFuzzSessionSeeds(t *testing.T) {
	seen := make(map[string]bool)
	for i, seed := range fuzzSessionSeeds {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := runFuzzSession(t, []byte(strings.Join(seed, "\n")))
				for _, c := range s.conns {
					if c.client >= fuzzClients {
						continue // D and E, after the script
					}
					seen["close "+strconv.Itoa(int(c.closedBy))] = true
					for _, b := range c.frames {
						var ev struct {
							Type    string
							Payload struct {
								Resumed bool
								Code    string
								Reason  string
							}
						}
						require.NoError(t, json.Unmarshal(b, &ev))
						seen[ev.Type] = true
						seen[strings.TrimSpace(fmt.Sprintf("%s %s%s", ev.Type, ev.Payload.Code, ev.Payload.Reason))] = true
						if ev.Payload.Resumed {
							seen["ready resumed"] = true
						}
					}
				}
			})
		})
	}
	for _, want := range []string{
		"match_found", "message_received", "queue_left", "stats", "pong", "ready resumed",
		"chat_ended left", "chat_ended partner_left", "chat_ended partner_disconnected",
		"error bad_json", "error unknown_event", "error invalid_payload", "error not_initialized",
		"error already_initialized", "error already_in_queue", "error not_in_queue", "error already_in_chat",
		"error not_in_chat", "error message_too_long", "error empty_message", "error rate_limited",
		"error session_replaced",
		"close 1007", "close 1008", "close 1009", "close 4001",
	} {
		assert.True(t, seen[want], "no seed reaches %q", want)
	}
}
