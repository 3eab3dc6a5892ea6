/** The connection settings of a configuration's cluster section; undefined when cluster mode is off. */
export function redisConnectOptions (cluster: {
  redisUrl: string, redisSentinels: string, redisSentinelName: string, redisKeyPrefix: string, redisWaitReplicas: number, redisWaitTimeoutMs: number
}): { url: string, sentinels?: string[], sentinelName: string, prefix: string, waitReplicas: number, waitTimeoutMs: number } | undefined {
  if (cluster.redisUrl === '') return undefined
  const sentinels = cluster.redisSentinels === '' ? undefined : cluster.redisSentinels.split(',')
  return {
    url: cluster.redisUrl,
    ...(sentinels === undefined ? {} : { sentinels }),
    sentinelName: cluster.redisSentinelName,
    prefix: cluster.redisKeyPrefix,
    waitReplicas: cluster.redisWaitReplicas,
    waitTimeoutMs: cluster.redisWaitTimeoutMs
  }
}
