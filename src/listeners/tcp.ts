import net from 'node:net'
import tls, { type TLSSocket, type TlsOptions } from 'node:tls'
import type { ConnectionGuard, ConnectionHandler, Listener, ListenerName } from './listener.js'
import { admitSocket, prepareStream } from './accept.js'
import { bind, trackSockets } from './bind.js'

export interface TcpListenerOptions {
  name: ListenerName
  host: string
  port: number
  /** Present for mqtts. */
  tls?: TlsOptions
  /** Connection limits and the frame guard (src/limits). */
  guard?: ConnectionGuard
}

export async function listenTcp (opts: TcpListenerOptions, handle: ConnectionHandler): Promise<Listener> {
  const { guard } = opts
  const accept = (socket: net.Socket, tlsSocket?: TLSSocket): void => {
    prepareStream(guard, socket, { listener: opts.name, remoteAddress: socket.remoteAddress, tlsSocket })
    handle(socket)
  }
  // A handshake that never finishes must not hold a connection longer than a CONNECT that never comes.
  const server = opts.tls === undefined
    ? net.createServer()
    : tls.createServer({ handshakeTimeout: guard?.handshakeTimeoutMs, ...opts.tls }, (socket: TLSSocket) => accept(socket, socket))
  server.on('connection', (socket: net.Socket) => {
    // MQTT packets are small and latency-sensitive; Nagle only adds delay here.
    socket.setNoDelay(true)
    // Connection limits are applied before TLS spends anything on the socket.
    if (admitSocket(guard, opts.name, socket) && opts.tls === undefined) accept(socket)
  })
  // A failed TLS handshake is the client's problem; it must not reach the process.
  server.on('tlsClientError', (_err, socket) => socket.destroy())
  const stop = trackSockets(server)
  const address = await bind(server, opts.name, opts.host, opts.port, err => guard?.acceptFailed(opts.name, err))
  return {
    name: opts.name,
    host: address.address,
    port: address.port,
    close: stop
  }
}
