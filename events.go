package flamingo

import (
	"encoding/json"
	"time"
)

// This file is the wire vocabulary of protocol v1: the envelope, the event types and
// their payloads, the error codes and the end reasons. events_parse.go reads client
// events; events_build.go writes server events.

// EventType names an event: the "type" field of every frame.
type EventType string

// Events a client sends.
const (
	EventInit        EventType = "init"
	EventJoinQueue   EventType = "join_queue"
	EventLeaveQueue  EventType = "leave_queue"
	EventSendMessage EventType = "send_message"
	EventLeaveChat   EventType = "leave_chat"
	EventPing        EventType = "ping"
	EventGetStats    EventType = "get_stats"
	EventNext        EventType = "next"
	EventBlock       EventType = "block"
	EventReport      EventType = "report"
	EventTyping      EventType = "typing"
	// EventSignal carries WebRTC signaling both ways: from a client, and relayed by
	// the server to the partner with the same payload.
	EventSignal EventType = "signal"
)

// Events the server sends.
const (
	EventReady           EventType = "ready"
	EventQueueJoined     EventType = "queue_joined"
	EventQueueLeft       EventType = "queue_left"
	EventMatchFound      EventType = "match_found"
	EventMessageReceived EventType = "message_received"
	EventChatEnded       EventType = "chat_ended"
	EventPong            EventType = "pong"
	EventStats           EventType = "stats"
	EventError           EventType = "error"
	EventBlocked         EventType = "blocked"
	EventReported        EventType = "reported"
	EventPartnerTyping   EventType = "partner_typing"
	EventMessageSent     EventType = "message_sent"
	EventPartnerAway     EventType = "partner_away"
	EventPartnerBack     EventType = "partner_back"
)

// ErrorCode is the "code" of an error event. Hooks may use codes of their own; the
// engine uses the ones below.
type ErrorCode string

// Error codes the engine sends.
const (
	// CodeBadJSON: the frame is not one JSON object with a string "type".
	CodeBadJSON ErrorCode = "bad_json"
	// CodeUnknownEvent: the type is not a client event.
	CodeUnknownEvent ErrorCode = "unknown_event"
	// CodeInvalidPayload: a payload field is missing, of the wrong kind or out of range.
	CodeInvalidPayload ErrorCode = "invalid_payload"
	// CodeNotInitialized: an event other than init came before init.
	CodeNotInitialized ErrorCode = "not_initialized"
	// CodeAlreadyInitialized: a second init on the same connection.
	CodeAlreadyInitialized ErrorCode = "already_initialized"
	// CodeAlreadyInQueue: join_queue while waiting.
	CodeAlreadyInQueue ErrorCode = "already_in_queue"
	// CodeNotInQueue: leave_queue while not waiting.
	CodeNotInQueue ErrorCode = "not_in_queue"
	// CodeAlreadyInChat: join_queue while in a chat.
	CodeAlreadyInChat ErrorCode = "already_in_chat"
	// CodeNotInChat: the chat does not exist, has ended or is not the sender's.
	CodeNotInChat ErrorCode = "not_in_chat"
	// CodeMessageTooLong: content over Config.MaxMessageBytes.
	CodeMessageTooLong ErrorCode = "message_too_long"
	// CodeEmptyMessage: content empty after trimming white space.
	CodeEmptyMessage ErrorCode = "empty_message"
	// CodeRateLimited: too much, too fast; the event was dropped. Also sent when the
	// partner is away and its held events are at their bound.
	CodeRateLimited ErrorCode = "rate_limited"
	// CodeSessionReplaced: another connection took this session over; this one closes.
	CodeSessionReplaced ErrorCode = "session_replaced"
	// CodeInternal: the server failed; the event may be retried.
	CodeInternal ErrorCode = "internal"
	// CodeMessageRejected: a Config.OnMessage hook refused the message without giving
	// a code of its own.
	CodeMessageRejected ErrorCode = "message_rejected"
	// CodeJoinRefused: a Config.OnJoin hook refused the join without giving a code
	// of its own.
	CodeJoinRefused ErrorCode = "join_refused"
)

// Error is a protocol error: what an error event carries. Hooks return one to refuse
// an event with a code of their choice.
type Error struct {
	Code    ErrorCode
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return "flamingo: " + string(e.Code) + ": " + e.Message
}

// Envelope is the outer shape of every frame. Go clients can decode server events with
// it and the payload types below; the engine itself uses a stricter parser.
type Envelope struct {
	Type    EventType       `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// InitPayload is the payload of init.
type InitPayload struct {
	UserID string `json:"user_id,omitempty"`
}

// JoinQueuePayload is the payload of join_queue.
type JoinQueuePayload struct {
	Gender     Gender     `json:"gender"`
	Preference Preference `json:"preference,omitempty"`
	Interests  []string   `json:"interests,omitempty"`
}

// SendMessagePayload is the payload of send_message.
type SendMessagePayload struct {
	ChatID      string `json:"chat_id"`
	Content     string `json:"content"`
	ClientMsgID string `json:"client_msg_id,omitempty"`
}

// LeaveChatPayload is the payload of leave_chat.
type LeaveChatPayload struct {
	ChatID string `json:"chat_id,omitempty"`
}

// ReadyPayload is the payload of ready.
type ReadyPayload struct {
	UserID  string `json:"user_id"`
	Resumed bool   `json:"resumed"`
	ChatID  string `json:"chat_id,omitempty"`
}

// QueueJoinedPayload is the payload of queue_joined.
type QueueJoinedPayload struct {
	InQueue int `json:"in_queue"`
}

// Partner describes the other user of a chat. It never identifies them.
type Partner struct {
	Gender Gender `json:"gender"`
}

// MatchFoundPayload is the payload of match_found.
type MatchFoundPayload struct {
	ChatID  string  `json:"chat_id"`
	Partner Partner `json:"partner"`
	// CommonInterests are the interests both users gave, sorted; empty when none.
	CommonInterests []string `json:"common_interests"`
	// Relaxed is true when at least one user gave interests and the two share none.
	Relaxed bool `json:"relaxed"`
	// Initiator is true for exactly one user of the chat: the one who makes the
	// WebRTC offer.
	Initiator bool `json:"initiator"`
	// ICEServers are for this user's RTCPeerConnection (see [Config.ICEServers]).
	ICEServers []ICEServer `json:"ice_servers"`
}

// ICEServer is one entry of an RTCPeerConnection's iceServers: STUN or TURN URLs
// and, for TURN, the credentials.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ChatPayload names a chat. It is the payload of block, blocked, reported and
// partner_back.
type ChatPayload struct {
	ChatID string `json:"chat_id"`
}

// ReportPayload is the payload of report.
type ReportPayload struct {
	ChatID  string       `json:"chat_id"`
	Reason  ReportReason `json:"reason"`
	Details string       `json:"details,omitempty"`
}

// TypingPayload is the payload of typing and of partner_typing.
type TypingPayload struct {
	ChatID string `json:"chat_id"`
	Typing bool   `json:"typing"`
}

// SignalPayload is the payload of signal, both ways. Data is a JSON object that the
// engine relays as it is.
type SignalPayload struct {
	ChatID string          `json:"chat_id"`
	Data   json.RawMessage `json:"data"`
}

// MessageSentPayload is the payload of message_sent: the acknowledgement of a
// send_message that carried a client_msg_id.
type MessageSentPayload struct {
	ChatID      string    `json:"chat_id"`
	ClientMsgID string    `json:"client_msg_id"`
	MessageID   string    `json:"message_id"`
	SentAt      time.Time `json:"sent_at"`
}

// PartnerAwayPayload is the payload of partner_away: the partner's connection
// dropped, and the chat is kept for GraceMs milliseconds.
type PartnerAwayPayload struct {
	ChatID  string `json:"chat_id"`
	GraceMs int64  `json:"grace_ms"`
}

// MessageReceivedPayload is the payload of message_received.
type MessageReceivedPayload struct {
	ChatID    string    `json:"chat_id"`
	MessageID string    `json:"message_id"`
	Content   string    `json:"content"`
	SentAt    time.Time `json:"sent_at"`
}

// EndReason says why a chat ended.
type EndReason string

// The reasons in chat_ended.
const (
	// ReasonLeft: you left.
	ReasonLeft EndReason = "left"
	// ReasonPartnerLeft: your partner left.
	ReasonPartnerLeft EndReason = "partner_left"
	// ReasonPartnerDisconnected: your partner lost the connection and did not come
	// back within the grace period.
	ReasonPartnerDisconnected EndReason = "partner_disconnected"
	// ReasonServerRestart: the server is restarting and cannot keep the chat (a
	// single node's Engine.Drain), to both users.
	ReasonServerRestart EndReason = "server_restart"
)

// ChatEndedPayload is the payload of chat_ended.
type ChatEndedPayload struct {
	ChatID string    `json:"chat_id"`
	Reason EndReason `json:"reason"`
}

// Stats counts users. It is the payload of stats.
type Stats struct {
	// Online counts users with a live connection.
	Online int `json:"online"`
	// InQueue counts users waiting to be matched.
	InQueue int `json:"in_queue"`
	// InChat counts users in a chat, including those within their resume grace.
	InChat int `json:"in_chat"`
}

// ErrorPayload is the payload of error.
type ErrorPayload struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	Ref     EventType `json:"ref,omitempty"`
	// RetryAfterMs comes with rate_limited: how long until the event would be
	// accepted, in milliseconds.
	RetryAfterMs int64 `json:"retry_after_ms,omitempty"`
}
