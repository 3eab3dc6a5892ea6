import mqtt from 'mqtt-packet'
import type { Client } from 'aedes'
import { v5Of } from './connection.js'

/** DISCONNECT reason codes the server sends (MQTT 5 §3.14.2.1). */
export const PROTOCOL_ERROR = 0x82
export const SERVER_SHUTTING_DOWN = 0x8B
export const KEEP_ALIVE_TIMEOUT = 0x8D
export const SESSION_TAKEN_OVER = 0x8E
export const ADMINISTRATIVE_ACTION = 0x98

/**
 * Tells an MQTT 5 client why the server is closing its connection: one DISCONNECT with the reason code, written just
 * before the connection is closed. aedes 1.2 never sends DISCONNECT; an MQTT 3.1.1 client gets none (3.1.1 has no
 * server DISCONNECT), nor does a connection already closing.
 */
export function sendDisconnect (client: Client, reasonCode: number): void {
  const connection = v5Of(client)
  if (connection === undefined || connection.disconnectSent || client.closed || !client.conn.writable) return
  connection.disconnectSent = true
  client.conn.write(mqtt.generate({ cmd: 'disconnect', reasonCode }, { protocolVersion: 5 }))
}
