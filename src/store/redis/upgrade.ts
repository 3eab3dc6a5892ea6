import type { Redis } from 'ioredis'
import type { RedisKeys } from './keys.js'
import { scanKeys } from './scan.js'

/**
 * Entries and payload bytes of one queue, from the entry states of its index (scripts.ts), but those evicted
 * (`evicted`, the fields of its qe hash): they are off the totals until a start puts them back (RESTORE_EVICTED).
 */
function queueSize (index: Record<string, string>, evicted: string[]): { entries: number, bytes: number } {
  const out = new Set(evicted)
  let entries = 0
  let bytes = 0
  for (const [field, state] of Object.entries(index)) {
    if (!field.startsWith('e:') || out.has(field.slice(2))) continue
    entries++
    bytes += Number(state.split('|')[3] ?? 0)
  }
  return { entries, bytes }
}

/**
 * Layout 1 → 2: counts every queue into `queue-totals` and writes the new version, in one transaction that fails if
 * another node upgraded meanwhile (then its version is read back). A node of the older version still running
 * writes without counting until it stops: `culex store check` shows the difference, `repair` sets it right.
 */
export async function upgradeFrom1 (redis: Redis, keys: RedisKeys, version: number): Promise<{ formatVersion?: number }> {
  await redis.watch(keys.format)
  let entries = 0
  let bytes = 0
  const { match, clientId } = keys.perClient('qx')
  for await (const found of scanKeys(redis, match)) {
    for (const key of found) {
      const size = queueSize(await redis.hgetall(key), await redis.hkeys(keys.queueEvicted(clientId(key))))
      entries += size.entries
      bytes += size.bytes
    }
  }
  const now = Date.now()
  await redis.multi()
    .hset(keys.queueTotals, 'n', entries, 'b', bytes)
    .set(keys.format, JSON.stringify({ formatVersion: version, upgradedFrom: 1, upgradedAt: now }))
    .exec()
  return JSON.parse(await redis.get(keys.format) ?? '{}') as { formatVersion?: number }
}
