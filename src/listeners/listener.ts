import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'

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
