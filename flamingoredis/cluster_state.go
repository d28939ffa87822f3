package flamingoredis

import (
	"slices"
	"strconv"
	"time"

	"github.com/flamingochat/flamingo"
)

// This file encodes the lists of a [flamingo.SessionState] that Redis keeps in one
// field of the session's hash each (and a handover reply in one entry field each):
// the interests, the users to avoid and the acknowledged messages of the chat. One
// field each keeps a save to one HSET per list, and a session without them pays
// nothing: an empty list is no field at all.
//
// Each is a sequence of strings, each written as its length in bytes (decimal), a
// colon and the string: any byte may appear in a string, so the encoding holds
// whatever the engine gives, whatever its parser allows. A field that does not decode
// (which only a bug or a hand edit makes) reads as an empty list. The interests are one string
// each; an avoided user is two (the user, and when it ends in Unix ms, "0" for never);
// an acknowledged message is three (client_msg_id, message_id, and sent_at in Unix
// ms: what message_sent shows of it).

// appendStateString appends s, length-prefixed.
func appendStateString(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

// readStateString reads a length-prefixed string from the front of src and returns it with
// the rest; ok is false if src does not begin with one.
func readStateString(src string) (s, rest string, ok bool) {
	i := 0
	for i < len(src) && i < 10 && src[i] >= '0' && src[i] <= '9' {
		i++
	}
	if i == 0 || i == len(src) || src[i] != ':' {
		return "", "", false
	}
	n, err := strconv.Atoi(src[:i])
	src = src[i+1:]
	if err != nil || n > len(src) {
		return "", "", false
	}
	return src[:n], src[n:], true
}

// readStateStrings reads the whole of src as length-prefixed strings; nil if src is
// malformed or its count is not a multiple of group.
func readStateStrings(src string, group int) []string {
	var out []string
	for src != "" {
		s, rest, ok := readStateString(src)
		if !ok {
			return nil
		}
		out = append(out, s)
		src = rest
	}
	if len(out)%group != 0 {
		return nil
	}
	return out
}

func encodeInterests(in []string) string {
	var b []byte
	for _, s := range in {
		b = appendStateString(b, s)
	}
	return string(b)
}

func decodeInterests(s string) []string { return readStateStrings(s, 1) }

// encodeAvoid encodes the users to avoid whose time has not ended at now, in the order
// of their handles.
func encodeAvoid(m map[string]time.Time, now time.Time) string {
	users := make([]string, 0, len(m))
	for u, until := range m {
		if until.IsZero() || until.After(now) {
			users = append(users, u)
		}
	}
	slices.Sort(users)
	var b []byte
	for _, u := range users {
		b = appendStateString(b, u)
		b = appendStateString(b, msString(m[u]))
	}
	return string(b)
}

func decodeAvoid(s string) map[string]time.Time {
	f := readStateStrings(s, 2)
	if len(f) == 0 {
		return nil
	}
	m := make(map[string]time.Time, len(f)/2)
	for i := 0; i < len(f); i += 2 {
		until, ok := msTime(f[i+1])
		if !ok {
			return nil
		}
		m[f[i]] = until
	}
	return m
}

func encodeAcked(acked []flamingo.AckedMessage) string {
	var b []byte
	for _, a := range acked {
		b = appendStateString(b, a.ClientMsgID)
		b = appendStateString(b, a.MessageID)
		b = appendStateString(b, msString(a.SentAt))
	}
	return string(b)
}

func decodeAcked(s string) []flamingo.AckedMessage {
	f := readStateStrings(s, 3)
	if len(f) == 0 {
		return nil
	}
	out := make([]flamingo.AckedMessage, 0, len(f)/3)
	for i := 0; i < len(f); i += 3 {
		sent, ok := msTime(f[i+2])
		if !ok {
			return nil
		}
		out = append(out, flamingo.AckedMessage{ClientMsgID: f[i], MessageID: f[i+1], SentAt: sent})
	}
	return out
}

// msString writes t in Unix ms, and the zero time as "0".
func msString(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// msTime reads what msString wrote; ok is false if s is not a number.
func msTime(s string) (t time.Time, ok bool) {
	ms, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil:
		return time.Time{}, false
	case ms == 0:
		return time.Time{}, true
	}
	return time.UnixMilli(ms), true
}
