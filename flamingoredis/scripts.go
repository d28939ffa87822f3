package flamingoredis

// The scripts below are the only code that changes the queue, and each runs atomically
// inside Redis: one script decides each pair. Key names are built in Go (see keys.go)
// and passed in KEYS when they are known beforehand; the keys of a waiter found by a
// script (its ticket hash, its index keys, its node's ticket set and inbox) are read
// from its ticket hash or derived from the key base in ARGV[1]. Every key carries the
// same hash tag, so all of them live in one slot. Key suffixes and field names are
// ${placeholders} for the names in keys.go.
//
// A waiting ticket is listed in sorted sets, all with score 0 but relax's, so that
// Redis orders them by their bytes:
//
//	member = order (16 hex digits: JoinedAt in UnixNano with the sign bit flipped)
//	       + seq   (16 decimal digits: a counter taken at enqueue, first come first served)
//	       + user
//
// The first 32 bytes are fixed-width and unique, so comparing them compares (JoinedAt,
// seq). Lua compares them in 8-digit chunks read as numbers, because string comparison
// in Redis's Lua follows the server's locale.
//
// The sets, per pool and (gender, preference) bucket: wait: holds the relaxed tickets
// (no interests, or RelaxAt has come), int:.../<interest> every ticket that gave the
// interest, relaxed or not. relax holds the tickets not relaxed yet, scored by when
// they relax. So the oldest acceptable waiter that shares an interest with a newcomer
// is the oldest of the heads of its int: sets (one per interest and compatible
// bucket), and the oldest relaxed one the oldest of the heads of its wait: sets; a
// head that the newcomer avoids, or that avoids it, is passed over for the next.
//
// Time: whether a ticket is relaxed is decided by the Redis server's clock (TIME), the
// same for every node. Enqueue passes how long the ticket has left until its RelaxAt
// by the enqueuing node's clock, and the script adds that to its TIME: the ticket's
// wait is measured by the clock that set RelaxAt, and the instant it ends is compared,
// by every node's scripts alike, with one clock.

// luaQueue is shared by every script of the queue. It expects the key base in ARGV[1].
const luaQueue = `
local base = ARGV[1]
local tprefix, nprefix = base .. '${keyTicket}', base .. '${keyNode}'
local relaxKey = base .. '${keyRelax}'
-- The fields of a ticket hash the scripts read, in this order: f[1] member ... f[6] index.
local fields = {'${ticketMember}', '${ticketAvoid}', '${ticketNode}', '${ticketBlob}',
  '${ticketBucket}', '${ticketIndex}'}

-- unlink takes the waiting ticket of member m, whose hash fields are f, out of the
-- queue: out of its wait: bucket, its int: sets and relax (listed in its index),
-- its node's ticket set, and deletes its hash.
local function unlink(m, f)
  local user = string.sub(m, 33)
  local unrelaxed = false -- a ticket still in relax is in no wait: set
  local ix = f[6]
  if ix then
    local i = 1
    while i <= #ix do
      local j = string.find(ix, '\0', i, true) or (#ix + 1)
      local k = string.sub(ix, i, j - 1)
      if redis.call('ZREM', k, m) == 1 and k == relaxKey then unrelaxed = true end
      i = j + 1
    end
  end
  if not unrelaxed then redis.call('ZREM', f[5], m) end
  redis.call('DEL', tprefix .. user)
  redis.call('SREM', nprefix .. f[3] .. '${keyTickets}', user)
end
`

// luaPairing is shared by the scripts that make pairs. It expects luaQueue before it,
// and the chat id prefix (24 hex digits) in ARGV[2]: the script's pairs get chat ids
// of that prefix and a counter.
const luaPairing = `
local chatPrefix, chats = ARGV[2], 0

local function older(a, b)
  for i = 1, 32, 8 do
    local x = tonumber(string.sub(a, i, i + 7), 16)
    local y = tonumber(string.sub(b, i, i + 7), 16)
    if x ~= y then return x < y end
  end
  return false
end

-- avoids reports whether the avoid field a (NUL, each user, NUL; or false) names user.
local function avoids(a, user)
  return a and string.find(a, '\0' .. user .. '\0', 1, true) ~= nil
end

-- current returns the hash fields of the waiting ticket whose member is m, or nil if
-- m is stale: its ticket is gone (a dead node's, taken out by the cluster's down, which
-- leaves int: and relax alone), or it is of an earlier ticket of the same user.
local function current(m)
  local f = redis.call('HMGET', tprefix .. string.sub(m, 33), unpack(fields))
  if f[1] ~= m then return nil end
  return f
end

-- oldest returns the oldest member of the sets named in ks that is current, is not
-- user's, is not avoided by avoid (user's avoid field) and does not avoid user; and
-- its hash fields; or nil. It reads the head of each set, and looks at the oldest
-- head first: only when that one is passed over (avoided, or stale, which it removes)
-- does it read the next member of that set. So it reads one ticket hash in the
-- common case, and its cost does not grow with the size of the sets.
local function oldest(ks, user, avoid)
  local heads, at, passed = {}, {}, {}
  for i, k in ipairs(ks) do
    at[i] = 0
    heads[i] = redis.call('ZRANGE', k, 0, 0)[1] or false
  end
  while true do
    local mi
    for i = 1, #ks do
      if heads[i] and (not mi or older(heads[i], heads[mi])) then mi = i end
    end
    if not mi then return nil end
    local m = heads[mi]
    if not passed[m] then
      local u = string.sub(m, 33)
      if u == user or avoids(avoid, u) then
        passed[m] = true
      else
        local f = current(m)
        if not f then
          redis.call('ZREM', ks[mi], m)
          at[mi] = at[mi] - 1 -- the next member moved up
        elseif avoids(f[2], user) then
          passed[m] = true
        else
          return m, f
        end
      end
    end
    at[mi] = at[mi] + 1
    heads[mi] = redis.call('ZRANGE', ks[mi], at[mi], at[mi])[1] or false
  end
end

-- pair appends the pair of two tickets already taken out of the queue to the inbox
-- of each one's node (once if it is the same node). The waiter is x, the one that
-- waited longer (or was in the queue first).
local function pair(xUser, xNode, xBlob, yNode, yBlob)
  chats = chats + 1
  local entry = {'${pairWaiter}${ticketUser}', xUser, '${pairWaiter}${ticketBlob}', xBlob,
    '${pairNewcomer}${ticketBlob}', yBlob, '${pairChat}', chatPrefix .. string.format('%08x', chats)}
  redis.call('XADD', nprefix .. xNode .. '${keyInbox}', '*', unpack(entry))
  if yNode ~= xNode then
    redis.call('XADD', nprefix .. yNode .. '${keyInbox}', '*', unpack(entry))
  end
end

-- now returns the server's time in microseconds (exact in a Lua number until 2255).
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local genders = {'${genderMale}', '${genderFemale}', '${genderOther}'}
local preferences = {'${preferAny}', '${preferMale}', '${preferFemale}', '${preferOther}'}
local waitPrefix = base .. '${keyWait}'

local function accepts(p, g)
  return p == '${preferAny}' or p == g
end

-- relaxOne relaxes the ticket of member m, taken from relax: it is paired with the
-- oldest acceptable relaxed waiter, if there is one, else it joins its wait: bucket.
-- (Any acceptable waiter that shares one of its interests would have been paired
-- with it already.) It returns 1 if it made a pair.
local function relaxOne(m)
  redis.call('ZREM', relaxKey, m)
  local f = current(m)
  if not f then return 0 end
  -- f[5] is waitPrefix .. gender .. ':' .. preference .. pool tag
  local g, p, tag = string.match(string.sub(f[5], #waitPrefix + 1), '^(%a+)${bucketSep}(%a+)(.*)$')
  local ks = {}
  for _, wg in ipairs(genders) do
    if accepts(p, wg) then
      for _, wp in ipairs(preferences) do
        if accepts(wp, g) then ks[#ks + 1] = waitPrefix .. wg .. '${bucketSep}' .. wp .. tag end
      end
    end
  end
  local user = string.sub(m, 33)
  local w, wf = oldest(ks, user, f[2])
  if not w then
    redis.call('ZADD', f[5], 0, m)
    return 0
  end
  unlink(w, wf)
  unlink(m, f)
  if older(w, m) then
    pair(string.sub(w, 33), wf[3], wf[4], f[3], f[4])
  else
    pair(user, f[3], f[4], wf[3], wf[4])
  end
  return 1
end

-- relaxDue relaxes, earliest RelaxAt first, at most limit of the tickets whose RelaxAt
-- has come. It returns the number of pairs made, whether it stopped at the limit, and
-- the time it read (µs), or nil if no ticket waits for its RelaxAt.
local function relaxDue(limit)
  local head = redis.call('ZRANGE', relaxKey, 0, 0, 'WITHSCORES')
  if not head[1] then return 0, false, nil end
  local t = now()
  if tonumber(head[2]) > t then return 0, false, t end
  local due = redis.call('ZRANGEBYSCORE', relaxKey, '-inf', string.format('%.0f', t), 'LIMIT', 0, limit)
  local n = 0
  for _, m in ipairs(due) do n = n + relaxOne(m) end
  return n, #due >= limit, t
end
`

// enqueueScript relaxes the waiters whose RelaxAt has come (at most ARGV[3] of them),
// then pairs a newcomer with the oldest acceptable waiter that shares an interest
// with it, else, if the newcomer is relaxed, with the oldest acceptable relaxed
// waiter; or adds it.
//
//	KEYS[1]   the newcomer's ticket hash
//	KEYS[2]   the tie-breaking sequence counter
//	KEYS[3]   the newcomer's node ticket set
//	KEYS[4]   the newcomer's own wait: bucket
//	KEYS[5..] the wait: buckets whose waiters the newcomer may meet (ARGV[10] of
//	          them), then the newcomer's own int: sets (ARGV[11]), then the int: sets
//	          whose waiters it may meet (the rest)
//	ARGV      key base, chat id prefix, relax limit, user, order (16 hex digits),
//	          node id, encoded ticket, avoid field ('' if none), µs until RelaxAt by
//	          the node's clock ('' if the ticket is always relaxed), ARGV[10], ARGV[11],
//	          JoinedAt (UnixNano, decimal)
//
// It returns "dup" if the user already waits, "waiting" if the ticket was added, and
// "paired" if a waiter was taken out; the pair then has been appended to the inbox of
// each node that owns one of the two tickets (once if both are the same).
var enqueueScript = luaScript(luaQueue + luaPairing + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'dup' end
local user, avoid = ARGV[4], ARGV[8]
if avoid == '' then avoid = false end
local nr, ni = tonumber(ARGV[10]), tonumber(ARGV[11])

local _, _, t = relaxDue(tonumber(ARGV[3]))
local relaxed, relaxAt = true, nil
if ARGV[9] ~= '' and tonumber(ARGV[9]) > 0 then
  relaxed = false
  relaxAt = (t or now()) + tonumber(ARGV[9])
end

-- The interest search: the int: sets of each interest in turn (nr of them each). An
-- EXISTS of all of them, then of each interest's, saves the ZRANGEs of sets that
-- hold no one: most of them, when interests are many and waiters few.
local best, bf
local from, ks = 5 + nr + ni, {}
if #KEYS >= from and redis.call('EXISTS', unpack(KEYS, from)) > 0 then
  for i = from, #KEYS, nr do
    if ni == 1 or redis.call('EXISTS', unpack(KEYS, i, i + nr - 1)) > 0 then
      for j = i, i + nr - 1 do ks[#ks + 1] = KEYS[j] end
    end
  end
  best, bf = oldest(ks, user, avoid)
end
if not best and relaxed then
  best, bf = oldest({unpack(KEYS, 5, 4 + nr)}, user, avoid)
end
if best then
  unlink(best, bf)
  pair(string.sub(best, 33), bf[3], bf[4], ARGV[6], ARGV[7])
  return 'paired'
end

local seq = tostring(redis.call('INCR', KEYS[2]))
local member = ARGV[5] .. string.rep('0', 16 - #seq) .. seq .. user
local ix = {}
for i = 5 + nr, 4 + nr + ni do
  redis.call('ZADD', KEYS[i], 0, member)
  ix[#ix + 1] = KEYS[i]
end
if relaxed then
  redis.call('ZADD', KEYS[4], 0, member)
else
  redis.call('ZADD', relaxKey, string.format('%.0f', relaxAt), member)
  ix[#ix + 1] = relaxKey
end
local h = {'${ticketMember}', member, '${ticketNode}', ARGV[6], '${ticketBucket}', KEYS[4],
  '${ticketBlob}', ARGV[7], '${ticketJoinedAt}', ARGV[12]}
if avoid then
  h[#h + 1] = '${ticketAvoid}'
  h[#h + 1] = avoid
end
if #ix > 0 then
  h[#h + 1] = '${ticketIndex}'
  h[#h + 1] = table.concat(ix, '\0')
end
redis.call('HSET', KEYS[1], unpack(h))
redis.call('SADD', KEYS[3], user)
return 'waiting'
`)

// relaxScript is the relaxation pass: it relaxes the waiters whose RelaxAt has come,
// earliest first, pairing each with the oldest acceptable relaxed waiter if there is
// one. The matcher's tick runs it.
//
//	ARGV key base, chat id prefix, limit (most tickets to relax)
//
// It returns {pairs made, 1 if it stopped at the limit (more may be due) else 0}.
var relaxScript = luaScript(luaQueue + luaPairing + `
local n, more = relaxDue(tonumber(ARGV[3]))
return {n, more and 1 or 0}
`)

// cancelScript takes a waiting ticket out of the queue.
//
//	KEYS[1] the ticket hash
//	ARGV[1] key base
//
// It returns 1 if the ticket was waiting and is now gone, 0 if there was none.
var cancelScript = luaScript(luaQueue + `
local f = redis.call('HMGET', KEYS[1], unpack(fields))
if not f[1] then return 0 end
unlink(f[1], f)
return 1
`)

// dropScript takes waiting tickets of one node out of the queue, at most ARGV[3] of
// them, so that a node with many waiting users does not keep Redis busy in one script;
// the caller repeats it until it returns 0 (see Matcher.drop).
//
//	KEYS[1] the node's ticket set
//	ARGV[1] key base
//	ARGV[2] node id
//	ARGV[3] how many users of the set to take at most
//
// It returns how many users are left in the set.
var dropScript = luaScript(luaQueue + `
for _, u in ipairs(redis.call('SPOP', KEYS[1], ARGV[3])) do
  local f = redis.call('HMGET', tprefix .. u, unpack(fields))
  if f[1] and f[3] == ARGV[2] then unlink(f[1], f) end
end
return redis.call('SCARD', KEYS[1])
`)
