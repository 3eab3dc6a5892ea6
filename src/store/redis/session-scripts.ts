import { ENTRY_HELPERS, PURGE_QUEUE_BODY } from './scripts.js'
import { DROP_ALL } from './subscriptions.js'

/**
 * `over(record, maxMs, now)`: whether a session's client has been gone longer than its expiry at `now`, as
 * SessionRecords.expired counts it (session-records.ts: its own interval, 0xFFFFFFFF = never, capped by `maxMs`, 0 =
 * no cap; expired at once for 0, else a millisecond after). Decided in Redis where a connect's claim and an expiry
 * must not both win.
 */
export const SESSION_OVER = `
local function over (r, maxMs, now)
  if r.disconnectedAt == nil then return false end
  local ms
  if r.expirySeconds ~= nil and r.expirySeconds ~= 4294967295 then ms = r.expirySeconds * 1000 end
  if maxMs > 0 then
    if ms == nil or maxMs < ms then ms = maxMs end
  end
  if ms == nil then return false end
  if ms == 0 then return now >= r.disconnectedAt end
  return now >= r.disconnectedAt + ms + 1
end
`

/**
 * Ends a session in one step: its queue (with its evicted entries, off the totals), its inbound QoS 2 records when
 * asked, its record and its subscriptions (the change logged). With a `maxMs` (an expiry), only if the record still
 * says the session is over at `now`: a client that resumed it meanwhile, on any node, marked it connected first
 * (SESSION's claim), and keeps it. KEYS sessions, q, qm, qx, queue totals, qe, in, subs, subsGen, subsLog. ARGV
 * clientId, maxMs or empty (unconditional), now, '1' to drop the inbound records, then DROP_ALL's (clientId, node,
 * log length). Returns DROP_ALL's { generation, log id } (`{ 0, '' }`: no subscriptions), or nil when the session was
 * not over.
 */
export const END_SESSION = ENTRY_HELPERS + SESSION_OVER + `
local function purgeQueue (KEYS)
` + PURGE_QUEUE_BODY + `
end
local function dropAll (KEYS, ARGV)
` + DROP_ALL + `
end
local sessions, client = KEYS[1], ARGV[1]
if ARGV[2] ~= '' then
  local raw = redis.call('HGET', sessions, client)
  if not raw or not over(cjson.decode(raw), tonumber(ARGV[2]), tonumber(ARGV[3])) then return nil end
end
purgeQueue({ KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6] })
if ARGV[4] == '1' then redis.call('DEL', KEYS[7]) end
redis.call('HDEL', sessions, client)
return dropAll({ KEYS[8], KEYS[9], KEYS[10] }, { ARGV[5], ARGV[6], ARGV[7] })
`
