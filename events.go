package flamingo

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the one place that knows the wire protocol v1: the envelope, the event
// types and their payloads, the error codes, a strict parser for client events and
// hand-written builders for server events.

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
}

// SendMessagePayload is the payload of send_message.
type SendMessagePayload struct {
	ChatID  string `json:"chat_id"`
	Content string `json:"content"`
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

// clientEvent is a parsed client event. Only the fields of its type are set.
type clientEvent struct {
	typ     EventType
	userID  string
	gender  Gender
	pref    Preference
	chatID  string
	content string
}

// parseError is what parseClientEvent reports for a frame it refuses.
type parseError struct {
	code ErrorCode
	msg  string
	ref  EventType // the event's type when it was read
}

// Field names of client payloads, as the parser matches them (exactly, case included).
const (
	keyType       = "type"
	keyPayload    = "payload"
	keyUserID     = "user_id"
	keyGender     = "gender"
	keyPreference = "preference"
	keyChatID     = "chat_id"
	keyContent    = "content"
)

// parseClientEvent parses one client frame strictly: one JSON object, exact key names,
// no duplicate keys among the ones that count, nothing after the object, known event
// type, and payload fields of the right kinds. Unknown keys are skipped. The frame must
// already be valid UTF-8. Content rules (empty, too long) are the engine's.
func parseClientEvent(b []byte) (clientEvent, *parseError) {
	var ev clientEvent
	var pl payload
	s := scanner{b: b}
	var deferred []byte // the payload, when it came before the type
	var haveType, havePayload bool
	ok := s.object(func(key []byte) bool {
		switch string(key) {
		case keyType:
			if haveType {
				return false
			}
			haveType = true
			v, isStr := s.stringValue()
			if !isStr {
				return false
			}
			ev.typ = clientEventType(v) // v is scratch: keep the canonical name instead
		case keyPayload:
			if havePayload {
				return false
			}
			havePayload = true
			if fields, known := payloadFields[ev.typ]; haveType && known {
				return pl.read(&s, fields) // the usual order: one pass over the payload
			}
			s.ws()
			start := s.i
			if !s.skipValue() {
				return false
			}
			deferred = b[start:s.i]
		default:
			return s.skipValue()
		}
		return true
	})
	if !ok || !s.end() {
		return ev, &parseError{code: CodeBadJSON, msg: "frame is not one JSON object with unique keys"}
	}
	if !haveType {
		return ev, &parseError{code: CodeBadJSON, msg: `frame has no string "type"`}
	}
	fields, known := payloadFields[ev.typ]
	if !known {
		return ev, &parseError{code: CodeUnknownEvent, msg: "unknown event type"}
	}
	if deferred != nil {
		pl.read(&scanner{b: deferred}, fields) // already known to be valid JSON
	}
	if perr := ev.setPayload(&pl); perr != nil {
		perr.ref = ev.typ
		return ev, perr
	}
	return ev, nil
}

// clientEventType returns the client event named v, or "" if there is none.
func clientEventType(v []byte) EventType {
	switch EventType(v) { // compared without allocating; the constant is returned
	case EventInit:
		return EventInit
	case EventJoinQueue:
		return EventJoinQueue
	case EventLeaveQueue:
		return EventLeaveQueue
	case EventSendMessage:
		return EventSendMessage
	case EventLeaveChat:
		return EventLeaveChat
	case EventPing:
		return EventPing
	case EventGetStats:
		return EventGetStats
	}
	return ""
}

// payloadFields lists, per client event, the payload fields the engine reads.
var payloadFields = map[EventType][]string{
	EventInit:        {keyUserID},
	EventJoinQueue:   {keyGender, keyPreference},
	EventLeaveQueue:  nil,
	EventSendMessage: {keyChatID, keyContent},
	EventLeaveChat:   {keyChatID},
	EventPing:        nil,
	EventGetStats:    nil,
}

// payload is what read found in a payload for the fields of one event type.
type payload struct {
	raw  [2][]byte // the values, as views of the frame (or copies, for escaped ones)
	seen [2]bool   // with a non-null value
	bad  string    // the first problem, if any
}

// read reads a payload value from s, keeping the string values of fields. It reports
// whether the value is valid JSON; problems with the fields go to p.bad.
func (p *payload) read(s *scanner, fields []string) bool {
	s.ws()
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '{':
	default:
		p.bad = "payload must be an object"
		return s.skipValue()
	}
	var present [2]bool
	fail := func(msg string) bool {
		if p.bad == "" {
			p.bad = msg
		}
		return s.skipValue()
	}
	s.depth++ // counted as skipValue would count it
	defer func() { s.depth-- }()
	return s.object(func(key []byte) bool {
		for i, f := range fields {
			if string(key) != f {
				continue
			}
			if present[i] {
				return fail("duplicate field " + f)
			}
			present[i] = true
			s.ws()
			switch s.peek() {
			case 'n': // null counts as absent
				return s.literal("null")
			case '"':
			default:
				return fail("field " + f + " must be a string")
			}
			v, ok := s.stringValue()
			if !ok {
				return false
			}
			if s.escaped { // v is the scanner's scratch, which the next string reuses
				v = append([]byte(nil), v...)
			}
			p.raw[i], p.seen[i] = v, true
			return true
		}
		return s.skipValue()
	})
}

// setPayload checks p's values for ev's type and stores them in ev.
func (ev *clientEvent) setPayload(p *payload) *parseError {
	if p.bad != "" {
		return &parseError{code: CodeInvalidPayload, msg: p.bad}
	}
	values, seen := joinStrings(p.raw), p.seen
	switch ev.typ {
	case EventInit:
		ev.userID = values[0]
	case EventJoinQueue:
		ev.gender = Gender(values[0])
		if !ev.gender.Valid() {
			return &parseError{code: CodeInvalidPayload, msg: `gender must be "male", "female" or "other"`}
		}
		ev.pref = PreferAny
		if seen[1] {
			ev.pref = Preference(values[1])
		}
		if !ev.pref.Valid() {
			return &parseError{code: CodeInvalidPayload, msg: `preference must be "male", "female", "other" or "any"`}
		}
	case EventSendMessage:
		if !seen[0] || !seen[1] {
			return &parseError{code: CodeInvalidPayload, msg: "send_message needs chat_id and content"}
		}
		ev.chatID, ev.content = values[0], values[1]
	case EventLeaveChat:
		ev.chatID = values[0]
	}
	return nil
}

// joinStrings turns both values into strings with one allocation: the strings share
// it. On the hot path (send_message) that is one allocation for chat_id and content.
func joinStrings(raw [2][]byte) [2]string {
	n := len(raw[0]) + len(raw[1])
	if n == 0 {
		return [2]string{}
	}
	var sb strings.Builder
	sb.Grow(n)
	sb.Write(raw[0])
	sb.Write(raw[1])
	all := sb.String()
	return [2]string{all[:len(raw[0])], all[len(raw[0]):]}
}

// scanner is a small strict JSON reader over a byte slice. It never panics on any
// input; every method reports failure instead.
type scanner struct {
	b     []byte
	i     int
	depth int
	buf   []byte // scratch for strings with escapes
	// escaped reports whether the last stringValue had escapes, so that its result
	// is in buf rather than a view of b.
	escaped bool
}

const maxDepth = 64

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// end reports whether only white space is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// object reads an object, calling field for each key with the scanner placed before
// the value; field must consume the value and report success.
func (s *scanner) object(field func(key []byte) bool) bool {
	s.ws()
	if s.peek() != '{' {
		return false
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		key, ok := s.stringValue()
		if !ok {
			return false
		}
		// The key may point into s.buf; copy it only if field could overwrite it.
		s.ws()
		if s.peek() != ':' {
			return false
		}
		s.i++
		if !field(key) {
			return false
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// stringValue reads a string and returns its decoded bytes, which are valid only until
// the next call. Control characters, bad escapes and lone surrogates are refused.
func (s *scanner) stringValue() ([]byte, bool) {
	s.ws()
	if s.peek() != '"' {
		return nil, false
	}
	s.i++
	start := s.i
	s.escaped = false
	// Fast path: up to the next quote (found with the vectorised IndexByte) there is
	// no backslash and no control character.
	if q := bytes.IndexByte(s.b[start:], '"'); q >= 0 {
		v := s.b[start : start+q]
		if bytes.IndexByte(v, '\\') < 0 {
			for _, c := range v {
				if c < 0x20 {
					return nil, false
				}
			}
			s.i = start + q + 1
			return v, true
		}
	}
	// Slow path: from the start, decoding escapes into the scratch buffer.
	for s.i < len(s.b) && s.b[s.i] != '\\' && s.b[s.i] != '"' {
		if s.b[s.i] < 0x20 {
			return nil, false
		}
		s.i++
	}
	s.escaped = true
	buf := append(s.buf[:0], s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			s.buf = buf
			return buf, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			buf = append(buf, c)
			s.i++
			continue
		}
		s.i++ // the backslash
		if s.i >= len(s.b) {
			return nil, false
		}
		e := s.b[s.i]
		s.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, false
			}
			if utf16.IsSurrogate(r) {
				// Must be a high surrogate followed by an escaped low surrogate.
				if r >= 0xdc00 || s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
					return nil, false
				}
				s.i += 2
				r2, ok := s.hex4()
				if !ok {
					return nil, false
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return nil, false
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, false
		}
	}
	return nil, false
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// skipValue reads and discards any JSON value, nested at most maxDepth deep.
func (s *scanner) skipValue() bool {
	s.ws()
	switch c := s.peek(); {
	case c == '"':
		_, ok := s.stringValue()
		return ok
	case c == '{':
		if s.depth++; s.depth > maxDepth {
			return false
		}
		ok := s.object(func([]byte) bool { return s.skipValue() })
		s.depth--
		return ok
	case c == '[':
		if s.depth++; s.depth > maxDepth {
			return false
		}
		s.i++
		s.ws()
		if s.peek() == ']' {
			s.i++
			s.depth--
			return true
		}
		for {
			if !s.skipValue() {
				return false
			}
			s.ws()
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				s.depth--
				return true
			default:
				return false
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number reads a number in JSON's grammar.
func (s *scanner) number() bool {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// Builders for server events. Each appends one complete frame to dst.

func appendHead(dst []byte, t EventType) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, t...)
	return append(dst, `","payload":{`...)
}

func appendField(dst []byte, first bool, key string) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, `":`...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Valid UTF-8 passes through unchanged, so
// content reaches the partner exactly as sent; only the characters JSON requires are
// escaped (no HTML escaping: clients render text, not markup).
func appendString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendReady(dst []byte, userID string, resumed bool, chatID string) []byte {
	dst = appendHead(dst, EventReady)
	dst = appendField(dst, true, "user_id")
	dst = appendString(dst, userID)
	dst = appendField(dst, false, "resumed")
	dst = strconv.AppendBool(dst, resumed)
	if chatID != "" {
		dst = appendField(dst, false, "chat_id")
		dst = appendString(dst, chatID)
	}
	return append(dst, "}}"...)
}

func appendEmpty(dst []byte, t EventType) []byte {
	return append(appendHead(dst, t), "}}"...)
}

func appendQueueJoined(dst []byte, inQueue int) []byte {
	dst = appendHead(dst, EventQueueJoined)
	dst = appendField(dst, true, "in_queue")
	dst = strconv.AppendInt(dst, int64(inQueue), 10)
	return append(dst, "}}"...)
}

func appendMatchFound(dst []byte, chatID string, partner Gender) []byte {
	dst = appendHead(dst, EventMatchFound)
	dst = appendField(dst, true, "chat_id")
	dst = appendString(dst, chatID)
	dst = appendField(dst, false, "partner")
	dst = append(dst, '{')
	dst = appendField(dst, true, "gender")
	dst = appendString(dst, string(partner))
	return append(dst, "}}}"...)
}

// appendSentAt appends t in UTC as RFC 3339 with milliseconds
// (2006-01-02T15:04:05.000Z), written digit by digit: time.AppendFormat with a layout
// was a tenth of the relay's CPU.
func appendSentAt(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	}
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond()/1e6, 3)
	return append(dst, 'Z')
}

// appendDigits appends v (0 ≤ v < 10^width) as exactly width decimal digits.
func appendDigits(dst []byte, v, width int) []byte {
	var b [4]byte
	for i := width - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[:width]...)
}

// messageReceivedLen is the length of appendMessageReceived's frame for these values
// (with a four-digit year), so that it can be built in one allocation.
func messageReceivedLen[M string | []byte](chatID string, messageID M, content string) int {
	const fixed = len(`{"type":"message_received","payload":{"chat_id":"","message_id":"","content":"","sent_at":"2006-01-02T15:04:05.000Z"}}`)
	return fixed + escapedLen(chatID) + escapedLen(messageID) + escapedLen(content)
}

// escapedLen is the length of appendString's output for s, less the two quotes.
func escapedLen[S string | []byte](s S) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			n++
		case c < 0x20:
			n += 5
		}
	}
	return n
}

func appendMessageReceived[M string | []byte](dst []byte, chatID string, messageID M, content string, sentAt time.Time) []byte {
	dst = appendHead(dst, EventMessageReceived)
	dst = appendField(dst, true, "chat_id")
	dst = appendString(dst, chatID)
	dst = appendField(dst, false, "message_id")
	dst = appendString(dst, messageID)
	dst = appendField(dst, false, "content")
	dst = appendString(dst, content)
	dst = appendField(dst, false, "sent_at")
	dst = append(dst, '"')
	dst = appendSentAt(dst, sentAt)
	dst = append(dst, '"')
	return append(dst, "}}"...)
}

func appendChatEnded(dst []byte, chatID string, reason EndReason) []byte {
	dst = appendHead(dst, EventChatEnded)
	dst = appendField(dst, true, "chat_id")
	dst = appendString(dst, chatID)
	dst = appendField(dst, false, "reason")
	dst = appendString(dst, string(reason))
	return append(dst, "}}"...)
}

func appendStats(dst []byte, st Stats) []byte {
	dst = appendHead(dst, EventStats)
	dst = appendField(dst, true, "online")
	dst = strconv.AppendInt(dst, int64(st.Online), 10)
	dst = appendField(dst, false, "in_queue")
	dst = strconv.AppendInt(dst, int64(st.InQueue), 10)
	dst = appendField(dst, false, "in_chat")
	dst = strconv.AppendInt(dst, int64(st.InChat), 10)
	return append(dst, "}}"...)
}

func appendError(dst []byte, code ErrorCode, msg string, ref EventType) []byte {
	dst = appendHead(dst, EventError)
	dst = appendField(dst, true, "code")
	dst = appendString(dst, string(code))
	dst = appendField(dst, false, "message")
	dst = appendString(dst, msg)
	if ref != "" {
		dst = appendField(dst, false, "ref")
		dst = appendString(dst, string(ref))
	}
	return append(dst, "}}"...)
}

func appendRateLimited(dst []byte, ref EventType, retryAfter time.Duration) []byte {
	dst = appendHead(dst, EventError)
	dst = appendField(dst, true, "code")
	dst = appendString(dst, string(CodeRateLimited))
	dst = appendField(dst, false, "message")
	dst = appendString(dst, "too many events: slow down")
	if ref != "" {
		dst = appendField(dst, false, "ref")
		dst = appendString(dst, string(ref))
	}
	dst = appendField(dst, false, "retry_after_ms")
	dst = strconv.AppendInt(dst, max(retryAfter.Milliseconds(), 1), 10)
	return append(dst, "}}"...)
}
