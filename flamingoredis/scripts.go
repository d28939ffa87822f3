package flamingoredis

// The scripts below are the only code that changes the queue, and each runs atomically
// inside Redis. Key names are built in Go (see keys.go) and passed in KEYS when they
// are known beforehand; the keys of a waiter found by the enqueue script (its ticket
// hash, its node's ticket set and pair stream) are derived inside the script from the
// prefixes in ARGV. Every key carries the same hash tag, so all of them live in one
// slot. Key suffixes and field names are ${placeholders} for the names in keys.go.
//
// Waiting tickets are members of a sorted set per (gender, preference) bucket, all with
// score 0, so that Redis orders them by their bytes:
//
//	member = order (16 hex digits: JoinedAt in UnixNano with the sign bit flipped)
//	       + seq   (16 decimal digits: a counter taken at enqueue, first come first served)
//	       + user
//
// The first 32 bytes are fixed-width and unique, so comparing them compares (JoinedAt,
// seq). Lua compares them in 8-digit chunks read as numbers, because string comparison
// in Redis's Lua follows the server's locale.

// enqueueScript pairs a newcomer with the oldest compatible waiter, or adds it.
//
//	KEYS[1]   the newcomer's ticket hash
//	KEYS[2]   the tie-breaking sequence counter
//	KEYS[3]   the newcomer's node ticket set
//	KEYS[4]   the newcomer's own bucket
//	KEYS[5..] the buckets whose waiters the newcomer may meet
//	ARGV      ticket key prefix, node key prefix, user, gender, preference,
//	          joined_at (UnixNano, decimal), order (16 hex digits), node id,
//	          chat id (for the pair it may make)
//
// It returns "dup" if the user already waits, "waiting" if the ticket was added, and
// "paired" if a waiter was taken out; the pair then has been appended to the pair
// stream of each node that owns one of the two tickets (once if both are the same).
var enqueueScript = luaScript(`
local function older(a, b)
  for i = 1, 32, 8 do
    local x = tonumber(string.sub(a, i, i + 7), 16)
    local y = tonumber(string.sub(b, i, i + 7), 16)
    if x ~= y then return x < y end
  end
  return false
end

if redis.call('EXISTS', KEYS[1]) == 1 then return 'dup' end

while true do
  local best, bestKey
  for i = 5, #KEYS do
    local m = redis.call('ZRANGE', KEYS[i], 0, 0)[1]
    if m and (best == nil or older(m, best)) then best, bestKey = m, KEYS[i] end
  end
  if best == nil then break end
  redis.call('ZREM', bestKey, best)
  local user = string.sub(best, 33)
  local tkey = ARGV[1] .. user
  local w = redis.call('HMGET', tkey, '${ticketGender}', '${ticketPreference}', '${ticketJoinedAt}',
    '${ticketNode}', '${ticketMember}')
  if w[5] == best then
    redis.call('DEL', tkey)
    redis.call('SREM', ARGV[2] .. w[4] .. '${keyTickets}', user)
    local entry = {
      '${pairWaiter}${ticketUser}', user,
      '${pairWaiter}${ticketGender}', w[1],
      '${pairWaiter}${ticketPreference}', w[2],
      '${pairWaiter}${ticketJoinedAt}', w[3],
      '${pairWaiter}${ticketNode}', w[4],
      '${pairNewcomer}${ticketUser}', ARGV[3],
      '${pairNewcomer}${ticketGender}', ARGV[4],
      '${pairNewcomer}${ticketPreference}', ARGV[5],
      '${pairNewcomer}${ticketJoinedAt}', ARGV[6],
      '${pairNewcomer}${ticketNode}', ARGV[8],
      '${pairChat}', ARGV[9],
    }
    redis.call('XADD', ARGV[2] .. w[4] .. '${keyInbox}', '*', unpack(entry))
    if w[4] ~= ARGV[8] then
      redis.call('XADD', ARGV[2] .. ARGV[8] .. '${keyInbox}', '*', unpack(entry))
    end
    return 'paired'
  end
  -- A member whose ticket hash is gone (only possible if Redis evicted or someone
  -- deleted keys): it is dropped, and the search goes on.
end

local seq = tostring(redis.call('INCR', KEYS[2]))
local member = ARGV[7] .. string.rep('0', 16 - #seq) .. seq .. ARGV[3]
redis.call('ZADD', KEYS[4], 0, member)
redis.call('HSET', KEYS[1], '${ticketUser}', ARGV[3], '${ticketGender}', ARGV[4],
  '${ticketPreference}', ARGV[5], '${ticketJoinedAt}', ARGV[6], '${ticketNode}', ARGV[8],
  '${ticketBucket}', KEYS[4], '${ticketMember}', member)
redis.call('SADD', KEYS[3], ARGV[3])
return 'waiting'
`)

// cancelScript takes a waiting ticket out of the queue.
//
//	KEYS[1] the ticket hash
//	ARGV[1] node key prefix
//
// It returns 1 if the ticket was waiting and is now gone, 0 if there was none.
var cancelScript = luaScript(`
local t = redis.call('HMGET', KEYS[1], '${ticketBucket}', '${ticketMember}', '${ticketNode}', '${ticketUser}')
if not t[1] then return 0 end
redis.call('ZREM', t[1], t[2])
redis.call('DEL', KEYS[1])
redis.call('SREM', ARGV[1] .. t[3] .. '${keyTickets}', t[4])
return 1
`)

// dropScript takes every waiting ticket of one node out of the queue.
//
//	KEYS[1] the node's ticket set
//	ARGV[1] ticket key prefix
//	ARGV[2] node id
//
// It returns the number of tickets dropped.
var dropScript = luaScript(`
local users = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, u in ipairs(users) do
  local k = ARGV[1] .. u
  local t = redis.call('HMGET', k, '${ticketBucket}', '${ticketMember}', '${ticketNode}')
  if t[1] and t[3] == ARGV[2] then
    redis.call('ZREM', t[1], t[2])
    redis.call('DEL', k)
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
return n
`)
