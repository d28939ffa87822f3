package flamingo

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eventsTestClientTypes lists every client event of protocol v1, written out here rather
// than taken from events.go so that a type dropped there is noticed.
var eventsTestClientTypes = []EventType{
	EventInit,
	EventJoinQueue,
	EventLeaveQueue,
	EventSendMessage,
	EventLeaveChat,
	EventPing,
	EventGetStats,
}

// eventsTestErrorCodes lists every error code the engine defines.
var eventsTestErrorCodes = []ErrorCode{
	CodeBadJSON,
	CodeUnknownEvent,
	CodeInvalidPayload,
	CodeNotInitialized,
	CodeAlreadyInitialized,
	CodeAlreadyInQueue,
	CodeNotInQueue,
	CodeAlreadyInChat,
	CodeNotInChat,
	CodeMessageTooLong,
	CodeEmptyMessage,
	CodeRateLimited,
	CodeSessionReplaced,
	CodeInternal,
	CodeMessageRejected,
}

func TestParseClientEventValid(t *testing.T) {
	tests := []struct {
		name string
		give string
		want clientEvent
	}{
		// init
		{"init without payload", `{"type":"init"}`, clientEvent{typ: EventInit}},
		{"init with null payload", `{"type":"init","payload":null}`, clientEvent{typ: EventInit}},
		{"init with empty payload", `{"type":"init","payload":{}}`, clientEvent{typ: EventInit}},
		{"init with empty user_id", `{"type":"init","payload":{"user_id":""}}`, clientEvent{typ: EventInit}},
		{"init with null user_id", `{"type":"init","payload":{"user_id":null}}`, clientEvent{typ: EventInit}},
		{
			"init with user_id",
			`{"type":"init","payload":{"user_id":"0123456789abcdef0123456789abcdef"}}`,
			clientEvent{typ: EventInit, userID: "0123456789abcdef0123456789abcdef"},
		},
		// join_queue
		{
			"join_queue without preference defaults to any",
			`{"type":"join_queue","payload":{"gender":"male"}}`,
			clientEvent{typ: EventJoinQueue, gender: GenderMale, pref: PreferAny},
		},
		{
			"join_queue with null preference defaults to any",
			`{"type":"join_queue","payload":{"gender":"female","preference":null}}`,
			clientEvent{typ: EventJoinQueue, gender: GenderFemale, pref: PreferAny},
		},
		{
			"join_queue with preference any",
			`{"type":"join_queue","payload":{"gender":"other","preference":"any"}}`,
			clientEvent{typ: EventJoinQueue, gender: GenderOther, pref: PreferAny},
		},
		{
			"join_queue female for male",
			`{"type":"join_queue","payload":{"gender":"female","preference":"male"}}`,
			clientEvent{typ: EventJoinQueue, gender: GenderFemale, pref: PreferMale},
		},
		{
			"join_queue male for female",
			`{"type":"join_queue","payload":{"preference":"female","gender":"male"}}`,
			clientEvent{typ: EventJoinQueue, gender: GenderMale, pref: PreferFemale},
		},
		{
			"join_queue other for other",
			`{"type":"join_queue","payload":{"gender":"other","preference":"other"}}`,
			clientEvent{typ: EventJoinQueue, gender: GenderOther, pref: PreferOther},
		},
		// leave_queue, ping, get_stats
		{"leave_queue", `{"type":"leave_queue"}`, clientEvent{typ: EventLeaveQueue}},
		{"leave_queue with empty payload", `{"type":"leave_queue","payload":{}}`, clientEvent{typ: EventLeaveQueue}},
		{"ping", `{"type":"ping"}`, clientEvent{typ: EventPing}},
		{"ping with empty payload", `{"type":"ping","payload":{}}`, clientEvent{typ: EventPing}},
		{"ping with null payload", `{"type":"ping","payload":null}`, clientEvent{typ: EventPing}},
		{"get_stats", `{"type":"get_stats"}`, clientEvent{typ: EventGetStats}},
		{"get_stats with empty payload", `{"type":"get_stats","payload":{}}`, clientEvent{typ: EventGetStats}},
		// send_message
		{
			"send_message",
			`{"type":"send_message","payload":{"chat_id":"c0ffee","content":"hello"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c0ffee", content: []byte("hello")},
		},
		{
			"send_message with empty content is the engine's business",
			`{"type":"send_message","payload":{"chat_id":"c0ffee","content":""}}`,
			clientEvent{typ: EventSendMessage, chatID: "c0ffee", content: []byte{}},
		},
		{
			"send_message with blank content is the engine's business",
			`{"type":"send_message","payload":{"chat_id":"c0ffee","content":" \t "}}`,
			clientEvent{typ: EventSendMessage, chatID: "c0ffee", content: []byte(" \t ")},
		},
		{
			"send_message with empty chat_id is the engine's business",
			`{"type":"send_message","payload":{"chat_id":"","content":"hi"}}`,
			clientEvent{typ: EventSendMessage, content: []byte("hi")},
		},
		{
			"send_message with content first",
			`{"type":"send_message","payload":{"content":"hi","chat_id":"c"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("hi")},
		},
		// leave_chat
		{"leave_chat without payload", `{"type":"leave_chat"}`, clientEvent{typ: EventLeaveChat}},
		{"leave_chat with empty payload", `{"type":"leave_chat","payload":{}}`, clientEvent{typ: EventLeaveChat}},
		{"leave_chat with null chat_id", `{"type":"leave_chat","payload":{"chat_id":null}}`, clientEvent{typ: EventLeaveChat}},
		{
			"leave_chat with chat_id",
			`{"type":"leave_chat","payload":{"chat_id":"c0ffee"}}`,
			clientEvent{typ: EventLeaveChat, chatID: "c0ffee"},
		},
		// layout
		{
			"white space everywhere",
			" \t\r\n{ \"type\" :\n\"send_message\" ,\t\"payload\" : { \"chat_id\" : \"c\" , \"content\" : \"x\" } }\r\n ",
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("x")},
		},
		{
			"payload before type",
			`{"payload":{"chat_id":"c","content":"x"},"type":"send_message"}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("x")},
		},
		// unknown keys
		{
			"unknown top-level keys of every kind are ignored",
			`{"id":7,"type":"ping","obj":{"a":[1,2,{"b":null}],"c":"d"},"t":true,"f":false,"n":null,` +
				`"nums":[0,-0,1.5,-1.5e+10,2E-3,123456789012345678901234567890],"s":"\"\\\/\b\f\n\r\t\u0041","e":[],"o":{}}`,
			clientEvent{typ: EventPing},
		},
		{
			"unknown keys may repeat",
			`{"type":"ping","x":1,"x":2,"payload":{"y":1,"y":2}}`,
			clientEvent{typ: EventPing},
		},
		{
			"unknown payload keys are ignored",
			`{"type":"send_message","payload":{"chat_id":"c","extra":{"k":["v",1]},"content":"x","flag":true}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("x")},
		},
		{
			"payload keys are case-sensitive",
			`{"type":"send_message","payload":{"chat_id":"c","content":"x","Content":"y","CHAT_ID":5}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("x")},
		},
		{
			"a differently cased user_id is not user_id",
			`{"type":"init","payload":{"User_ID":"abc"}}`,
			clientEvent{typ: EventInit},
		},
		{
			"fields of other events are ignored",
			`{"type":"init","payload":{"chat_id":"c","content":"x","gender":"male","preference":"any"}}`,
			clientEvent{typ: EventInit},
		},
		{
			"fields of other events are ignored whatever their kind",
			`{"type":"ping","payload":{"chat_id":5,"user_id":[],"gender":{}}}`,
			clientEvent{typ: EventPing},
		},
		{
			"a differently cased Type beside type is unknown",
			`{"Type":"init","type":"ping"}`,
			clientEvent{typ: EventPing},
		},
		// escapes
		{
			"escaped newline",
			`{"type":"send_message","payload":{"chat_id":"c","content":"line1\nline2"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("line1\nline2")},
		},
		{
			"every short escape",
			`{"type":"send_message","payload":{"chat_id":"c","content":"\"\\\/\b\f\n\r\t"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("\"\\/\b\f\n\r\t")},
		},
		{
			"unicode escape",
			`{"type":"send_message","payload":{"chat_id":"c","content":"caf\u00e9"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("café")},
		},
		{
			"unicode escape in upper case",
			`{"type":"send_message","payload":{"chat_id":"c","content":"caf\u00E9 \u20AC"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("café €")},
		},
		{
			"surrogate pair for an emoji",
			`{"type":"send_message","payload":{"chat_id":"c","content":"hi \ud83d\ude00!"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("hi 😀!")},
		},
		{
			"escaped NUL",
			`{"type":"send_message","payload":{"chat_id":"c","content":"a\u0000b"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("a\x00b")},
		},
		{
			"escaped line separator",
			`{"type":"send_message","payload":{"chat_id":"c","content":"a\u2028b"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("a\u2028b")},
		},
		{
			"raw UTF-8 passes through",
			`{"type":"send_message","payload":{"chat_id":"c","content":"café 😀 <b>&amp;</b> ` + "\u2028" + `"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c", content: []byte("café 😀 <b>&amp;</b> \u2028")},
		},
		{
			"escapes in both fields keep each value",
			`{"type":"send_message","payload":{"chat_id":"a\nb","content":"c\td"}}`,
			clientEvent{typ: EventSendMessage, chatID: "a\nb", content: []byte("c\td")},
		},
		{
			"escaped keys and values keep each value",
			`{"type":"send_message","payload":{"ch\u0061t_id":"x\u0041","c\u006fntent":"\u0079\u00e9"}}`,
			clientEvent{typ: EventSendMessage, chatID: "xA", content: []byte("yé")},
		},
		{
			"escaped type value",
			`{"type":"p\u0069ng"}`,
			clientEvent{typ: EventPing},
		},
		{
			"escaped type and payload keys",
			`{"typ\u0065":"leave_chat","p\u0061yload":{"chat_id":"c"}}`,
			clientEvent{typ: EventLeaveChat, chatID: "c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, perr := parseClientEvent([]byte(tt.give))
			require.Nil(t, perr, "frame %s", tt.give)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestParseClientEventEveryType makes sure every client event parses in its simplest form.
func TestParseClientEventEveryType(t *testing.T) {
	minimal := map[EventType]string{
		EventInit:        `{"type":"init","payload":{}}`,
		EventJoinQueue:   `{"type":"join_queue","payload":{"gender":"male"}}`,
		EventLeaveQueue:  `{"type":"leave_queue","payload":{}}`,
		EventSendMessage: `{"type":"send_message","payload":{"chat_id":"c","content":"x"}}`,
		EventLeaveChat:   `{"type":"leave_chat","payload":{}}`,
		EventPing:        `{"type":"ping","payload":{}}`,
		EventGetStats:    `{"type":"get_stats","payload":{}}`,
	}
	require.Len(t, minimal, len(eventsTestClientTypes))
	for _, typ := range eventsTestClientTypes {
		give, ok := minimal[typ]
		require.True(t, ok, "no frame for %s", typ)
		got, perr := parseClientEvent([]byte(give))
		require.Nil(t, perr, "frame %s", give)
		assert.Equal(t, typ, got.typ)
	}
}

func TestParseClientEventErrors(t *testing.T) {
	deep := func(n int, open, close string) string {
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	tests := []struct {
		name    string
		give    string
		want    ErrorCode
		wantRef EventType
	}{
		// Not one JSON object.
		{"empty frame", ``, CodeBadJSON, ""},
		{"white space only", " \n\t", CodeBadJSON, ""},
		{"null", `null`, CodeBadJSON, ""},
		{"array", `[{"type":"ping"}]`, CodeBadJSON, ""},
		{"string", `"ping"`, CodeBadJSON, ""},
		{"number", `42`, CodeBadJSON, ""},
		{"true", `true`, CodeBadJSON, ""},
		{"byte order mark", "\xef\xbb\xbf{\"type\":\"ping\"}", CodeBadJSON, ""},
		{"single quotes", `{'type':'ping'}`, CodeBadJSON, ""},
		{"unquoted key", `{type:"ping"}`, CodeBadJSON, ""},
		{"missing colon", `{"type" "ping"}`, CodeBadJSON, ""},
		{"missing comma", `{"type":"ping" "x":1}`, CodeBadJSON, ""},
		{"trailing comma", `{"type":"ping",}`, CodeBadJSON, ""},
		{"double comma", `{"type":"ping",,"x":1}`, CodeBadJSON, ""},
		{"leading comma", `{,"type":"ping"}`, CodeBadJSON, ""},
		{"comment", `{"type":"ping"/* hi */}`, CodeBadJSON, ""},
		// Truncated.
		{"truncated after brace", `{`, CodeBadJSON, ""},
		{"truncated in key", `{"ty`, CodeBadJSON, ""},
		{"truncated after key", `{"type"`, CodeBadJSON, ""},
		{"truncated after colon", `{"type":`, CodeBadJSON, ""},
		{"truncated in value", `{"type":"pi`, CodeBadJSON, ""},
		{"truncated before close", `{"type":"ping"`, CodeBadJSON, ""},
		{"truncated after comma", `{"type":"ping",`, CodeBadJSON, ""},
		{"truncated payload", `{"type":"send_message","payload":{"chat_id":"c","content":"x"}`, CodeBadJSON, ""},
		{"truncated in escape", `{"type":"ping","x":"\`, CodeBadJSON, ""},
		{"truncated in unicode escape", `{"type":"ping","x":"\u00`, CodeBadJSON, ""},
		{"truncated in unknown array", `{"type":"ping","x":[1,2`, CodeBadJSON, ""},
		{"truncated in unknown object", `{"type":"ping","x":{"a":1`, CodeBadJSON, ""},
		// Trailing data.
		{"trailing garbage", `{"type":"ping"}x`, CodeBadJSON, ""},
		{"trailing object", `{"type":"ping"}{}`, CodeBadJSON, ""},
		{"second frame", `{"type":"ping"} {"type":"ping"}`, CodeBadJSON, ""},
		{"trailing NUL", "{\"type\":\"ping\"}\x00", CodeBadJSON, ""},
		{"trailing brace", `{"type":"ping"}}`, CodeBadJSON, ""},
		// Duplicate keys that count.
		{"duplicate type", `{"type":"ping","type":"ping"}`, CodeBadJSON, ""},
		{"duplicate type with other value", `{"type":"ping","type":"get_stats"}`, CodeBadJSON, ""},
		{"duplicate type via escape", `{"type":"ping","typ\u0065":"ping"}`, CodeBadJSON, ""},
		{"duplicate payload", `{"type":"ping","payload":{},"payload":{}}`, CodeBadJSON, ""},
		{"duplicate null payload", `{"type":"ping","payload":null,"payload":null}`, CodeBadJSON, ""},
		{"duplicate payload before type", `{"payload":{},"payload":{},"type":"ping"}`, CodeBadJSON, ""},
		// No string type.
		{"empty object", `{}`, CodeBadJSON, ""},
		{"payload only", `{"payload":{}}`, CodeBadJSON, ""},
		{"number type", `{"type":1}`, CodeBadJSON, ""},
		{"null type", `{"type":null}`, CodeBadJSON, ""},
		{"boolean type", `{"type":true}`, CodeBadJSON, ""},
		{"object type", `{"type":{}}`, CodeBadJSON, ""},
		{"array type", `{"type":["ping"]}`, CodeBadJSON, ""},
		{"Type is not type", `{"Type":"ping"}`, CodeBadJSON, ""},
		{"TYPE is not type", `{"TYPE":"ping"}`, CodeBadJSON, ""},
		{"type with a space is not type", `{"type ":"ping"}`, CodeBadJSON, ""},
		// Control characters in strings.
		{"raw newline in value", "{\"type\":\"ping\",\"x\":\"a\nb\"}", CodeBadJSON, ""},
		{"raw tab in value", "{\"type\":\"ping\",\"x\":\"a\tb\"}", CodeBadJSON, ""},
		{"raw NUL in value", "{\"type\":\"ping\",\"x\":\"a\x00b\"}", CodeBadJSON, ""},
		{"raw unit separator in value", "{\"type\":\"ping\",\"x\":\"\x1f\"}", CodeBadJSON, ""},
		{"raw control in type", "{\"type\":\"ping\x01\"}", CodeBadJSON, ""},
		{"raw control in key", "{\"ty\npe\":\"ping\"}", CodeBadJSON, ""},
		{"raw control after an escape", "{\"type\":\"ping\",\"x\":\"\\n\x01\"}", CodeBadJSON, ""},
		{"raw control in content", "{\"type\":\"send_message\",\"payload\":{\"chat_id\":\"c\",\"content\":\"a\nb\"}}", CodeBadJSON, ""},
		// Bad escapes.
		{"escape x", `{"type":"ping","x":"\x41"}`, CodeBadJSON, ""},
		{"escape a", `{"type":"ping","x":"\a"}`, CodeBadJSON, ""},
		{"escape quote", `{"type":"ping","x":"\'"}`, CodeBadJSON, ""},
		{"escape upper U", `{"type":"ping","x":"\U0041"}`, CodeBadJSON, ""},
		{"short unicode escape", `{"type":"ping","x":"\u41"}`, CodeBadJSON, ""},
		{"non-hex unicode escape", `{"type":"ping","x":"\u12G4"}`, CodeBadJSON, ""},
		{"escaped raw newline", "{\"type\":\"ping\",\"x\":\"\\\n\"}", CodeBadJSON, ""},
		{"bad escape in content", `{"type":"send_message","payload":{"chat_id":"c","content":"\q"}}`, CodeBadJSON, ""},
		// Lone surrogates.
		{"lone high surrogate", `{"type":"ping","x":"\ud83d"}`, CodeBadJSON, ""},
		{"lone low surrogate", `{"type":"ping","x":"\ude00"}`, CodeBadJSON, ""},
		{"reversed surrogate pair", `{"type":"ping","x":"\ude00\ud83d"}`, CodeBadJSON, ""},
		{"high surrogate then letter", `{"type":"ping","x":"\ud83dx"}`, CodeBadJSON, ""},
		{"high surrogate then escaped letter", `{"type":"ping","x":"\ud83d\u0041"}`, CodeBadJSON, ""},
		{"high surrogate then short escape", `{"type":"ping","x":"\ud83d\n"}`, CodeBadJSON, ""},
		{"two high surrogates", `{"type":"ping","x":"\ud83d\ud83d"}`, CodeBadJSON, ""},
		{"high surrogate then U+FFFD", `{"type":"ping","x":"\ud83d\ufffd"}`, CodeBadJSON, ""},
		{"high surrogate at the end", `{"type":"ping","x":"\ud83d\`, CodeBadJSON, ""},
		{"lone surrogate in content", `{"type":"send_message","payload":{"chat_id":"c","content":"\ud800"}}`, CodeBadJSON, ""},
		{"lone surrogate in key", `{"type":"ping","\udfff":1}`, CodeBadJSON, ""},
		// Bad literals and numbers.
		{"short true", `{"type":"ping","x":tru}`, CodeBadJSON, ""},
		{"short null", `{"type":"ping","x":nul}`, CodeBadJSON, ""},
		{"capital True", `{"type":"ping","x":True}`, CodeBadJSON, ""},
		{"leading zero", `{"type":"ping","x":01}`, CodeBadJSON, ""},
		{"bare point", `{"type":"ping","x":1.}`, CodeBadJSON, ""},
		{"no integer part", `{"type":"ping","x":.5}`, CodeBadJSON, ""},
		{"bare minus", `{"type":"ping","x":-}`, CodeBadJSON, ""},
		{"bare exponent", `{"type":"ping","x":1e}`, CodeBadJSON, ""},
		{"plus sign", `{"type":"ping","x":+1}`, CodeBadJSON, ""},
		{"hex number", `{"type":"ping","x":0x10}`, CodeBadJSON, ""},
		{"NaN", `{"type":"ping","x":NaN}`, CodeBadJSON, ""},
		{"Infinity", `{"type":"ping","x":Infinity}`, CodeBadJSON, ""},
		{"malformed payload", `{"type":"ping","payload":{"a"}}`, CodeBadJSON, ""},
		{"malformed unknown array", `{"type":"ping","x":[1,]}`, CodeBadJSON, ""},
		// Nesting deeper than the limit.
		{"arrays too deep", `{"type":"ping","x":` + deep(maxDepth+1, "[", "]") + `}`, CodeBadJSON, ""},
		{"objects too deep", `{"type":"ping","x":` + deep(maxDepth+1, `{"a":`, "}") + `}`, CodeBadJSON, ""},
		{"payload too deep", `{"type":"ping","payload":{"x":` + deep(maxDepth, "[", "]") + `}}`, CodeBadJSON, ""},
		{"far too deep", `{"type":"ping","x":` + deep(100000, "[", "]") + `}`, CodeBadJSON, ""},
		{"far too deep and unclosed", `{"type":"ping","x":` + strings.Repeat("[", 100000), CodeBadJSON, ""},

		// Unknown events.
		{"empty type", `{"type":""}`, CodeUnknownEvent, ""},
		{"made-up type", `{"type":"dance"}`, CodeUnknownEvent, ""},
		{"server event pong", `{"type":"pong"}`, CodeUnknownEvent, ""},
		{"server event ready", `{"type":"ready","payload":{}}`, CodeUnknownEvent, ""},
		{"server event error", `{"type":"error"}`, CodeUnknownEvent, ""},
		{"server event message_received", `{"type":"message_received"}`, CodeUnknownEvent, ""},
		{"upper-case type", `{"type":"PING"}`, CodeUnknownEvent, ""},
		{"capitalised type", `{"type":"Ping"}`, CodeUnknownEvent, ""},
		{"type with a space", `{"type":"ping "}`, CodeUnknownEvent, ""},
		{"type with a NUL", `{"type":"ping\u0000"}`, CodeUnknownEvent, ""},
		{"dashed type", `{"type":"join-queue"}`, CodeUnknownEvent, ""},
		{"unknown type wins over a bad payload", `{"type":"dance","payload":5}`, CodeUnknownEvent, ""},

		// Payload not an object.
		{"number payload", `{"type":"ping","payload":5}`, CodeInvalidPayload, EventPing},
		{"string payload", `{"type":"get_stats","payload":"x"}`, CodeInvalidPayload, EventGetStats},
		{"array payload", `{"type":"leave_queue","payload":[]}`, CodeInvalidPayload, EventLeaveQueue},
		{"array of object payload", `{"type":"init","payload":[{"user_id":"a"}]}`, CodeInvalidPayload, EventInit},
		{"boolean payload", `{"type":"leave_chat","payload":true}`, CodeInvalidPayload, EventLeaveChat},
		{"string payload for send_message", `{"type":"send_message","payload":"{\"chat_id\":\"c\",\"content\":\"x\"}"}`, CodeInvalidPayload, EventSendMessage},
		{"number payload for join_queue", `{"type":"join_queue","payload":0}`, CodeInvalidPayload, EventJoinQueue},
		{"payload before type still has a ref", `{"payload":1,"type":"ping"}`, CodeInvalidPayload, EventPing},
		// Wrong field kinds.
		{"number user_id", `{"type":"init","payload":{"user_id":5}}`, CodeInvalidPayload, EventInit},
		{"boolean user_id", `{"type":"init","payload":{"user_id":false}}`, CodeInvalidPayload, EventInit},
		{"object user_id", `{"type":"init","payload":{"user_id":{}}}`, CodeInvalidPayload, EventInit},
		{"array user_id", `{"type":"init","payload":{"user_id":["a"]}}`, CodeInvalidPayload, EventInit},
		{"number gender", `{"type":"join_queue","payload":{"gender":1}}`, CodeInvalidPayload, EventJoinQueue},
		{"number preference", `{"type":"join_queue","payload":{"gender":"male","preference":1}}`, CodeInvalidPayload, EventJoinQueue},
		{"array preference", `{"type":"join_queue","payload":{"gender":"male","preference":["any"]}}`, CodeInvalidPayload, EventJoinQueue},
		{"number chat_id", `{"type":"send_message","payload":{"chat_id":5,"content":"x"}}`, CodeInvalidPayload, EventSendMessage},
		{"object content", `{"type":"send_message","payload":{"chat_id":"c","content":{}}}`, CodeInvalidPayload, EventSendMessage},
		{"number content", `{"type":"send_message","payload":{"chat_id":"c","content":42}}`, CodeInvalidPayload, EventSendMessage},
		{"number chat_id in leave_chat", `{"type":"leave_chat","payload":{"chat_id":5}}`, CodeInvalidPayload, EventLeaveChat},
		{"array chat_id in leave_chat", `{"type":"leave_chat","payload":{"chat_id":[]}}`, CodeInvalidPayload, EventLeaveChat},
		// Duplicate known fields.
		{"duplicate user_id", `{"type":"init","payload":{"user_id":"a","user_id":"a"}}`, CodeInvalidPayload, EventInit},
		{"duplicate user_id via escape", `{"type":"init","payload":{"user_id":"a","user\u005fid":"b"}}`, CodeInvalidPayload, EventInit},
		{"duplicate gender", `{"type":"join_queue","payload":{"gender":"male","gender":"female"}}`, CodeInvalidPayload, EventJoinQueue},
		{"duplicate preference", `{"type":"join_queue","payload":{"gender":"male","preference":"any","preference":"any"}}`, CodeInvalidPayload, EventJoinQueue},
		{"duplicate chat_id", `{"type":"send_message","payload":{"chat_id":"c","content":"x","chat_id":"d"}}`, CodeInvalidPayload, EventSendMessage},
		{"duplicate content", `{"type":"send_message","payload":{"chat_id":"c","content":"x","content":"x"}}`, CodeInvalidPayload, EventSendMessage},
		{"duplicate chat_id in leave_chat", `{"type":"leave_chat","payload":{"chat_id":"c","chat_id":"c"}}`, CodeInvalidPayload, EventLeaveChat},
		{"duplicate chat_id then null", `{"type":"leave_chat","payload":{"chat_id":"c","chat_id":null}}`, CodeInvalidPayload, EventLeaveChat},
		{"null chat_id then duplicate", `{"type":"leave_chat","payload":{"chat_id":null,"chat_id":"c"}}`, CodeInvalidPayload, EventLeaveChat},
		{"null chat_id twice", `{"type":"leave_chat","payload":{"chat_id":null,"chat_id":null}}`, CodeInvalidPayload, EventLeaveChat},
		{"null chat_id then duplicate in send_message", `{"type":"send_message","payload":{"chat_id":null,"chat_id":"c","content":"x"}}`, CodeInvalidPayload, EventSendMessage},
		{"null preference then duplicate", `{"type":"join_queue","payload":{"gender":"male","preference":null,"preference":"male"}}`, CodeInvalidPayload, EventJoinQueue},
		// Bad gender or preference.
		{"join_queue without payload", `{"type":"join_queue"}`, CodeInvalidPayload, EventJoinQueue},
		{"join_queue with null payload", `{"type":"join_queue","payload":null}`, CodeInvalidPayload, EventJoinQueue},
		{"join_queue without gender", `{"type":"join_queue","payload":{"preference":"any"}}`, CodeInvalidPayload, EventJoinQueue},
		{"null gender", `{"type":"join_queue","payload":{"gender":null}}`, CodeInvalidPayload, EventJoinQueue},
		{"empty gender", `{"type":"join_queue","payload":{"gender":""}}`, CodeInvalidPayload, EventJoinQueue},
		{"capitalised gender", `{"type":"join_queue","payload":{"gender":"Male"}}`, CodeInvalidPayload, EventJoinQueue},
		{"upper-case gender", `{"type":"join_queue","payload":{"gender":"FEMALE"}}`, CodeInvalidPayload, EventJoinQueue},
		{"gender any", `{"type":"join_queue","payload":{"gender":"any"}}`, CodeInvalidPayload, EventJoinQueue},
		{"made-up gender", `{"type":"join_queue","payload":{"gender":"robot"}}`, CodeInvalidPayload, EventJoinQueue},
		{"gender with a space", `{"type":"join_queue","payload":{"gender":" male"}}`, CodeInvalidPayload, EventJoinQueue},
		{"gender key cased", `{"type":"join_queue","payload":{"Gender":"male"}}`, CodeInvalidPayload, EventJoinQueue},
		{"empty preference", `{"type":"join_queue","payload":{"gender":"male","preference":""}}`, CodeInvalidPayload, EventJoinQueue},
		{"capitalised preference", `{"type":"join_queue","payload":{"gender":"male","preference":"Any"}}`, CodeInvalidPayload, EventJoinQueue},
		{"made-up preference", `{"type":"join_queue","payload":{"gender":"male","preference":"robots"}}`, CodeInvalidPayload, EventJoinQueue},
		// send_message missing fields.
		{"send_message without payload", `{"type":"send_message"}`, CodeInvalidPayload, EventSendMessage},
		{"send_message with null payload", `{"type":"send_message","payload":null}`, CodeInvalidPayload, EventSendMessage},
		{"send_message with empty payload", `{"type":"send_message","payload":{}}`, CodeInvalidPayload, EventSendMessage},
		{"send_message without chat_id", `{"type":"send_message","payload":{"content":"x"}}`, CodeInvalidPayload, EventSendMessage},
		{"send_message without content", `{"type":"send_message","payload":{"chat_id":"c"}}`, CodeInvalidPayload, EventSendMessage},
		{"send_message with null chat_id", `{"type":"send_message","payload":{"chat_id":null,"content":"x"}}`, CodeInvalidPayload, EventSendMessage},
		{"send_message with null content", `{"type":"send_message","payload":{"chat_id":"c","content":null}}`, CodeInvalidPayload, EventSendMessage},
		{"send_message with cased keys", `{"type":"send_message","payload":{"Chat_ID":"c","Content":"x"}}`, CodeInvalidPayload, EventSendMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, perr := parseClientEvent([]byte(tt.give))
			require.NotNil(t, perr, "frame %.200q", tt.give)
			assert.Equal(t, tt.want, perr.code)
			assert.Equal(t, tt.wantRef, perr.ref)
			assert.NotEmpty(t, perr.msg)
		})
	}
}

// TestParseClientEventNestingLimit pins the nesting limit exactly: values nested
// maxDepth deep inside the frame object pass, one more level is refused. The payload
// object is itself one level.
func TestParseClientEventNestingLimit(t *testing.T) {
	arrays := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	objects := func(n int) string { return strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1) }
	tests := []struct {
		name string
		give string
		want bool // whether the frame parses
	}{
		{"arrays at the limit", `{"type":"ping","x":` + arrays(maxDepth) + `}`, true},
		{"arrays over the limit", `{"type":"ping","x":` + arrays(maxDepth+1) + `}`, false},
		{"objects at the limit", `{"type":"ping","x":` + objects(maxDepth) + `}`, true},
		{"objects over the limit", `{"type":"ping","x":` + objects(maxDepth+1) + `}`, false},
		{"inside the payload at the limit", `{"type":"ping","payload":{"x":` + arrays(maxDepth-1) + `}}`, true},
		{"inside the payload over the limit", `{"type":"ping","payload":{"x":` + arrays(maxDepth) + `}}`, false},
		{"many siblings at the limit", `{"type":"ping","x":[` + strings.Repeat(arrays(maxDepth-1)+",", 10) + arrays(maxDepth-1) + `]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.True(t, json.Valid([]byte(tt.give)), "test frame must be valid JSON")
			_, perr := parseClientEvent([]byte(tt.give))
			if tt.want {
				assert.Nil(t, perr)
				return
			}
			require.NotNil(t, perr)
			assert.Equal(t, CodeBadJSON, perr.code)
		})
	}
}

// TestParseClientEventDoesNotAlias makes sure a parsed event owns its strings: reusing
// the frame buffer, as a read loop does, must not change an event already parsed.
func TestParseClientEventDoesNotAlias(t *testing.T) {
	tests := []struct {
		name string
		give string
		want clientEvent
	}{
		{
			"no escapes",
			`{"type":"send_message","payload":{"chat_id":"c0ffee","content":"hello"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c0ffee", content: []byte("hello")},
		},
		{
			"escapes",
			`{"type":"send_message","payload":{"chat_id":"c0\u0066fee","content":"h\u00e9llo"}}`,
			clientEvent{typ: EventSendMessage, chatID: "c0ffee", content: []byte("héllo")},
		},
		{
			"init",
			`{"type":"init","payload":{"user_id":"abc"}}`,
			clientEvent{typ: EventInit, userID: "abc"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := []byte(tt.give)
			got, perr := parseClientEvent(buf)
			require.Nil(t, perr)
			content := string(got.content)
			for i := range buf {
				buf[i] = 'X'
			}
			// The content of send_message is the one string left a view of the
			// frame, valid while the event is handled (the engine copies it into the
			// frame it relays): every other field is the parser's own.
			assert.Equal(t, string(tt.want.content), content)
			got.content, tt.want.content = nil, nil
			assert.Equal(t, tt.want, got)
		})
	}
}

// eventsTestKeys returns the keys of the JSON object raw in order, repeats included.
func eventsTestKeys(t testing.TB, raw []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	tok, err := d.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok, "not an object: %s", raw)
	keys := []string{}
	for d.More() {
		tok, err := d.Token()
		require.NoError(t, err)
		key, ok := tok.(string)
		require.True(t, ok)
		keys = append(keys, key)
		var skip json.RawMessage
		require.NoError(t, d.Decode(&skip))
	}
	return keys
}

// eventsTestDecode checks that frame is exactly one envelope of type want whose payload
// has exactly the keys wantKeys, and decodes that payload into v.
func eventsTestDecode(t testing.TB, frame []byte, want EventType, wantKeys []string, v any) {
	t.Helper()
	require.True(t, json.Valid(frame), "not valid JSON: %s", frame)
	require.True(t, utf8.Valid(frame), "not valid UTF-8: %q", frame)
	assert.ElementsMatch(t, []string{"type", "payload"}, eventsTestKeys(t, frame), "frame %s", frame)

	var env Envelope
	d := json.NewDecoder(bytes.NewReader(frame))
	d.DisallowUnknownFields()
	require.NoError(t, d.Decode(&env))
	assert.Equal(t, want, env.Type)
	require.NotEmpty(t, env.Payload, "frame %s", frame)
	assert.ElementsMatch(t, wantKeys, eventsTestKeys(t, env.Payload), "frame %s", frame)

	d = json.NewDecoder(bytes.NewReader(env.Payload))
	d.DisallowUnknownFields()
	require.NoError(t, d.Decode(v), "frame %s", frame)
}

// eventsTestAwkward holds strings that are hard to carry in JSON.
var eventsTestAwkward = []string{
	"",
	"plain",
	`say "hi"`,
	`back\slash`,
	"line1\nline2\r\n\ttab",
	"\x00\x01\x07\x08\x0b\x0c\x1b\x1f",
	"<script>alert('x')</script>&amp;",
	"café 😀 \u2028\u2029 \ufeff \ufffd",
	"\x7f",
	`/ \/ \u0041`,
}

func TestAppendReady(t *testing.T) {
	tests := []struct {
		name     string
		give     ReadyPayload
		wantKeys []string
	}{
		{"new user", ReadyPayload{UserID: "0123456789abcdef0123456789abcdef"}, []string{"user_id", "resumed"}},
		{"resumed outside a chat", ReadyPayload{UserID: "abcdef", Resumed: true}, []string{"user_id", "resumed"}},
		{"resumed into a chat", ReadyPayload{UserID: "abcdef", Resumed: true, ChatID: "c0ffee"}, []string{"user_id", "resumed", "chat_id"}},
		{"awkward ids", ReadyPayload{UserID: "\"<\\>\n", Resumed: true, ChatID: "😀\u2028"}, []string{"user_id", "resumed", "chat_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got ReadyPayload
			eventsTestDecode(t, appendReady(nil, tt.give.UserID, tt.give.Resumed, tt.give.ChatID), EventReady, tt.wantKeys, &got)
			assert.Equal(t, tt.give, got)
		})
	}
}

func TestAppendEmpty(t *testing.T) {
	for _, typ := range []EventType{EventQueueLeft, EventPong, EventQueueJoined} {
		t.Run(string(typ), func(t *testing.T) {
			var got map[string]any
			eventsTestDecode(t, appendEmpty(nil, typ), typ, []string{}, &got)
			assert.Empty(t, got)
		})
	}
}

func TestAppendQueueJoined(t *testing.T) {
	for _, give := range []int{0, 1, 42, 1 << 20, 1<<31 - 1} {
		var got QueueJoinedPayload
		eventsTestDecode(t, appendQueueJoined(nil, give), EventQueueJoined, []string{"in_queue"}, &got)
		assert.Equal(t, QueueJoinedPayload{InQueue: give}, got)
	}
}

func TestAppendMatchFound(t *testing.T) {
	tests := []struct {
		name string
		give MatchFoundPayload
	}{
		{"male", MatchFoundPayload{ChatID: "c0ffee", Partner: Partner{Gender: GenderMale}, CommonInterests: []string{}, ICEServers: []ICEServer{}}},
		{"female", MatchFoundPayload{ChatID: "0123456789abcdef", Partner: Partner{Gender: GenderFemale}, CommonInterests: []string{"go", "music"}, Initiator: true, ICEServers: []ICEServer{}}},
		{"other", MatchFoundPayload{ChatID: "a", Partner: Partner{Gender: GenderOther}, CommonInterests: []string{}, Relaxed: true, ICEServers: []ICEServer{
			{URLs: []string{"stun:127.0.0.1:3478"}},
			{URLs: []string{"turn:127.0.0.1:3478", "turns:127.0.0.1:5349"}, Username: "1700000000:ab", Credential: "c2VjcmV0"},
		}}},
		{"awkward chat id", MatchFoundPayload{ChatID: "\"}\\{\n", Partner: Partner{Gender: GenderOther}, CommonInterests: []string{"\"q\""}, ICEServers: []ICEServer{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := appendMatchFound(nil, matchFound{
				chatID: tt.give.ChatID, partner: tt.give.Partner.Gender, common: tt.give.CommonInterests,
				relaxed: tt.give.Relaxed, initiator: tt.give.Initiator, iceServers: tt.give.ICEServers,
			})
			var got MatchFoundPayload
			eventsTestDecode(t, frame, EventMatchFound, []string{"chat_id", "common_interests", "ice_servers", "initiator", "partner", "relaxed"}, &got)
			assert.Equal(t, tt.give, got)

			// The partner object carries the gender and nothing else.
			var raw map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(frame, &raw))
			var payload map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(raw["payload"], &payload))
			assert.Equal(t, []string{"gender"}, eventsTestKeys(t, payload["partner"]))
		})
	}
}

func TestAppendMessageReceived(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	sentAtFormat := regexp.MustCompile(`^"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"$`)
	tests := []struct {
		name       string
		give       MessageReceivedPayload
		wantSentAt time.Time
	}{
		{
			"plain",
			MessageReceivedPayload{ChatID: "c0ffee", MessageID: "m1", Content: "hello", SentAt: time.Date(2025, 3, 1, 12, 30, 45, 123000000, time.UTC)},
			time.Date(2025, 3, 1, 12, 30, 45, 123000000, time.UTC),
		},
		{
			"sub-millisecond time is truncated",
			MessageReceivedPayload{ChatID: "c", MessageID: "m", Content: "x", SentAt: time.Date(2025, 3, 1, 12, 30, 45, 123999999, time.UTC)},
			time.Date(2025, 3, 1, 12, 30, 45, 123000000, time.UTC),
		},
		{
			"whole second keeps its milliseconds",
			MessageReceivedPayload{ChatID: "c", MessageID: "m", Content: "x", SentAt: time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC)},
			time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC),
		},
		{
			"other zone is sent in UTC",
			MessageReceivedPayload{ChatID: "c", MessageID: "m", Content: "x", SentAt: time.Date(2025, 7, 14, 1, 0, 0, 5000000, paris)},
			time.Date(2025, 7, 14, 1, 0, 0, 5000000, paris).UTC(),
		},
	}
	for i, s := range eventsTestAwkward {
		at := time.Date(2025, 1, 2, 3, 4, 5, 6000000, time.UTC)
		tests = append(tests, struct {
			name       string
			give       MessageReceivedPayload
			wantSentAt time.Time
		}{
			"awkward content " + string(rune('a'+i)),
			MessageReceivedPayload{ChatID: "c0ffee", MessageID: "m" + string(rune('a'+i)), Content: s, SentAt: at},
			at,
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := appendMessageReceived(nil, tt.give.ChatID, tt.give.MessageID, tt.give.Content, tt.give.SentAt)
			var got MessageReceivedPayload
			eventsTestDecode(t, frame, EventMessageReceived, []string{"chat_id", "message_id", "content", "sent_at"}, &got)
			assert.Equal(t, tt.give.ChatID, got.ChatID)
			assert.Equal(t, tt.give.MessageID, got.MessageID)
			assert.Equal(t, tt.give.Content, got.Content)
			assert.True(t, tt.wantSentAt.Equal(got.SentAt), "sent_at %v, want %v", got.SentAt, tt.wantSentAt)
			assert.Equal(t, time.UTC, got.SentAt.Location())

			var payload map[string]json.RawMessage
			var env Envelope
			require.NoError(t, json.Unmarshal(frame, &env))
			require.NoError(t, json.Unmarshal(env.Payload, &payload))
			assert.Regexp(t, sentAtFormat, string(payload["sent_at"]))
			var rfc string
			require.NoError(t, json.Unmarshal(payload["sent_at"], &rfc))
			_, err := time.Parse(time.RFC3339, rfc)
			assert.NoError(t, err)
		})
	}
}

func TestAppendChatEnded(t *testing.T) {
	for _, reason := range []EndReason{ReasonLeft, ReasonPartnerLeft, ReasonPartnerDisconnected} {
		t.Run(string(reason), func(t *testing.T) {
			want := ChatEndedPayload{ChatID: "c0ffee", Reason: reason}
			var got ChatEndedPayload
			eventsTestDecode(t, appendChatEnded(nil, want.ChatID, want.Reason), EventChatEnded, []string{"chat_id", "reason"}, &got)
			assert.Equal(t, want, got)
		})
	}
}

func TestAppendStats(t *testing.T) {
	tests := []struct {
		name string
		give Stats
	}{
		{"zero", Stats{}},
		{"small", Stats{Online: 3, InQueue: 1, InChat: 2}},
		{"large", Stats{Online: 1 << 30, InQueue: 123456789, InChat: 987654321}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Stats
			eventsTestDecode(t, appendStats(nil, tt.give), EventStats, []string{"online", "in_queue", "in_chat"}, &got)
			assert.Equal(t, tt.give, got)
		})
	}
}

func TestAppendError(t *testing.T) {
	for _, code := range eventsTestErrorCodes {
		t.Run(string(code), func(t *testing.T) {
			want := ErrorPayload{Code: code, Message: "something \"went\" wrong\n<b>", Ref: EventSendMessage}
			var got ErrorPayload
			eventsTestDecode(t, appendError(nil, want.Code, want.Message, want.Ref), EventError, []string{"code", "message", "ref"}, &got)
			assert.Equal(t, want, got)
		})
	}
	t.Run("without ref", func(t *testing.T) {
		want := ErrorPayload{Code: CodeBadJSON, Message: "frame is not JSON"}
		var got ErrorPayload
		eventsTestDecode(t, appendError(nil, want.Code, want.Message, ""), EventError, []string{"code", "message"}, &got)
		assert.Equal(t, want, got)
	})
	t.Run("hook code", func(t *testing.T) {
		want := ErrorPayload{Code: ErrorCode("custom_code"), Message: "", Ref: EventInit}
		var got ErrorPayload
		eventsTestDecode(t, appendError(nil, want.Code, want.Message, want.Ref), EventError, []string{"code", "message", "ref"}, &got)
		assert.Equal(t, want, got)
	})
}

// TestAppendBuildersKeepPrefix checks that every builder appends to dst and leaves
// what was there alone.
func TestAppendBuildersKeepPrefix(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	builders := map[string]func([]byte) []byte{
		"ready":            func(b []byte) []byte { return appendReady(b, "u", true, "c") },
		"empty":            func(b []byte) []byte { return appendEmpty(b, EventPong) },
		"queue_joined":     func(b []byte) []byte { return appendQueueJoined(b, 7) },
		"match_found":      func(b []byte) []byte { return appendMatchFound(b, matchFound{chatID: "c", partner: GenderFemale}) },
		"message_received": func(b []byte) []byte { return appendMessageReceived(b, "c", "m", "hi\n", at) },
		"chat_ended":       func(b []byte) []byte { return appendChatEnded(b, "c", ReasonLeft) },
		"stats":            func(b []byte) []byte { return appendStats(b, Stats{Online: 1, InQueue: 2, InChat: 3}) },
		"error":            func(b []byte) []byte { return appendError(b, CodeInternal, "oops", EventPing) },
		"string":           func(b []byte) []byte { return appendString(b, "a\"b") },
	}
	for name, build := range builders {
		t.Run(name, func(t *testing.T) {
			alone := build(nil)
			prefix := []byte("prefix\x00")
			got := build(append([]byte(nil), prefix...))
			assert.Equal(t, string(prefix)+string(alone), string(got))
			assert.True(t, json.Valid(alone), "not valid JSON: %s", alone)
		})
	}
}

// eventsTestCheckString checks everything appendString promises for the valid UTF-8
// string s.
func eventsTestCheckString(t testing.TB, s string) {
	t.Helper()
	out := appendString(nil, s)
	require.True(t, json.Valid(out), "not valid JSON for %q: %s", s, out)
	require.True(t, utf8.Valid(out), "not valid UTF-8 for %q", s)
	var got string
	require.NoError(t, json.Unmarshal(out, &got))
	require.Equal(t, s, got, "round trip of %q through %s", s, out)
	for _, c := range out {
		require.GreaterOrEqual(t, c, byte(0x20), "raw control byte in %q", out)
	}
	// No HTML escaping: what needs no JSON escape is written as is.
	for _, r := range []string{"<", ">", "&", "'", "/", "\u2028", "\u2029"} {
		require.Equal(t, strings.Count(s, r), bytes.Count(out, []byte(r)), "%q in %q: %s", r, s, out)
	}
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == '"' || r == '\\' }) {
		require.Equal(t, `"`+s+`"`, string(out), "only JSON's own escapes are allowed")
	}
	// The parser reads back what the builder wrote.
	frame := appendString([]byte(`{"type":"send_message","payload":{"chat_id":"c","content":`), s)
	frame = append(frame, "}}"...)
	ev, perr := parseClientEvent(frame)
	require.Nil(t, perr, "frame %q", frame)
	require.Equal(t, s, string(ev.content))
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string // the exact encoding, when it is the only sensible one
	}{
		{"empty", "", `""`},
		{"plain", "hello, world", `"hello, world"`},
		{"quote", `say "hi"`, `"say \"hi\""`},
		{"backslash", `a\b`, `"a\\b"`},
		{"newline", "a\nb", `"a\nb"`},
		{"script", "<script>alert('x')</script>", `"<script>alert('x')</script>"`},
		{"ampersand", "Tom & Jerry &amp;", `"Tom & Jerry &amp;"`},
		{"slash", "a/b</", `"a/b</"`},
		{"emoji", "😀👍🏽", `"😀👍🏽"`},
		{"line and paragraph separators", "a\u2028b\u2029c", "\"a\u2028b\u2029c\""},
		{"accents", "café naïve", `"café naïve"`},
		{"DEL", "\x7f", "\"\x7f\""},
		{"BOM and replacement", "\ufeff\ufffd", "\"\ufeff\ufffd\""},
		{"highest code point", "\U0010ffff", "\"\U0010ffff\""},
		{"every control character", eventsTestControls(), ""},
		{"carriage return and tab", "a\r\n\tb", ""},
		{"NUL", "\x00", ""},
		{"escape-looking text", `\u0041 \n \"`, ""},
		{"quote at the edges", `"x"`, ""},
		{"only backslashes", `\\\\`, ""},
		{"mixed", "\"<\\>\n😀\u2028\x01", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want != "" {
				assert.Equal(t, tt.want, string(appendString(nil, tt.give)))
			}
			eventsTestCheckString(t, tt.give)
		})
	}
}

func eventsTestControls() string {
	var b strings.Builder
	for c := range 0x20 {
		b.WriteByte(byte(c))
	}
	return b.String()
}

// TestAppendStringRandom round-trips random valid UTF-8 strings, weighted toward the
// characters that need care.
func TestAppendStringRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []rune("\"\\/<>&'\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f\u2028\u2029\ufeff\ufffd")
	randomRune := func() rune {
		switch rng.IntN(5) {
		case 0:
			return special[rng.IntN(len(special))]
		case 1:
			return rune(rng.IntN(0x80))
		case 2:
			return rune(0x80 + rng.IntN(0xd800-0x80))
		case 3:
			return rune(0xe000 + rng.IntN(0x10000-0xe000))
		default:
			return rune(0x10000 + rng.IntN(0x110000-0x10000))
		}
	}
	for range 2000 {
		n := rng.IntN(40)
		rs := make([]rune, n)
		for i := range rs {
			rs[i] = randomRune()
		}
		s := string(rs)
		require.True(t, utf8.ValidString(s))
		eventsTestCheckString(t, s)
	}
}

// eventsBenchFrame is a typical send_message frame.
var eventsBenchFrame = []byte(`{"type":"send_message","payload":{"chat_id":"9f86d081884c7d659a2feaa0c55ad015","content":"Hey! Where are you writing from? I'm in Lisbon, it's sunny."}}`)

func BenchmarkParseClientEvent(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(eventsBenchFrame)))
	for b.Loop() {
		ev, perr := parseClientEvent(eventsBenchFrame)
		if perr != nil || ev.typ != EventSendMessage {
			b.Fatalf("parse failed: %v", perr)
		}
	}
}

func BenchmarkAppendMessageReceived(b *testing.B) {
	sentAt := time.Date(2025, 3, 1, 12, 30, 45, 123456789, time.UTC)
	content := "Hey! Where are you writing from? I'm in Lisbon, it's sunny."
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendMessageReceived(buf[:0], "9f86d081884c7d659a2feaa0c55ad015", "0000000000000001", content, sentAt)
	}
	b.SetBytes(int64(len(buf)))
}
