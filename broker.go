package flamingo

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"
)

// Broker joins an [Engine] to the other nodes of a cluster: it delivers events to users
// connected elsewhere, keeps session and chat state where every node can read it, and
// tells the Engine when a user's session moves to another node. Set it in
// [Config.Broker]; an Engine without one keeps everything in memory and pays nothing
// for this seam.
//
// Experimental: Broker, [BrokerHost] and the types they carry ([SessionState],
// [ChatState], [ClusterEvent]) exist for package flamingoredis, the one implementation,
// and may change with it; other implementations should expect changes.
//
// # Contract
//
// The Engine calls Start once, from [New], before the matcher's Start, and Stop once,
// from [Engine.Shutdown], once its connections have ended and before the matcher's
// Stop. The calls below may go on while Stop runs (a release it asks for is answered);
// those made after Stop has returned may be dropped.
//
// Save, Forget, Send, EndChat and Kick are made from one goroutine at a time, never with an
// engine lock held, in the order the Engine decided them; those decided before a
// Matcher call (a new session's Save before its first Enqueue) are made before it,
// and the Broker must apply them before a Matcher that shares its store acts on the
// call. They must not block: a
// Broker queues the work and applies it in the order of the calls, each call once (a
// Broker that retries after losing a reply may apply one twice; it must say so).
// Claim and Stats may be called from many goroutines at once; Stats must not block.
//
// A user's session lives on one node at a time, the one that last served them. The
// Engine tells the Broker that node's view of its sessions (Save, Forget), the events
// for users it does not hold (Send) and the chats it ends (EndChat). When a user comes
// back on another node with their user_id, that node calls Claim; the Broker then asks
// the old node, if it is alive, to give the session up through [BrokerHost.Release],
// and delivers whatever arrives for the user meanwhile to the new node, in order.
type Broker interface {
	// Start prepares the broker and installs the host through which it reaches the
	// Engine. A second call returns an error.
	Start(host BrokerHost) error
	// NodeID names this node, unique in the cluster. The Engine puts it in the
	// tickets it enqueues ([Ticket.Node]).
	NodeID() string
	// Save records that this node holds the session st (and, if it is in a chat,
	// the chat): a new session, a user going away or coming back, or a Resync.
	// st.Events is empty.
	Save(st SessionState)
	// Forget deletes the session of user (a handle), which expired on this node.
	Forget(user string)
	// Send delivers ev to user, whose session is on another node (or away from one).
	Send(user string, ev ClusterEvent)
	// EndChat records that chat chatID between users ended on this node. If notify
	// is one of users (on another node), that user is sent a chat_ended with
	// reason, unless the chat had already ended elsewhere: of two nodes ending one
	// chat at once, only the first notifies. An empty notify tells no one.
	EndChat(chatID string, users [2]string, notify string, reason EndReason)
	// Kick ends the session of user wherever it is, through BrokerHost.Kick on the
	// node that holds it (see [Engine.Kick]).
	Kick(user, reason string)
	// Claim moves the session of user (a handle) to this node and returns its state.
	// digest is the SHA-256 digest of the user_id presented, which must match the
	// session's. It returns [ErrSessionNotFound] if no live session matches.
	Claim(ctx context.Context, user string, digest [sha256.Size]byte) (SessionState, error)
	// Stats returns the summed counts of the cluster's other live nodes, as last
	// seen; it must not block.
	Stats() Stats
	// Stop takes this node out of the cluster. Its sessions stay claimable by other
	// nodes for the resume grace.
	Stop(ctx context.Context) error
}

// BrokerHost is the Engine as its [Broker] sees it. Its methods are safe for
// concurrent use. Experimental, like [Broker].
type BrokerHost interface {
	// Deliver applies ev for user, a handle whose session is on this node (or being
	// claimed by it). Events for one user must be delivered in the order they were
	// published.
	Deliver(user string, ev ClusterEvent)
	// Release gives up the session of user because another node claimed it: a
	// connection it has here is closed with [CloseSessionReplaced]. reply is called
	// once with the session's state (Found false if this node does not hold it),
	// from the goroutine that makes the Broker's Save, Send and EndChat calls, in
	// order with them: after every call decided before the release, before any
	// decided after it. reply must not block.
	Release(user string, reply func(SessionState))
	// Resync tells the Engine that the cluster's shared state may have been lost (the
	// broker's store restarted, or this node was taken for dead): it publishes every
	// session it holds again, puts its waiting users back in the queue, and ends its
	// chats with users on other nodes, whose partners are told they disconnected.
	Resync()
	// Kick ends the session of user, if this node holds it, as [Engine.Kick] does.
	Kick(user, reason string)
	// LocalStats returns this node's own counts, for the broker to share.
	LocalStats() Stats
	// Held returns every session this node holds, with the events held for each.
	// A broker calls it from Stop, once the engine has closed its connections, to
	// leave the sessions to the other nodes.
	Held() []SessionState
	// Grace returns [Config.ResumeGrace]: how long a session outlives its connection.
	Grace() time.Duration
}

// ErrSessionNotFound is returned by [Broker.Claim] when no live session matches.
// Experimental, like [Broker].
var ErrSessionNotFound = errors.New("flamingo: session not found")

// SessionState is a session as it moves between nodes. Experimental, like [Broker].
type SessionState struct {
	// Found reports whether the session exists.
	Found bool
	// User is the session's handle and Digest the SHA-256 digest of its user_id.
	User   string
	Digest [sha256.Size]byte
	// Gender, Preference and Interests are what the user said in their last
	// join_queue (next joins again with them).
	Gender     Gender
	Preference Preference
	Interests  []string
	// Avoid lists the users this one must not be paired with, each until a time: a
	// recent partner until its RepeatWindow ends, a blocked user (either way) with
	// the zero time, for as long as the session lives.
	Avoid map[string]time.Time
	// Away reports that the user has no connection.
	Away bool
	// Chat is the user's chat, or nil.
	Chat *ChatState
	// Events are what the user has not been sent yet, in order.
	Events []ClusterEvent
}

// ChatState is one side's view of a chat. Experimental, like [Broker].
type ChatState struct {
	ID         string
	Peer       string // the partner's handle
	PeerGender Gender
	StartedAt  time.Time
	// Acked are the user's last acknowledged messages in the chat (those sent with
	// a client_msg_id), oldest first, so that a retry on another node is
	// acknowledged with the same message_id and not delivered twice.
	Acked []AckedMessage
}

// AckedMessage is a message a user sent with a client_msg_id, as remembered for
// de-duplication. Experimental, like [Broker].
type AckedMessage struct {
	ClientMsgID string
	MessageID   string
	SentAt      time.Time
}

// ClusterEvent is an event for one user, carried between nodes: a frame to send
// them, or the end of their chat. Experimental, like [Broker].
type ClusterEvent struct {
	// ChatID is the chat the event belongs to. A frame with a ChatID (a message) is
	// dropped if the user is no longer in that chat; one without (an event held for
	// the user) is sent as it is.
	ChatID string
	// Frame is the frame to send, or nil for the end of chat ChatID.
	Frame []byte
	// Ended is why chat ChatID ended (the partner's side ended it), in an event
	// without a Frame.
	Ended EndReason
}
