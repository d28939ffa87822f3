package flamingo

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"
)

// Config configures an [Engine]. A zero Config is ready to use: each field's zero value
// means the default its comment gives. A negative duration or size, or a [RateLimit]
// with a negative Burst, is an error from [New] that names the field.
type Config struct {
	// Matcher pairs waiting users. Nil means a new [MemoryMatcher].
	Matcher Matcher
	// Broker, if set, joins the engine to a cluster of nodes (see [Broker]); its
	// Matcher must then be one the nodes share. Nil means a single node.
	Broker Broker
	// Logger receives the engine's logs. Nil means no logging. Logs never hold
	// message content or user_ids, only handles. The engine logs with its lock held,
	// so the Logger's handler must not block.
	Logger *slog.Logger

	// ResumeGrace is how long a disconnected user keeps their session and chat.
	// Zero means 30 seconds.
	ResumeGrace time.Duration
	// MaxQueuedEvents bounds the events waiting to be written to one connection, and
	// the events held for a user who is away. Zero means 256.
	MaxQueuedEvents int
	// MaxQueuedBytes bounds the same queues by size. Zero means 1 MiB.
	MaxQueuedBytes int
	// MaxFrameBytes is the largest frame a client may send; a larger one closes the
	// connection with [CloseMessageTooBig]. Zero means 32 KiB.
	MaxFrameBytes int
	// MaxMessageBytes is the largest send_message content in bytes. Zero means 4096.
	MaxMessageBytes int
	// MaxMessageRunes is the largest send_message content in characters (Unicode
	// code points). Zero means 1000.
	MaxMessageRunes int

	// EventRate limits every event of one connection. Zero means 20 per second with
	// a burst of 40.
	EventRate RateLimit
	// MessageRate limits one connection's send_message. Zero means 5 per second
	// with a burst of 20.
	MessageRate RateLimit
	// JoinRate limits one connection's join_queue and next. Zero means one every 2
	// seconds with a burst of 5.
	JoinRate RateLimit
	// InitRate limits, per remote address (see [Addresser]), init that makes a new
	// identity. Resuming with a valid user_id is not limited. Zero means 5 per second
	// with a burst of 100, so that a crowd behind one NAT (a campus, an office, a
	// mobile carrier) can arrive at once.
	InitRate RateLimit
	// ResumeGuessRate limits, per remote address, init with a user_id that matches
	// no session: the cost of guessing ids. Zero means one per minute with a burst
	// of 10. Over it, such an init gets rate_limited and no new identity.
	ResumeGuessRate RateLimit
	// ErrorBudget is how many error events a connection may earn: each one takes a
	// token, and a connection with none left is closed with [ClosePolicyViolation].
	// Zero means one per second with a burst of 20.
	ErrorBudget RateLimit
	// InitTimeout is how long a new connection may take to send init before it is
	// closed with [ClosePolicyViolation]. Zero means 10 seconds.
	InitTimeout time.Duration
	// WriteTimeout bounds one write to a connection; a connection whose write takes
	// longer is closed with [CloseSlowConsumer]. Zero means 10 seconds.
	WriteTimeout time.Duration
	// HeartbeatInterval is how long a connection whose transport is a [Pinger] may be
	// silent before it is pinged. Silence is counted from the last sign of life: the
	// connection's start, the last pong, or any frame read from it. The wait after the
	// start or the first frame is cut at random to between half and the whole
	// interval, and after a later frame by up to a tenth, so that connections made or
	// heard from together are not pinged together. A connection that talks is still
	// pinged once four intervals have passed since its last pong: only a pong shows
	// that what the server sends reaches it. Zero means 25 seconds.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long a ping may go unanswered before the connection is
	// closed. Zero means 10 seconds.
	HeartbeatTimeout time.Duration
	// MatcherTimeout bounds each call the engine makes to its [Matcher] (Enqueue,
	// Cancel): a join whose Enqueue has not returned by then gets error internal.
	// Shutdown's context bounds them too. Zero means 5 seconds.
	MatcherTimeout time.Duration
	// SignalRate limits one connection's signal events (WebRTC signaling), which
	// count against it instead of EventRate. Zero means 20 per second with a burst of
	// 60, so that a burst of ICE candidates fits.
	SignalRate RateLimit
	// InterestWait is how long a user who gave interests waits for someone sharing
	// one before they may be paired with anyone (see [Ticket.RelaxAt]). Zero means 10
	// seconds.
	InterestWait time.Duration
	// RepeatWindow is how long two users who were partners are not paired again.
	// Zero means 10 minutes.
	RepeatWindow time.Duration
	// ReportContext is how many of a chat's last messages (both sides) the engine
	// keeps in memory, for the chat's life and 5 minutes after, so that a report
	// can carry them to OnReport. Zero means 20; a negative value keeps none. They
	// are the only message content the engine keeps (SECURITY.md).
	ReportContext int
	// ICEServers, if set, is called for each user of each new chat (with the user's
	// handle) and gives the ICE servers sent in their match_found, for WebRTC. Nil
	// means none: ice_servers is []. [TURNServers] makes one that hands out
	// short-lived TURN credentials.
	ICEServers func(user string) []ICEServer
	// InitTimeout, WriteTimeout and HeartbeatInterval are enforced by one engine
	// goroutine that looks at every connection ten times per the shortest of the
	// three, and at least every second (every second with the defaults), so each may
	// run over by that much. The same goroutine ends typing indicators that went 6
	// seconds without a refresh.

	// OnMatch, if set, is called after two users are paired.
	OnMatch func(ChatInfo)
	// OnMessage, if set, is called before a message is delivered. A non-nil error
	// refuses the message: the sender gets an error event with the code of an
	// [*Error] (or [CodeMessageRejected] for any other error) and the partner gets
	// nothing.
	OnMessage func(Message) error
	// OnChatEnd, if set, is called once after a chat ends.
	OnChatEnd func(ChatEnd)
	// OnJoin, if set, is called for each join_queue (and next) before the user
	// waits: ctx is the context given to [Engine.Serve] for the user's connection.
	// It may set the request's Pool and Labels. A non-nil error refuses the join:
	// the user gets an error event with the code of an [*Error] (or
	// [CodeJoinRefused] for any other error) and does not wait.
	OnJoin func(ctx context.Context, j *JoinRequest) error
	// OnReport, if set, is called for each report a user makes, with the chat's last
	// messages (see ReportContext).
	OnReport func(Report)
	// The hooks are called on engine goroutines, never with an engine lock held, and
	// must return quickly: a slow hook delays the connection (or the worker) that
	// called it. Hooks for one chat may run on different goroutines: OnChatEnd can
	// begin before an OnMatch for the same chat has returned. A panicking hook is
	// recovered; if it ran for one connection's event, that connection is closed with
	// [CloseInternalError]. With a [Broker], OnMatch runs on the node of the user who
	// waited longer and OnChatEnd on the node that ended the chat (SCALING.md).
}

// resolve returns c with every zero field set to its default, or an error naming each
// field whose value is invalid: a negative duration or size, or a [RateLimit] with a
// negative Burst or a NaN Rate.
func (c Config) resolve() (Config, error) {
	var bad []string
	dur := func(name string, d *time.Duration, v time.Duration) {
		switch {
		case *d < 0:
			bad = append(bad, fmt.Sprintf("%s is negative (%v)", name, *d))
		case *d == 0:
			*d = v
		}
	}
	size := func(name string, n *int, v int) {
		switch {
		case *n < 0:
			bad = append(bad, fmt.Sprintf("%s is negative (%d)", name, *n))
		case *n == 0:
			*n = v
		}
	}
	limit := func(name string, l *RateLimit, r float64, burst int) {
		if l.Burst < 0 {
			bad = append(bad, fmt.Sprintf("%s.Burst is negative (%d)", name, l.Burst))
		}
		if math.IsNaN(l.Rate) {
			bad = append(bad, name+".Rate is NaN")
		}
		*l = l.or(r, burst)
	}
	dur("ResumeGrace", &c.ResumeGrace, 30*time.Second)
	dur("InitTimeout", &c.InitTimeout, 10*time.Second)
	dur("WriteTimeout", &c.WriteTimeout, 10*time.Second)
	dur("HeartbeatInterval", &c.HeartbeatInterval, 25*time.Second)
	dur("HeartbeatTimeout", &c.HeartbeatTimeout, 10*time.Second)
	dur("MatcherTimeout", &c.MatcherTimeout, 5*time.Second)
	size("MaxQueuedEvents", &c.MaxQueuedEvents, 256)
	size("MaxQueuedBytes", &c.MaxQueuedBytes, 1<<20)
	size("MaxFrameBytes", &c.MaxFrameBytes, 32<<10)
	size("MaxMessageBytes", &c.MaxMessageBytes, 4096)
	size("MaxMessageRunes", &c.MaxMessageRunes, 1000)
	limit("EventRate", &c.EventRate, 20, 40)
	limit("MessageRate", &c.MessageRate, 5, 20)
	limit("JoinRate", &c.JoinRate, 0.5, 5)
	limit("InitRate", &c.InitRate, 5, 100)
	limit("ResumeGuessRate", &c.ResumeGuessRate, 1.0/60, 10)
	limit("ErrorBudget", &c.ErrorBudget, 1, 20)
	limit("SignalRate", &c.SignalRate, 20, 60)
	dur("InterestWait", &c.InterestWait, 10*time.Second)
	dur("RepeatWindow", &c.RepeatWindow, 10*time.Minute)
	switch {
	case c.ReportContext == 0:
		c.ReportContext = 20
	case c.ReportContext < 0:
		c.ReportContext = 0
	}
	if len(bad) > 0 {
		return c, fmt.Errorf("flamingo: invalid Config: %s", strings.Join(bad, "; "))
	}
	if c.Matcher == nil {
		c.Matcher = NewMemoryMatcher()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
