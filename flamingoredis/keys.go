package flamingoredis

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/flamingochat/flamingo"
)

// This file is the one place that names what flamingoredis keeps in Redis: the keys,
// the fields of its hashes and stream entries, and the kind letters of its events. Go
// code builds key names with the methods of keys, and the Lua scripts name keys and
// fields with ${placeholders} that luaScript replaces, at package init, by the
// constants below. These names are the wire format between the nodes of a cluster:
// nodes of different versions share one Redis only while they stay the same
// (TestWireNames pins them).
// Every key begins with the key base, [Options.Prefix] + "{match}:". The hash tag
// {match} puts them all in one Redis Cluster slot, so that a script may touch any of
// them. Relative to the base:
//
//	key                        type        holds; written by; expires
//	wait:<gender>:<preference>[<pool>]
//	                           sorted set  the relaxed waiting tickets of one pool in one
//	                                       of its 12 buckets, all with score 0, ordered
//	                                       by member (see scripts.go); <pool> is empty
//	                                       for the pool "", else ":<length>:<pool>";
//	                                       enqueue and relax add, enqueue and relax
//	                                       (pairing), cancel, drop and down remove
//	int:<gender>:<preference>[<pool>]/<interest>
//	                           sorted set  the waiting tickets (relaxed or not) of one
//	                                       bucket of one pool that gave this interest;
//	                                       like wait:, but down leaves a dead node's
//	                                       members behind: a script that meets one
//	                                       whose ticket is gone removes it
//	relax                      sorted set  the waiting tickets not relaxed yet, scored
//	                                       by when they relax (Redis TIME, in µs);
//	                                       enqueue adds; relax moves the due ones to
//	                                       their wait: bucket (or pairs them)
//	ticket:<user>              hash        a waiting ticket (ticket* fields); enqueue
//	                                       writes it, and deletes it when it pairs it,
//	                                       as do relax, cancel, drop and down; no TTL
//	seq                        string      counter that breaks ties between equal
//	                                       JoinedAt values; enqueue; never expires
//	node:<id>:tickets          set         the users of the node's waiting tickets;
//	                                       enqueue, cancel; drop and down delete it
//	node:<id>:inbox            stream      what the node has yet to handle: pairs
//	                                       (enqueue), events (route), handover requests
//	                                       (Claim) and replies (replyOp), the reader's
//	                                       stop entry (Matcher.Stop); the node's reader
//	                                       deletes what it handled, a claim what it
//	                                       salvages; down makes it expire after
//	                                       grace + DeadAfter + 1 min (beat undoes that),
//	                                       a bare Matcher's Stop deletes it
//	node:<id>:alive            string      the node's last heartbeat (Unix ms); beat;
//	                                       expires after DeadAfter, down deletes it
//	node:<id>:sessions         set         the users whose sessions the node holds;
//	                                       save and claim add, claim and forget remove,
//	                                       down deletes it
//	nodes                      sorted set  node id -> its last heartbeat (Unix ms);
//	                                       beat; down removes the node
//	stats                      hash        node id -> "online in_queue in_chat"; beat;
//	                                       down removes the node
//	sess:<user>                hash        a session (sess* fields); save writes it,
//	                                       claim moves it, clearChat (end chat, reap)
//	                                       drops its chat, forget and reap delete it;
//	                                       no TTL while its user is connected, the away
//	                                       TTL of the save (grace + DeadAfter + 1 min)
//	                                       while away
//	held:<user>                list        encoded events for a user whose node is gone
//	                                       or that a stopping node handed off; route and
//	                                       a handoff save push, save and claim take
//	                                       them, forget and reap delete it; 1 hour
//	                                       after the last push
//	ended:<chat>               string      "1": the chat has ended (a tombstone, so that
//	                                       only one end notifies); end chat and reap;
//	                                       1 hour
//	orphans                    sorted set  "<node>:<user>" -> when that session expires
//	                                       (Unix ms); down adds, save, claim and reap
//	                                       remove
//
// Script names above: enqueue, relax, cancel and drop are the matcher's (scripts.go); route,
// clearChat and down are functions shared by the cluster's scripts, and save, forget,
// end chat (endChatScript), claim, beat and reap are those scripts (cluster_scripts.go).
// An event is encoded in a held list or a handover reply as its kind letter (kind*),
// the chat id, a NUL byte and the payload (the frame, or the end reason). Frames are
// JSON text, which never holds a raw NUL.
const (
	keyTag      = "{match}:" // base = Options.Prefix + keyTag
	keySeq      = "seq"
	keyWait     = "wait:" // + gender + ":" + preference + pool tag
	keyInterest = "int:"  // + gender + ":" + preference + pool tag + "/" + interest
	keyRelax    = "relax"
	keyTicket   = "ticket:" // + user
	keyNode     = "node:"   // + node id + keyTickets, keyInbox, keyAlive or keySessions
	keyTickets  = ":tickets"
	keyInbox    = ":inbox"
	keyAlive    = ":alive"
	keySessions = ":sessions"
	keyNodes    = "nodes"
	keyStats    = "stats"
	keySess     = "sess:"  // + user
	keyHeld     = "held:"  // + user
	keyEnded    = "ended:" // + chat id
	keyOrphans  = "orphans"
	bucketSep   = ":" // between gender and preference in a bucket's name
)

// Fields of a ticket hash (ticket:<user>). The ticket itself is one field, encoded
// (ticket.go); the others are what the scripts read. node, bucket and member are
// also read by the cluster's down function, which takes the ticket out of its bucket
// and deletes the hash.
const (
	ticketUser     = "user"      // (only in a pair entry: the waiter's user)
	ticketJoinedAt = "joined_at" // UnixNano, decimal: for people and tests reading Redis
	ticketNode     = "node"      // the node that owns the ticket
	ticketBucket   = "bucket"    // the full name of the ticket's wait: bucket
	ticketMember   = "member"    // the ticket's member in each of its sorted sets
	ticketBlob     = "t"         // the ticket, encoded by encodeTicket
	ticketAvoid    = "a"         // NUL + each avoided user + NUL; absent if none
	ticketIndex    = "ix"        // its int: keys (and relax, if it waited for RelaxAt), NUL-separated; absent if none
)

// Fields of a pair entry in an inbox, written by the enqueue and relax scripts: the
// waiter's user (pairWaiter + ticketUser, by which a reader tells a pair entry from
// the others), the two encoded tickets (pairWaiter and pairNewcomer + ticketBlob),
// and the chat id. The waiter is the ticket that waited longer.
const (
	pairWaiter   = "w_"
	pairNewcomer = "n_"
	pairChat     = "chat"
)

// Fields of a session hash (sess:<user>). A handover reply carries the session under
// the same names (sessAway, sessPreference, sessInterests, sessAvoid, and the chat:
// sessChat, sessPeer, sessPeerGender, sessStarted, sessAcked).
const (
	sessNode       = "node" // the node that holds the session
	sessDigest     = "d"    // hex SHA-256 digest of the user_id
	sessGender     = "g"
	sessAway       = "away" // "1" while no connection holds it, else "0"
	sessChat       = "chat" // the chat id, if in a chat
	sessPeer       = "peer" // the partner's user
	sessPeerGender = "pg"
	sessStarted    = "started" // Unix ms
	// What the user last joined with and must not be paired with; each absent when
	// empty (encoded by cluster_state.go).
	sessPreference = "pf"
	sessInterests  = "in" // the interests
	sessAvoid      = "av" // each avoided user with the time it ends (Unix ms, 0 for never)
	// The user's acknowledged messages in the chat (encoded by cluster_state.go); it
	// goes with the chat fields.
	sessAcked = "ack"
)

// Fields of the other inbox entries. An event, a handover request and a handover reply
// have an entryKind field; the reader's stop entry has only entryStop, and an entry of
// events only entryBatch (one field costs Redis less to write and to read, and this
// entry is the one of every message across nodes).
//
//	event             k (kindFrame, kindMessage or kindEnded), u, c, p
//	events            b only: the user, then the user's events of one batch of
//	                  sends, in order; each (the user, and each event encoded)
//	                  length-prefixed as in cluster_state.go
//	kick              k (kindKick), u, c (empty), p (the reason)
//	handover request  k (kindHandover), u, to, id
//	handover reply    k (kindReply), id, u, g, n, [found], [away], [pf], [in], [av],
//	                  [chat, peer, pg, started, [ack]], e0 ... e<n-1>
const (
	entryKind    = "k"
	entryUser    = "u"
	entryChat    = "c"     // an event's chat id
	entryPayload = "p"     // an event's frame, or the reason a chat ended
	entryTo      = "to"    // the node that asks for a handover
	entryID      = "id"    // the handover request's id, echoed by the reply
	entryFound   = "found" // "1" if the node held the session (absent if not)
	entryGender  = "g"     // the session's gender, in a reply
	entryEvents  = "n"     // how many events a reply carries
	entryEvent   = "e"     // + index (decimal): one encoded event of a reply
	entryStop    = "stop"  // the stop entry: the token of the Matcher that stops
	entryBatch   = "b"     // an entry of events: the user and the events
)

// Kind letters, in an entry's entryKind field and in front of an encoded event.
const (
	kindFrame    = "f"
	kindMessage  = "m"
	kindEnded    = "e" // the chat ended; the payload is the reason
	kindHandover = "h"
	kindReply    = "r"
	kindKick     = "k" // end the user's session; the payload is the reason
)

// luaNames are the names the Lua scripts may use as ${placeholders}: each is the name
// of a constant above.
var luaNames = map[string]string{
	"keySeq": keySeq, "keyWait": keyWait, "keyTicket": keyTicket, "keyNode": keyNode,
	"keyTickets": keyTickets, "keyInbox": keyInbox, "keyAlive": keyAlive,
	"keySessions": keySessions, "keyNodes": keyNodes, "keyStats": keyStats,
	"keySess": keySess, "keyHeld": keyHeld, "keyEnded": keyEnded, "keyOrphans": keyOrphans,

	"keyRelax": keyRelax,

	"ticketUser": ticketUser, "ticketJoinedAt": ticketJoinedAt, "ticketNode": ticketNode, "ticketBucket": ticketBucket,
	"ticketMember": ticketMember, "ticketBlob": ticketBlob, "ticketAvoid": ticketAvoid,
	"ticketIndex": ticketIndex,

	"bucketSep":  bucketSep,
	"genderMale": string(flamingo.GenderMale), "genderFemale": string(flamingo.GenderFemale),
	"genderOther": string(flamingo.GenderOther), "preferAny": string(flamingo.PreferAny),
	"preferMale": string(flamingo.PreferMale), "preferFemale": string(flamingo.PreferFemale),
	"preferOther": string(flamingo.PreferOther),

	"pairWaiter": pairWaiter, "pairNewcomer": pairNewcomer, "pairChat": pairChat,

	"sessNode": sessNode, "sessDigest": sessDigest, "sessGender": sessGender, "sessAway": sessAway,
	"sessChat": sessChat, "sessPeer": sessPeer, "sessPeerGender": sessPeerGender,
	"sessStarted": sessStarted, "sessPreference": sessPreference, "sessInterests": sessInterests,
	"sessAvoid": sessAvoid, "sessAcked": sessAcked,

	"entryKind": entryKind, "entryUser": entryUser, "entryChat": entryChat,
	"entryPayload": entryPayload,

	"kindEnded": kindEnded, "entryBatch": entryBatch,

	// (not a name, but the reap script's end reason, which must be the root package's)
	"reasonPartnerDisconnected": string(flamingo.ReasonPartnerDisconnected),
}

// luaPlaceholder matches a ${name} in a script's source.
var luaPlaceholder = regexp.MustCompile(`\$\{([A-Za-z]+)\}`)

// luaSources holds the source of every script made by luaScript, for the tests.
var luaSources = map[*redis.Script]string{}

// luaScript makes a script of src after replacing each ${name} in it by luaNames[name].
// The scripts put each placeholder inside a Lua string literal: '${keySess}' becomes
// 'sess:'. It panics on a name it does not know, so a mistake stops the program at
// init, and every test with it.
func luaScript(src string) *redis.Script {
	src = expandLua(src)
	s := redis.NewScript(src)
	luaSources[s] = src
	return s
}

func expandLua(src string) string {
	return luaPlaceholder.ReplaceAllStringFunc(src, func(p string) string {
		name := p[2 : len(p)-1]
		v, ok := luaNames[name]
		if !ok {
			panic(fmt.Sprintf("flamingoredis: unknown placeholder %s in a Lua script", p))
		}
		if strings.ContainsAny(v, `'\`) {
			panic(fmt.Sprintf("flamingoredis: placeholder %s = %q cannot go in a Lua string", p, v))
		}
		return v
	})
}

// keys names the keys of one node: those it uses all the time, built once, and
// methods for the others.
type keys struct {
	base         string // Options.Prefix + keyTag; the cluster scripts get it as ARGV[1]
	seq          string
	ticketPrefix string // + user: a waiting ticket's hash
	nodePrefix   string // + node + keyTickets, keyInbox, keyAlive or keySessions
	nodeTickets  string // this node's waiting users
	nodePairs    string // this node's inbox stream: pairs, and a Cluster's events
	relax        string // the tickets waiting for their RelaxAt
	buckets      [3][4]string
}

var (
	genders     = [...]flamingo.Gender{flamingo.GenderMale, flamingo.GenderFemale, flamingo.GenderOther}
	preferences = [...]flamingo.Preference{flamingo.PreferAny, flamingo.PreferMale, flamingo.PreferFemale, flamingo.PreferOther}
)

func newKeys(prefix, node string) keys {
	base := prefix + keyTag
	k := keys{
		base:         base,
		seq:          base + keySeq,
		ticketPrefix: base + keyTicket,
		nodePrefix:   base + keyNode,
		relax:        base + keyRelax,
	}
	k.nodeTickets = k.nodePrefix + node + keyTickets
	k.nodePairs = k.inbox(node)
	for gi, g := range genders {
		for pi, p := range preferences {
			k.buckets[gi][pi] = base + keyWait + string(g) + bucketSep + string(p)
		}
	}
	return k
}

func (k *keys) bucket(g flamingo.Gender, p flamingo.Preference) string {
	for gi := range genders {
		if genders[gi] != g {
			continue
		}
		for pi := range preferences {
			if preferences[pi] == p {
				return k.buckets[gi][pi]
			}
		}
	}
	panic("flamingoredis: bucket of an invalid ticket")
}

// poolBucket returns the name of the wait: bucket of (g, p) in pool: the bucket
// itself for the pool "", else the bucket with the pool tag appended.
func (k *keys) poolBucket(g flamingo.Gender, p flamingo.Preference, pool string) string {
	b := k.bucket(g, p)
	if pool == "" {
		return b
	}
	return b + poolTag(pool)
}

// interest returns the name of the int: set of interest in the (g, p) bucket of pool.
func (k *keys) interest(g flamingo.Gender, p flamingo.Preference, pool, interest string) string {
	return k.base + keyInterest + string(g) + bucketSep + string(p) + poolTag(pool) + "/" + interest
}

// poolTag is what a pool adds to a key name: nothing for the pool "", else ":", the
// pool's length in bytes, ":" and the pool. The length keeps apart names that would
// otherwise be the same: pool "a/b" with interest "c", and pool "a" with "b/c".
func poolTag(pool string) string {
	if pool == "" {
		return ""
	}
	return ":" + strconv.Itoa(len(pool)) + ":" + pool
}

func (k *keys) ticket(user string) string   { return k.ticketPrefix + user }
func (k *keys) tickets(node string) string  { return k.nodePrefix + node + keyTickets }
func (k *keys) inbox(node string) string    { return k.nodePrefix + node + keyInbox }
func (k *keys) alive(node string) string    { return k.nodePrefix + node + keyAlive }
func (k *keys) sessions(node string) string { return k.nodePrefix + node + keySessions }
func (k *keys) nodes() string               { return k.base + keyNodes }
func (k *keys) stats() string               { return k.base + keyStats }
func (k *keys) session(user string) string  { return k.base + keySess + user }
func (k *keys) held(user string) string     { return k.base + keyHeld + user }
func (k *keys) ended(chat string) string    { return k.base + keyEnded + chat }
func (k *keys) orphans() string             { return k.base + keyOrphans }
