import { randomUUID } from 'node:crypto'
import { CulexError } from '../../errors.js'
import type { StoreOptions } from '../types.js'
import { connectRedis, redisLocation, type RedisConnectionOptions } from './connection.js'
import { RedisKeys } from './keys.js'
import { RedisStore } from './redis-store.js'
import { upgradeFrom1 } from './upgrade.js'

/**
 * The layout version of the Redis keys (docs/store.md, "Redis"). 1: the first. 2: `queue-totals` counts every
 * queue's entries and bytes (the broker-wide bounds); a version 1 store is upgraded in place at open (upgrade.ts).
 */
export const REDIS_FORMAT_VERSION = 2

export interface RedisStoreConnect extends RedisConnectionOptions {
  /** Prefix of every key (several clusters can share one Redis with different prefixes). */
  prefix?: string
  /** How long to wait for Redis to answer (ERR_CLUSTER_REDIS after it); undefined: however long it takes (a broker starting). */
  connectTimeoutMs?: number
  /** Replicas a publish's writes must reach (Redis WAIT) before it is acknowledged, and how long to wait for them. */
  waitReplicas?: number
  waitTimeoutMs?: number
}

export type OpenRedisOptions = Omit<StoreOptions, 'dir' | 'sync' | 'onCorrupt'> & { redis: RedisStoreConnect }

/**
 * Connects, checks the layout version Redis holds (writing it on first use) and loads what the store keeps in
 * memory. Throws ERR_CLUSTER_REDIS when Redis does not answer within connectTimeoutMs, ERR_STORE_VERSION for a newer
 * layout.
 */
export async function openRedisStore (opts: OpenRedisOptions): Promise<RedisStore> {
  const location = redisLocation(opts.redis)
  const redis = await connectRedis(opts.redis, opts.logger, opts.redis.connectTimeoutMs)
  try {
    const keys = new RedisKeys(opts.redis.prefix ?? 'culex:')
    await redis.set(keys.format, JSON.stringify({ formatVersion: REDIS_FORMAT_VERSION, createdAt: Date.now() }), 'NX')
    let format = JSON.parse(await redis.get(keys.format) ?? '{}') as { formatVersion?: number }
    if (format.formatVersion === 1) format = await upgradeFrom1(redis, keys, REDIS_FORMAT_VERSION)
    if (format.formatVersion !== REDIS_FORMAT_VERSION) {
      throw new CulexError('ERR_STORE_VERSION', `Redis at ${location} holds culex data of format version ${String(format.formatVersion)}; this culex reads version ${REDIS_FORMAT_VERSION}`)
    }
    const { redis: _connect, ...storeOpts } = opts
    const replicas = { replicas: opts.redis.waitReplicas ?? 0, timeoutMs: opts.redis.waitTimeoutMs ?? 0 }
    const store = new RedisStore(redis, { ...storeOpts, prefix: keys.prefix, node: randomUUID(), location, replicas })
    await store.load()
    return store
  } catch (err) {
    redis.disconnect()
    throw err
  }
}
