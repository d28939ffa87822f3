package flamingo_test

import (
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// The message ids and times in the docs look like the ones the engine sends, so that
// nobody builds a client on a shape that never comes: a real message_id is 16 hex
// digits (Unix nanoseconds) and a real sent_at is RFC 3339 in UTC with milliseconds.
func TestDocsShowRealMessageIDsAndTimes(t *testing.T) {
	const sentAtLayout = "2006-01-02T15:04:05.000Z07:00"
	messageID := regexp.MustCompile(`^[0-9a-f]{16}$`)

	e := newEngine(t, flamingo.Config{})
	a, b := flamingotest.Pair(t, e)
	a.Say("hi!")
	var got struct {
		MessageID string `json:"message_id"`
		SentAt    string `json:"sent_at"` // as sent, not as a time.Time
	}
	b.ExpectPayload(flamingo.EventMessageReceived, &got)
	require.Regexp(t, messageID, got.MessageID, "the engine's own message_id")
	sent, err := time.Parse(sentAtLayout, got.SentAt)
	require.NoError(t, err, "the engine's own sent_at")
	require.Equal(t, got.SentAt, sent.UTC().Format(sentAtLayout))

	fields := regexp.MustCompile(`"(message_id|sent_at)":\s*"([^"]*)"`)
	for _, doc := range []string{"README.md", "FRONTEND_GUIDE.md"} {
		text, err := os.ReadFile(doc)
		require.NoError(t, err)
		found := fields.FindAllStringSubmatch(string(text), -1)
		require.NotEmpty(t, found, "%s shows no message_id or sent_at", doc)
		for _, f := range found {
			switch f[1] {
			case "message_id":
				assert.Regexp(t, messageID, f[2], "%s: a message_id", doc)
			case "sent_at":
				at, err := time.Parse(sentAtLayout, f[2])
				if assert.NoError(t, err, "%s: a sent_at", doc) {
					assert.Equal(t, f[2], at.UTC().Format(sentAtLayout), "%s: a sent_at", doc)
				}
			}
		}
	}
}
