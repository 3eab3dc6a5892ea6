import type { Redis } from 'ioredis'
import type { ClusterKeys } from './keys.js'

/** Takes the lease of a free group and registers the group; 1 if this node owns it now. */
const CLAIM = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[4]) == 1 then redis.call('PUBLISH', KEYS[3], '+' .. ARGV[3] .. '\\n' .. ARGV[4]) end
return 1
`
/** Renews the leases still this node's; returns the (1-based) positions of those another node holds now. */
const RENEW = `
local lost = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('PEXPIRE', KEYS[i], ARGV[2]) else table.insert(lost, i) end
end
return lost
`
/**
 * The owner's last member left: the lease goes, and the group too unless messages wait in its inbox (a node takes
 * it over to give them up as no-members, as one node does).
 */
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('XLEN', KEYS[4]) > 0 then return 1 end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[4])
redis.call('PUBLISH', KEYS[3], '-' .. ARGV[2])
return 1
`
/** A node that stops gives its groups up: the others take them over at their next heartbeat. */
const RESIGN = `
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 1
`
const REGISTER = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then redis.call('PUBLISH', KEYS[2], '+' .. ARGV[1] .. '\\n' .. ARGV[2]) end
return 1
`

type Script = (...args: Array<string | number>) => Promise<unknown>

/**
 * The leases that make one node the owner of each shared group (docs/cluster.md, "Shared subscriptions across
 * nodes"), and the registry of the cluster's groups. A lease holds "<node id>\n<broker id>" (this run of the node)
 * and lapses after cluster.nodeTimeoutMs unless its owner's heartbeat renews it.
 */
export function createShareOwners (redis: Redis, keys: ClusterKeys, self: string, leaseMs: number) {
  for (const [name, lua, numberOfKeys] of [['culexShareClaim', CLAIM, 3], ['culexShareRelease', RELEASE, 4], ['culexShareRegister', REGISTER, 2]] as const) {
    redis.defineCommand(name, { numberOfKeys, lua })
  }
  redis.defineCommand('culexShareRenew', { lua: RENEW })
  redis.defineCommand('culexShareResign', { lua: RESIGN })
  const r = redis as Redis & Record<'culexShareClaim' | 'culexShareRelease' | 'culexShareRegister' | 'culexShareRenew' | 'culexShareResign', Script>
  const nodeOf = (holder: string | null): string | undefined => holder === null ? undefined : holder.split('\n')[0]
  return {
    /** Known to every node from now on: messages published anywhere go to its inbox. */
    register: async (key: string, filter: string): Promise<void> => {
      await r.culexShareRegister(keys.shares, keys.shareChanges, key, filter)
    },
    claim: async (key: string, filter: string): Promise<boolean> =>
      await r.culexShareClaim(keys.shareOwner(key), keys.shares, keys.shareChanges, self, leaseMs, key, filter) === 1,
    /** The keys among `owned` whose lease another node holds now (this node was cut off longer than the lease). */
    renew: async (owned: string[]): Promise<string[]> => {
      if (owned.length === 0) return []
      const lost = await r.culexShareRenew(owned.length, ...owned.map(k => keys.shareOwner(k)), self, leaseMs) as number[]
      return lost.map(i => owned[i - 1])
    },
    resign: async (owned: string[]): Promise<void> => {
      if (owned.length > 0) await r.culexShareResign(owned.length, ...owned.map(k => keys.shareOwner(k)), self)
    },
    release: async (key: string): Promise<void> => {
      await r.culexShareRelease(keys.shareOwner(key), keys.shares, keys.shareChanges, keys.shareInbox(key), self, key)
    },
    /** The groups among these whose lease this run holds. */
    held: async (groups: string[]): Promise<Set<string>> => {
      if (groups.length === 0) return new Set()
      const holders = await redis.mget(groups.map(k => keys.shareOwner(k)))
      return new Set(groups.filter((_, i) => holders[i] === self))
    },
    /** The node owning each group now (undefined: none). */
    owners: async (groups: string[]): Promise<Array<string | undefined>> =>
      groups.length === 0 ? [] : (await redis.mget(groups.map(k => keys.shareOwner(k)))).map(nodeOf),
    all: async (): Promise<Record<string, string>> => await redis.hgetall(keys.shares)
  }
}

export type ShareOwners = ReturnType<typeof createShareOwners>
