import net from 'node:net'
import tls, { type TlsOptions } from 'node:tls'
import type { ConnectionHandler, Listener, ListenerName } from './listener.js'
import { bind, trackSockets } from './bind.js'

export interface TcpListenerOptions {
  name: ListenerName
  host: string
  port: number
  /** Present for mqtts. */
  tls?: TlsOptions
}

export async function listenTcp (opts: TcpListenerOptions, handle: ConnectionHandler): Promise<Listener> {
  const server = opts.tls === undefined
    ? net.createServer(socket => handle(socket))
    : tls.createServer(opts.tls, socket => handle(socket))
  // MQTT packets are small and latency-sensitive; Nagle only adds delay here.
  server.on('connection', (socket: net.Socket) => socket.setNoDelay(true))
  // A failed TLS handshake is the client's problem; it must not reach the process.
  server.on('tlsClientError', (_err, socket) => socket.destroy())
  const sockets = trackSockets(server, opts.tls === undefined ? 'connection' : 'secureConnection')
  const address = await bind(server, opts.name, opts.host, opts.port)
  return {
    name: opts.name,
    host: address.address,
    port: address.port,
    close: async () => {
      await new Promise<void>(resolve => {
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      })
    }
  }
}
