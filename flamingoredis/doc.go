// Package flamingoredis runs flamingo on several nodes that share one Redis: a
// stranger on node A meets one on node B, their messages cross, a user may resume on
// any node, and when a node dies its users' partners are told.
//
// It lives in its own module, so that importers of package flamingo never download
// Redis code.
//
// # Use
//
// A [Cluster] is both the [flamingo.Matcher] and the [flamingo.Broker] of a node's
// Engine:
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	cluster := flamingoredis.NewCluster(client, flamingoredis.ClusterOptions{})
//	engine, err := flamingo.New(flamingo.Config{Matcher: cluster.Matcher(), Broker: cluster})
//
// Every node of one cluster uses the same [Options.Prefix] and its own
// [Options.NodeID] (a random one by default). SCALING.md in the repository describes
// the design, the keys, the scripts and what is and is not guaranteed when a node or
// Redis fails; examples/cluster is a runnable node.
//
// The [Matcher] can also be used alone, as the shared queue of Engines that do not
// otherwise cooperate; without a Cluster, though, an Engine cannot start a chat with a
// user of another node, so use the Matcher alone only on a single node.
//
// # Guarantees
//
// The Matcher keeps the contract of [flamingo.Matcher] across all the nodes sharing a
// queue, with every rule of matching v2 (pools, interests that relax, users to
// avoid), and passes the conformance suite
// [github.com/flamingochat/flamingo/flamingotest.TestMatcher]:
//
//   - atomic: each decision is one Lua script, so a ticket is in at most one pair,
//     ever, and a ticket whose Cancel returned true is never paired;
//   - mutual: the scripts look only in the sets of the newcomer's Pool whose tickets
//     accept its gender and whose gender it accepts, skip a waiter that the newcomer
//     avoids or that avoids it, and take a waiter that shares no interest only if
//     both are relaxed, as [flamingo.Ticket.Acceptable];
//   - fair: the oldest acceptable waiter (earliest JoinedAt; ties go to the one
//     enqueued first) sharing an interest, else the oldest acceptable relaxed one;
//   - complete, within the tick: a ticket is added to the queue only when no
//     acceptable waiter exists, and every node's tick ([Options.RelaxTick]) pairs
//     waiters whose RelaxAt has come.
//
// Whether a ticket is relaxed is decided by the Redis server's clock, the one clock
// all nodes share: a ticket relaxes once the server's TIME passes the time of its
// Enqueue plus what was left until its RelaxAt by its node's clock.
//
// Tickets live in Redis with all their fields, so the users a ticket avoids (the
// engine fills Avoid from the user's session) travel with it to whichever node pairs
// it, and a Pair carries every field of both tickets unchanged.
//
// # Who reports a pair
//
// A ticket is owned by the node whose Matcher enqueued it. A pair is reported on each
// node that owns one of its two tickets, exactly once there: on one node if both
// tickets are its own, on two if they belong to different nodes. A node never hears
// of pairs between other nodes' tickets.
//
// The enqueue and relax scripts append each pair they make to the inbox stream of
// each owning node, in the same atomic step. Each Matcher runs one goroutine, started
// by Start and ended by Stop, that reads its node's stream with XREAD BLOCK, calls the
// report function for each pair in stream order, and then deletes the entries it
// reported. So pairs are reported from that goroutine, shortly after the Enqueue or
// the pass (on any node) that made them, never from within Enqueue; no pair is lost when an Enqueue's reply is lost
// or the connection to Redis drops (the reader reconnects and continues from the last
// entry it saw). The report function may call Enqueue and Cancel.
//
// # Keys
//
// Every key begins with [Options.Prefix] and the hash tag {match}, so that all are in
// one Redis Cluster slot: with the default prefix, "flamingo:{match}:". A waiting
// ticket is a hash ("ticket:<user>") listed, by its pool and its (gender,
// preference) bucket, in sorted sets: "wait:<gender>:<preference>[<pool>]" once it
// is relaxed, "int:<gender>:<preference>[<pool>]/<interest>" for each interest, and
// "relax" until its RelaxAt comes. Each node reads what is for it from its inbox
// stream ("node:<node>:inbox"). SCALING.md in the repository lists every key, what it
// holds and when it expires; in the source, keys.go is the one place that names the
// keys and the fields of their hashes and stream entries.
//
// Four scripts change the queue: enqueue (pair or add), relax (the relaxation pass,
// which enqueue also runs first), cancel (remove one ticket) and drop (remove the
// tickets of one node, run by Stop and, for leftovers of a node that ended without
// Stop, by Start).
//
// # Limits
//
//   - Redis must keep every key: run it with maxmemory-policy noeviction. With
//     persistence off, a Redis restart empties the queue; the waiting users must then
//     join again.
//   - Only the fields of [flamingo.Ticket] known today are stored; JoinedAt must lie
//     between the years 1678 and 2261, which [time.Time.UnixNano] can represent, and
//     User, Pool and the interests must not hold a NUL byte.
//   - The nodes sharing a queue must run the same version: matching v2 changed how a
//     ticket is stored.
//   - A node that dies without Stop leaves its tickets waiting until a Cluster's
//     reaper takes it for dead; a bare Matcher leaves them until a Matcher with the
//     same NodeID starts again. The reaper takes them out of their wait: sets only;
//     what they leave in int: and relax is never paired, and is removed when a
//     script meets it.
//   - The matcher has been tested on Redis 7 and miniredis, not on Redis Cluster.
package flamingoredis
