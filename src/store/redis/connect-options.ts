import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { CulexError } from '../../errors.js'

/** The connection settings of a configuration's cluster section; undefined when cluster mode is off. */
export function redisConnectOptions (cluster: {
  redisUrl: string, redisSentinels: string, redisSentinelName: string, redisTlsCaFile: string, redisKeyPrefix: string, redisWaitReplicas: number, redisWaitTimeoutMs: number
}): { url: string, sentinels?: string[], sentinelName: string, tlsCa?: Buffer, prefix: string, waitReplicas: number, waitTimeoutMs: number } | undefined {
  if (cluster.redisUrl === '') return undefined
  const sentinels = cluster.redisSentinels === '' ? undefined : cluster.redisSentinels.split(',')
  return {
    url: cluster.redisUrl,
    ...(sentinels === undefined ? {} : { sentinels }),
    sentinelName: cluster.redisSentinelName,
    ...(cluster.redisTlsCaFile === '' ? {} : { tlsCa: readRedisCa(cluster.redisTlsCaFile, 'cluster.redisTlsCaFile') }),
    prefix: cluster.redisKeyPrefix,
    waitReplicas: cluster.redisWaitReplicas,
    waitTimeoutMs: cluster.redisWaitTimeoutMs
  }
}

/**
 * Reads the CA certificates a rediss:// connection trusts, once at start (ioredis needs them for every reconnect),
 * and proves they load: ERR_TLS_FILES naming the setting and the file if not, instead of a TLS error at each retry.
 */
export function readRedisCa (file: string, setting: string): Buffer {
  let ca: Buffer
  try {
    ca = readFileSync(file)
  } catch (err) {
    throw new CulexError('ERR_TLS_FILES', `${setting}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
  }
  // createSecureContext takes a file without any certificate in it silently: look for one first
  if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new CulexError('ERR_TLS_FILES', `${setting}: ${file} holds no PEM certificate`)
  try {
    createSecureContext({ ca })
  } catch (err) {
    throw new CulexError('ERR_TLS_FILES', `${setting}: ${file} is not a PEM certificate: ${(err as Error).message}`, { cause: err })
  }
  return ca
}
