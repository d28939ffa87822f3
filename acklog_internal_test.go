package flamingo

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The log keeps the last maxAcked ids, and lists them oldest first before and after
// it wraps around.
func TestAckLog_KeepsTheLastInOrder(t *testing.T) {
	var l ackLog
	assert.Nil(t, l.list())
	for i := range maxAcked + 10 {
		l.add(AckedMessage{ClientMsgID: strconv.Itoa(i), MessageID: "m" + strconv.Itoa(i)})
		if i == 2 {
			assert.Equal(t, []AckedMessage{{ClientMsgID: "0", MessageID: "m0"}, {ClientMsgID: "1", MessageID: "m1"}, {ClientMsgID: "2", MessageID: "m2"}}, l.list())
		}
	}
	got := l.list()
	assert.Len(t, got, maxAcked)
	for i, m := range got {
		assert.Equal(t, strconv.Itoa(i+10), m.ClientMsgID)
	}
	_, ok := l.find("9")
	assert.False(t, ok, "pushed out")
	m, ok := l.find("10")
	assert.True(t, ok)
	assert.Equal(t, "m10", m.MessageID)
	assert.Len(t, l.byID, maxAcked)
}
