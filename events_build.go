package flamingo

import (
	"strconv"
	"time"
)

// This file builds server events by hand: each builder appends one complete frame to
// dst, with no reflection and no allocation beyond dst's growth.

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

// matchFound is what one user's match_found says.
type matchFound struct {
	chatID     string
	partner    Gender
	common     []string
	relaxed    bool
	initiator  bool
	iceServers []ICEServer
}

func appendMatchFound(dst []byte, m matchFound) []byte {
	dst = appendHead(dst, EventMatchFound)
	dst = appendField(dst, true, "chat_id")
	dst = appendString(dst, m.chatID)
	dst = appendField(dst, false, "partner")
	dst = append(dst, '{')
	dst = appendField(dst, true, "gender")
	dst = appendString(dst, string(m.partner))
	dst = append(dst, '}')
	dst = appendField(dst, false, "common_interests")
	dst = appendStrings(dst, m.common)
	dst = appendField(dst, false, "relaxed")
	dst = strconv.AppendBool(dst, m.relaxed)
	dst = appendField(dst, false, "initiator")
	dst = strconv.AppendBool(dst, m.initiator)
	dst = appendField(dst, false, "ice_servers")
	dst = append(dst, '[')
	for i, srv := range m.iceServers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '{')
		dst = appendField(dst, true, "urls")
		dst = appendStrings(dst, srv.URLs)
		if srv.Username != "" {
			dst = appendField(dst, false, "username")
			dst = appendString(dst, srv.Username)
		}
		if srv.Credential != "" {
			dst = appendField(dst, false, "credential")
			dst = appendString(dst, srv.Credential)
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}}"...)
}

// appendStrings appends a JSON array of strings ([] for none).
func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, v := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, v)
	}
	return append(dst, ']')
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
func messageReceivedLen[M, C string | []byte](chatID string, messageID M, content C) int {
	const fixed = len(`{"type":"message_received","payload":{"chat_id":"","message_id":"","content":"","sent_at":"2006-01-02T15:04:05.000Z"}}`)
	return fixed + escapedLen(chatID) + escapedLen(messageID) + escapedLen(content)
}

// messageSentLen is the length of appendMessageSent's frame for these values (with a
// four-digit year).
func messageSentLen(chatID, clientMsgID, messageID string) int {
	const fixed = len(`{"type":"message_sent","payload":{"chat_id":"","client_msg_id":"","message_id":"","sent_at":"2006-01-02T15:04:05.000Z"}}`)
	return fixed + escapedLen(chatID) + escapedLen(clientMsgID) + escapedLen(messageID)
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

func appendMessageReceived[M, C string | []byte](dst []byte, chatID string, messageID M, content C, sentAt time.Time) []byte {
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

// rateLimitedMessage says what a rate_limited error about an event of type ref limits.
func rateLimitedMessage(ref EventType) string {
	switch ref {
	case EventInit:
		return "too many new users from your address: try again later"
	case EventSendMessage:
		return "too many messages: slow down"
	case EventJoinQueue:
		return "joining too often: slow down"
	}
	return "too many events: slow down"
}

func appendRateLimited(dst []byte, ref EventType, retryAfter time.Duration) []byte {
	dst = appendHead(dst, EventError)
	dst = appendField(dst, true, "code")
	dst = appendString(dst, string(CodeRateLimited))
	dst = appendField(dst, false, "message")
	dst = appendString(dst, rateLimitedMessage(ref))
	if ref != "" {
		dst = appendField(dst, false, "ref")
		dst = appendString(dst, string(ref))
	}
	dst = appendField(dst, false, "retry_after_ms")
	dst = strconv.AppendInt(dst, max(retryAfter.Milliseconds(), 1), 10)
	return append(dst, "}}"...)
}

func appendMessageSent(dst []byte, chatID, clientMsgID, messageID string, sentAt time.Time) []byte {
	dst = appendHead(dst, EventMessageSent)
	dst = appendField(dst, true, "chat_id")
	dst = appendString(dst, chatID)
	dst = appendField(dst, false, "client_msg_id")
	dst = appendString(dst, clientMsgID)
	dst = appendField(dst, false, "message_id")
	dst = appendString(dst, messageID)
	dst = appendField(dst, false, "sent_at")
	dst = append(dst, '"')
	dst = appendSentAt(dst, sentAt)
	return append(dst, "\"}}"...)
}

// appendTyping appends typing or partner_typing.
func appendTyping(dst []byte, t EventType, chatID string, typing bool) []byte {
	dst = appendHead(dst, t)
	dst = appendField(dst, true, "chat_id")
	dst = appendString(dst, chatID)
	dst = appendField(dst, false, "typing")
	dst = strconv.AppendBool(dst, typing)
	return append(dst, "}}"...)
}

// appendSignal appends a signal with data, a JSON object that the parser checked,
// as it is.
func appendSignal(dst []byte, chatID string, data []byte) []byte {
	dst = appendHead(dst, EventSignal)
	dst = appendField(dst, true, "chat_id")
	dst = appendString(dst, chatID)
	dst = appendField(dst, false, "data")
	dst = append(dst, data...)
	return append(dst, "}}"...)
}

func appendPartnerAway(dst []byte, chatID string, grace time.Duration) []byte {
	dst = appendHead(dst, EventPartnerAway)
	dst = appendField(dst, true, "chat_id")
	dst = appendString(dst, chatID)
	dst = appendField(dst, false, "grace_ms")
	dst = strconv.AppendInt(dst, grace.Milliseconds(), 10)
	return append(dst, "}}"...)
}

// appendChat appends an event whose payload names a chat and nothing else.
func appendChat(dst []byte, t EventType, chatID string) []byte {
	dst = appendHead(dst, t)
	dst = appendField(dst, true, "chat_id")
	dst = appendString(dst, chatID)
	return append(dst, "}}"...)
}
