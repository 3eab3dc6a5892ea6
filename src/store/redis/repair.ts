import type { Redis } from 'ioredis'
import { CulexError } from '../../errors.js'
import type { StoreCheck } from '../check.js'
import { ASIDE } from './check-read.js'
import { inspectRedisStore, type RedisFixes } from './inspect.js'
import { RedisKeys } from './keys.js'
import { exec } from './subscriptions.js'

export interface RedisRepair {
  /** What the check found before the repair. */
  before: StoreCheck
  /** The check after it. */
  after: StoreCheck
  /** The hash that holds what the repair removed, if it removed anything. */
  setAside?: string
  /** Queue entries that could not be kept (no readable message), set aside. */
  lostMessages: number
}

const CHUNK = 1000

function stamp (now: number): string {
  return new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.(\d+)Z$/, '$1Z')
}

function chunks<T> (items: T[]): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK))
  return out
}

/**
 * One transaction per queue: its order and index written again (its evicted entries back in it, as a start puts
 * them back), the messages it cannot keep set aside.
 */
async function rewriteQueues (redis: Redis, keys: RedisKeys, fixes: RedisFixes, aside: string): Promise<number> {
  let lost = 0
  for (const { clientId, rebuild } of fixes.queues) {
    const [q, qm, qx, qe] = [keys.queue(clientId), keys.queueMessages(clientId), keys.queueIndex(clientId), keys.queueEvicted(clientId)]
    const tx = redis.multi()
    for (const entry of rebuild.lost) {
      if (entry.body !== undefined) tx.hset(aside, `${qm} ${entry.seq}`, entry.body)
      if (entry.state !== undefined) tx.hset(aside, `${qx} e:${entry.seq}`, entry.state)
      tx.hdel(qm, entry.seq)
      lost++
    }
    tx.del(q, qx, qe)
    for (const part of chunks(rebuild.order)) tx.zadd(q, ...part.flatMap(seq => [seq, String(seq)]))
    for (const part of chunks(Object.entries(rebuild.index))) tx.hset(qx, ...part.flat())
    await exec(tx)
  }
  return lost
}

/** Makes the changes a check found; returns how many queued messages had to be set aside. */
async function apply (redis: Redis, keys: RedisKeys, fixes: RedisFixes, aside: string, readable: number, now: number): Promise<number> {
  for (const key of fixes.renames) await redis.rename(key, `${aside}:${key.slice(keys.prefix.length)}`)
  for (const part of chunks(fixes.aside)) {
    const tx = redis.multi()
    for (const { key, field, value } of part) tx.hset(aside, `${key} ${field}`, value).hdel(key, field)
    await exec(tx)
  }
  const lostMessages = await rewriteQueues(redis, keys, fixes, aside)
  const record = JSON.stringify({ createdAt: now, connectedAt: now, disconnectedAt: now })
  for (const clientId of fixes.sessions) await redis.hsetnx(keys.sessions, clientId, record)
  for (const [clientId, brokerId] of fixes.willOwners.set) await redis.hsetnx(keys.willOwners, clientId, brokerId)
  if (fixes.willOwners.del.length > 0) await redis.hdel(keys.willOwners, ...fixes.willOwners.del)
  if (fixes.format) await redis.set(keys.format, JSON.stringify({ formatVersion: readable, createdAt: now, repairedAt: now }), 'NX')
  if (fixes.subsGen !== undefined) await redis.set(keys.subsGen, fixes.subsGen)
  if (fixes.totals !== undefined) await redis.hset(keys.queueTotals, 'n', fixes.totals.entries, 'b', fixes.totals.bytes)
  return lostMessages
}

/**
 * Checks the store under `prefix`, then makes it consistent again: each damaged queue is rebuilt from the messages
 * it still holds (an entry's state is derived from its message when it is missing; lookups and counts are
 * recomputed), what cannot be read is moved to the hash `<prefix>repaired:<time>` (never silently deleted; a key
 * of the wrong type is renamed to `<prefix>repaired:<time>:<name>`), a
 * session left without its record gets one (disconnected now, so that it expires), wills and their owners are
 * paired again, the queue totals are counted again, and a missing layout version record is written. Run it with every node stopped: a node keeps
 * mirrors of the queues of its clients in memory (the CLI refuses while nodes are registered alive).
 */
export async function repairRedisStore (redis: Redis, prefix: string, readable: number, now = Date.now()): Promise<RedisRepair> {
  const keys = new RedisKeys(prefix)
  const { check: before, fixes, newer } = await inspectRedisStore(redis, prefix, readable)
  if (newer) throw new CulexError('ERR_STORE_VERSION', `Redis holds culex data of layout version ${String(before.formatVersion)}; this culex reads version ${readable}: repair it with that version`)
  const aside = `${prefix}${ASIDE}${stamp(now)}`
  let lostMessages = await apply(redis, keys, fixes, aside, readable, now)
  // what was under a key renamed aside was not checked: once more, on the keys as they are now
  if (fixes.renames.length > 0) lostMessages += await apply(redis, keys, (await inspectRedisStore(redis, prefix, readable)).fixes, aside, readable, now)
  const { check: after } = await inspectRedisStore(redis, prefix, readable)
  const result: RedisRepair = { before, after, lostMessages }
  if (await redis.exists(aside) === 1 || fixes.renames.length > 0) result.setAside = aside
  return result
}
