import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { FrameViolation } from '../limits/frame-scanner.js'

/** What aedes needs from a transport: a duplex stream per connection, with the HTTP request for WebSockets. */
export type ConnectionHandler = (stream: Duplex, req?: IncomingMessage) => void

export type ListenerName = 'mqtt' | 'mqtts' | 'ws' | 'wss'

export interface Listener {
  readonly name: ListenerName
  /** The bound address; the port is the real one when 0 was asked for. */
  readonly host: string
  readonly port: number
  /** Stops accepting and destroys the connections that are still open. */
  close: () => Promise<void>
}

export interface TlsFiles {
  certFile: string
  keyFile: string
  caFile: string
  requireClientCert: boolean
}

/** Policy every listener applies to a connection before aedes sees it (built by src/limits/connection-guard.ts). */
export interface ConnectionGuard {
  /** Called for each accepted socket before TLS or HTTP; returns its release function, or undefined to close it. */
  admit: (listener: ListenerName, socket: Socket) => (() => void) | undefined
  /** Largest Remaining Length of one MQTT packet; a connection declaring more is closed before it is buffered. */
  maxPacketBytes: number
  /** Told about each connection closed for an oversized or malformed packet header. */
  refused: (listener: ListenerName, remote: string | undefined, violation: FrameViolation) => void
  /** Tells the client on this stream why it is closed for that header, just before (an MQTT 5 DISCONNECT). */
  farewell?: (stream: Duplex, violation: FrameViolation) => void
  /** Told about an error of a listening server after it bound (accept failures such as EMFILE); it keeps listening. */
  acceptFailed: (listener: ListenerName, err: NodeJS.ErrnoException) => void
  /** TLS handshakes and WebSocket upgrades must finish within this (mqtt.connectTimeoutMs). */
  handshakeTimeoutMs: number
}
