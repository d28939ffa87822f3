package flamingoredis

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/flamingochat/flamingo"
	"github.com/redis/go-redis/v9"
)

// op is one write of the node's writer to Redis. The writer makes them in the order
// they were published, in pipelines; each type is one operation.
type op interface {
	// queue adds the op to pipe and returns its command.
	queue(ctx context.Context, c *Cluster, pipe redis.Pipeliner) redis.Cmder
}

// saveOp records a session this node holds ([flamingo.Broker.Save]); with handoff
// set, it leaves the session, with its held events, to the other nodes as this node
// stops.
type saveOp struct {
	st      flamingo.SessionState
	handoff bool
}

// forgetOp deletes a session that expired on this node.
type forgetOp struct{ user string }

// pending is an op waiting for the writer: a send (o nil), which delivers ev to user
// wherever the user's session is, or the op o. A send is kept by value: it is the hot
// path of a message across nodes, and publishing one allocates nothing.
type pending struct {
	o    op
	user string
	ev   flamingo.ClusterEvent
}

// name names the op in logs and metrics.
func (p pending) name() string {
	if p.o == nil {
		return "send"
	}
	return opName(p.o)
}

// endChatOp records that a chat ended on this node ([flamingo.Broker.EndChat]).
type endChatOp struct {
	chatID string
	users  [2]string
	notify string
	reason flamingo.EndReason
}

// kickOp ends a user's session on the node that holds it.
type kickOp struct{ user, reason string }

func (o *kickOp) queue(ctx context.Context, c *Cluster, pipe redis.Pipeliner) redis.Cmder {
	return pipe.EvalSha(ctx, sendScript.Hash(), []string{c.keys.session(o.user)},
		c.args.base, o.user, kindKick, "", o.reason, c.args.maxHeld, c.args.ttl)
}

// replyOp answers the handover request requestID of node toNode with st.
type replyOp struct {
	toNode, requestID string
	st                flamingo.SessionState
}

// opName names o's operation in logs.
func opName(o op) string {
	switch o.(type) {
	case *saveOp:
		return "save"
	case *forgetOp:
		return "forget"
	case *endChatOp:
		return "end_chat"
	case *replyOp:
		return "handover_reply"
	case *kickOp:
		return "kick"
	}
	return fmt.Sprintf("%T", o)
}

func (o *saveOp) queue(ctx context.Context, c *Cluster, pipe redis.Pipeliner) redis.Cmder {
	st := o.st
	ttl := tombstoneTTL.Milliseconds()
	away := "0"
	if st.Away {
		away = "1"
		ttl = (c.grace + c.opts.DeadAfter + time.Minute).Milliseconds()
	}
	var chat, peer, pg, started, acked string
	if cs := st.Chat; cs != nil {
		chat, peer, pg, started = cs.ID, cs.Peer, string(cs.PeerGender), strconv.FormatInt(cs.StartedAt.UnixMilli(), 10)
		acked = encodeAcked(cs.Acked)
	}
	mode := "save"
	if o.handoff {
		mode = "handoff"
	}
	args := []any{c.keys.base, c.m.node, st.User, hex.EncodeToString(st.Digest[:]), string(st.Gender), away, chat, peer, pg, started, ttl, mode,
		string(st.Preference), encodeInterests(st.Interests), encodeAvoid(st.Avoid, time.Now()), acked}
	for _, ev := range st.Events {
		args = append(args, encodeEvent(ev))
	}
	return pipe.EvalSha(ctx, saveScript.Hash(), []string{c.keys.session(st.User)}, args...)
}

func (o *forgetOp) queue(ctx context.Context, c *Cluster, pipe redis.Pipeliner) redis.Cmder {
	return pipe.EvalSha(ctx, forgetScript.Hash(), []string{c.keys.session(o.user)}, c.keys.base, c.m.node, o.user)
}

// appendEvent appends ev as an entry of events carries it: encoded (encodeEvent),
// with its length in front.
func appendEvent(dst []byte, ev flamingo.ClusterEvent) []byte {
	payload := ev.Frame
	if ev.Frame == nil {
		payload = []byte(ev.Ended) // (rare: an end of chat is not a message)
	}
	dst = strconv.AppendInt(dst, int64(1+len(ev.ChatID)+1+len(payload)), 10)
	dst = append(dst, ':')
	dst = append(dst, kindLetter(ev)...)
	dst = append(dst, ev.ChatID...)
	dst = append(dst, 0)
	return append(dst, payload...)
}

// bytesArg is a script argument that is a slice of the writer's buffer. go-redis
// writes an encoding.BinaryMarshaler as its bytes, and a pointer to one goes into an
// interface without an allocation, which a []byte does not.
type bytesArg struct{ b []byte }

// MarshalBinary returns the bytes as they are.
func (a *bytesArg) MarshalBinary() ([]byte, error) { return a.b, nil }

func (o *endChatOp) queue(ctx context.Context, c *Cluster, pipe redis.Pipeliner) redis.Cmder {
	return pipe.EvalSha(ctx, endChatScript.Hash(), []string{c.keys.ended(o.chatID)},
		c.keys.base, o.chatID, o.users[0], o.users[1], o.notify, string(o.reason), c.opts.MaxHeld, tombstoneTTL.Milliseconds())
}

func (o *replyOp) queue(ctx context.Context, c *Cluster, pipe redis.Pipeliner) redis.Cmder {
	st := o.st
	vals := []string{entryKind, kindReply, entryID, o.requestID, entryUser, st.User, entryGender, string(st.Gender),
		entryEvents, strconv.Itoa(len(st.Events))}
	if st.Found {
		vals = append(vals, entryFound, "1")
	}
	if st.Away {
		vals = append(vals, sessAway, "1")
	}
	for _, f := range [...][2]string{
		{sessPreference, string(st.Preference)},
		{sessInterests, encodeInterests(st.Interests)},
		{sessAvoid, encodeAvoid(st.Avoid, time.Now())},
	} {
		if f[1] != "" {
			vals = append(vals, f[0], f[1])
		}
	}
	if cs := st.Chat; cs != nil {
		vals = append(vals, sessChat, cs.ID, sessPeer, cs.Peer, sessPeerGender, string(cs.PeerGender),
			sessStarted, strconv.FormatInt(cs.StartedAt.UnixMilli(), 10))
		if len(cs.Acked) > 0 {
			vals = append(vals, sessAcked, encodeAcked(cs.Acked))
		}
	}
	for i, ev := range st.Events {
		vals = append(vals, entryEvent+strconv.Itoa(i), encodeEvent(ev))
	}
	return pipe.XAdd(ctx, &redis.XAddArgs{Stream: c.keys.inbox(o.toNode), Values: vals})
}
