import mqtt from 'mqtt-packet'
import type { Client } from 'aedes'
import { internals } from '../aedes-internals.js'
import { v5Of, v5OfStream } from './connection.js'

/** DISCONNECT reason codes the server sends (MQTT 5 §3.14.2.1). */
export const MALFORMED_PACKET = 0x81
export const PROTOCOL_ERROR = 0x82
export const NOT_AUTHORIZED = 0x87
export const SERVER_SHUTTING_DOWN = 0x8B
export const KEEP_ALIVE_TIMEOUT = 0x8D
export const SESSION_TAKEN_OVER = 0x8E
export const RECEIVE_MAXIMUM_EXCEEDED = 0x93
export const TOPIC_ALIAS_INVALID = 0x94
export const PACKET_TOO_LARGE = 0x95
export const ADMINISTRATIVE_ACTION = 0x98

/**
 * Tells an MQTT 5 client why the server is closing its connection: one DISCONNECT with the reason code (and a
 * Reason String when there is more to say: allowed on DISCONNECT whatever Request Problem Information asked,
 * [MQTT-3.1.2-29]), written just before the connection is closed. aedes 1.2 never sends DISCONNECT; an MQTT 3.1.1
 * client gets none (3.1.1 has no server DISCONNECT), nor does a connection already closing, nor one before its
 * CONNACK 0 [MQTT-3.14.0-1].
 */
export function sendDisconnect (client: Client, reasonCode: number, reasonString?: string): void {
  const connection = v5Of(client)
  if (connection === undefined || connection.disconnectSent || !internals(client).connackSent || client.closed || !client.conn.writable) return
  connection.disconnectSent = true
  connection.server.reasonCodesSent.add('disconnect', reasonCode)
  const packet = reasonString === undefined ? { cmd: 'disconnect' as const, reasonCode } : { cmd: 'disconnect' as const, reasonCode, properties: { reasonString } }
  client.conn.write(mqtt.generate(packet, { protocolVersion: 5 }))
}

/** sendDisconnect for the connection on this stream, if it is an MQTT 5 client's (the listeners know streams only). */
export function sendDisconnectOnStream (stream: object, reasonCode: number, reasonString?: string): void {
  const connection = v5OfStream(stream)
  if (connection !== undefined) sendDisconnect(connection.client, reasonCode, reasonString)
}

/** The error aedes' PUBLISH handler (lib/handlers/publish.js) fails a client with past mqtt.maxInflightInboundMessages. */
const INFLIGHT_INBOUND_EXCEEDED = /^maxInflightInbound exceeded/

/**
 * A client with more QoS 2 PUBLISHes awaiting PUBREL than the Receive Maximum the server announced is told so with
 * DISCONNECT 0x93 (MQTT 5 §3.3.4) before aedes closes it. aedes fails the client with an error and destroys its
 * socket in the 'error' listener it registered first; this one runs before it, while the socket is still open (the
 * write batch flushes on destroy). Should aedes word the error otherwise, the connection still closes, unexplained.
 */
export function sayReceiveMaximumExceeded (client: Client): void {
  client.prependListener('error', (err: Error) => {
    if (INFLIGHT_INBOUND_EXCEEDED.test(err.message)) sendDisconnect(client, RECEIVE_MAXIMUM_EXCEEDED, err.message)
  })
}
