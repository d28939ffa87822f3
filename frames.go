package flamingo

import (
	"sync"
	"time"
)

// This file recycles the buffers of relayed messages. A chat message is the one event
// whose frame would be allocated per message: its buffer goes back to a pool once the
// writer has written it, so that a busy connection makes no garbage and keeps no
// buffer of its own between messages.

// frame is a pooled buffer holding one outgoing frame in b.
type frame struct {
	b     []byte
	class int8 // the pool it came from, or -1 if it is too large for one
}

// frameClasses are the capacities of the pooled buffers. A message frame is its
// content plus about 120 bytes; larger ones are allocated and left to the collector.
var frameClasses = [...]int{256, 512, 1024, 2048, 4096}

var framePools [len(frameClasses)]sync.Pool

// newFrame returns an empty frame with room for n bytes.
func newFrame(n int) *frame {
	for i, size := range frameClasses {
		if n <= size {
			if f, _ := framePools[i].Get().(*frame); f != nil {
				return f
			}
			return &frame{b: make([]byte, 0, size), class: int8(i)}
		}
	}
	return &frame{b: make([]byte, 0, n), class: -1}
}

// free returns f to its pool. The caller must hold no reference to f.b: it is
// overwritten by the next message.
func (f *frame) free() {
	if f == nil || f.class < 0 || cap(f.b) != frameClasses[f.class] {
		return
	}
	f.b = f.b[:0]
	framePools[f.class].Put(f)
}

// messageReceivedFrame builds message_received into a pooled frame.
func messageReceivedFrame[M, C string | []byte](chatID string, messageID M, content C, sentAt time.Time) *frame {
	f := newFrame(messageReceivedLen(chatID, messageID, content))
	f.b = appendMessageReceived(f.b, chatID, messageID, content, sentAt)
	return f
}

// messageSentFrame builds message_sent for m, a message of chat chatID, into a pooled
// frame.
func messageSentFrame(chatID string, m AckedMessage) *frame {
	f := newFrame(messageSentLen(chatID, m.ClientMsgID, m.MessageID))
	f.b = appendMessageSent(f.b, chatID, m.ClientMsgID, m.MessageID, m.SentAt)
	return f
}

// outFrame returns f as a chat event to queue: its buffer is freed once written.
func (f *frame) outFrame() outFrame { return outFrame{b: f.b, keep: true, buf: f} }
