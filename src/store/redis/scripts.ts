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
 * KEYS: the subscription generation, the queue totals, then per client q, qm, qx, qe. ARGV: brokerId:counter (or
 * ''), now (ms), maxQueuedMessages, maxQueuedBytes (0 = no limit), 'oldest' | 'newest' (overflowPolicy), the
 * subscription generation the clients were matched at (or '' to skip the check), maxTotalQueuedMessages,
 * maxTotalQueuedBytes, then per client: qos, bytes, encoded packet. The session limits count its waiting messages,
 * the broker-wide ones every entry of every queue (queue-limits.ts' admit, the LevelDB store's rule): over either,
 * dropOldest evicts the session's own oldest waiting messages if that makes room (never another session's), else
 * the new one is refused. Returns { per client: the new seq, 0 when the queue already holds the message (a resent
 * command), -1 when the session's limits refused it, -2 the broker-wide ones }, { client index, seq, evicted
 * packet, -1 | -2 (which limit), ... } (dropOldest took those waiting messages out of the queue and the totals; they
 * stay in qe until their dead letter is written: FORGET_EVICTED), stale: 1 when the subscriptions changed since that
 * generation (nothing was written: match again), { entries, bytes } of every queue after the call (empty without
 * broker-wide bounds: not read then).
 */
export const ENQUEUE = ENTRY_HELPERS + `
local bk, now, maxN, maxB, policy, gen = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6]
local maxTN, maxTB, tot = tonumber(ARGV[7]), tonumber(ARGV[8]), KEYS[2]
if gen ~= '' and (redis.call('GET', KEYS[1]) or '0') ~= gen then return { {}, {}, 1, {} } end
-- the totals are read only when bounded; what this call adds and removes is counted here and written once
local bounded = maxTN > 0 or maxTB > 0
local n, b, dn, db = 0, 0, 0, 0
if bounded then
  local t = redis.call('HMGET', tot, 'n', 'b')
  n, b = tonumber(t[1] or '0'), tonumber(t[2] or '0')
end
local out, evicted = {}, {}
local function fits (w, wb, bytes) return (maxN == 0 or w < maxN) and (maxB == 0 or wb + bytes <= maxB) end
local function fitsAll (n, b, bytes) return (maxTN == 0 or n < maxTN) and (maxTB == 0 or b + bytes <= maxTB) end
for i = 0, (#KEYS - 2) / 4 - 1 do
  local q, qm, qx, qe = KEYS[i * 4 + 3], KEYS[i * 4 + 4], KEYS[i * 4 + 5], KEYS[i * 4 + 6]
  local qos, bytes, value = ARGV[i * 3 + 9], tonumber(ARGV[i * 3 + 10]), ARGV[i * 3 + 11]
  if bk ~= '' and redis.call('HEXISTS', qx, 'c:' .. bk) == 1 then
    out[i + 1] = 0
  else
    local waiting = redis.call('HMGET', qx, 'w', 'wb')
    local w, wb, tn, tb = tonumber(waiting[1] or '0'), tonumber(waiting[2] or '0'), n + dn, b + db
    local reason = fits(w, wb, bytes) and -2 or -1
    local admit = reason == -2 and fitsAll(tn, tb, bytes)
    local victims = {}
    local tooBig = (maxB > 0 and bytes > maxB) or (maxTB > 0 and bytes > maxTB)
    if not admit and policy ~= 'newest' and not tooBig then
      -- dropOldest: the oldest waiting messages go (in-flight ones stay until acknowledged), if that makes room
      for _, old in ipairs(redis.call('ZRANGE', q, 0, -1)) do
        local e = redis.call('HGET', qx, 'e:' .. old)
        local _, kind, mid, eb = parse(e)
        if kind == 'p' and mid == '' then
          victims[#victims + 1] = { old, e }
          w, wb, tn, tb = w - 1, wb - tonumber(eb), tn - 1, tb - tonumber(eb)
          if fits(w, wb, bytes) and fitsAll(tn, tb, bytes) then admit = true break end
        end
      end
    end
    if not admit then
      out[i + 1] = reason
    else
      for _, v in ipairs(victims) do
        evicted[#evicted + 1] = i
        evicted[#evicted + 1] = tonumber(v[1])
        evicted[#evicted + 1] = redis.call('HGET', qm, v[1])
        evicted[#evicted + 1] = reason
        -- out of the queue and the totals now; its entry stays, listed in qe, until its dead letter is written
        local _, kind, mid, eb = parse(v[2])
        redis.call('ZREM', q, v[1])
        unwait(qx, kind, mid, eb)
        redis.call('HSET', qe, v[1], 1)
        dn, db = dn - 1, db - tonumber(eb)
      end
      local seq = redis.call('HINCRBY', qx, 'n', 1)
      redis.call('ZADD', q, seq, seq)
      redis.call('HSET', qm, seq, value)
      redis.call('HSET', qx, 'e:' .. seq, qos .. '|p||' .. bytes .. '|' .. now .. '|' .. bk)
      redis.call('HINCRBY', qx, 'w', 1)
      redis.call('HINCRBY', qx, 'wb', bytes)
      dn, db = dn + 1, db + bytes
      if bk ~= '' then redis.call('HSET', qx, 'c:' .. bk, seq) end
      out[i + 1] = seq
    end
  end
end
total(tot, dn, db)
return { out, evicted, 0, bounded and { n + dn, b + db } or {} }
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
 * Deletes an entry. KEYS q, qm, qx, queue totals. ARGV messageId or '', brokerId:counter or '':
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
total(KEYS[4], -1, -drop(q, qm, qx, seq, e))
return { tonumber(seq), value }
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
 * off already) and their bytes off the queue totals. KEYS q, qm, qx, queue totals, qe.
 */
export const PURGE_QUEUE = ENTRY_HELPERS + `
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
