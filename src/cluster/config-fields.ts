import { int, str } from '../config/fields.js'

/**
 * The `cluster` section (src/cluster, docs/cluster.md). The cluster is on when `redisUrl` is set; empty keeps the
 * embedded single node, which needs no Redis.
 */
export function clusterSection () {
  return {
    redisUrl: str('', 'Cluster mode: the Redis the nodes share, holding every session, queue, retained message and will, and carrying messages between nodes, as redis://[user:password@]host:port[/db] or rediss:// for TLS. Empty: one node on the embedded LevelDB store in dataDir, no Redis needed.', {
      pattern: /^(rediss?:\/\/\S+)?$/, patternDoc: 'empty, or a redis:// or rediss:// URL'
    }),
    redisSentinels: str('', 'Redis Sentinels to ask for the current master, as host:port,host:port; redisUrl then gives only the user, password, database and TLS.', {
      pattern: /^([^\s,:]+:\d+(,[^\s,:]+:\d+)*)?$/, patternDoc: 'empty, or host:port pairs separated by commas'
    }),
    redisSentinelName: str('mymaster', 'The master name the Sentinels monitor (with redisSentinels).', { nonEmpty: true }),
    redisTlsCaFile: str('', "PEM file of the certificate authority that signed the Redis server's certificate (with a rediss:// redisUrl), for a private CA; read at start. Empty: Node's list of public CAs (and NODE_EXTRA_CA_CERTS)."),
    redisKeyPrefix: str('culex:', "Prefix of every key Culex writes in Redis (the store's, and the messaging's and membership's under <prefix>cluster:): clusters with different prefixes can share one Redis.", { nonEmpty: true }),
    redisWaitReplicas: int(0, 'Redis replicas that must have the writes of a QoS 1/2 publish (Redis WAIT) before it is acknowledged; 0 acknowledges once the master has them. A publish they do not confirm within redisWaitTimeoutMs is not acknowledged and its connection is closed (docs/cluster.md, "Durability").', { max: 100 }),
    redisWaitTimeoutMs: int(1000, 'How long a publish waits for redisWaitReplicas replicas to confirm its writes.', { min: 1 }),
    redisPingTimeoutMs: int(2000, "How long Redis may take to answer the PING each of the node's connections gets every heartbeatIntervalMs; past it (a Redis that hangs with its connections open) the node says so once in its log and /readyz answers 503 until Redis answers again. Publishes wait meanwhile, never failed.", { min: 10 }),
    nodeId: str('', 'Name of this node in the cluster, unique among its nodes; set it to keep the name across restarts. Empty picks a random one at each start.', { pattern: /^[A-Za-z0-9._-]+$/, patternDoc: 'letters, digits, ".", "_" or "-"' }),
    heartbeatIntervalMs: int(1000, 'How often a node renews its registration in Redis and looks for dead nodes.', { min: 50 }),
    nodeTimeoutMs: int(5000, "A node whose registration has not been renewed this long is dead: the others stop routing to it and its clients' wills are published once (docs/cluster.md). At least twice heartbeatIntervalMs.", { min: 100 }),
    busMaxLenMessages: int(1_000_000, "Messages the stream of one node holds at most in Redis (its unread backlog; older ones are trimmed, so a node that stays away longer misses them). Each costs the message's size in Redis memory.", { min: 1000 })
  }
}
