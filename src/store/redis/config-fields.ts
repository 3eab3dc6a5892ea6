import { str } from '../../config/fields.js'

/** The `cluster` section: where a node finds the Redis that holds the cluster's state (docs/cluster.md). */
export function clusterSection () {
  return {
    redisUrl: str('', 'Cluster mode: the Redis that holds every session, queue, retained message and will, as redis://[user:password@]host:port[/db] or rediss:// for TLS. Empty: one node on the embedded LevelDB store in dataDir.', {
      pattern: /^(rediss?:\/\/\S+)?$/, patternDoc: 'empty, or a redis:// or rediss:// URL'
    }),
    redisSentinels: str('', 'Redis Sentinels to ask for the current master, as host:port,host:port; redisUrl then gives only the user, password, database and TLS.', {
      pattern: /^([^\s,:]+:\d+(,[^\s,:]+:\d+)*)?$/, patternDoc: 'empty, or host:port pairs separated by commas'
    }),
    redisSentinelName: str('mymaster', 'The master name the Sentinels monitor (with redisSentinels).', { nonEmpty: true }),
    redisKeyPrefix: str('culex:', 'Prefix of every key Culex writes in Redis: clusters with different prefixes can share one Redis.', { nonEmpty: true })
  }
}

/** The connection settings of a configuration's cluster section; undefined when cluster mode is off. */
export function redisConnectOptions (cluster: { redisUrl: string, redisSentinels: string, redisSentinelName: string, redisKeyPrefix: string }): {
  url: string, sentinels?: string[], sentinelName: string, prefix: string
} | undefined {
  if (cluster.redisUrl === '') return undefined
  const sentinels = cluster.redisSentinels === '' ? undefined : cluster.redisSentinels.split(',')
  return { url: cluster.redisUrl, ...(sentinels === undefined ? {} : { sentinels }), sentinelName: cluster.redisSentinelName, prefix: cluster.redisKeyPrefix }
}
