import type { Readable } from 'node:stream'
import type { Aedes, Client } from 'aedes'
import type { Logger } from '../log/logger.js'
import type { BrokerMetrics, MetricsStore } from '../metrics/index.js'
import { clientsOf } from '../metrics/snapshot.js'
import { recordConnected } from '../store/session-records.js'

/** The store operations the admin API uses (src/store/index.ts). */
export interface AdminStore extends MetricsStore {
  purgeSession: (clientId: string) => Promise<boolean>
  createRetainedStreamCombi: (patterns: string[]) => Readable
}

export interface ListenerInfo {
  name: string
  host: string
  port: number
  /** WebSocket listeners: the HTTP path of the MQTT endpoint. */
  path?: string
}

/** Everything the admin routes read or act on. */
export interface AdminDeps {
  aedes: Aedes
  store: AdminStore
  metrics: BrokerMetrics
  version: string
  /** The bound listeners (their real ports). */
  listeners: () => ListenerInfo[]
  authRequired: boolean
  sysIntervalMs: number
  /** The user name a client logged in as; undefined for an anonymous one. */
  usernameOf: (client: Client) => string | undefined
  log: Logger
  /** Tells a client it is being disconnected by an administrator (MQTT 5: DISCONNECT 0x98), before it is closed. */
  tellKicked?: (client: Client) => void
  /** Cluster mode: closes the client id's connection on the node it is connected to; whether one was found. */
  kickElsewhere?: (clientId: string) => Promise<boolean>
}

export function connectedClient (aedes: Aedes, clientId: string): Client | undefined {
  const client = clientsOf(aedes)[clientId]
  return client !== undefined && client.connected && !client.closed ? client : undefined
}

export function connectedClients (aedes: Aedes): Client[] {
  return Object.values(clientsOf(aedes)).filter(c => c.connected && !c.closed)
}

/** Whether a persistent session's client is connected: here, or (cluster mode) to any node, as its record says. */
export function sessionConnected (aedes: Aedes, info: { clientId: string, connectedAt?: number, disconnectedAt?: number }): boolean {
  return connectedClient(aedes, info.clientId) !== undefined || recordConnected(info)
}

/** Resolves once aedes has closed the client (its socket, its will, its deregistration); `tell` says why first. */
export async function closeClient (client: Client, tell?: (client: Client) => void): Promise<void> {
  tell?.(client)
  await new Promise<void>(resolve => client.close(() => resolve()))
}

/**
 * Closes the client id's connection, here or (cluster mode) on the node it is connected to; undefined when none was
 * found, else whether it was this node's (logged here; another node logs its own).
 */
export async function kickClient (deps: AdminDeps, clientId: string): Promise<{ clean: boolean } | { elsewhere: true } | undefined> {
  const client = connectedClient(deps.aedes, clientId)
  if (client !== undefined) {
    await closeClient(client, deps.tellKicked)
    deps.metrics.kicked()
    return { clean: client.clean }
  }
  if (await deps.kickElsewhere?.(clientId) !== true) return undefined
  deps.metrics.kicked()
  return { elsewhere: true }
}

/** The bound listeners as /api/info lists them (WebSocket ones with their path). */
export function listenerInfo (listeners: ReadonlyArray<{ name: string, host: string, port: number }>, paths: { ws: { path: string }, wss: { path: string } }): ListenerInfo[] {
  return listeners.map(l => ({
    name: l.name,
    host: l.host,
    port: l.port,
    ...(l.name === 'ws' || l.name === 'wss' ? { path: paths[l.name].path } : {})
  }))
}
