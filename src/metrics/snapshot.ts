import type { Aedes, Client } from 'aedes'
import type { SessionInfo, StoreStats } from '../store/index.js'
import { recordConnected } from '../store/session-records.js'
import { sum, type Totals } from './totals.js'

/** What the metrics read from the store (src/store/index.ts). */
export interface MetricsStore {
  stats: () => StoreStats
  listSessions: () => Promise<string[]>
  sessionInfo: (clientId: string) => Promise<SessionInfo | undefined>
}

/** The protocol versions a client connects with, by name, and their protocol levels. */
export const protocolLevels = { '3.1': 3, '3.1.1': 4, 5: 5 } as const
export type ProtocolName = keyof typeof protocolLevels

/** One reading of everything the broker counts: what $SYS publishes, /api/stats returns and the console shows. */
export interface Snapshot {
  time: number
  uptimeSeconds: number
  clients: {
    connected: number
    /** Persistent sessions whose client is not connected. */
    disconnected: number
    /** connected + disconnected, as Mosquitto counts $SYS/broker/clients/total. */
    total: number
    maximum: number
    /** Connections accepted since start. */
    accepted: number
    refused: number
    kicked: number
    /** Clients connected now by protocol: MQTT 3.1, 3.1.1 and 5.0. */
    byProtocol: Record<ProtocolName, number>
  }
  /** MQTT packets of every type. */
  packets: { received: number, sent: number }
  /** PUBLISH packets by QoS [0, 1, 2]. */
  messages: { received: number[], sent: number[], dropped: number }
  /** Application payload bytes of those PUBLISH packets by QoS. */
  payloadBytes: { received: number[], sent: number[] }
  /** MQTT bytes of every packet. */
  bytes: { received: number, sent: number }
  retained: number
  subscriptions: number
  sessions: { persistent: number }
  queued: { messages: number, bytes: number }
  inflight: { out: number, in: number }
  store: { writeBatches: number, writeFailures: number, droppedMessages: number }
  authFailures: number
  memory: { heapUsed: number, rss: number }
}

export interface SessionsOverview {
  persistent: number
  /** Persistent sessions whose client is not connected. */
  offline: number
  /** The sessions with the most queued messages, deepest first (at most `deepest` of them). */
  deepest: SessionInfo[]
  /** Enqueue time (ms since epoch) of the oldest queued message of any session; undefined when none is queued. */
  oldestQueuedAt: number | undefined
}

export async function sessionsOverview (store: MetricsStore, connected: (clientId: string) => boolean, deepest = 10): Promise<SessionsOverview> {
  const ids = await store.listSessions()
  let offline = 0
  let oldestQueuedAt: number | undefined
  const top: SessionInfo[] = []
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]
    // A long walk lets the broker's I/O run in between.
    if (i % 1000 === 999) await new Promise(resolve => setImmediate(resolve))
    const info = await store.sessionInfo(id)
    // in a cluster, its client may be connected to another node: the record in the shared store says so
    if (!connected(id) && !recordConnected(info)) offline++
    if (info === undefined) continue
    if (info.oldestQueuedAt !== undefined && (oldestQueuedAt === undefined || info.oldestQueuedAt < oldestQueuedAt)) oldestQueuedAt = info.oldestQueuedAt
    if (info.queued === 0) continue
    if (top.length < deepest || info.queued > top[top.length - 1].queued) {
      top.push(info)
      top.sort((a, b) => b.queued - a.queued)
      if (top.length > deepest) top.pop()
    }
  }
  return { persistent: ids.length, offline, deepest: top, oldestQueuedAt }
}

/** aedes' map of connected clients by id (present in aedes 1.2, missing from its typings). */
export function clientsOf (aedes: Aedes): Record<string, Client> {
  return (aedes as Aedes & { clients: Record<string, Client> }).clients
}

/** A connected client's subscriptions if its session is clean: the store keeps only those of persistent sessions. */
export function cleanSubscriptionsOf (client: Client & { subscriptions?: object }): number {
  return client.clean && client.subscriptions !== undefined ? Object.keys(client.subscriptions).length : 0
}

/**
 * The subscriptions of every connected clean-session client, counted 1000 clients at a time with the broker's I/O
 * let run in between: in one pass, tens of thousands of clients held the event loop for milliseconds at every
 * `$SYS` tick and scrape, and every message in flight waited for it.
 */
export async function liveCleanSubscriptions (aedes: Aedes): Promise<number> {
  const clients = clientsOf(aedes)
  const ids = Object.keys(clients)
  let n = 0
  for (let i = 0; i < ids.length; i++) {
    if (i % 1000 === 999) await new Promise(resolve => setImmediate(resolve))
    const client = clients[ids[i]]
    if (client !== undefined) n += cleanSubscriptionsOf(client)
  }
  return n
}

/** `cleanSubscriptions`: from liveCleanSubscriptions. */
export function takeSnapshot (totals: Totals, aedes: Aedes, store: MetricsStore, overview: Pick<SessionsOverview, 'offline'>, cleanSubscriptions: number): Snapshot {
  const stats = store.stats()
  const mem = process.memoryUsage()
  const connected = aedes.connectedClients
  return {
    time: Date.now(),
    uptimeSeconds: Math.floor((Date.now() - totals.startedAt) / 1000),
    clients: {
      connected,
      disconnected: overview.offline,
      total: connected + overview.offline,
      maximum: totals.maxConnected,
      accepted: totals.connections,
      refused: sum(totals.refused.values()),
      kicked: totals.kicked,
      byProtocol: { '3.1': totals.connectedByLevel[3], '3.1.1': totals.connectedByLevel[4], 5: totals.connectedByLevel[5] }
    },
    packets: { received: totals.in.packetCount, sent: totals.out.packetCount },
    messages: { received: [...totals.in.messages], sent: [...totals.out.messages], dropped: stats.droppedMessages },
    payloadBytes: { received: [...totals.in.payloadBytes], sent: [...totals.out.payloadBytes] },
    bytes: { received: totals.in.bytes, sent: totals.out.bytes },
    retained: stats.retained,
    subscriptions: stats.subscriptions + cleanSubscriptions,
    sessions: { persistent: stats.sessions },
    queued: { messages: stats.queuedMessages, bytes: stats.queuedBytes },
    inflight: { out: totals.inflightOut, in: totals.inflightIn },
    store: { writeBatches: stats.writeBatches, writeFailures: stats.writeFailures, droppedMessages: stats.droppedMessages },
    authFailures: sum(totals.authFailures.values()),
    memory: { heapUsed: mem.heapUsed, rss: mem.rss }
  }
}
