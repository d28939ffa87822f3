package flamingo

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file parses client events: a strict scanner for one JSON object, the payload
// fields each event type takes, and their rules. The vocabulary is in events.go.

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
