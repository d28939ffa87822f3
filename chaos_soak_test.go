package flamingo_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// soakMarker starts and ends every message of the soak, so that a log line holding
// any part of a message's content around it is easy to find.
const soakMarker = "SOAK-CONTENT"

// soakLog is a log destination for the engine that the test can read.
type soakLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *soakLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *soakLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// soakFrame is one frame a soak client read, with the user_id its connection had been
// given (empty before ready).
type soakFrame struct {
	owner string
	raw   []byte
	ready bool
}

// soakClient is one churning client of the soak: it connects, inits (as itself again,
// sometimes), queues with random choices, chats, leaves, queues again, and goes away
// (abruptly or not) after a while, over and over until the deadline.
type soakClient struct {
	idx      int
	rng      *rand.Rand
	dialer   *chaosDialer
	deadline time.Time
	abort    <-chan struct{}

	frames   []soakFrame
	chats    map[string]bool // every chat the client was matched into
	problems []string

	conns, resumes, matches, messages int
}

func (s *soakClient) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf("client %d: %s", s.idx, fmt.Sprintf(format, args...)))
}

func (s *soakClient) run() {
	prev := ""
	for time.Now().Before(s.deadline) && len(s.problems) == 0 {
		ask := ""
		if prev != "" && s.rng.IntN(3) > 0 {
			ask = prev // back as themselves: resumed within the grace, a new id after it
		}
		id, err := s.session(ask)
		if errors.Is(err, errChaosAborted) {
			return
		}
		if err != nil {
			s.problem("%v", err)
			return
		}
		prev = id
	}
}

var (
	soakGenders     = []flamingo.Gender{flamingo.GenderMale, flamingo.GenderFemale, flamingo.GenderOther}
	soakPreferences = []flamingo.Preference{flamingo.PreferMale, flamingo.PreferFemale, flamingo.PreferOther, flamingo.PreferAny}
)

// session runs one connection and returns the user_id it was given.
func (s *soakClient) session(ask string) (owner string, err error) {
	c, err := s.dialer.dial(s.idx)
	if err != nil {
		return "", err
	}
	s.conns++
	// record keeps f with the user_id of the connection, which ready gives.
	record := func(f *chaosFrame) {
		if f.Type == flamingo.EventReady && owner == "" {
			owner = f.Payload.UserID
		}
		s.frames = append(s.frames, soakFrame{owner: owner, raw: f.raw, ready: f.Type == flamingo.EventReady})
	}
	defer func() {
		// Go away abruptly, or with a close handshake.
		if s.rng.IntN(2) == 0 {
			_ = c.ws.Close(websocket.StatusNormalClosure, "")
		}
		for _, f := range c.hangUp() {
			record(f)
		}
	}()
	if err := c.write(chaosEvent(flamingo.EventInit, flamingo.InitPayload{UserID: ask})); err != nil {
		return "", err
	}
	var (
		chatID                   string
		queued, joining, leaving bool
		queuedAt                 time.Time
		resumed                  bool
		// Chats of a resumed connection that it had not been told of: their
		// match_found went into the connection that ended. Only the replay of
		// a chat that ended meanwhile may bring them, so each must end.
		unannounced = map[string]bool{}
	)
	defer func() {
		for id := range unannounced {
			s.problem("messages from chat %s, which the client was never told of and which did not end", id)
		}
	}()
	lifetime := 300*time.Millisecond + time.Duration(s.rng.Int64N(int64(2*time.Second)))
	life := time.NewTimer(min(lifetime, time.Until(s.deadline)))
	defer life.Stop()
	tick := time.NewTicker(40*time.Millisecond + time.Duration(s.rng.Int64N(int64(80*time.Millisecond))))
	defer tick.Stop()
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return owner, fmt.Errorf("connection ended: %v", c.err)
			}
			p := &f.Payload
			if f.Type == flamingo.EventReady && owner != "" {
				s.problem("a second ready: %s", f.raw)
			}
			record(f)
			if f.Type == flamingo.EventReady {
				if ask != "" && p.Resumed != (owner == ask) {
					s.problem("ready says resumed %v, with the id asked for %v", p.Resumed, owner == ask)
				}
				if p.Resumed {
					s.resumes++
					resumed = true
					// The chat's match_found may have gone into the connection
					// that ended: ready names the chat.
					if chatID = p.ChatID; chatID != "" {
						s.chats[chatID] = true
					}
				}
			}
			switch f.Type {
			case flamingo.EventReady:
			case flamingo.EventMessageReceived:
				switch {
				case s.chats[p.ChatID]:
				case resumed:
					unannounced[p.ChatID] = true
				default:
					s.problem("a message from a chat the client was never in: %s", f.raw)
				}
			case flamingo.EventQueueJoined:
				joining, queued, queuedAt = false, true, time.Now()
			case flamingo.EventQueueLeft:
				queued, leaving = false, false
			case flamingo.EventMatchFound:
				queued, chatID = false, p.ChatID
				s.chats[chatID] = true
				s.matches++
			case flamingo.EventChatEnded:
				delete(unannounced, p.ChatID)
				if !s.chats[p.ChatID] && !resumed {
					s.problem("the end of a chat the client was never in: %s", f.raw)
				}
				if p.ChatID == chatID {
					chatID = ""
				}
			case flamingo.EventError:
				switch p.Code {
				case flamingo.CodeNotInChat, flamingo.CodeRateLimited:
					// A message or leave_chat racing the end of the chat.
				case flamingo.CodeNotInQueue:
					leaving = false // leave_queue racing a match
				case flamingo.CodeAlreadyInChat, flamingo.CodeAlreadyInQueue:
					joining = false
				default:
					s.problem("unexpected error %s", f.raw)
				}
			case flamingo.EventPartnerAway, flamingo.EventPartnerBack:
				if !s.chats[p.ChatID] {
					s.problem("presence in a chat the client was never in: %s", f.raw)
				}
			default:
				s.problem("unexpected frame %s", f.raw)
			}
		case <-tick.C:
			var ev []byte
			switch {
			case owner == "":
			case chatID != "":
				switch n := s.rng.IntN(20); {
				case n == 0:
					ev = chaosEvent(flamingo.EventLeaveChat, flamingo.LeaveChatPayload{ChatID: chatID})
				case n < 14:
					s.messages++
					content := fmt.Sprintf("%s %d.%d: hi ✓ %s", soakMarker, s.idx, s.messages, soakMarker)
					ev = chaosEvent(flamingo.EventSendMessage, flamingo.SendMessagePayload{ChatID: chatID, Content: content})
				}
			case queued:
				if !leaving && time.Since(queuedAt) > 500*time.Millisecond && s.rng.IntN(4) == 0 {
					leaving = true
					ev = chaosEvent(flamingo.EventLeaveQueue, nil)
				}
			case !joining:
				joining = true
				ev = chaosEvent(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{
					Gender:     soakGenders[s.rng.IntN(len(soakGenders))],
					Preference: soakPreferences[s.rng.IntN(len(soakPreferences))],
				})
			}
			if ev != nil {
				if err := c.write(ev); err != nil {
					return owner, err
				}
			}
		case <-life.C:
			return owner, nil
		case <-s.abort:
			return owner, errChaosAborted
		}
	}
}

// soakFindIDs returns the user_ids of ids that occur in b, in any letter case.
func soakFindIDs(b []byte, ids map[string]bool) []string {
	const n = 32 // hex digits in a user_id
	lower := bytes.ToLower(b)
	var found []string
	for i := 0; i+n <= len(lower); i++ {
		if ids[string(lower[i:i+n])] {
			found = append(found, string(lower[i:i+n]))
		}
	}
	return found
}

// TestSoak_NoUserIDLeak churns a hundred clients for a few seconds and checks that no
// frame to anyone carries a user_id other than the one its connection was given (in
// ready), and that the engine's logs, at Debug level, hold no user_id and no message
// content.
func TestSoak_NoUserIDLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak over loopback WebSockets: skipped with -short")
	}
	seed := chaosSeed(t)
	const (
		clients  = 100
		duration = 8 * time.Second
		grace    = 2 * time.Second
	)
	logs := &soakLog{}
	e := newEngine(t, flamingo.Config{
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// A short grace, so that some clients come back within it (resumed) and
		// some after it (an unknown id, answered with a fresh one).
		ResumeGrace: grace,
		// The churn is faster than people: clients queue again many times a second,
		// and a hundred of them init (and come back with expired ids) from one
		// loopback address.
		JoinRate:        unlimited,
		InitRate:        unlimited,
		ResumeGuessRate: unlimited,
		MessageRate:     flamingo.RateLimit{Rate: 50, Burst: 50},
	})
	d := newChaosDialer(t, e, &flamingo.WebSocketOptions{MaxConnsPerIP: -1}, 1)

	ctl := &chaosControl{abort: make(chan struct{})}
	t.Cleanup(ctl.stop)
	deadline := time.Now().Add(duration)
	all := make([]*soakClient, clients)
	ctl.actors.Add(clients)
	for i := range all {
		s := &soakClient{idx: i, rng: rand.New(rand.NewPCG(seed, uint64(i))), dialer: d, deadline: deadline,
			abort: ctl.abort, chats: map[string]bool{}}
		all[i] = s
		go func() {
			defer ctl.actors.Done()
			s.run()
		}()
	}
	chaosWait(t, &ctl.actors, duration+chaosLimit, "the soak clients to finish")
	chaosRequireEmpty(t, e, grace+chaosLimit)

	ids := map[string]bool{}
	var problems []string
	var conns, resumes, matches, messages, frames int
	for _, s := range all {
		problems = append(problems, s.problems...)
		conns, resumes, matches, messages, frames = conns+s.conns, resumes+s.resumes, matches+s.matches, messages+s.messages, frames+len(s.frames)
		for _, f := range s.frames {
			if f.owner != "" {
				ids[f.owner] = true
			}
		}
	}
	require.Empty(t, problems)
	require.NotEmpty(t, ids)
	for _, s := range all {
		for _, f := range s.frames {
			found := soakFindIDs(f.raw, ids)
			if f.ready {
				// The scan finds what it looks for: ready carries its owner's id.
				assert.Equal(t, []string{f.owner}, found, "ready %s", f.raw)
				continue
			}
			for _, id := range found {
				t.Errorf("client %d (user_id %.8s…) got a user_id (%s) in %s", s.idx, f.owner, map[bool]string{true: "its own", false: "another user's"}[id == f.owner], f.raw)
			}
		}
	}
	out := logs.String()
	require.Contains(t, out, "new session", "the engine's logs were captured")
	assert.Empty(t, soakFindIDs([]byte(out), ids), "user_ids in the engine's logs")
	assert.NotContains(t, strings.ToUpper(out), soakMarker, "message content in the engine's logs")
	t.Logf("%d clients: %d connections, %d user_ids issued, %d resumed, %d chats, %d messages sent, %d frames scanned, %d KiB of logs",
		clients, conns, len(ids), resumes, matches/2, messages, frames, len(out)>>10)
}
