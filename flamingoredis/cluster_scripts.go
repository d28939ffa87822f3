package flamingoredis

import "github.com/redis/go-redis/v9"

// The scripts of a Cluster. Like the matcher's, they use keys under one hash tag, so
// that each script may derive the names of the keys it touches from ARGV[1], the key
// base (prefix + "{match}:"). keys.go names the keys, says what each holds, and names
// the fields of their hashes and stream entries; the scripts use those names as
// ${placeholders}.

// luaRoute is shared by the scripts that send an event to a user: to the inbox of the
// node that holds the user's session if that node is alive, else onto the user's held
// list, where a claim finds it. It returns 1 if sent, 2 if held, 0 if the user has no
// session, -1 if the held list is full.
const luaRoute = `
local function route(base, user, kind, chat, payload, maxHeld, ttl)
  local node = redis.call('HGET', base .. '${keySess}' .. user, '${sessNode}')
  if not node then return 0 end
  if redis.call('EXISTS', base .. '${keyNode}' .. node .. '${keyAlive}') == 1 then
    redis.call('XADD', base .. '${keyNode}' .. node .. '${keyInbox}', '*',
      '${entryKind}', kind, '${entryUser}', user, '${entryChat}', chat, '${entryPayload}', payload)
    return 1
  end
  local hk = base .. '${keyHeld}' .. user
  if redis.call('LLEN', hk) >= tonumber(maxHeld) then return -1 end
  redis.call('RPUSH', hk, kind .. chat .. '\0' .. payload)
  redis.call('PEXPIRE', hk, ttl)
  return 2
end

local function clearChat(base, user, chat)
  local k = base .. '${keySess}' .. user
  if redis.call('HGET', k, '${sessChat}') == chat then
    redis.call('HDEL', k, '${sessChat}', '${sessPeer}', '${sessPeerGender}', '${sessStarted}', '${sessAcked}')
  end
end
`

// saveScript records a session as its node holds it. A save from a node that no
// longer holds the session (another node claimed it) changes nothing.
//
//	ARGV base, node, user, digest, gender, away (0/1), chat, peer, peer gender,
//	     started (Unix ms), ttl (ms, for an away session), mode, preference,
//	     interests, avoid, acked (the last four encoded, each empty for none),
//	     events...
//
// In mode "save", events held in Redis for the user (sent while the node was taken
// for dead) are taken out and returned, for the node to deliver: {1, events...}. In
// mode "handoff" (a node that stops), the node's events go in front of them. A save
// that changes nothing returns {0, the events given}.
var saveScript = luaScript(`
local base, node, user = ARGV[1], ARGV[2], ARGV[3]
local k = base .. '${keySess}' .. user
local prev = redis.call('HGET', k, '${sessNode}')
if prev and prev ~= node then
  local out = {0}
  for i = 17, #ARGV do out[#out + 1] = ARGV[i] end
  return out
end
-- An empty value is no field: a session without lists costs nothing for them.
local function put(field, v)
  if v == '' then redis.call('HDEL', k, field) else redis.call('HSET', k, field, v) end
end
redis.call('HSET', k, '${sessNode}', node, '${sessDigest}', ARGV[4], '${sessGender}', ARGV[5],
  '${sessAway}', ARGV[6])
put('${sessPreference}', ARGV[13])
put('${sessInterests}', ARGV[14])
put('${sessAvoid}', ARGV[15])
if ARGV[7] ~= '' and redis.call('EXISTS', base .. '${keyEnded}' .. ARGV[7]) == 0 then
  redis.call('HSET', k, '${sessChat}', ARGV[7], '${sessPeer}', ARGV[8], '${sessPeerGender}', ARGV[9],
    '${sessStarted}', ARGV[10])
  put('${sessAcked}', ARGV[16])
else
  redis.call('HDEL', k, '${sessChat}', '${sessPeer}', '${sessPeerGender}', '${sessStarted}', '${sessAcked}')
end
redis.call('SADD', base .. '${keyNode}' .. node .. '${keySessions}', user)
-- A node taken for dead that resyncs: its session is no orphan.
redis.call('ZREM', base .. '${keyOrphans}', node .. ':' .. user)
if ARGV[6] == '1' then
  redis.call('PEXPIRE', k, ARGV[11])
else
  redis.call('PERSIST', k)
end
local hk = base .. '${keyHeld}' .. user
local held = redis.call('LRANGE', hk, 0, -1)
redis.call('DEL', hk)
if ARGV[12] == 'handoff' then
  if #ARGV > 16 then redis.call('RPUSH', hk, unpack(ARGV, 17)) end
  if #held > 0 then redis.call('RPUSH', hk, unpack(held)) end
  redis.call('PEXPIRE', hk, ARGV[11])
  return {1}
end
local out = {1}
for _, ev in ipairs(held) do out[#out + 1] = ev end
return out
`)

// forgetScript deletes a session that expired on its node.
//
//	ARGV base, node, user
var forgetScript = luaScript(`
local base, node, user = ARGV[1], ARGV[2], ARGV[3]
local k = base .. '${keySess}' .. user
if redis.call('HGET', k, '${sessNode}') ~= node then return 0 end
redis.call('DEL', k, base .. '${keyHeld}' .. user)
redis.call('SREM', base .. '${keyNode}' .. node .. '${keySessions}', user)
return 1
`)

// sendScript routes one event to a user.
//
//	ARGV base, user, kind, chat, payload, max held, ttl (ms)
var sendScript = luaScript(luaRoute + `
return route(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
`)

// sendsScript routes a batch of events, each to its user, as route does: to the
// inbox of the node that holds the user's session if that node is alive, else onto
// the user's held list (while it has room); an event for a user without a session is
// dropped. It looks up each user and each node once per batch, and writes one inbox
// entry per user (an entry of events: entryBatch), with that user's events in order:
// the script call is paid once per batch and the XADD once per user, not once per
// event.
//
//	ARGV base, max held, ttl (ms), then for each event: the user, and the encoded
//	     event (encodeEvent) with its length in front ("<length>:", as in
//	     cluster_state.go), as an entry of events carries it
//
// It returns the number of users.
var sendsScript = luaScript(`
local base, maxHeld, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local users, events = {}, {}
for i = 4, #ARGV, 2 do
  local user = ARGV[i]
  local list = events[user]
  if not list then
    list = {}
    events[user] = list
    users[#users + 1] = user
  end
  list[#list + 1] = ARGV[i + 1]
end
local alive = {}
for _, user in ipairs(users) do
  local list = events[user]
  local node = redis.call('HGET', base .. '${keySess}' .. user, '${sessNode}')
  if node then
    local up = alive[node]
    if up == nil then
      up = redis.call('EXISTS', base .. '${keyNode}' .. node .. '${keyAlive}') == 1
      alive[node] = up
    end
    if up then
      redis.call('XADD', base .. '${keyNode}' .. node .. '${keyInbox}', '*',
        '${entryBatch}', #user .. ':' .. user .. table.concat(list))
    else
      local hk = base .. '${keyHeld}' .. user
      local room = maxHeld - redis.call('LLEN', hk)
      if room > 0 then
        local held = {}
        for i = 1, math.min(room, #list) do
          local ev = list[i]
          held[i] = string.sub(ev, string.find(ev, ':', 1, true) + 1)
        end
        redis.call('RPUSH', hk, unpack(held))
        redis.call('PEXPIRE', hk, ttl)
      end
    end
  end
end
return #users
`)

// endChatScript records that a chat ended and, the first time only, notifies the
// partner on another node.
//
//	ARGV base, chat, user 1, user 2, notify (a user, or empty), reason, max held,
//	     ttl (ms, for the tombstone and a held list)
//
// It returns 1 if it notified, 0 if not.
var endChatScript = luaScript(luaRoute + `
local base, chat = ARGV[1], ARGV[2]
clearChat(base, ARGV[3], chat)
clearChat(base, ARGV[4], chat)
if ARGV[5] == '' then return 0 end
if not redis.call('SET', base .. '${keyEnded}' .. chat, '1', 'NX', 'PX', ARGV[8]) then return 0 end
route(base, ARGV[5], '${kindEnded}', chat, ARGV[6], ARGV[7], ARGV[8])
return 1
`)

// claimScript moves a session to the claiming node, if the digest matches.
//
//	ARGV base, node, user, digest
//
// It returns {} if there is no such session, else {previous node, 1 if it is alive
// else 0, gender, chat, peer, peer gender, started, away (0/1), preference,
// interests, avoid, acked, held events...}.
var claimScript = luaScript(`
local base, node, user = ARGV[1], ARGV[2], ARGV[3]
local k = base .. '${keySess}' .. user
local s = redis.call('HMGET', k, '${sessNode}', '${sessDigest}', '${sessGender}',
  '${sessChat}', '${sessPeer}', '${sessPeerGender}', '${sessStarted}', '${sessAway}',
  '${sessPreference}', '${sessInterests}', '${sessAvoid}', '${sessAcked}')
if not s[2] or s[2] ~= ARGV[4] then return {} end
local prev = s[1] or ''
local alive = 0
if prev ~= '' and prev ~= node then
  alive = redis.call('EXISTS', base .. '${keyNode}' .. prev .. '${keyAlive}')
  redis.call('SREM', base .. '${keyNode}' .. prev .. '${keySessions}', user)
  redis.call('ZREM', base .. '${keyOrphans}', prev .. ':' .. user)
end
redis.call('HSET', k, '${sessNode}', node, '${sessAway}', '0')
redis.call('PERSIST', k)
redis.call('SADD', base .. '${keyNode}' .. node .. '${keySessions}', user)
local chat, acked = s[4] or '', s[12] or ''
if chat ~= '' and redis.call('EXISTS', base .. '${keyEnded}' .. chat) == 1 then
  redis.call('HDEL', k, '${sessChat}', '${sessPeer}', '${sessPeerGender}', '${sessStarted}', '${sessAcked}')
  chat, acked = '', ''
end
local out = {prev, tostring(alive), s[3] or '', chat, s[5] or '', s[6] or '', s[7] or '0',
  s[8] or '0', s[9] or '', s[10] or '', s[11] or '', acked}
local hk = base .. '${keyHeld}' .. user
for _, ev in ipairs(redis.call('LRANGE', hk, 0, -1)) do out[#out + 1] = ev end
redis.call('DEL', hk)
return out
`)

// luaDown takes a node out of the cluster: its waiting tickets leave the queue, its
// sessions become orphans that expire at deadline unless claimed, and its inbox is
// kept for keep ms: a claim of one of its sessions takes the user's unread events
// from there.
const luaDown = `
local function down(base, node, deadline, keep)
  redis.call('DEL', base .. '${keyNode}' .. node .. '${keyAlive}')
  redis.call('ZREM', base .. '${keyNodes}', node)
  redis.call('HDEL', base .. '${keyStats}', node)
  local sk = base .. '${keyNode}' .. node .. '${keySessions}'
  for _, u in ipairs(redis.call('SMEMBERS', sk)) do
    redis.call('ZADD', base .. '${keyOrphans}', deadline, node .. ':' .. u)
  end
  redis.call('DEL', sk)
  local tk = base .. '${keyNode}' .. node .. '${keyTickets}'
  for _, u in ipairs(redis.call('SMEMBERS', tk)) do
    local key = base .. '${keyTicket}' .. u
    local t = redis.call('HMGET', key, '${ticketBucket}', '${ticketMember}', '${ticketNode}')
    if t[1] and t[3] == node then
      redis.call('ZREM', t[1], t[2])
      redis.call('DEL', key)
    end
  end
  redis.call('DEL', tk)
  -- What the node had not read yet stays a while, for claims to salvage.
  redis.call('PEXPIRE', base .. '${keyNode}' .. node .. '${keyInbox}', keep)
end
`

// beatScript is a node's heartbeat.
//
//	ARGV base, node, now (Unix ms), alive ttl (ms), "online in_queue in_chat"
//
// It returns {1 if the node's alive key had lapsed (or never existed) else 0, then
// the stats of every node as id, counts, id, counts...}.
var beatScript = luaScript(`
local base, node = ARGV[1], ARGV[2]
local fresh = 0
if not redis.call('SET', base .. '${keyNode}' .. node .. '${keyAlive}', ARGV[3], 'PX', ARGV[4], 'XX') then
  fresh = 1
  redis.call('SET', base .. '${keyNode}' .. node .. '${keyAlive}', ARGV[3], 'PX', ARGV[4])
end
redis.call('ZADD', base .. '${keyNodes}', ARGV[3], node)
redis.call('HSET', base .. '${keyStats}', node, ARGV[5])
-- (a node taken for dead had its inbox set to expire)
redis.call('PERSIST', base .. '${keyNode}' .. node .. '${keyInbox}')
local out = {fresh}
for _, v in ipairs(redis.call('HGETALL', base .. '${keyStats}')) do out[#out + 1] = v end
return out
`)

// reapScript declares dead the nodes whose alive key has lapsed and expires the
// orphaned sessions whose grace is over: each one's partner, if any, is told
// partner_disconnected once.
//
//	ARGV base, now (Unix ms), grace (ms), max held, ttl (ms), max orphans to expire,
//	     how long to keep a dead node's inbox (ms)
//
// It returns {nodes declared dead, sessions expired}.
var reapScript = luaScript(luaRoute + luaDown + `
local base, now = ARGV[1], tonumber(ARGV[2])
local dead = 0
local nodes = redis.call('ZRANGE', base .. '${keyNodes}', 0, -1, 'WITHSCORES')
for i = 1, #nodes, 2 do
  local n, seen = nodes[i], tonumber(nodes[i + 1])
  if redis.call('EXISTS', base .. '${keyNode}' .. n .. '${keyAlive}') == 0 then
    down(base, n, seen + tonumber(ARGV[3]), ARGV[7])
    dead = dead + 1
  end
end
local expired = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', base .. '${keyOrphans}', '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))) do
  redis.call('ZREM', base .. '${keyOrphans}', m)
  -- users are hex handles; a node id may itself hold ':'
  local node, user = string.match(m, '^(.*):([^:]*)$')
  local k = base .. '${keySess}' .. user
  local s = redis.call('HMGET', k, '${sessNode}', '${sessChat}', '${sessPeer}')
  if s[1] == node then
    redis.call('DEL', k, base .. '${keyHeld}' .. user)
    expired = expired + 1
    if s[2] and s[3] then
      clearChat(base, s[3], s[2])
      if redis.call('SET', base .. '${keyEnded}' .. s[2], '1', 'NX', 'PX', ARGV[5]) then
        route(base, s[3], '${kindEnded}', s[2], '${reasonPartnerDisconnected}', ARGV[4], ARGV[5])
      end
    end
  end
end
return {dead, expired}
`)

// leaveScript takes this node out of the cluster at once, when it stops.
//
//	ARGV base, node, deadline (Unix ms) for its sessions, how long to keep its inbox (ms)
var leaveScript = luaScript(luaDown + `
down(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return 1
`)

var clusterScripts = []*redis.Script{saveScript, forgetScript, sendScript, sendsScript, endChatScript, claimScript, beatScript, reapScript, leaveScript}
