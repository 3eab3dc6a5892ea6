import type { TLSSocket } from 'node:tls'
import type { Readable } from 'node:stream'
import type { ListenerName } from './listener.js'

/**
 * What a listener knows about a connection that aedes does not pass on: which listener accepted it and, for TLS,
 * the socket whose peer certificate identifies the client. Keyed by the stream handed to aedes (client.conn).
 */
export interface ConnectionInfo {
  readonly listener: ListenerName
  readonly remoteAddress: string | undefined
  /** The TLS socket (mqtts, wss), for the client certificate. */
  readonly tlsSocket: TLSSocket | undefined
}

const infos = new WeakMap<object, ConnectionInfo>()

export function tagConnection (stream: Readable, info: ConnectionInfo): void {
  infos.set(stream, info)
}

export function connectionInfo (stream: object): ConnectionInfo | undefined {
  return infos.get(stream)
}
