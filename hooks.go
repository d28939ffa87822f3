package flamingo

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// This file holds what hooks see ([ChatInfo], [Message], [ChatEnd]) and how the engine
// calls them: never with e.mu held (see [Engine]), and with a panic recovered.

// ChatInfo describes a chat that has just started. Users are handles: stable, opaque
// names for the users that are not their secret user_ids.
type ChatInfo struct {
	ChatID    string
	Users     [2]string
	Genders   [2]Gender
	StartedAt time.Time
}

// Message is a message on its way from one user to their partner.
type Message struct {
	ChatID    string
	MessageID string
	From, To  string // handles
	Content   string
	SentAt    time.Time
}

// ChatEnd describes a chat that has ended.
type ChatEnd struct {
	ChatID string
	Users  [2]string // handles
	// By is the handle of the user who left or did not come back.
	By string
	// Reason is [ReasonLeft] when By left on purpose (or was kicked),
	// [ReasonPartnerDisconnected] when By did not come back within the resume grace,
	// and [ReasonServerRestart] when a single node's Drain ended the chat.
	Reason    EndReason
	StartedAt time.Time
	EndedAt   time.Time
}

// JoinRequest is a user's request to wait for a stranger, as [Config.OnJoin] sees
// it. The hook may set Pool and Labels; the other fields are for reading.
type JoinRequest struct {
	User       string // the user's handle
	RemoteAddr string // from the transport, if it is an [Addresser]
	Gender     Gender
	Preference Preference
	Interests  []string // normalised, as in [Ticket]
	// Pool and Labels go into the user's [Ticket]: users meet only within a pool.
	Pool   string
	Labels map[string]string
}

// ReportReason is why a user reports their partner.
type ReportReason string

// The reasons a report may give.
const (
	ReportSpam       ReportReason = "spam"
	ReportHarassment ReportReason = "harassment"
	ReportNudity     ReportReason = "nudity"
	ReportUnderage   ReportReason = "underage"
	ReportOther      ReportReason = "other"
)

// Valid reports whether r is one of the defined reasons.
func (r ReportReason) Valid() bool {
	switch r {
	case ReportSpam, ReportHarassment, ReportNudity, ReportUnderage, ReportOther:
		return true
	}
	return false
}

// Report is what [Config.OnReport] is told: who reported whom, why, and the chat's last
// messages, oldest first (at most [Config.ReportContext], both sides; From tells them
// apart).
type Report struct {
	ChatID   string
	Reporter string // handle
	Reported string // handle
	Reason   ReportReason
	Details  string
	Messages []Message
	At       time.Time
}

// callHook runs a user hook, recovering a panic. If the hook ran for connection c, a
// panic closes c with CloseInternalError. It reports whether the hook returned.
func (e *Engine) callHook(c *conn, hook int, f func()) (ok bool) {
	h := &e.hooks[hook]
	start := time.Now()
	defer func() {
		h.observe(time.Since(start))
		if r := recover(); r != nil {
			h.panics.Add(1)
			e.log.Error("flamingo: hook panicked", slog.String("hook", hookNames[hook]), slog.String("panic", fmt.Sprint(r)))
			if c != nil {
				e.closeConn(c, CloseInternalError, "internal error")
			}
			ok = false
		}
	}()
	f()
	return true
}

func (e *Engine) callOnMatch(info ChatInfo) {
	if e.cfg.OnMatch != nil {
		e.callHook(nil, hookOnMatch, func() { e.cfg.OnMatch(info) })
	}
}

// iceServers calls Config.ICEServers for user, or returns nil if it is not set or
// panics.
func (e *Engine) iceServers(user string) []ICEServer {
	var servers []ICEServer
	if e.cfg.ICEServers != nil {
		e.callHook(nil, hookICEServers, func() { servers = e.cfg.ICEServers(user) })
	}
	return servers
}

func (e *Engine) callOnChatEnd(c *conn, ends ...ChatEnd) {
	if e.cfg.OnChatEnd == nil {
		return
	}
	for _, end := range ends {
		e.callHook(c, hookOnChatEnd, func() { e.cfg.OnChatEnd(end) })
	}
}

// callOnMessage asks the OnMessage hook about m. It returns ok false if the hook
// panicked (c is then closing), and otherwise the error event for the sender if the
// hook refused m, nil if it accepted it.
func (e *Engine) callOnMessage(c *conn, m Message) (refusal *Error, ok bool) {
	if e.cfg.OnMessage == nil {
		return nil, true
	}
	var err error
	if !e.callHook(c, hookOnMessage, func() { err = e.cfg.OnMessage(m) }) {
		return nil, false
	}
	if err == nil {
		return nil, true
	}
	return refusalOf(err, CodeMessageRejected, "the message was refused"), true
}

// callOnJoin asks the OnJoin hook about j, a join of the user of c, with the context
// c was served with. It returns ok false if the hook panicked (c is then closing),
// and otherwise the error event for the user if the hook refused the join, nil if it
// accepted it.
func (e *Engine) callOnJoin(c *conn, j *JoinRequest) (refusal *Error, ok bool) {
	if e.cfg.OnJoin == nil {
		return nil, true
	}
	var err error
	if !e.callHook(c, hookOnJoin, func() { err = e.cfg.OnJoin(c.ctx, j) }) {
		return nil, false
	}
	if err == nil {
		return nil, true
	}
	return refusalOf(err, CodeJoinRefused, "you cannot join the queue now"), true
}

// callOnReport tells the OnReport hook about r, a report by the user of c, if r is
// not nil.
func (e *Engine) callOnReport(c *conn, r *pendingReport) {
	if e.cfg.OnReport == nil || r == nil {
		return
	}
	report := r.toReport()
	e.callHook(c, hookOnReport, func() { e.cfg.OnReport(report) })
}

// refusalOf is the error event for a hook's error: its own code and message if it is
// an [*Error] with a code, code and msg otherwise (the message of an [*Error] without
// a code instead of msg).
func refusalOf(err error, code ErrorCode, msg string) *Error {
	var perr *Error
	if errors.As(err, &perr) && perr != nil && perr.Code != "" {
		return perr
	}
	if perr != nil && perr.Message != "" {
		msg = perr.Message
	}
	return &Error{Code: code, Message: msg}
}
