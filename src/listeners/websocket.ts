import http from 'node:http'
import https from 'node:https'
import type { TLSSocket, TlsOptions } from 'node:tls'
import type { Duplex } from 'node:stream'
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws'
import type { ConnectionGuard, ConnectionHandler, Listener, ListenerName } from './listener.js'
import { admitSocket, prepareStream } from './accept.js'
import { bind, trackSockets } from './bind.js'

export interface WebSocketListenerOptions {
  name: ListenerName
  host: string
  port: number
  path: string
  /** Largest WebSocket message accepted; bigger frames close the connection before they are buffered. */
  maxPayloadBytes: number
  tls?: TlsOptions
  /** Connection limits and the frame guard (src/limits). */
  guard?: ConnectionGuard
}

// Browsers and mqtt.js ask for "mqtt"; some older clients ask for "mqttv3.1".
const subprotocols = ['mqtt', 'mqttv3.1']

export async function listenWebSocket (opts: WebSocketListenerOptions, handle: ConnectionHandler): Promise<Listener> {
  const { guard } = opts
  const server = opts.tls === undefined ? http.createServer() : https.createServer({ handshakeTimeout: guard?.handshakeTimeoutMs, ...opts.tls })
  // Connection limits are applied before TLS or HTTP spends anything on the socket.
  server.on('connection', socket => { admitSocket(guard, opts.name, socket) })
  if (guard !== undefined) {
    // An upgrade request trickled in byte by byte must not hold the connection longer than a CONNECT may take.
    server.headersTimeout = guard.handshakeTimeoutMs
    server.requestTimeout = guard.handshakeTimeoutMs
  }
  server.on('request', (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
    res.end(`MQTT over WebSocket: connect with subprotocol "mqtt" to ${opts.path}\n`)
  })
  const wss = new WebSocketServer({
    server,
    path: opts.path,
    maxPayload: opts.maxPayloadBytes,
    perMessageDeflate: false,
    handleProtocols: (offered) => subprotocols.find(p => offered.has(p)) ?? false
  })
  wss.on('connection', (ws, req) => {
    const stream = createWebSocketStream(ws)
    sendWritesWhole(ws, stream)
    // Errors on one browser connection end that connection only.
    stream.on('error', () => stream.destroy())
    const tlsSocket = opts.tls === undefined ? undefined : req.socket as TLSSocket
    prepareStream(guard, stream, { listener: opts.name, remoteAddress: req.socket.remoteAddress, tlsSocket })
    handle(stream, req)
  })
  wss.on('error', () => { /* per-connection failures are handled on each stream */ })
  const stop = trackSockets(server)
  const address = await bind(server, opts.name, opts.host, opts.port, err => guard?.acceptFailed(opts.name, err))
  return {
    name: opts.name,
    host: address.address,
    port: address.port,
    close: async () => {
      for (const client of wss.clients) client.terminate()
      await new Promise<void>(resolve => wss.close(() => resolve()))
      await stop()
    }
  }
}

/**
 * ws's stream sends every write() as its own WebSocket message, and a packet is written in parts (mqtt-packet writes
 * header, topic and payload separately), so one PUBLISH left as 3–4 messages, each with its own frame and send, and
 * a client that reads a message as whole packets got fragments. Writes held together, by mqtt-packet's cork around
 * one packet or by write-batch.ts's cork around one event-loop turn, reach _writev at once: they go as one message.
 */
function sendWritesWhole (ws: WebSocket, stream: Duplex): void {
  stream._writev = (chunks, callback) => {
    ws.send(Buffer.concat(chunks.map(c => c.chunk as Buffer)), callback)
  }
}
