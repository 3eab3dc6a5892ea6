import type { Redis } from 'ioredis'
import { clusterKeys } from '../cluster/keys.js'
import { connectRedis, redisLocation, type RedisStoreConnect } from '../store/index.js'
import { readRedisCa } from '../store/redis/connect-options.js'
import { quietLogger } from './data-dir.js'

/** How long a command waits for the cluster's Redis to answer before ERR_CLUSTER_REDIS. */
const COMMAND_TIMEOUT_MS = 10_000

/**
 * The cluster's Redis a command works on: `--redis-url` (its default $CULEX_CLUSTER_REDIS_URL), key prefix
 * $CULEX_CLUSTER_REDIS_KEY_PREFIX or culex:, CA $CULEX_CLUSTER_REDIS_TLS_CA_FILE, or the cluster settings of a
 * loaded configuration.
 */
export function redisTarget (url: string, settings: { sentinels?: string[], sentinelName?: string, prefix?: string, tlsCa?: Buffer } = {}): RedisStoreConnect {
  const caFile = process.env.CULEX_CLUSTER_REDIS_TLS_CA_FILE ?? ''
  return {
    url,
    prefix: settings.prefix ?? process.env.CULEX_CLUSTER_REDIS_KEY_PREFIX ?? 'culex:',
    ...(caFile === '' ? {} : { tlsCa: readRedisCa(caFile, 'CULEX_CLUSTER_REDIS_TLS_CA_FILE') }),
    ...settings,
    connectTimeoutMs: COMMAND_TIMEOUT_MS
  }
}

/** Connects (ERR_CLUSTER_REDIS when Redis does not answer within 10 s). */
export async function connectTarget (target: RedisStoreConnect): Promise<{ redis: Redis, prefix: string, location: string }> {
  const redis = await connectRedis(target, quietLogger(), target.connectTimeoutMs)
  return { redis, prefix: target.prefix ?? 'culex:', location: redisLocation(target) }
}

/** Nodes of the cluster registered and alive now (their heartbeat key has not expired). */
export async function liveNodes (redis: Redis, prefix: string): Promise<string[]> {
  const keys = clusterKeys(prefix)
  const ids = await redis.hkeys(keys.nodes)
  const alive = await Promise.all(ids.map(async id => await redis.exists(keys.alive(id)) === 1))
  return ids.filter((_id, i) => alive[i])
}

/** The node whose live run is `brokerId` (its heartbeat key holds that run's broker id); undefined when none is. */
export async function nodeOfLiveRun (redis: Redis, prefix: string, brokerId: string): Promise<string | undefined> {
  const keys = clusterKeys(prefix)
  const ids = await redis.hkeys(keys.nodes)
  if (ids.length === 0) return undefined
  const runs = await redis.mget(ids.map(id => keys.alive(id)))
  const i = runs.indexOf(brokerId)
  return i < 0 ? undefined : ids[i]
}
