/**
 * Cluster mode (docs/cluster.md): several nodes on one Redis.
 *
 *     config-fields.ts  the `cluster` config section
 *     keys.ts           what the messaging and membership keep in Redis
 *     membership.ts     registration, heartbeats, dead nodes, the will leases
 *     filters.ts        this node's topic filters, published to Redis
 *     route-table.ts    every other node's filters, replicated: who needs a message
 *     bus.ts            each node's Redis stream: sending to it, reading one's own
 *     codec.ts          a stream entry
 *     shared-groups.ts  shared subscriptions across nodes: member events to each group's owner, remote deliveries
 *     owned-groups.ts   which node owns each group; taking one over, its remote members
 *     share-owners.ts   the groups' registry and owner leases in Redis
 *     share-routes.ts   every group's filter: which inboxes a message goes to
 *     share-inbox.ts    the owner's reader of its groups' inbox streams
 *     share-views.ts    every group as GET /api/shared shows it, from its owner
 *     kicks.ts          the admin API's kick of a client connected to another node
 *     connection-health.ts  the node's connections to Redis lost, back, or not answering (liveness.ts: a PING with a deadline)
 *     hooks.ts          the only file that touches aedes
 *     api.ts            GET /api/cluster, the cluster's /metrics
 */
import { randomBytes } from 'node:crypto'
import type { Client } from 'aedes'
import { Redis } from 'ioredis'
import type { AdminRoute } from '../admin/routes.js'
import type { Config } from '../config/schema.js'
import type { CulexStore } from '../store/contract.js'
import { CulexError } from '../errors.js'
import type { Logger } from '../log/logger.js'
import type { BrokerMetrics } from '../metrics/index.js'
import type { BrokerInternals, DeliveryPacket } from '../protocol/aedes-internals.js'
import type { StreamAppend } from '../store/types.js'
import { redisConnectOptions } from '../store/redis/connect-options.js'
import { redisOptions, untilReady } from '../store/redis/connection.js'
import { clusterRoutes, registerClusterMetrics } from './api.js'
import { BUS_FEATURES } from './codec.js'
import { createSender, readInbox, type BusCounters } from './bus.js'
import { LocalFilters } from './filters.js'
import { watchConnections } from './connection-health.js'
import { attachCluster, type ClusterStore } from './hooks.js'
import { clusterKeys } from './keys.js'
import { createMembership, type NodeView } from './membership.js'
import { RouteTable } from './route-table.js'
import { readShareInboxes } from './share-inbox.js'
import { createKicks } from './kicks.js'
import { createShareOwners } from './share-owners.js'
import { createShareViews } from './share-views.js'
import { ShareRoutes } from './share-routes.js'
import { createSharedGroups, type SharedGroups } from './shared-groups.js'
import type { SharedCluster, SharedLocal } from '../shared-subscriptions/cluster-port.js'

export interface ClusterOptions {
  config: Config['cluster']
  broker: BrokerInternals
  /**
   * The store every node shares (the Redis store): the origin node queues a message for every persistent
   * subscriber, and one survivor publishes a dead node's wills.
   */
  store: Omit<ClusterStore, 'sharedQueues' | 'sessionsLeft'> & Partial<Pick<ClusterStore, 'sharedQueues' | 'sessionsLeft'>> & Pick<CulexStore, 'ping' | 'connectionLost' | 'wroteElsewhere'>
  tellTakenOver: (client: Client) => void
  /** Tells a client an administrator is closing it (MQTT 5: DISCONNECT 0x98). */
  tellKicked: (client: Client) => void
  /** Has the replay send what a persistent session's queue holds unsent (protocol/queue-replay.ts). */
  sendQueued: (client: Client) => void
  /** This node settled a dead run of a node (its wills published, its sessions disconnected). */
  onRunSettled: (brokerId: string) => Promise<void>
  listeners: () => Array<{ name: string, host: string, port: number }>
  version: string
  log: Logger
}

export interface Cluster {
  readonly nodeId: string
  /** Registers the node and starts the bus; before the listeners open. */
  start: () => Promise<void>
  /** Leaves the cluster (the others stop routing here at once) and closes the Redis connections; after aedes closed. */
  close: () => Promise<void>
  registerMetrics: (metrics: BrokerMetrics) => void
  routes: AdminRoute[]
  /** The nodes as the last heartbeat read them. */
  nodes: () => NodeView[]
  /** Why the node cannot serve as a cluster node now (a Redis connection is down); undefined when it can. */
  problem: () => string | undefined
  /** Whether the other node's filter is known here (a message published here now reaches it). */
  routesTo: (nodeId: string, topic: string) => boolean
  /** Whether a message published here goes to another node or to a shared group's inbox. */
  subscribedElsewhere: (topic: string) => boolean
  /** Whether a message published here goes to a shared group's inbox. */
  sharedGroupFor: (topic: string) => boolean
  /** A QoS 2 message's entries for the other nodes' streams, written with its publisher's record (hooks.ts). */
  streamAppends: (packet: DeliveryPacket, publisherId: string) => StreamAppend[]
  /** Shared subscriptions across the nodes: the member events and remote deliveries of the shared hooks; before start(). */
  shareGroups: <C extends object>(local: SharedLocal<C>) => SharedCluster<C>
  /** The node owning a shared group (`<group>/<filter>`) as this node knows it, and whether it is known at all. */
  groupOwner: (key: string) => string | undefined
  /** Whether a message published here goes to the shared group's inbox (the group is known here). */
  routesToGroup: (key: string) => boolean
  /** An administrator's kick of a client id connected to another node: whether one closed it (kicks.ts). */
  kick: (clientId: string) => Promise<boolean>
}

export function assertClusterConfig (config: Config['cluster']): void {
  if (config.nodeTimeoutMs < 2 * config.heartbeatIntervalMs) {
    throw new CulexError('ERR_CLUSTER_CONFIG', `cluster.nodeTimeoutMs (${config.nodeTimeoutMs}) must be at least twice cluster.heartbeatIntervalMs (${config.heartbeatIntervalMs})`)
  }
}

export function createCluster (opts: ClusterOptions): Cluster {
  const { config, broker, log } = opts
  assertClusterConfig(config)
  if (opts.store.sharedQueues === undefined || opts.store.sessionsLeft === undefined) throw new CulexError('ERR_CLUSTER_CONFIG', 'cluster mode needs the store the nodes share (Redis)')
  const store = opts.store as ClusterStore
  const nodeId = config.nodeId === '' ? randomBytes(6).toString('hex') : config.nodeId
  const keys = clusterKeys(config.redisKeyPrefix)
  // The store's connection settings (URL or Sentinels, TLS, user and password, database); a command waits for Redis
  // to come back, however long: a QoS 1/2 publisher is acknowledged only then.
  const where = redisOptions(redisConnectOptions(config) ?? { url: config.redisUrl })
  const connect = (role: string): Redis => new Redis({
    ...where,
    connectionName: `culex:${nodeId}:${role}`,
    enableAutoPipelining: role === 'commands',
    lazyConnect: true
  })
  const redis = connect('commands')
  const sub = connect('subscriber')
  const reader = connect('reader')
  const groupReader = connect('groups')
  const counters: BusCounters & { droppedQos0: number } = { sent: 0, received: 0, pending: 0, unrouted: 0, duplicates: 0, reconnects: 0, lagMs: 0, droppedQos0: 0 }
  const health = watchConnections({ commands: redis, subscriber: sub, reader, groups: groupReader }, opts.store,
    { intervalMs: config.heartbeatIntervalMs, pingTimeoutMs: config.redisPingTimeoutMs }, (how) => {
      if (how === 'reconnected') counters.reconnects++
      // a hung Redis that answers again: every node's heartbeat waited in it, as after an outage
      else judgeLater()
    }, log)

  const table = new RouteTable(nodeId)
  const filters = new LocalFilters(redis, nodeId, keys)
  const wrote = (): void => { opts.store.wroteElsewhere?.() }
  const send = createSender(redis, keys.stream, counters, config.busMaxLenMessages, false, wrote)
  const membership = createMembership(redis, {
    nodeId,
    keys,
    brokerId: broker.id,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    nodeTimeoutMs: config.nodeTimeoutMs,
    version: opts.version,
    describe: () => ({ listeners: opts.listeners(), clients: broker.connectedClients })
  }, log)
  const others = (): Set<string> => {
    const ids = new Set(table.nodes())
    for (const n of membership.nodes()) if (n.alive && n.nodeId !== nodeId) ids.add(n.nodeId)
    return ids
  }
  const shareRoutes = new ShareRoutes()
  const shareOwners = createShareOwners(redis, keys, `${nodeId}\n${broker.id}`, config.nodeTimeoutMs)
  const shareViews = createShareViews(redis, { key: keys.shareViews, nodeId, ttlMs: config.nodeTimeoutMs, others: () => [...others()].filter(id => id !== nodeId) })
  const sendToGroup = createSender(redis, keys.shareInbox, counters, config.busMaxLenMessages, true, wrote)
  let groups: SharedGroups | undefined
  let inboxes: ReturnType<typeof readShareInboxes> | undefined
  const hooks = attachCluster({
    broker, nodeId, table, filters, send, otherNodes: others,
    carriesCopies: id => membership.nodes().some(n => n.nodeId === id && (n.bus ?? 0) >= BUS_FEATURES),
    shares: shareRoutes,
    sendToGroup,
    onShareNote: note => { groups?.receive(note) }, onKick: async entry => { await kicks.receive(entry) }, nextGeneration: async () => await redis.incr(keys.connections), counters,
    alivePrefix: keys.alive(''), sendQueued: opts.sendQueued, tellTakenOver: opts.tellTakenOver, tellKicked: opts.tellKicked, store, log,
    streamKey: keys.stream, maxLen: config.busMaxLenMessages })
  const kicks = createKicks({ nodeId, send, others: () => [...others()].filter(id => id !== nodeId), timeoutMs: config.nodeTimeoutMs, closeHere: hooks.closeHere, log })

  const reloadNode = async (id: string): Promise<void> => {
    const [version, members] = await Promise.all([redis.hget(keys.filterVersions, id), redis.smembers(keys.filters(id))])
    if (version === null) table.drop(id)
    else table.replace(id, Number(version), members)
  }
  sub.on('message', (channel: string, message: string) => {
    if (channel === keys.shareChanges) {
      // "+<key>\n<filter>" or "-<key>"
      const newline = message.indexOf('\n')
      if (message.charAt(0) === '+') shareRoutes.add(message.slice(1, newline), message.slice(newline + 1))
      else shareRoutes.remove(message.slice(1))
      return
    }
    // "<node>\n<version>\n<op><filter>": the filter last, as it may hold anything
    const first = message.indexOf('\n')
    const second = message.indexOf('\n', first + 1)
    const from = message.slice(0, first)
    if (from === nodeId) return
    const op = message.charAt(second + 1)
    if (op === '*' || !table.apply(from, Number(message.slice(first + 1, second)), op as '+' | '-', message.slice(second + 2))) {
      reloadNode(from).catch((err: unknown) => log.warn({ err, nodeId: from }, 'cluster filters not read'))
    }
  })

  let started = false
  let failing = false
  let timer: NodeJS.Timeout | undefined
  let inbox: { close: () => void } | undefined
  // Nobody is judged dead until this node has beaten for a whole cluster.nodeTimeoutMs since its start, its last
  // failed or stalled heartbeat, or Redis answering again after it hung: after an outage of Redis (or of this node's
  // link to it) the others have not renewed their registrations yet either, and removing them would delete their
  // streams.
  let judgingFrom = Date.now() + config.nodeTimeoutMs
  function judgeLater (): void {
    judgingFrom = Math.max(judgingFrom, Date.now() + config.nodeTimeoutMs)
  }
  // a heartbeat sent during an outage waits for Redis (it does not fail): the grace counts from the reconnection
  redis.on('ready', judgeLater)
  const heartbeat = async (): Promise<void> => {
    const readAt = Date.now()
    const { dead, lostFilters, lapsed, versions } = await membership.beat()
    // A beat that took about a node timeout (Redis stalled, or this process did) read the others' registrations
    // after their renewals had waited just as long: they lapsed for the stall, not because those nodes died.
    if (Date.now() - readAt > config.nodeTimeoutMs - config.heartbeatIntervalMs) judgeLater()
    if (lostFilters || lapsed) {
      // Registered again by this beat. The stream first (a survivor may have removed it), so that what is queued for
      // the sessions here from now on reaches them (their holder is alive again); then what was queued before.
      await membership.openInbox()
      await filters.publishAll()
      const sessions = await hooks.catchUp()
      await groups?.rejoinAll()
      log.warn({ nodeId, removed: lostFilters, sessions }, 'cluster node had been taken for dead; registered again, its sessions caught up')
    }
    const alive = new Set(membership.nodes().filter(n => n.alive).map(n => n.nodeId))
    if (Date.now() >= judgingFrom) {
      for (const id of table.nodes()) if (!alive.has(id)) table.drop(id)
      for (const node of dead) await membership.remove(node)
    }
    await Promise.all([...versions].filter(([id, v]) => id !== nodeId && alive.has(id) && table.versionOf(id) !== v).map(async ([id]) => await reloadNode(id)))
    const liveBrokers: Record<string, true> = {}
    for (const n of membership.nodes()) if (n.alive) liveBrokers[n.brokerId] = true
    await groups?.beat(alive, readAt)
    if (groups !== undefined) await shareViews.publish(groups.ownedViews())
    for (const { entry, brokerId } of await membership.claimOrphans()) {
      await hooks.publishWills(brokerId, liveBrokers)
      const sessions = await store.sessionsLeft(brokerId)
      if (sessions > 0) log.info({ brokerId, sessions }, 'sessions of a dead node disconnected')
      await opts.onRunSettled(brokerId)
      await membership.settled(entry)
    }
  }
  const tick = (): void => {
    heartbeat().then(() => {
      if (failing) log.info({ nodeId }, 'cluster heartbeat back')
      failing = false
    }, (err: unknown) => {
      if (!failing && started) log.error({ err, nodeId }, 'cluster heartbeat failed')
      failing = true
      judgeLater()
    }).finally(() => {
      if (started) timer = setTimeout(tick, config.heartbeatIntervalMs)
    })
  }

  return {
    nodeId,
    start: async () => {
      // A node does not start without Redis and waits for it (ioredis retries) rather than fail, so nodes and Redis
      // may start in any order (a shared group restored by aedes may have opened a connection already).
      await Promise.all([redis, sub, reader, groupReader].map(async conn => { await untilReady(conn, () => log.warn({ connection: conn.options.connectionName }, 'waiting for Redis')) }))
      await sub.subscribe(keys.filterChanges, keys.shareChanges)
      shareRoutes.replace(await shareOwners.all())
      await groups?.start()
      await membership.register()
      await filters.publishAll()
      started = true
      await heartbeat()
      await Promise.all(membership.nodes().filter(n => n.alive && n.nodeId !== nodeId).map(async n => await reloadNode(n.nodeId)))
      // a subscriber connection that was lost missed announcements: every node is read again
      sub.on('ready', () => {
        for (const n of membership.nodes()) if (n.alive && n.nodeId !== nodeId) reloadNode(n.nodeId).catch(() => {})
      })
      inbox = readInbox(reader, redis, keys.stream(nodeId), counters, hooks.deliver, log)
      if (groups !== undefined) {
        const g = groups
        inboxes = readShareInboxes(groupReader, redis, { inboxes: () => g.inboxes(), stillOwned: shareOwners.held, take: g.take }, log)
      }
      timer = setTimeout(tick, config.heartbeatIntervalMs)
      log.info({ nodeId, brokerId: broker.id, nodes: membership.nodes().filter(n => n.alive).length }, 'cluster node joined')
    },
    close: async () => {
      health.close()
      const wasStarted = started
      started = false
      clearTimeout(timer)
      inbox?.close()
      inboxes?.close()
      await groups?.close().catch((err: unknown) => log.warn({ err }, 'shared groups not given up'))
      if (wasStarted) await Promise.all([membership.leave(), shareViews.forget()]).catch((err: unknown) => log.warn({ err }, 'cluster node could not deregister'))
      sub.disconnect()
      reader.disconnect()
      groupReader.disconnect()
      await redis.quit().catch(() => redis.disconnect())
    },
    registerMetrics: (metrics) => { registerClusterMetrics(metrics, { alive: () => membership.nodes().filter(n => n.alive).length, counters, reconnects: health.reconnects, down: () => health.down() }) },
    routes: clusterRoutes(() => ({ nodeId, nodes: membership.nodes(), table, counters })),
    nodes: () => membership.nodes(),
    problem: health.problem,
    routesTo: (id, topic) => table.nodesFor(topic).has(id),
    subscribedElsewhere: topic => table.nodesFor(topic).size > 0 || shareRoutes.match(topic).size > 0,
    sharedGroupFor: topic => shareRoutes.match(topic).size > 0,
    streamAppends: hooks.streamAppends,
    shareGroups: <C extends object>(local: SharedLocal<C>): SharedCluster<C> => {
      const created = createSharedGroups<C>({
        nodeId,
        brokerId: broker.id,
        owners: shareOwners,
        routes: shareRoutes,
        send,
        others: () => [...others()].filter(id => id !== nodeId),
        wake: () => inboxes?.wake(),
        inboxOf: keys.shareInbox,
        graceMs: 2 * config.nodeTimeoutMs,
        views: shareViews.all,
        log
      }, local)
      groups = created as unknown as SharedGroups
      return created.cluster
    },
    groupOwner: key => groups?.ownerOf(key),
    routesToGroup: key => shareRoutes.has(key),
    kick: kicks.kick
  }
}
