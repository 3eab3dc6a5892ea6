import type { Aedes, Client } from 'aedes'
import type { Logger } from './logger.js'
import { internals } from '../protocol/aedes-internals.js'

const disconnectReasons = new WeakMap<Client, string>()

/**
 * The child logger of one client under `root` (clientId and remote address on every line, and root's fields).
 * Made for each line rather than kept: a client logs a few lines in its life, and a child kept for every connection
 * cost every idle one a few hundred bytes.
 */
export function clientLogger (root: Logger, client: Client): Logger {
  return root.child({ clientId: client.id, remote: remoteAddress(client) })
}

export function remoteAddress (client: Client): string | undefined {
  const conn = client.conn as { remoteAddress?: string, remotePort?: number }
  const socket = client.req?.socket
  const address = conn.remoteAddress ?? socket?.remoteAddress
  const port = conn.remotePort ?? socket?.remotePort
  return address === undefined ? undefined : `${address}:${String(port)}`
}

/** A connection the peer dropped without DISCONNECT: an everyday event on real networks, not a broker problem. */
const abruptCloses = new Set(['ECONNRESET', 'EPIPE'])

/**
 * Logs the life of every connection: connects (with the user name the client logged in as, from `usernameOf`;
 * null for an anonymous client), disconnects with their reason, and errors.
 */
export function logClientEvents (broker: Aedes, root: Logger, usernameOf: (client: Client) => string | undefined): void {
  broker.on('client', client => {
    if (root.isLevelEnabled('info')) clientLogger(root, client).info({ username: usernameOf(client) ?? null, clean: client.clean, protocolVersion: client.version }, 'client connected')
  })
  broker.on('clientDisconnect', client => {
    if (!root.isLevelEnabled('info')) return
    const reason = disconnectReasons.get(client) ?? (internals(client)._disconnected === true ? 'client sent DISCONNECT' : 'connection closed')
    clientLogger(root, client).info({ reason }, 'client disconnected')
  })
  // Per-message lines only when asked for: the listeners cost time on the hot path even when nothing is written.
  if (root.isLevelEnabled('debug')) {
    broker.on('subscribe', (subs, client) => {
      clientLogger(root, client).debug({ filters: subs.map(s => ({ topic: s.topic, qos: s.qos })) }, 'subscribed')
    })
    broker.on('unsubscribe', (filters, client) => {
      clientLogger(root, client).debug({ filters }, 'unsubscribed')
    })
  }
  if (root.isLevelEnabled('trace')) {
    broker.on('publish', (packet, client) => {
      if (client === null) return
      clientLogger(root, client).trace({ topic: packet.topic, qos: packet.qos, retain: packet.retain, bytes: packet.payload.length }, 'message published')
    })
  }
  broker.on('keepaliveTimeout', client => {
    disconnectReasons.set(client, 'keepalive timeout')
  })
  broker.on('clientError', (client, err) => {
    const code = (err as NodeJS.ErrnoException).code
    disconnectReasons.set(client, err.message)
    if (code !== undefined && abruptCloses.has(code)) clientLogger(root, client).debug({ err: err.message, code }, 'connection dropped by the client')
    else clientLogger(root, client).warn({ err: err.message }, 'client error')
  })
  broker.on('connectionError', (client, err) => {
    const returnCode = (err as { returnCode?: number }).returnCode
    root.warn({ remote: remoteAddress(client), clientId: client.id ?? undefined, returnCode, err: err.message }, 'connection refused')
  })
}
