import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import type { ConnectionGuard, ConnectionHandler, Listener } from './listener.js'
import { listenTcp } from './tcp.js'
import { listenWebSocket } from './websocket.js'
import { readTlsOptions } from './tls-options.js'

export type { Listener, ConnectionHandler, ConnectionGuard } from './listener.js'

// WebSocket frames above this are refused before they are buffered (the ws default is 100 MiB).
const WS_MAX_FRAME_BYTES = 268_435_460

/** Starts every enabled listener; if one cannot bind, the ones already started are closed again. */
export async function startListeners (config: Config['listeners'], handle: ConnectionHandler, log: Logger, guard?: ConnectionGuard): Promise<Listener[]> {
  const started: Listener[] = []
  // One WebSocket message never needs to hold more than the largest MQTT packet the guard lets through.
  const wsMax = guard === undefined || guard.maxPacketBytes === 0 ? WS_MAX_FRAME_BYTES : Math.min(WS_MAX_FRAME_BYTES, guard.maxPacketBytes + 5)
  try {
    const l = config
    if (l.mqtt.enabled) started.push(await listenTcp({ name: 'mqtt', host: l.mqtt.host, port: l.mqtt.port, guard }, handle))
    if (l.mqtts.enabled) started.push(await listenTcp({ name: 'mqtts', host: l.mqtts.host, port: l.mqtts.port, tls: await readTlsOptions('mqtts', l.mqtts), guard }, handle))
    if (l.ws.enabled) started.push(await listenWebSocket({ name: 'ws', host: l.ws.host, port: l.ws.port, path: l.ws.path, maxPayloadBytes: wsMax, guard }, handle))
    if (l.wss.enabled) started.push(await listenWebSocket({ name: 'wss', host: l.wss.host, port: l.wss.port, path: l.wss.path, maxPayloadBytes: wsMax, tls: await readTlsOptions('wss', l.wss), guard }, handle))
  } catch (err) {
    await closeListeners(started)
    throw err
  }
  for (const s of started) log.info({ listener: s.name, host: s.host, port: s.port }, 'listening')
  return started
}

export async function closeListeners (listeners: readonly Listener[]): Promise<void> {
  await Promise.all([...listeners].reverse().map(async l => await l.close()))
}
