// Package flamingoredis carries flamingo's waiting queue on Redis, so that several
// flamingo nodes share one queue: a stranger waiting on node A can be paired by an
// Enqueue on node B.
//
// It lives in its own module, so that importers of package flamingo never download
// Redis code. This first step provides the [Matcher]; delivering events across nodes,
// sessions on Redis and node liveness come later.
//
// # Use
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	engine, err := flamingo.New(flamingo.Config{
//		Matcher: flamingoredis.New(client, flamingoredis.Options{}),
//	})
//
// Every node that should share the queue uses the same [Options.Prefix] and its own
// [Options.NodeID] (a random one by default).
//
// # Guarantees
//
// The Matcher keeps the contract of [flamingo.Matcher] across all the nodes sharing a
// queue, and passes the conformance suite
// [github.com/flamingochat/flamingo/flamingotest.TestMatcher]:
//
//   - atomic: pairing is one Lua script, so a ticket is in at most one pair, ever, and
//     a ticket whose Cancel returned true is never paired;
//   - mutual: the script looks only in the buckets whose tickets accept the newcomer's
//     gender and whose gender the newcomer accepts, as [flamingo.Ticket.Compatible];
//   - fair: it takes the waiter with the earliest JoinedAt (ties go to the one that
//     was enqueued first) among the heads of those buckets;
//   - complete: a ticket is only added to the queue when no compatible waiter exists.
//
// # Who reports a pair
//
// A ticket is owned by the node whose Matcher enqueued it. A pair is reported on each
// node that owns one of its two tickets, exactly once there: on one node if both
// tickets are its own, on two if they belong to different nodes. A node never hears
// of pairs between other nodes' tickets.
//
// The enqueue script appends each pair it makes to the pair stream of each owning
// node, in the same atomic step. Each Matcher runs one goroutine, started by Start and
// ended by Stop, that reads its node's stream with XREAD BLOCK, calls the report
// function for each pair in stream order, and then deletes the entries it reported. So
// pairs are reported from that goroutine, shortly after the Enqueue that made them
// returns, never from within Enqueue; no pair is lost when an Enqueue's reply is lost
// or the connection to Redis drops (the reader reconnects and continues from the last
// entry it saw). The report function may call Enqueue and Cancel.
//
// # Keys
//
// With the default prefix "flamingo:", the matcher uses these keys; all carry the hash
// tag {match}, so they are in one Redis Cluster slot:
//
//	flamingo:{match}:wait:<gender>:<preference>  sorted set: the tickets waiting in one of
//	                                             the 12 buckets, ordered by JoinedAt
//	flamingo:{match}:ticket:<user>               hash: a waiting ticket (user, gender,
//	                                             preference, joined_at in UnixNano, node,
//	                                             bucket, member)
//	flamingo:{match}:seq                         counter that breaks ties between equal
//	                                             JoinedAt values
//	flamingo:{match}:node:<node>:tickets         set: the users of the node's waiting tickets
//	flamingo:{match}:node:<node>:pairs           stream: pairs the node has yet to report
//
// A bucket's members all have score 0 and sort by their bytes: 16 hex digits of
// JoinedAt (UnixNano with the sign bit flipped), 16 decimal digits of the counter, then
// the user. Sorted-set scores are doubles and cannot hold nanoseconds exactly; the
// bytes can.
//
// Three scripts change these keys: enqueue (pair or add), cancel (remove one ticket)
// and drop (remove all of one node's tickets, run by Stop and, for leftovers of a node
// that ended without Stop, by Start).
//
// # Limits
//
//   - Redis must keep every key: run it with maxmemory-policy noeviction. With
//     persistence off, a Redis restart empties the queue; the waiting users must then
//     join again.
//   - Only the fields of [flamingo.Ticket] known today are stored; JoinedAt must lie
//     between the years 1678 and 2261, which [time.Time.UnixNano] can represent.
//   - Do not yet run two Engines on one queue: today's Engine treats a pair whose
//     other ticket it does not own as a partner who left, and puts its own ticket
//     back, so both nodes would keep re-pairing the two users. Cross-node delivery
//     will give the Engine what it needs to start such a chat.
//   - A node that dies without Stop leaves its tickets waiting until a Matcher with the
//     same NodeID starts again. Reaping the tickets of dead nodes belongs to the node
//     liveness work that is still to come.
//   - The matcher has been tested on Redis 7 and miniredis, not on Redis Cluster.
package flamingoredis
