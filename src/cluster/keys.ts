/**
 * What the cluster's messaging and membership keep in Redis (docs/cluster.md, "How messages travel" and
 * "Membership and failure"), under `<cluster.redisKeyPrefix>cluster:` (the store's keys have the same prefix, none of them followed by `cluster:`):
 * two clusters with different prefixes share one Redis without seeing each other.
 */
export function clusterKeys (keyPrefix: string) {
  const PREFIX = `${keyPrefix}cluster:`
  return {
    /** Hash: node id → its registration as JSON (NodeRecord). */
    nodes: `${PREFIX}nodes`,
    /** Hash: node id → the version of its filter set, raised by every change. */
    filterVersions: `${PREFIX}filter-versions`,
    /** Pub/sub channel announcing each change of a node's filters ("<node>\n<version>\n+|-|*<filter>"). */
    filterChanges: `${PREFIX}filter-changes`,
    /** Counter: every client connection of the cluster takes the next number (its generation). */
    connections: `${PREFIX}connections`,
    /** String with a time to live of cluster.nodeTimeoutMs, renewed by every heartbeat: absent = the node is dead. */
    alive: (nodeId: string) => `${PREFIX}alive:${nodeId}`,
    /** Set: the topic filters the node's clients subscribe to. */
    filters: (nodeId: string) => `${PREFIX}filters:${nodeId}`,
    /** Stream: what other nodes send this node (messages for its subscribers, take-overs). */
    stream: (nodeId: string) => `${PREFIX}bus:${nodeId}`,
    /** Lease: the one survivor that settles a dead node (its wills, its keys) holds it. */
    reaper: (nodeId: string) => `${PREFIX}reaper:${nodeId}`,
    /** Set of "<node id> <broker id>": dead runs of nodes whose clients' wills are still to be published. */
    orphans: `${PREFIX}orphan-brokers`,
    /** Hash: share key (`<group>/<filter>`) → filter, every shared group of the cluster (shared-groups.ts). */
    shares: `${PREFIX}shares`,
    /** Pub/sub channel announcing a group added ("+<key>\n<filter>") or removed ("-<key>"). */
    shareChanges: `${PREFIX}share-changes`,
    /** Lease: the node that owns the group (runs its engine), renewed by its heartbeat. */
    shareOwner: (key: string) => `${PREFIX}share-owner:${key}`,
    /** Stream: the group's messages as published on any node, until its owner has taken them in. */
    shareInbox: (key: string) => `${PREFIX}share-inbox:${key}`,
    /** String: JSON of the groups a node owns as GET /api/shared shows them, written with its heartbeats (share-views.ts). */
    shareViews: (nodeId: string) => `${PREFIX}share-views:${nodeId}`
  }
}

export type ClusterKeys = ReturnType<typeof clusterKeys>

/** A node's registration, renewed with every heartbeat. */
export interface NodeRecord {
  nodeId: string
  /** The aedes broker id of this run of the node: the brokerId of its messages and of its clients' wills. */
  brokerId: string
  /** Its MQTT listeners as bound (host and port), for operators and load balancers. */
  listeners: Array<{ name: string, host: string, port: number }>
  clients: number
  startedAt: number
  heartbeatAt: number
  version: string
  /**
   * What it reads on its stream beyond the first format: 1 when a message may carry the queue entries its origin
   * made (codec.ts); absent on a node of an earlier version, which is sent none.
   */
  bus?: number
}
