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
// The queue totals hash (keys.ts) counts every entry of every queue, `n`, and their bytes, `b`, for the broker-wide
// bounds: every script that adds or removes an entry, or changes its bytes, changes them in the same call.
export const ENTRY_HELPERS = `
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
-- the queue totals: n entries and b bytes added (negative: removed); one write (a write costs Redis more than a
-- read: it goes to the AOF and the replicas)
local function total (tot, n, b)
  if n == 0 and b == 0 then return end
  local t = redis.call('HMGET', tot, 'n', 'b')
  redis.call('HSET', tot, 'n', tonumber(t[1] or '0') + n, 'b', tonumber(t[2] or '0') + b)
end
-- removes an entry; returns its bytes (the caller takes it off the totals)
local function drop (q, qm, qx, seq, e)
  local _, kind, mid, bytes, _, bk = parse(e)
  redis.call('ZREM', q, seq)
  redis.call('HDEL', qm, seq)
  redis.call('HDEL', qx, 'e:' .. seq)
  unwait(qx, kind, mid, bytes)
  if mid ~= '' and redis.call('HGET', qx, 'm:' .. mid) == tostring(seq) then redis.call('HDEL', qx, 'm:' .. mid) end
  if bk ~= '' and redis.call('HGET', qx, 'c:' .. bk) == tostring(seq) then redis.call('HDEL', qx, 'c:' .. bk) end
  return tonumber(bytes)
end
`

/**
 * A publish was sent with a packet id. KEYS q, qm, qx, queue totals. ARGV brokerId:counter, messageId, qos, encoded packet.
 * Returns the seq; 0 when a PUBREL already replaced it; -1 when the entry (a QoS 0 copy) was deleted; nil if unknown.
 */
export const UPDATE = ENTRY_HELPERS + `
local q, qm, qx = KEYS[1], KEYS[2], KEYS[3]
local seq = redis.call('HGET', qx, 'c:' .. ARGV[1])
if not seq or not queued(q, seq) then return nil end
local e = redis.call('HGET', qx, 'e:' .. seq)
local qos, kind, mid, bytes, t, bk = parse(e)
if kind == 'r' then return 0 end
if qos == '0' then total(KEYS[4], -1, -drop(q, qm, qx, seq, e)) return -1 end
unwait(qx, kind, mid, bytes)
if mid ~= '' and redis.call('HGET', qx, 'm:' .. mid) == seq then redis.call('HDEL', qx, 'm:' .. mid) end
redis.call('HSET', qx, 'm:' .. ARGV[2], seq)
redis.call('HSET', qx, 'e:' .. seq, ARGV[3] .. '|p|' .. ARGV[2] .. '|' .. bytes .. '|' .. t .. '|' .. bk)
redis.call('HSET', qm, seq, ARGV[4])
return tonumber(seq)
`

/** PUBREC: the entry with this packet id becomes its PUBREL. KEYS q, qm, qx, queue totals. ARGV messageId, encoded pubrel. Returns the seq or nil. */
export const PUBREL = ENTRY_HELPERS + `
local qx, qm = KEYS[3], KEYS[2]
local seq = redis.call('HGET', qx, 'm:' .. ARGV[1])
if not seq then return nil end
local _, _, _, bytes, t, bk = parse(redis.call('HGET', qx, 'e:' .. seq))
total(KEYS[4], 0, -tonumber(bytes))
redis.call('HSET', qx, 'e:' .. seq, '2|r|' .. ARGV[1] .. '|0|' .. t .. '|' .. bk)
redis.call('HSET', qm, seq, ARGV[2])
return tonumber(seq)
`

/** A PUBREL for a delivery outside the queue. KEYS q, qm, qx, queue totals. ARGV messageId, encoded pubrel, now. Returns the new seq, 0 if it exists. */
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
total(KEYS[4], 1, 0)
return seq
`

/**
 * The dead letters of these evicted entries are written: they go. KEYS q, qm, qx, qe. ARGV seqs. The totals are not
 * touched: the enqueue that evicted them took them off.
 */
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
 * limit until the next enqueue evicts again, as with LevelDB), and back on the totals. KEYS q, qx, qe, queue totals.
 * Returns how many.
 */
export const RESTORE_EVICTED = ENTRY_HELPERS + `
local q, qx, qe = KEYS[1], KEYS[2], KEYS[3]
local n, b = 0, 0
for _, seq in ipairs(redis.call('HKEYS', qe)) do
  local e = redis.call('HGET', qx, 'e:' .. seq)
  if e then
    local _, _, _, bytes = parse(e)
    redis.call('ZADD', q, seq, seq)
    redis.call('HINCRBY', qx, 'w', 1)
    redis.call('HINCRBY', qx, 'wb', tonumber(bytes))
    n, b = n + 1, b + tonumber(bytes)
  end
end
redis.call('DEL', qe)
total(KEYS[4], n, b)
return n
`

/** Deletes entries by seq (expired on replay), those still queued (not one evicted). KEYS q, qm, qx, queue totals. ARGV seqs. */
export const DROP = ENTRY_HELPERS + `
local q, qm, qx = KEYS[1], KEYS[2], KEYS[3]
for i = 1, #ARGV do
  local e = redis.call('HGET', qx, 'e:' .. ARGV[i])
  if e and queued(q, ARGV[i]) then total(KEYS[4], -1, -drop(q, qm, qx, ARGV[i], e)) end
end
return 0
`

/**
 * Deletes a session's queue, its evicted entries with it, and takes the entries still queued (the evicted ones are
 * off already) and their bytes off the queue totals. KEYS q, qm, qx, queue totals, qe. A part of END_SESSION
 * (session-scripts.ts), after ENTRY_HELPERS.
 */
export const PURGE_QUEUE_BODY = `
local n, b = 0, 0
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'e:' and queued(KEYS[1], string.sub(all[i], 3)) then
    local _, _, _, bytes = parse(all[i + 1])
    n = n + 1
    b = b + tonumber(bytes)
  end
end
total(KEYS[4], -n, -b)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
return n
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
