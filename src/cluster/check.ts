import { Redis } from 'ioredis'
import type { Config } from '../config/schema.js'
import { CulexError } from '../errors.js'
import { assertClusterConfig } from './index.js'

/** The URL as it may be shown: its password replaced. */
export function shownUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return '(not a URL)'
  }
}

/**
 * `culex check-config` in cluster mode: the settings work together and Redis answers PING at cluster.redisUrl
 * within `timeoutMs` (ERR_CLUSTER_REDIS otherwise, with the URL shown without its password).
 */
export async function checkClusterRedis (config: Config['cluster'], timeoutMs = 5000): Promise<void> {
  assertClusterConfig(config)
  const redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, enableOfflineQueue: false })
  let why: string | undefined
  redis.on('error', (err: Error) => { why ??= err.message })
  try {
    await redis.connect()
    await redis.ping()
  } catch (err) {
    throw new CulexError('ERR_CLUSTER_REDIS', `cluster Redis at ${shownUrl(config.redisUrl)} does not answer: ${why ?? (err as Error).message}`)
  } finally {
    redis.disconnect()
  }
}
