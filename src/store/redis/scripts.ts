import type { Redis } from 'ioredis'

/** Runs one Lua script by its SHA (ioredis loads it on NOSCRIPT); bulk replies come back as Buffers. */
export type Script = (keys: string[], args: Array<string | Buffer | number>) => Promise<unknown>

export function defineScript (redis: Redis, name: string, lua: string): Script {
  redis.defineCommand(name, { lua })
  const run = (redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[`${name}Buffer`]
  return async (keys, args) => await run.call(redis, keys.length, ...keys, ...args)
}

// Entry state in the queue index, `e:<seq>`:
// "<qos>|<p: publish, r: pubrel>|<messageId or empty>|<payload bytes>|<enqueued at, ms>|<brokerId:counter or empty>"
// The index also counts the messages waiting (never sent: a publish without a packet id), `w`, and their bytes, `wb`,
// which the queue limits apply to. `n` (the last seq) outlives the entries, so seqs never repeat within a queue.
const ENTRY_HELPERS = `
local function parse (e)
  return string.match(e, '^(%d)|(%a)|(%d*)|(%d+)|(%d+)|(.*)$')
end
-- an entry dropOldest evicted is out of the queue (q) while its dead letter is written: not the queue's any more
local function queued (q, seq)
  return redis.call('ZSCORE', q, seq) ~= false
end
local function unwait (qx, kind, mid, bytes)
  if kind == 'p' and mid == '' then
    redis.call('HINCRBY', qx, 'w', -1)
    redis.call('HINCRBY', qx, 'wb', -tonumber(bytes))
  end
end
local function drop (q, qm, qx, seq, e)
  local _, kind, mid, bytes, _, bk = parse(e)
  redis.call('ZREM', q, seq)
  redis.call('HDEL', qm, seq)
  redis.call('HDEL', qx, 'e:' .. seq)
  unwait(qx, kind, mid, bytes)
  if mid ~= '' and redis.call('HGET', qx, 'm:' .. mid) == tostring(seq) then redis.call('HDEL', qx, 'm:' .. mid) end
  if bk ~= '' and redis.call('HGET', qx, 'c:' .. bk) == tostring(seq) then redis.call('HDEL', qx, 'c:' .. bk) end
end
`

/**
 * KEYS: the subscription generation, then per client q, qm, qx, qe. ARGV: brokerId:counter (or ''), now (ms),
 * maxQueuedMessages, maxQueuedBytes (0 = no limit), 'oldest' | 'newest' (overflowPolicy), the subscription
 * generation the clients were matched at (or '' to skip the check), then per client: qos, bytes, encoded packet.
 * Returns { per client: the new seq, 0 when the queue already holds the message (a resent command), -1 when the
 * limits refused it }, { client index, seq, evicted packet, ... } (dropOldest took those waiting messages out of the
 * queue; they stay in qe until their dead letter is written: FORGET_EVICTED), stale: 1 when the subscriptions
 * changed since that generation (nothing was written: match again).
 */
export const ENQUEUE = ENTRY_HELPERS + `
local bk, now, maxN, maxB, policy, gen = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6]
if gen ~= '' and (redis.call('GET', KEYS[1]) or '0') ~= gen then return { {}, {}, 1 } end
local out, evicted = {}, {}
local function fits (qx, bytes)
  local w = tonumber(redis.call('HGET', qx, 'w') or '0')
  local wb = tonumber(redis.call('HGET', qx, 'wb') or '0')
  return (maxN == 0 or w < maxN) and (maxB == 0 or wb + bytes <= maxB)
end
for i = 0, (#KEYS - 1) / 4 - 1 do
  local q, qm, qx, qe = KEYS[i * 4 + 2], KEYS[i * 4 + 3], KEYS[i * 4 + 4], KEYS[i * 4 + 5]
  local qos, bytes, value = ARGV[i * 3 + 7], tonumber(ARGV[i * 3 + 8]), ARGV[i * 3 + 9]
  if bk ~= '' and redis.call('HEXISTS', qx, 'c:' .. bk) == 1 then
    out[i + 1] = 0
  elseif (maxB > 0 and bytes > maxB) or (policy == 'newest' and not fits(qx, bytes)) then
    out[i + 1] = -1
  else
    if not fits(qx, bytes) then
      -- dropOldest: the oldest waiting messages go (in-flight ones stay until acknowledged)
      for _, old in ipairs(redis.call('ZRANGE', q, 0, -1)) do
        local e = redis.call('HGET', qx, 'e:' .. old)
        local _, kind, mid, oldBytes = parse(e)
        if kind == 'p' and mid == '' then
          evicted[#evicted + 1] = i
          evicted[#evicted + 1] = tonumber(old)
          evicted[#evicted + 1] = redis.call('HGET', qm, old)
          redis.call('ZREM', q, old)
          unwait(qx, kind, mid, oldBytes)
          redis.call('HSET', qe, old, 1)
          if fits(qx, bytes) then break end
        end
      end
    end
    local seq = redis.call('HINCRBY', qx, 'n', 1)
    redis.call('ZADD', q, seq, seq)
    redis.call('HSET', qm, seq, value)
    redis.call('HSET', qx, 'e:' .. seq, qos .. '|p||' .. bytes .. '|' .. now .. '|' .. bk)
    redis.call('HINCRBY', qx, 'w', 1)
    redis.call('HINCRBY', qx, 'wb', bytes)
    if bk ~= '' then redis.call('HSET', qx, 'c:' .. bk, seq) end
    out[i + 1] = seq
  end
end
return { out, evicted, 0 }
`

/**
 * A publish was sent with a packet id. KEYS q, qm, qx. ARGV brokerId:counter, messageId, qos, encoded packet.
 * Returns the seq; 0 when a PUBREL already replaced it; -1 when the entry (a QoS 0 copy) was deleted; nil if unknown.
 */
export const UPDATE = ENTRY_HELPERS + `
local q, qm, qx = KEYS[1], KEYS[2], KEYS[3]
local seq = redis.call('HGET', qx, 'c:' .. ARGV[1])
if not seq or not queued(q, seq) then return nil end
local e = redis.call('HGET', qx, 'e:' .. seq)
local qos, kind, mid, bytes, t, bk = parse(e)
if kind == 'r' then return 0 end
if qos == '0' then drop(q, qm, qx, seq, e) return -1 end
unwait(qx, kind, mid, bytes)
if mid ~= '' and redis.call('HGET', qx, 'm:' .. mid) == seq then redis.call('HDEL', qx, 'm:' .. mid) end
redis.call('HSET', qx, 'm:' .. ARGV[2], seq)
redis.call('HSET', qx, 'e:' .. seq, ARGV[3] .. '|p|' .. ARGV[2] .. '|' .. bytes .. '|' .. t .. '|' .. bk)
redis.call('HSET', qm, seq, ARGV[4])
return tonumber(seq)
`

/** PUBREC: the entry with this packet id becomes its PUBREL. KEYS q, qm, qx. ARGV messageId, encoded pubrel. Returns the seq or nil. */
export const PUBREL = ENTRY_HELPERS + `
local qx, qm = KEYS[3], KEYS[2]
local seq = redis.call('HGET', qx, 'm:' .. ARGV[1])
if not seq then return nil end
local _, _, _, _, t, bk = parse(redis.call('HGET', qx, 'e:' .. seq))
redis.call('HSET', qx, 'e:' .. seq, '2|r|' .. ARGV[1] .. '|0|' .. t .. '|' .. bk)
redis.call('HSET', qm, seq, ARGV[2])
return tonumber(seq)
`

/** A PUBREL for a delivery outside the queue. KEYS q, qm, qx. ARGV messageId, encoded pubrel, now. Returns the new seq, 0 if it exists. */
export const ADD_PUBREL = ENTRY_HELPERS + `
local q, qm, qx = KEYS[1], KEYS[2], KEYS[3]
local seq = redis.call('HGET', qx, 'm:' .. ARGV[1])
if seq then
  local _, kind = parse(redis.call('HGET', qx, 'e:' .. seq))
  if kind == 'r' then return 0 end
end
seq = redis.call('HINCRBY', qx, 'n', 1)
redis.call('ZADD', q, seq, seq)
redis.call('HSET', qm, seq, ARGV[2])
redis.call('HSET', qx, 'e:' .. seq, '2|r|' .. ARGV[1] .. '|0|' .. ARGV[3] .. '|')
redis.call('HSET', qx, 'm:' .. ARGV[1], seq)
return seq
`

/**
 * Deletes an entry. KEYS q, qm, qx. ARGV messageId or '', brokerId:counter or '':
 * - PUBACK / PUBCOMP of an id Redis has: messageId only, the entry found by it;
 * - PUBACK of an id held back (lazy-ids.ts): both, the entry found by its counter, with no id in Redis or this one
 *   (written when the message was sent on an earlier connection: its resend holds the same id back again);
 * - a copy never sent: the counter only, deleted only while it has no packet id.
 * Returns { seq, encoded packet } or nil.
 */
export const CLEAR = ENTRY_HELPERS + `
local q, qm, qx = KEYS[1], KEYS[2], KEYS[3]
local seq
if ARGV[2] == '' then seq = redis.call('HGET', qx, 'm:' .. ARGV[1]) else seq = redis.call('HGET', qx, 'c:' .. ARGV[2]) end
if not seq or not queued(q, seq) then return nil end
local e = redis.call('HGET', qx, 'e:' .. seq)
local _, _, mid = parse(e)
if ARGV[2] ~= '' and mid ~= '' and mid ~= ARGV[1] then return nil end
local value = redis.call('HGET', qm, seq)
drop(q, qm, qx, seq, e)
return { tonumber(seq), value }
`

/** The dead letters of these evicted entries are written: they go. KEYS q, qm, qx, qe. ARGV seqs. */
export const FORGET_EVICTED = ENTRY_HELPERS + `
local qm, qx, qe = KEYS[2], KEYS[3], KEYS[4]
for i = 1, #ARGV do
  local seq = ARGV[i]
  if redis.call('HDEL', qe, seq) == 1 then
    local e = redis.call('HGET', qx, 'e:' .. seq)
    redis.call('HDEL', qm, seq)
    redis.call('HDEL', qx, 'e:' .. seq)
    local bk = ''
    if e then bk = select(6, parse(e)) end
    if bk ~= '' and redis.call('HGET', qx, 'c:' .. bk) == seq then redis.call('HDEL', qx, 'c:' .. bk) end
  end
end
return 0
`

/**
 * Evicted entries a crash left without their dead letter go back into the queue as waiting messages (over the
 * limit until the next enqueue evicts again, as with LevelDB). KEYS q, qx, qe. Returns how many.
 */
export const RESTORE_EVICTED = ENTRY_HELPERS + `
local q, qx, qe = KEYS[1], KEYS[2], KEYS[3]
local n = 0
for _, seq in ipairs(redis.call('HKEYS', qe)) do
  local e = redis.call('HGET', qx, 'e:' .. seq)
  if e then
    local _, _, _, bytes = parse(e)
    redis.call('ZADD', q, seq, seq)
    redis.call('HINCRBY', qx, 'w', 1)
    redis.call('HINCRBY', qx, 'wb', tonumber(bytes))
    n = n + 1
  end
end
redis.call('DEL', qe)
return n
`

/** Deletes entries by seq (expired on replay). KEYS q, qm, qx. ARGV seqs. */
export const DROP = ENTRY_HELPERS + `
local q, qm, qx = KEYS[1], KEYS[2], KEYS[3]
for i = 1, #ARGV do
  local e = redis.call('HGET', qx, 'e:' .. ARGV[i])
  if e then drop(q, qm, qx, ARGV[i], e) end
end
return 0
`

/**
 * KEYS q and qx of each (session, message) pair, ARGV brokerId:counter of each. Per pair, the seq and state of the
 * entry that holds that message in that session's queue (not one evicted, awaiting its dead letter), or 0 and ''.
 */
export const ENTRY_OF = ENTRY_HELPERS + `
local out = {}
for i = 1, #ARGV do
  local q, qx = KEYS[i * 2 - 1], KEYS[i * 2]
  local seq = redis.call('HGET', qx, 'c:' .. ARGV[i])
  if seq and queued(q, seq) then
    out[i * 2 - 1] = tonumber(seq)
    out[i * 2] = redis.call('HGET', qx, 'e:' .. seq)
  else
    out[i * 2 - 1] = 0
    out[i * 2] = ''
  end
end
return out
`

/** KEYS sessions. ARGV broker id of a dead run, at. The sessions that run held are disconnected at `at`. */
export const SESSIONS_LEFT = `
local n = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local r = cjson.decode(all[i + 1])
  if r.heldBy == ARGV[1] and r.disconnectedAt == nil then
    r.disconnectedAt = tonumber(ARGV[2])
    redis.call('HSET', KEYS[1], all[i], cjson.encode(r))
    n = n + 1
  end
end
return n
`

/** Removes the will only if `ARGV[1]` (a broker id, or '' for any) stored it. KEYS wills, willOwners. ARGV brokerId, clientId. */
export const DEL_WILL = `
local owner = redis.call('HGET', KEYS[2], ARGV[2])
if not owner then return nil end
if ARGV[1] ~= '' and owner ~= ARGV[1] then return nil end
local value = redis.call('HGET', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return value
`

/** Removes an expired retained message unless it was replaced since it was read. KEYS retained. ARGV topic, value as read. Returns 1 or 0. */
export const EXPIRE_RETAINED = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
`

/** Stores a retained message unless it is a new topic over the limit. KEYS retained. ARGV topic, value, max (0 = none). Returns 1 or 0. */
export const STORE_RETAINED = `
local max = tonumber(ARGV[3])
if max > 0 and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= max then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`

/**
 * A session's client connected ('up') or disconnected. KEYS sessions. ARGV clientId, up|down, at, expiry seconds or
 * empty, the broker id of the run that holds (up) or held (down) the connection, or empty. A 'down' from another run
 * than the one holding the session is ignored: its client connected elsewhere since (a take-over across nodes), or
 * the run is a node starting that does not hold it.
 */
export const SESSION = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local at = tonumber(ARGV[3])
local r
if ARGV[2] == 'up' then
  local created = at
  if raw then created = cjson.decode(raw).createdAt end
  r = { createdAt = created, connectedAt = at }
  if ARGV[5] ~= '' then r.heldBy = ARGV[5] end
else
  if not raw then return 0 end
  r = cjson.decode(raw)
  if r.heldBy and ARGV[5] ~= '' and r.heldBy ~= ARGV[5] then return 0 end
  r.disconnectedAt = at
end
if ARGV[4] ~= '' then r.expirySeconds = tonumber(ARGV[4]) end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(r))
return 1
`
