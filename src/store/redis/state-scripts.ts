import { SESSION_OVER } from './session-scripts.js'

// The Lua scripts of the session records, wills and retained messages (the queue scripts are in scripts.ts).

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

/**
 * Removes the will only if `ARGV[1]` (a broker id, or '' for any) stored it; a will of that broker that a newer
 * connection of the client set aside (SET_WILL_ASIDE) is removed instead. KEYS wills, willOwners, willsAside. ARGV
 * brokerId, clientId.
 */
export const DEL_WILL = `
local owner = redis.call('HGET', KEYS[2], ARGV[2])
if ARGV[1] ~= '' and owner ~= ARGV[1] then
  local field = ARGV[1] .. ' ' .. ARGV[2]
  local aside = redis.call('HGET', KEYS[3], field)
  if aside then redis.call('HDEL', KEYS[3], field) end
  return aside
end
if not owner then return nil end
local value = redis.call('HGET', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return value
`

/**
 * Moves a client's will to willsAside under "<its broker id> <client id>" if it is still the value read. KEYS wills,
 * willOwners, willsAside. ARGV clientId, value as read, field. Returns 1 or 0.
 */
export const SET_WILL_ASIDE = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
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
 * A session's client connected ('up'), is connecting ('claim') or disconnected ('down'). KEYS sessions. ARGV clientId,
 * up|claim|down, at, expiry seconds or empty, the broker id of the run that holds (up, claim) or held (down) the
 * connection, or empty, and for a claim the broker's `sessions.expiryMs`. A 'down' from another run than the one
 * holding the session is ignored: its client connected elsewhere since (a take-over across nodes), or the run is a
 * node starting that does not hold it. A claim, made before the connection reads the session, marks an existing
 * session connected as 'up' does, unless it is over (returns 2: the caller ends it, the client starts anew) or there
 * is none (0: 'up' makes the record once the client is registered, so that a new session is not reported present);
 * an expiry (END_SESSION) checks the same record in Redis, so of a resume and an expiry on two nodes only one wins.
 */
export const SESSION = SESSION_OVER + `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local at = tonumber(ARGV[3])
local r
if ARGV[2] == 'claim' then
  if not raw then return 0 end
  if over(cjson.decode(raw), tonumber(ARGV[6]), at) then return 2 end
end
if ARGV[2] ~= 'down' then
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
