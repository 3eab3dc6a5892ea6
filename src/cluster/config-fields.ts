import { int, str } from '../config/fields.js'

/**
 * The `cluster` section (src/cluster, docs/cluster.md). The cluster is on when `redisUrl` is set; empty keeps the
 * embedded single node, which needs no Redis.
 */
export function clusterSection () {
  return {
    redisUrl: str('', 'Redis that the nodes of a cluster share (redis://host:port/db or rediss:// for TLS); empty = a single node, no Redis needed.', { pattern: /^rediss?:\/\/\S+$/, patternDoc: 'a redis:// or rediss:// URL' }),
    nodeId: str('', 'Name of this node in the cluster, unique among its nodes; set it to keep the name across restarts. Empty picks a random one at each start.', { pattern: /^[A-Za-z0-9._-]+$/, patternDoc: 'letters, digits, ".", "_" or "-"' }),
    heartbeatIntervalMs: int(1000, 'How often a node renews its registration in Redis and looks for dead nodes.', { min: 50 }),
    nodeTimeoutMs: int(5000, "A node whose registration has not been renewed this long is dead: the others stop routing to it and its clients' wills are published once (docs/cluster.md). At least twice heartbeatIntervalMs.", { min: 100 }),
    busMaxLenMessages: int(1_000_000, "Messages the stream of one node holds at most in Redis (its unread backlog; older ones are trimmed, so a node that stays away longer misses them). Each costs the message's size in Redis memory.", { min: 1000 })
  }
}
