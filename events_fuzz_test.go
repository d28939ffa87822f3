package flamingo

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// eventsFuzzSeeds are the starting frames of FuzzParseClientEvent: every client event,
// and the shapes the parser must refuse.
var eventsFuzzSeeds = []string{
	// Every client event.
	`{"type":"init"}`,
	`{"type":"init","payload":{"user_id":"0123456789abcdef0123456789abcdef"}}`,
	`{"type":"init","payload":{"user_id":null}}`,
	`{"type":"join_queue","payload":{"gender":"male"}}`,
	`{"type":"join_queue","payload":{"gender":"female","preference":"other"}}`,
	`{"type":"join_queue","payload":{"gender":"other","preference":"any"}}`,
	`{"type":"leave_queue","payload":{}}`,
	`{"type":"send_message","payload":{"chat_id":"c0ffee","content":"hello"}}`,
	`{"type":"send_message","payload":{"chat_id":"c","content":"caf\u00e9 \ud83d\ude00 \n\"\\\/"}}`,
	`{"type":"leave_chat"}`,
	`{"type":"leave_chat","payload":{"chat_id":"c0ffee"}}`,
	`{"type":"ping"}`,
	`{"type":"get_stats","payload":null}`,
	// Layout, unknown keys, escaped keys.
	" {\n\t\"type\" : \"ping\" ,\r\n \"payload\" : { } } ",
	`{"payload":{"chat_id":"c","content":"x"},"type":"send_message"}`,
	`{"type":"ping","x":[1,-2.5e+3,true,false,null,{"a":"b"},[]],"x":0}`,
	`{"typ\u0065":"p\u0069ng","p\u0061yload":{}}`,
	`{"type":"send_message","payload":{"ch\u0061t_id":"a\tb","content":"\u0000"}}`,
	`{"Type":"ping"}`,
	"{\"type\":\"send_message\",\"payload\":{\"chat_id\":\"c\",\"content\":\"\xff\xfe\"}}",
	// Refused.
	``,
	`null`,
	`[]`,
	`{}`,
	`{"type":"ping"`,
	`{"type":"ping"}x`,
	`{"type":"ping","type":"ping"}`,
	`{"type":"ping","payload":{},"payload":{}}`,
	`{"type":1}`,
	"{\"type\":\"ping\",\"x\":\"\x01\"}",
	`{"type":"ping","x":"\q"}`,
	`{"type":"ping","x":"\ud83d"}`,
	`{"type":"ping","x":"\ud83d\u0041"}`,
	`{"type":"ping","x":"\ude00"}`,
	`{"type":"ping","x":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`,
	`{"type":"dance"}`,
	`{"type":"pong"}`,
	`{"type":"ping","payload":5}`,
	`{"type":"init","payload":{"user_id":5}}`,
	`{"type":"init","payload":{"user_id":"a","user_id":"b"}}`,
	`{"type":"leave_chat","payload":{"chat_id":null,"chat_id":"c"}}`,
	`{"type":"join_queue","payload":{"gender":"robot"}}`,
	`{"type":"join_queue","payload":{"gender":"male","preference":"Any"}}`,
	`{"type":"send_message","payload":{"chat_id":"c"}}`,
	`{"type":"ping","x":01}`,
	`{"type":"ping","x":1.}`,
	`{"type":"ping","x":tru}`,
}

func FuzzParseClientEvent(f *testing.F) {
	for _, s := range eventsFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		frame := slices.Clone(b)
		ev, perr := parseClientEvent(frame)
		require.Equal(t, b, frame, "the parser must not write to the frame")

		if perr != nil {
			eventsFuzzCheckError(t, ev, perr)
		} else {
			eventsFuzzCheckEvent(t, ev)
		}

		// Cross-check with encoding/json, which this parser is stricter than but must
		// never contradict.
		if !json.Valid(b) {
			require.NotNil(t, perr, "accepted invalid JSON %q", b)
			require.Equal(t, CodeBadJSON, perr.code, "invalid JSON %q", b)
			return
		}
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&m); err != nil || m == nil {
			// Valid JSON but not an object.
			require.NotNil(t, perr, "accepted a non-object %q", b)
			require.Equal(t, CodeBadJSON, perr.code)
			return
		}
		typ, isStr := m["type"].(string)
		if !isStr {
			require.NotNil(t, perr, "accepted %q without a string type", b)
			require.Equal(t, CodeBadJSON, perr.code)
			return
		}
		if perr == nil {
			require.Equal(t, EventType(typ), ev.typ, "type of %q", b)
			if utf8.Valid(b) {
				eventsFuzzCheckFields(t, b, ev, m)
			}
		}

		// The same object written canonically (unique keys, no lone surrogates, valid
		// UTF-8) must not be bad_json unless it nests too deep, and must agree with
		// the original when that parsed.
		if eventsFuzzDepth(m)-1 > maxDepth {
			return
		}
		canon, err := json.Marshal(m)
		require.NoError(t, err)
		ev2, perr2 := parseClientEvent(canon)
		if perr2 != nil {
			require.NotEqual(t, CodeBadJSON, perr2.code, "canonical %s of %q refused", canon, b)
			eventsFuzzCheckError(t, ev2, perr2)
		}
		if !slices.Contains(eventsTestClientTypes, EventType(typ)) {
			require.NotNil(t, perr2, "canonical %s accepted", canon)
			require.Equal(t, CodeUnknownEvent, perr2.code, "canonical %s", canon)
		}
		if perr == nil && utf8.Valid(b) {
			require.Nil(t, perr2, "%q parsed but its canonical form %s did not", b, canon)
			require.Equal(t, ev, ev2, "canonical %s of %q", canon, b)
		}
	})
}

// eventsFuzzCheckError checks a refusal: a defined parser code, a message, and a ref
// exactly when the type was known and only the payload was wrong.
func eventsFuzzCheckError(t *testing.T, ev clientEvent, perr *parseError) {
	t.Helper()
	require.NotEmpty(t, perr.code)
	require.Contains(t, eventsTestErrorCodes, perr.code)
	require.Contains(t, []ErrorCode{CodeBadJSON, CodeUnknownEvent, CodeInvalidPayload}, perr.code)
	require.NotEmpty(t, perr.msg)
	if perr.code == CodeInvalidPayload {
		require.Contains(t, eventsTestClientTypes, perr.ref)
		require.Equal(t, ev.typ, perr.ref)
	} else {
		require.Empty(t, perr.ref)
	}
}

// eventsFuzzCheckEvent checks a parsed event: a client event whose fields are those of
// its type only.
func eventsFuzzCheckEvent(t *testing.T, ev clientEvent) {
	t.Helper()
	require.Contains(t, eventsTestClientTypes, ev.typ)
	rest := ev
	rest.typ = ""
	switch ev.typ {
	case EventInit:
		rest.userID = ""
	case EventJoinQueue:
		require.True(t, ev.gender.Valid(), "gender %q", ev.gender)
		require.True(t, ev.pref.Valid(), "preference %q", ev.pref)
		rest.gender, rest.pref = "", ""
	case EventSendMessage:
		rest.chatID, rest.content = "", nil
	case EventLeaveChat:
		rest.chatID = ""
	}
	require.Zero(t, rest, "fields of another event set in %+v", ev)
}

// eventsFuzzCheckFields compares a parsed event with what encoding/json read from the
// same valid UTF-8 frame m. Keys match exactly in both, and the parser accepted no
// duplicate known keys, so the values must be equal.
func eventsFuzzCheckFields(t *testing.T, b []byte, ev clientEvent, m map[string]any) {
	t.Helper()
	payload, _ := m["payload"].(map[string]any)
	field := func(k string) string {
		v, _ := payload[k].(string) // absent and null both read as ""
		return v
	}
	want := clientEvent{typ: ev.typ}
	switch ev.typ {
	case EventInit:
		want.userID = field(keyUserID)
	case EventJoinQueue:
		want.gender = Gender(field(keyGender))
		want.pref = PreferAny
		if _, ok := payload[keyPreference].(string); ok {
			want.pref = Preference(field(keyPreference))
		}
	case EventSendMessage:
		want.chatID, want.content = field(keyChatID), []byte(field(keyContent))
	case EventLeaveChat:
		want.chatID = field(keyChatID)
	}
	require.Equal(t, want, ev, "frame %q", b)
}

// eventsFuzzDepth returns how many containers nest in v, v included. The parser does
// not count the frame object itself, so a frame m nests eventsFuzzDepth(m)-1 deep.
func eventsFuzzDepth(v any) int {
	deepest := 0
	switch v := v.(type) {
	case map[string]any:
		for _, c := range v {
			deepest = max(deepest, eventsFuzzDepth(c))
		}
	case []any:
		for _, c := range v {
			deepest = max(deepest, eventsFuzzDepth(c))
		}
	default:
		return 0
	}
	return 1 + deepest
}

func FuzzAppendString(f *testing.F) {
	for _, s := range eventsTestAwkward {
		f.Add(s)
	}
	for _, s := range []string{
		"😀👍🏽", "\u2028\u2029", "\U0010ffff", "a\x00b", `\u0041`, "\"\"", "\xff", "\xed\xa0\x80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip("appendString is only promised valid UTF-8")
		}
		eventsTestCheckString(t, s)
	})
}
