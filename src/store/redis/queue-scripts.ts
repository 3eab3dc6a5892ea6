import { ENTRY_HELPERS } from './scripts.js'

// The two scripts every persistent QoS 1/2 message runs (its enqueue, its acknowledgement's delete), each taking
// what one turn of the event loop gathered (script-batch.ts): Redis pays its per-call cost, and the node ioredis'
// per-command cost, once per batch. Inside, what a call changes in a queue (its sorted set, packets and index
// fields: scripts.ts' ENTRY_HELPERS layout) is written once per queue and call, the queue totals once per call.

/**
 * KEYS: the subscription generation, the queue totals, then per message its publisher's inbound QoS 2 hash if it
 * carries a record, and per client of the message q, qm, qx, qe. ARGV: maxQueuedMessages, maxQueuedBytes (0 = no
 * limit), 'oldest' | 'newest' (overflowPolicy), maxTotalQueuedMessages, maxTotalQueuedBytes, the prefix of the
 * cluster's node liveness keys (or '': no holders), then per message: brokerId:counter (or ''), now (ms), the
 * subscription generation its clients were matched at (or '' to skip the check), how many clients, the record's
 * packet id and encoding (or '' and ''), how many stream entries it carries, '1' when its copies are for offline
 * sessions only (sessions.queueQos0's) or '', then per entry its MAXLEN, kind and value (its stream a key after the
 * record's), then per client: qos, bytes, encoded packet. A message's record is written
 * with its entries, or not at all (a stale message: sent again, with it).
 *
 * The messages are applied in order; the first whose generation is stale (another node changed the subscriptions
 * since: match again), and every one after it, is not written, so that a session's messages keep their order when
 * they are sent again. The session limits count its waiting messages, the broker-wide ones every entry of every
 * queue (queue-limits.ts' admit, the LevelDB store's rule): over either, dropOldest evicts the session's own oldest
 * waiting messages if that makes room (never another session's), else the new one is refused.
 *
 * Returns { per message written: { per client: the new seq, 0 when the queue already holds the message (a resent
 * command), -1 when the session's limits refused it, -2 the broker-wide ones, -3 a copy for offline sessions only not
 * queued because the session is held by a live node (its client is connected there, and that node delivers the
 * message live) } }, { per message written: { client
 * index, seq, evicted packet, -1 | -2 (which limit), ... } } (dropOldest took those waiting messages out of the
 * queue and the totals; they stay in qe until their dead letter is written: FORGET_EVICTED), { entries, bytes } of
 * every queue after the call (empty without broker-wide bounds: not read then), { per message written: the node ids
 * holding a session it was queued for (qx's `h`, claimed by that node's replay: outbox.ts), each only while that
 * node's run (`hb`) is the one alive (its liveness key) }. Fewer messages written than sent: the next one was stale.
 */
export const ENQUEUE_BATCH = ENTRY_HELPERS + `
local maxN, maxB, policy, maxTN, maxTB, alive = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local tot = KEYS[2]
-- the totals are read only when bounded; what this call adds and removes is counted here and written once
local bounded = maxTN > 0 or maxTB > 0
local n, b, dn, db = 0, 0, 0, 0
if bounded then
  local t = redis.call('HMGET', tot, 'n', 'b')
  n, b = tonumber(t[1] or '0'), tonumber(t[2] or '0')
end
local function fits (w, wb, bytes) return (maxN == 0 or w < maxN) and (maxB == 0 or wb + bytes <= maxB) end
local function fitsAll (n, b, bytes) return (maxTN == 0 or n < maxTN) and (maxTB == 0 or b + bytes <= maxTB) end
-- per queue: its counters as this call has them and the entries it added, written once per queue and call (and
-- before a dropOldest scan of that queue)
local states, touched = {}, {}
local function flush (st)
  if #st.z == 0 then return end
  redis.call('ZADD', st.q, unpack(st.z))
  redis.call('HSET', st.qm, unpack(st.m))
  st.x[#st.x + 1] = 'n'
  st.x[#st.x + 1] = st.n
  st.x[#st.x + 1] = 'w'
  st.x[#st.x + 1] = st.w
  st.x[#st.x + 1] = 'wb'
  st.x[#st.x + 1] = st.wb
  redis.call('HSET', st.qx, unpack(st.x))
  st.z, st.m, st.x = {}, {}, {}
end
-- a holder is named only while its run is the live one of its node (read once per node and call)
local runs = {}
local function live (st)
  if alive == '' or not st.h or not st.hb then return false end
  local run = runs[st.h]
  if run == nil then
    run = redis.call('GET', alive .. st.h) or false
    runs[st.h] = run
  end
  return run == st.hb
end
local current
local written, evictedAll, holdersAll = {}, {}, {}
local a, k = 7, 3
while a <= #ARGV do
  local bk, now, gen, count, rf, rv, na, offline = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), ARGV[a + 4], ARGV[a + 5], tonumber(ARGV[a + 6]), ARGV[a + 7] == '1'
  a = a + 8
  if gen ~= '' then
    current = current or (redis.call('GET', KEYS[1]) or '0')
    if current ~= gen then break end
  end
  -- the publisher's inbound QoS 2 record, in the same script as the message's entries
  if rf ~= '' then
    redis.call('HSET', KEYS[k], rf, rv)
    k = k + 1
  end
  -- and its entries for the other nodes' streams (a node's stream that is gone is not made again)
  for j = 1, na do
    redis.call('XADD', KEYS[k], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[a], '*', ARGV[a + 1], ARGV[a + 2])
    k = k + 1
    a = a + 3
  end
  local out, evicted, holders, named = {}, {}, {}, {}
  for i = 0, count - 1 do
    local q, qm, qx, qe = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
    local qos, bytes, value = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
    k, a = k + 4, a + 3
    local st = states[qx]
    local held
    if st then
      held = bk ~= '' and (st.c[bk] or redis.call('HEXISTS', qx, 'c:' .. bk) == 1)
    else
      local x = redis.call('HMGET', qx, 'w', 'wb', 'n', 'c:' .. bk, 'h', 'hb')
      st = { q = q, qm = qm, qx = qx, w = tonumber(x[1] or '0'), wb = tonumber(x[2] or '0'), n = tonumber(x[3] or '0'), z = {}, m = {}, x = {}, c = {}, h = x[5], hb = x[6] }
      states[qx] = st
      touched[#touched + 1] = st
      held = bk ~= '' and x[4]
    end
    if held then
      out[i + 1] = 0
    elseif offline and live(st) then
      out[i + 1] = -3
    else
      local w, wb, tn, tb = st.w, st.wb, n + dn, b + db
      local reason = fits(w, wb, bytes) and -2 or -1
      local admit = reason == -2 and fitsAll(tn, tb, bytes)
      local victims = {}
      local tooBig = (maxB > 0 and bytes > maxB) or (maxTB > 0 and bytes > maxTB)
      if not admit and policy ~= 'newest' and not tooBig then
        -- dropOldest: the oldest waiting messages go (in-flight ones stay until acknowledged), if that makes room;
        -- those this call added are among them, so they are written first
        flush(st)
        for _, old in ipairs(redis.call('ZRANGE', q, 0, -1)) do
          local _, kind, mid, eb = parse(redis.call('HGET', qx, 'e:' .. old))
          if kind == 'p' and mid == '' then
            victims[#victims + 1] = { old, tonumber(eb) }
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
          -- out of the queue and the totals now (w and wb above); its entry stays, listed in qe, until its dead
          -- letter is written
          redis.call('ZREM', q, v[1])
          redis.call('HSET', qe, v[1], 1)
          dn, db = dn - 1, db - v[2]
        end
        local seq = st.n + 1
        st.n, st.w, st.wb = seq, w + 1, wb + bytes
        st.z[#st.z + 1] = seq
        st.z[#st.z + 1] = seq
        st.m[#st.m + 1] = seq
        st.m[#st.m + 1] = value
        st.x[#st.x + 1] = 'e:' .. seq
        st.x[#st.x + 1] = qos .. '|p||' .. bytes .. '|' .. now .. '|' .. bk
        if bk ~= '' then
          st.x[#st.x + 1] = 'c:' .. bk
          st.x[#st.x + 1] = seq
          st.c[bk] = true
        end
        dn, db = dn + 1, db + bytes
        out[i + 1] = seq
      end
    end
    if out[i + 1] >= 0 and not named[st.h or ''] and live(st) then
      named[st.h] = true
      holders[#holders + 1] = st.h
    end
  end
  written[#written + 1] = out
  evictedAll[#evictedAll + 1] = evicted
  holdersAll[#holdersAll + 1] = holders
end
for _, st in ipairs(touched) do flush(st) end
total(tot, dn, db)
return { written, evictedAll, bounded and { n + dn, b + db } or {}, holdersAll }
`

/**
 * Deletes entries. KEYS: the queue totals, then per entry q, qm, qx. ARGV per entry: messageId or '',
 * brokerId:counter or '', '1' to return the encoded packet (or ''):
 * - PUBACK / PUBCOMP of an id Redis has: messageId only, the entry found by it;
 * - PUBACK of an id held back (lazy-ids.ts): both, the entry found by its counter, with no id in Redis or this one
 *   (written when the message was sent on an earlier connection: its resend holds the same id back again);
 * - a copy never sent: the counter only, deleted only while it has no packet id.
 * Returns per entry: its seq and encoded packet ('' when not asked for), or 0 and '' when it is not queued.
 */
export const CLEAR_BATCH = ENTRY_HELPERS + `
local out = {}
local dn, db = 0, 0
-- per queue index: the fields to delete and the waiting count and bytes to take off, written once per call (an
-- entry deleted is out of q at once: a second delete of it in the same call finds nothing)
local queues, order = {}, {}
for i = 0, #ARGV / 3 - 1 do
  local q, qm, qx = KEYS[i * 3 + 2], KEYS[i * 3 + 3], KEYS[i * 3 + 4]
  local byMid, byCounter, want = ARGV[i * 3 + 1], ARGV[i * 3 + 2], ARGV[i * 3 + 3]
  local seq
  if byCounter == '' then seq = redis.call('HGET', qx, 'm:' .. byMid) else seq = redis.call('HGET', qx, 'c:' .. byCounter) end
  local found, value = 0, ''
  local e = seq and redis.call('HGET', qx, 'e:' .. seq)
  if e then
    local _, kind, mid, bytes, _, bk = parse(e)
    -- (an entry sent with another id than the one acknowledged is not this acknowledgement's; one evicted, awaiting
    -- its dead letter, is out of q already)
    if not (byCounter ~= '' and mid ~= '' and mid ~= byMid) and redis.call('ZREM', q, seq) == 1 then
      if want == '1' then value = redis.call('HGET', qm, seq) end
      local d = queues[qx]
      if not d then
        d = { qm = qm, seqs = {}, fields = {}, w = 0, wb = 0 }
        queues[qx] = d
        order[#order + 1] = qx
      end
      d.seqs[#d.seqs + 1] = seq
      d.fields[#d.fields + 1] = 'e:' .. seq
      -- the index the entry was found by points at it; the other one only if it still does
      if mid ~= '' and ((byCounter == '' and mid == byMid) or redis.call('HGET', qx, 'm:' .. mid) == seq) then d.fields[#d.fields + 1] = 'm:' .. mid end
      if bk ~= '' and ((byCounter ~= '' and bk == byCounter) or redis.call('HGET', qx, 'c:' .. bk) == seq) then d.fields[#d.fields + 1] = 'c:' .. bk end
      if kind == 'p' and mid == '' then d.w, d.wb = d.w + 1, d.wb + tonumber(bytes) end
      dn, db = dn - 1, db - tonumber(bytes)
      found = tonumber(seq)
    end
  end
  out[#out + 1] = found
  out[#out + 1] = value
end
for _, qx in ipairs(order) do
  local d = queues[qx]
  redis.call('HDEL', d.qm, unpack(d.seqs))
  redis.call('HDEL', qx, unpack(d.fields))
  if d.w > 0 then
    redis.call('HINCRBY', qx, 'w', -d.w)
    redis.call('HINCRBY', qx, 'wb', -d.wb)
  end
end
total(KEYS[1], dn, db)
return out
`
