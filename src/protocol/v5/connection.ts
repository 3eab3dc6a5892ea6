import type { Client } from 'aedes'
import type { V5ServerInfo } from './connack.js'

/** What a v5 client asked for in its CONNECT, kept for the stages of MQTT 5 that honour it (docs/protocol.md). */
export interface V5Connect {
  cleanStart: boolean
  /** Seconds; 0 = the session ends with the connection, 0xFFFFFFFF = never. */
  sessionExpiryInterval: number
  /** QoS 1/2 PUBLISHes the client accepts unacknowledged; 65535 when it set none. */
  receiveMaximum: number
  /** The largest packet the client accepts, in bytes; undefined = no limit beyond the protocol's. */
  maximumPacketSize: number | undefined
  /** Topic aliases the client accepts from the server; 0 = none. */
  topicAliasMaximum: number
  requestResponseInformation: boolean
  requestProblemInformation: boolean
  userProperties: Record<string, string | string[]> | undefined
  authenticationMethod: string | undefined
  /** The client sent an empty identifier and was given one. */
  assignedClientId: boolean
}

/** One MQTT 5 connection: present on a client (and its stream) exactly when it connected at protocol level 5. */
export interface V5Connection {
  client: Client
  connect: V5Connect
  /** What the broker this client connected to does, for its CONNACK. */
  server: V5ServerInfo
  /**
   * The Session Expiry Interval in force, in seconds (0xFFFFFFFF = never): the one granted in CONNACK, then the
   * one the client's DISCONNECT sets (at most sessions.expiryMs). The session store records it (sessions/hooks.ts).
   */
  sessionExpiry: number
  /** Packet identifier of each UNSUBSCRIBE not answered yet → the UNSUBACK's reason code for each of its filters. */
  unsubscribes: Map<number, number[]>
  /** The keepalive the server uses instead of the client's, which was outside the limits; told in CONNACK. */
  serverKeepAlive?: number
  /** A CONNACK reason code of MQTT 5 only that refuses this client, set before its login is decided. */
  refusal?: number
  /** The server has told the client why it closes the connection (disconnect.ts): it says so once. */
  disconnectSent: boolean
}

/**
 * Symbol-keyed, not a WeakMap: aedes writes every acknowledgement through the connection's stream and the router
 * every delivery, and for an MQTT 3.1.1 client the check is one missing-property read.
 */
const V5 = Symbol('culex.mqtt5')
type Marked = { [V5]?: V5Connection }

export function markV5 (client: Client, connect: V5Connect, server: V5ServerInfo, sessionExpiry: number): V5Connection {
  const connection: V5Connection = { client, connect, server, sessionExpiry, unsubscribes: new Map(), disconnectSent: false }
  ;(client as Client & Marked)[V5] = connection
  ;(client.conn as unknown as Marked)[V5] = connection
  return connection
}

export function v5Of (client: Client): V5Connection | undefined {
  return (client as Client & Marked)[V5]
}

/** The v5 connection a stream belongs to, if its client connected at level 5. */
export function v5OfStream (stream: object): V5Connection | undefined {
  return (stream as Marked)[V5]
}

export function isV5 (client: Client): boolean {
  return (client as Client & Marked)[V5] !== undefined
}
