import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import type { Client, PublishPacket } from 'aedes'
import type { Logger } from '../log/logger.js'
import type { SharedQueues } from '../store/index.js'
import type { StreamAppend } from '../store/types.js'
import type { BrokerInternals, DeliveryPacket } from '../protocol/aedes-internals.js'
import type { BusEntry, ShareNote } from './codec.js'
import { encodeConnected, encodeMessage } from './codec.js'
import type { LocalFilters } from './filters.js'
import type { RouteTable } from './route-table.js'

const SYS_PREFIX = '$SYS/'
const NONE: ReadonlySet<string> = new Set()
/** QoS 0 messages waiting for Redis beyond which new ones are not sent to other nodes (counted): see docs/cluster.md. */
const MAX_PENDING_QOS0 = 100_000

/**
 * What the cluster uses of the store every node shares (the Redis store): the wills, the persistent subscribers of
 * a topic, and the session queues' view on this node.
 */
export interface ClusterStore {
  streamWill: (brokers?: Record<string, unknown>) => Readable
  delWill: (client: { id: string, brokerId?: string }) => Promise<unknown>
  sharedQueues: SharedQueues
  sessionsLeft: (brokerId: string) => Promise<number>
}

export interface ClusterHookDeps {
  broker: BrokerInternals
  nodeId: string
  table: RouteTable
  filters: LocalFilters
  send: (nodeId: string, fields: Array<string | Buffer>) => Promise<unknown>
  /** The shared groups whose filter matches a topic, and how a message goes to a group's inbox. */
  shares: { match: (topic: string) => Set<string> }
  sendToGroup: (key: string, fields: Array<string | Buffer>) => Promise<unknown>
  /** A note of the shared groups (src/cluster/shared-groups.ts) from another node. */
  onShareNote: (note: ShareNote) => void
  /** The other nodes a client's connection is announced to. */
  otherNodes: () => Iterable<string>
  /** Whether a node reads messages that carry their queue entries (a node of an earlier version does not). */
  carriesCopies: (nodeId: string) => boolean
  /** The next number of the cluster-wide order of connections. */
  nextGeneration: () => Promise<number>
  counters: { pending: number, droppedQos0: number }
  /** A node's stream (keys.ts `stream`) and the length streams are trimmed to (cluster.busMaxLenMessages). */
  streamKey: (nodeId: string) => string
  maxLen: number
  /** The prefix of the nodes' liveness keys (keys.ts `alive`): whether a session's holder is alive. */
  alivePrefix: string
  /** Has the replay send what a persistent session's queue holds unsent (a replay running sends it anyway). */
  sendQueued: (client: Client) => void
  /** Tells a client it is being closed because its id connected elsewhere (MQTT 5: DISCONNECT 0x8E). */
  tellTakenOver: (client: Client) => void
  /** Tells a client an administrator is closing it (MQTT 5: DISCONNECT 0x98). */
  tellKicked: (client: Client) => void
  /** An administrator's kick made on another node, or a node's answer to one of this node's (kicks.ts). */
  onKick: (entry: Extract<BusEntry, { kind: 'kick' | 'kicked' }>) => Promise<void>
  store: ClusterStore
  log: Logger
}

/**
 * The cluster's only contact with aedes (docs/cluster.md):
 *
 * - aedes' message router `broker.mq`: every listener added or removed (a client's subscription, a shared group's
 *   dispatcher) keeps the node's filters in Redis, and a SUBSCRIBE is answered once Redis has the filter; every
 *   message emitted is also sent to the other nodes with a matching filter, and a QoS 1/2 publisher is acknowledged
 *   once Redis holds those copies. What arrives from other nodes goes to the router aedes had before the cluster
 *   wrapped it: to the local listeners only, never sent on again, never queued again (the origin did that, in the
 *   shared store, before sending it: the persistent sessions connected here learn their entries before delivery).
 * - the 'client' event: a client id connecting here closes its older connection on any other node.
 * - the store's streamWill as aedes calls it: aedes would publish, on every node, the wills of every broker it has
 *   not heard from; in a cluster the will reaper does that, once (index.ts).
 */
export function attachCluster (deps: ClusterHookDeps) {
  const { broker, table, filters, send, counters, log } = deps
  const run = randomBytes(8).toString('hex')
  const mq = broker.mq
  const localEmit = mq.emit.bind(mq)
  const on = mq.on.bind(mq)
  const removeListener = mq.removeListener.bind(mq)

  mq.on = (topic, notify, done) => {
    on(topic, notify)
    if (topic.startsWith(SYS_PREFIX)) {
      if (done !== undefined) setImmediate(done)
      return mq
    }
    filters.add(topic).then(() => done?.(), (err: Error) => {
      log.error({ err, filter: topic }, 'cluster filter not registered')
      done?.()
    })
    return mq
  }
  mq.removeListener = (topic, notify, done) => {
    removeListener(topic, notify, done)
    if (!topic.startsWith(SYS_PREFIX)) filters.remove(topic)
    return mq
  }

  mq.emit = (packet, done) => {
    const sys = packet.topic.startsWith(SYS_PREFIX)
    const targets = sys ? NONE : withHolders(table.nodesFor(packet.topic), packet)
    // a shared group's messages go to its inbox, whichever node owns it (this one included)
    const groups = sys ? NONE : deps.shares.match(packet.topic)
    if (targets.size === 0 && groups.size === 0) {
      localEmit(packet, done)
      return
    }
    if (packet.qos === 0 && counters.pending >= MAX_PENDING_QOS0) {
      counters.droppedQos0 += targets.size + groups.size
      localEmit(packet, done)
      return
    }
    // the queue entries this node made for the message go with it: the receiving node learns them without Redis
    const queued = packet.qos > 0 ? deps.store.sharedQueues.queuedCopies(packet) : undefined
    let plain: Array<string | Buffer> | undefined
    let carrying: Array<string | Buffer> | undefined
    const fieldsFor = (nodeId?: string): Array<string | Buffer> => queued !== undefined && nodeId !== undefined && deps.carriesCopies(nodeId)
      ? (carrying ??= encodeMessage(packet, run, queued))
      : (plain ??= encodeMessage(packet, run))
    const sent = Promise.all([...[...targets].map(async nodeId => await send(nodeId, fieldsFor(nodeId))), ...[...groups].map(async key => await deps.sendToGroup(key, fieldsFor()))])
    if (packet.qos === 0) {
      sent.catch((err: unknown) => log.debug({ err, topic: packet.topic }, 'QoS 0 message not sent to other nodes'))
      localEmit(packet, done)
      return
    }
    // handled at once: the local deliveries finish later, and a rejection must not go unhandled until then
    const failure = sent.then(() => undefined, (err: Error) => err)
    localEmit(packet, err => { void failure.then(failed => done?.(failed ?? err ?? undefined)) })
  }

  /**
   * The nodes holding a session the message was queued for go with those whose filters match: a node that has just
   * resumed a session (or subscribed it anew) gets its messages before this node has read its filters.
   */
  const withHolders = (matched: Set<string>, packet: { qos: number }): Set<string> => {
    const holders = packet.qos > 0 ? deps.store.sharedQueues.holdersOf(packet) : undefined
    if (holders === undefined) return matched
    let nodes = matched
    for (const nodeId of holders) {
      if (nodeId === deps.nodeId || nodes.has(nodeId)) continue
      if (nodes === matched) nodes = new Set(matched)
      nodes.add(nodeId)
    }
    return nodes
  }

  // Which of two connections with one client id is the newer is decided by one counter in Redis, not by clocks or
  // by the order notices arrive in: each node would otherwise see its own connection as the newer one, or both
  // the other's, and keep both or close both.
  const generations = new WeakMap<Client, Promise<number>>()
  // taken by the connection's 'client' event or its claim of its session (queue-holders.ts), whichever comes first
  const generationOf = (client: Client): Promise<number> => {
    let generation = generations.get(client)
    if (generation === undefined) generations.set(client, generation = deps.nextGeneration())
    return generation
  }
  broker.on('client', (client: Client) => {
    const generation = generationOf(client)
    generation.then((g) => {
      const fields = encodeConnected(client.id, deps.nodeId, g)
      for (const nodeId of deps.otherNodes()) {
        send(nodeId, fields).catch((err: unknown) => log.warn({ err, clientId: client.id, nodeId }, 'cluster take-over notice not sent'))
      }
    }, (err: unknown) => log.warn({ err, clientId: client.id }, 'cluster take-over notice not sent'))
  })

  // Only sessions connected here are mirrored here; aedes' clients are this node's.
  deps.store.sharedQueues.setHere((clientId) => broker.clients[clientId]?.clean === false,
    { nodeId: deps.nodeId, brokerId: broker.id, alivePrefix: deps.alivePrefix, generationOf: async client => await generationOf(client as Client) })
  broker.on('clientDisconnect', (client: Client) => { if (!client.clean) deps.store.sharedQueues.release(client) })

  /**
   * This node was taken for dead: what other nodes queued meanwhile for the persistent sessions connected here did
   * not reach it. Each session's queue is read again (and claimed again), and its unsent messages sent.
   */
  const catchUp = async (): Promise<number> => {
    const sessions = Object.values(broker.clients).filter(client => !client.clean && !client.closed)
    await Promise.all(sessions.map(async (client) => {
      await deps.store.sharedQueues.catchUp(client)
      deps.sendQueued(client)
    }))
    return sessions.length
  }

  const streamWill = deps.store.streamWill.bind(deps.store)
  deps.store.streamWill = () => Readable.from([])

  /**
   * What one read of this node's stream brought, in order. The delivery router sends a persistent session only what
   * its queue holds unsent: the entries the origin queued for the QoS 1/2 messages must be known here first, all
   * of them learned at once (from the messages that carry them, else one Redis round trip per batch).
   */
  const deliver = async (entries: BusEntry[]): Promise<void> => {
    const queued: Parameters<SharedQueues['learn']>[0] = []
    for (const entry of entries) {
      if (entry.kind === 'message' && entry.packet.qos > 0) queued.push({ packet: entry.packet as unknown as (typeof queued)[number]['packet'], queued: entry.queued })
    }
    if (queued.length > 0) {
      await deps.store.sharedQueues.learn(queued).catch((err: unknown) => { log.error({ err, messages: queued.length }, 'cluster messages not learned by the session queues') })
    }
    await Promise.all(entries.map(async (entry) => {
      if (entry.kind === 'message') {
        await new Promise<void>(resolve => { localEmit(entry.packet, () => resolve()) })
        return
      }
      if (entry.kind === 'share') {
        deps.onShareNote(entry.note)
        return
      }
      if (entry.kind === 'kick' || entry.kind === 'kicked') {
        await deps.onKick(entry).catch((err: unknown) => log.error({ err }, 'cluster kick not handled'))
        return
      }
      await takeOver(entry).catch((err: unknown) => log.error({ err, clientId: entry.clientId }, 'cluster take-over notice not handled'))
    }))
  }

  /** Another node has a newer connection of this client id: the one here goes. */
  const takeOver = async (entry: Extract<BusEntry, { kind: 'connected' }>): Promise<void> => {
    const client = broker.clients[entry.clientId]
    if (client === undefined || client.closed) return
    // a connection made here after the other one is the newer: it stays
    if (await (generations.get(client) ?? 0) > entry.generation || client.closed) return
    log.info({ clientId: entry.clientId, nodeId: entry.nodeId }, 'client taken over by another node')
    deps.tellTakenOver(client)
    await new Promise<void>(resolve => { client.close(() => resolve()) })
  }

  /** An administrator on node `by` kicks this client id: its connection here goes, and what the close wrote is applied. */
  const closeHere = async (clientId: string, by: string): Promise<boolean> => {
    const client = broker.clients[clientId]
    if (client === undefined || client.closed) return false
    log.info({ clientId, clean: client.clean, by }, 'client kicked')
    deps.tellKicked(client)
    await new Promise<void>(resolve => { client.close(() => resolve()) })
    await deps.store.sharedQueues.applied()
    return true
  }

  /**
   * Publishes the wills a dead run of a node left (`brokerId`), then removes them; `alive`: the live runs.
   */
  const publishWills = async (brokerId: string, alive: Record<string, true>): Promise<number> => {
    let published = 0
    for await (const will of streamWill(alive) as AsyncIterable<Record<string, unknown>>) {
      if (will.brokerId !== brokerId) continue
      const clientId = will.clientId as string
      // published as this broker's message: the dead broker's id with this broker's counter could name another one
      const { brokerId: _dead, brokerCounter: _counter, ...packet } = will
      const refused = await new Promise<Error | null | undefined>(resolve => { broker.authorizePublish(null, packet as unknown as PublishPacket, resolve) })
      if (refused == null) await new Promise<void>(resolve => { broker.publish(packet as unknown as PublishPacket, () => resolve()) })
      await deps.store.delWill({ id: clientId, brokerId: will.brokerId as string })
      log.info({ clientId, brokerId, topic: packet.topic, published: refused == null }, 'will of a dead node published')
      published++
    }
    return published
  }

  /**
   * The stream entries of a QoS 2 message for the nodes whose filters match it, for the enqueue script that writes its
   * publisher's record (publish-gate.ts): written there, a kill -9 before the bus sends them cannot leave the record
   * without them. The bus sends them again after; the readers drop the repeat (same run, broker and counter).
   */
  const streamAppends = (packet: DeliveryPacket, publisherId: string): StreamAppend[] => {
    if (packet.topic.startsWith(SYS_PREFIX)) return []
    const targets = table.nodesFor(packet.topic)
    if (targets.size === 0) return []
    const publisher = packet.clientId
    packet.clientId = publisherId
    const fields = encodeMessage(packet, run) as [string, Buffer]
    packet.clientId = publisher
    return [...targets].map(nodeId => ({ key: deps.streamKey(nodeId), maxLen: deps.maxLen, fields }))
  }

  return { deliver, publishWills, catchUp, streamAppends, closeHere }
}
