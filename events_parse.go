package flamingo

import (
	"bytes"
	"slices"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file parses client events: a strict scanner for one JSON object, the payload
// fields each event type takes, and their rules. The vocabulary is in events.go.

// clientEvent is a parsed client event. Only the fields of its type are set.
type clientEvent struct {
	typ         EventType
	userID      string
	gender      Gender
	pref        Preference
	interests   []string // normalised: see normaliseInterests
	chatID      string
	chatIDRaw   []byte // send_message's chat_id until parseEvent makes it chatID
	content     []byte // send_message's, a view of the frame: valid during handle only
	clientMsgID string
	reason      ReportReason
	details     string
	typing      bool
	data        []byte // signal's object, a view of the frame: valid during handle only
}

// parseError is what parseClientEvent reports for a frame it refuses.
type parseError struct {
	code ErrorCode
	msg  string
	ref  EventType // the event's type when it was read
}

// Field names of client payloads, as the parser matches them (exactly, case included).
const (
	keyType        = "type"
	keyPayload     = "payload"
	keyUserID      = "user_id"
	keyGender      = "gender"
	keyPreference  = "preference"
	keyInterests   = "interests"
	keyChatID      = "chat_id"
	keyContent     = "content"
	keyClientMsgID = "client_msg_id"
	keyReason      = "reason"
	keyDetails     = "details"
	keyTyping      = "typing"
	keyData        = "data"
)

// Limits of the fields of protocol v2 (DESIGN.md §4.7, §4.8).
const (
	maxInterests       = 10
	maxInterestRunes   = 32
	maxClientMsgID     = 64
	maxReportDetails   = 500 // characters
	maxSignalDataBytes = 16 << 10
)

// fieldKind is the JSON kind a payload field must have.
type fieldKind uint8

const (
	kindString  fieldKind = iota
	kindBool              // true or false
	kindStrings           // an array of strings
	kindObject            // any object, kept as its raw bytes
)

// field is a payload field the engine reads.
type field struct {
	key  string
	kind fieldKind
}

// parseClientEvent parses one client frame strictly: one JSON object, exact key names,
// no duplicate keys among the ones that count, nothing after the object, known event
// type, and payload fields of the right kinds. Unknown keys are skipped. The frame must
// already be valid UTF-8. Content rules (empty, too long) are the engine's.
func parseClientEvent(b []byte) (clientEvent, *parseError) {
	return parseEvent(b, nil)
}

// parseEvent is parseClientEvent for the engine: send_message's chat_id is taken from
// *chatID when it is the same, without allocating, and kept there when it is not. A
// connection's messages name one chat for the chat's life.
func parseEvent(b []byte, chatID *string) (clientEvent, *parseError) {
	ev, perr := parseFrame(b)
	if perr == nil && ev.typ == EventSendMessage {
		raw := ev.chatIDRaw
		ev.chatIDRaw = nil
		switch {
		case chatID == nil:
			ev.chatID = string(raw)
		case string(raw) == *chatID:
			ev.chatID = *chatID
		default:
			ev.chatID = string(raw)
			*chatID = ev.chatID
		}
	}
	return ev, perr
}

func parseFrame(b []byte) (clientEvent, *parseError) {
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
	case EventNext:
		return EventNext
	case EventBlock:
		return EventBlock
	case EventReport:
		return EventReport
	case EventTyping:
		return EventTyping
	case EventSignal:
		return EventSignal
	}
	return ""
}

// payloadFields lists, per client event, the payload fields the engine reads.
var payloadFields = map[EventType][]field{
	EventInit:        {{keyUserID, kindString}},
	EventJoinQueue:   {{keyGender, kindString}, {keyPreference, kindString}, {keyInterests, kindStrings}},
	EventLeaveQueue:  nil,
	EventSendMessage: {{keyChatID, kindString}, {keyContent, kindString}, {keyClientMsgID, kindString}},
	EventLeaveChat:   {{keyChatID, kindString}},
	EventPing:        nil,
	EventGetStats:    nil,
	EventNext:        nil,
	EventBlock:       {{keyChatID, kindString}},
	EventReport:      {{keyChatID, kindString}, {keyReason, kindString}, {keyDetails, kindString}},
	EventTyping:      {{keyChatID, kindString}, {keyTyping, kindBool}},
	EventSignal:      {{keyChatID, kindString}, {keyData, kindObject}},
}

// maxFields is the most fields any event's payload has.
const maxFields = 3

// payload is what read found in a payload for the fields of one event type.
type payload struct {
	raw  [maxFields][]byte // string values and raw objects, as views of the frame (or copies, for escaped strings)
	flag [maxFields]bool   // bool values
	list [][]byte          // the strings of the one kindStrings field (copies)
	seen [maxFields]bool   // with a non-null value
	bad  string            // the first problem, if any
}

// read reads a payload value from s, keeping the string values of fields. It reports
// whether the value is valid JSON; problems with the fields go to p.bad.
func (p *payload) read(s *scanner, fields []field) bool {
	s.ws()
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '{':
	default:
		p.bad = "payload must be an object"
		return s.skipValue()
	}
	var present [maxFields]bool
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
			if string(key) != f.key {
				continue
			}
			if present[i] {
				return fail("duplicate field " + f.key)
			}
			present[i] = true
			s.ws()
			if s.peek() == 'n' { // null counts as absent
				return s.literal("null")
			}
			return p.value(s, i, f, fail)
		}
		return s.skipValue()
	})
}

// value reads the value of field f, the i'th of its event, into p.
func (p *payload) value(s *scanner, i int, f field, fail func(string) bool) bool {
	switch f.kind {
	case kindString:
		if s.peek() != '"' {
			return fail("field " + f.key + " must be a string")
		}
		v, ok := s.stringValue()
		if !ok {
			return false
		}
		if s.escaped { // v is the scanner's scratch, which the next string reuses
			v = append([]byte(nil), v...)
		}
		p.raw[i] = v
	case kindBool:
		switch s.peek() {
		case 't':
			p.flag[i] = true
			if !s.literal("true") {
				return false
			}
		case 'f':
			if !s.literal("false") {
				return false
			}
		default:
			return fail("field " + f.key + " must be true or false")
		}
	case kindObject:
		if s.peek() != '{' {
			return fail("field " + f.key + " must be an object")
		}
		start := s.i
		if !s.skipValue() {
			return false
		}
		p.raw[i] = s.b[start:s.i]
	case kindStrings:
		if s.peek() != '[' {
			return fail("field " + f.key + " must be an array of strings")
		}
		if !s.stringList(func(v []byte) bool {
			if len(p.list) > maxInterests {
				return true // too many already: read the rest, keep nothing more
			}
			p.list = append(p.list, append([]byte(nil), v...))
			return true
		}) {
			if p.bad == "" {
				p.bad = "field " + f.key + " must be an array of strings"
			}
			return s.skipRest()
		}
	}
	p.seen[i] = true
	return true
}

// setPayload checks p's values for ev's type and stores them in ev.
func (ev *clientEvent) setPayload(p *payload) *parseError {
	if p.bad != "" {
		return &parseError{code: CodeInvalidPayload, msg: p.bad}
	}
	if ev.typ == EventSendMessage { // the hot path: one small allocation, for chat_id
		return ev.setMessage(p)
	}
	values, seen := joinStrings([2][]byte{p.raw[0], p.raw[1]}), p.seen
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
		if seen[2] {
			interests, msg := normaliseInterests(p.list)
			if msg != "" {
				return &parseError{code: CodeInvalidPayload, msg: msg}
			}
			ev.interests = interests
		}
	case EventLeaveChat:
		ev.chatID = values[0]
	case EventBlock:
		if !seen[0] {
			return &parseError{code: CodeInvalidPayload, msg: "block needs chat_id"}
		}
		ev.chatID = values[0]
	case EventReport:
		if !seen[0] || !seen[1] {
			return &parseError{code: CodeInvalidPayload, msg: "report needs chat_id and reason"}
		}
		ev.chatID, ev.reason = values[0], ReportReason(p.raw[1])
		if !ev.reason.Valid() {
			return &parseError{code: CodeInvalidPayload, msg: `reason must be "spam", "harassment", "nudity", "underage" or "other"`}
		}
		if seen[2] {
			if utf8.RuneCount(p.raw[2]) > maxReportDetails {
				return &parseError{code: CodeInvalidPayload, msg: "details must be at most 500 characters"}
			}
			ev.details = string(p.raw[2])
		}
	case EventTyping:
		if !seen[0] || !seen[1] {
			return &parseError{code: CodeInvalidPayload, msg: "typing needs chat_id and typing"}
		}
		ev.chatID, ev.typing = values[0], p.flag[1]
	case EventSignal:
		if !seen[0] || !seen[1] {
			return &parseError{code: CodeInvalidPayload, msg: "signal needs chat_id and a data object"}
		}
		if len(p.raw[1]) > maxSignalDataBytes {
			return &parseError{code: CodeInvalidPayload, msg: "signal data must be at most 16 KiB"}
		}
		ev.chatID, ev.data = values[0], p.raw[1]
	}
	return nil
}

// setMessage stores send_message's fields in ev. The content stays a view of the
// frame: the engine copies it into the frame it relays and, for a report, into the
// chat's record, so that a message allocates no string of its own (parseEvent turns
// the chat id into a string).
func (ev *clientEvent) setMessage(p *payload) *parseError {
	if !p.seen[0] || !p.seen[1] {
		return &parseError{code: CodeInvalidPayload, msg: "send_message needs chat_id and content"}
	}
	ev.chatIDRaw, ev.content = p.raw[0], p.raw[1]
	if p.seen[2] {
		if !validClientMsgID(p.raw[2]) {
			return &parseError{code: CodeInvalidPayload, msg: "client_msg_id must be 1 to 64 of A-Z, a-z, 0-9, _ and -"}
		}
		ev.clientMsgID = string(p.raw[2])
	}
	return nil
}

// normaliseInterests trims and lower-cases each interest, drops duplicates and sorts
// them, or says what is wrong with them (DESIGN.md §4.7).
func normaliseInterests(raw [][]byte) ([]string, string) {
	if len(raw) > maxInterests {
		return nil, "at most 10 interests"
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		v := strings.ToLower(strings.TrimSpace(string(r)))
		n := utf8.RuneCountInString(v)
		if n == 0 || n > maxInterestRunes {
			return nil, "each interest must be 1 to 32 characters"
		}
		for _, c := range v {
			if unicode.IsControl(c) {
				return nil, "an interest must not hold control characters"
			}
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return slices.Compact(out), ""
}

// validClientMsgID reports whether v is 1 to 64 of [A-Za-z0-9_-].
func validClientMsgID(v []byte) bool {
	if len(v) == 0 || len(v) > maxClientMsgID {
		return false
	}
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// joinStrings turns both values into strings with one allocation: the strings share
// it.
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

// stringList reads an array whose elements are all strings, calling each with each
// (valid only during the call). It reports false, with the scanner at that element's
// start, at the first element that is not a string.
func (s *scanner) stringList(each func([]byte) bool) bool {
	s.i++ // the '['
	s.ws()
	if s.peek() == ']' {
		s.i++
		return true
	}
	return s.elements(func() bool {
		s.ws()
		if s.peek() != '"' {
			return false
		}
		v, ok := s.stringValue()
		return ok && each(v)
	})
}

// skipRest skips what is left of an array that stringList gave up on, from an
// element's start: the elements, and the closing bracket.
func (s *scanner) skipRest() bool {
	if s.depth++; s.depth > maxDepth {
		return false
	}
	defer func() { s.depth-- }()
	return s.elements(s.skipValue)
}

// elements reads the elements of an array with elem, from the first element's start
// up to and including the closing bracket.
func (s *scanner) elements(elem func() bool) bool {
	for {
		if !elem() {
			return false
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
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
		ok := s.elements(s.skipValue)
		s.depth--
		return ok
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
