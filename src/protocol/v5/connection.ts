import type { Client, Subscription } from 'aedes'
import type { V5ServerInfo } from './connack.js'
import type { OutgoingAliases } from './topic-aliases.js'

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
  authenticationData: Buffer | undefined
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
  /** Packet identifier of each SUBSCRIBE not answered yet → the packet, for its SUBACK's reason codes (suback.ts). */
  subscribes: Map<number, { subscriptions?: Subscription[] }>
  /** The keepalive the server uses instead of the client's, which was outside the limits; told in CONNACK. */
  serverKeepAlive?: number
  /** A CONNACK reason code of MQTT 5 only that refuses this client, set before its login is decided. */
  refusal?: number
  /** Why, as the CONNACK's Reason String. */
  refusalReason?: string
  /** The server has told the client why it closes the connection (disconnect.ts): it says so once. */
  disconnectSent: boolean
  /** Enhanced authentication (enhanced-auth.ts): whom the method let in, and its data for the CONNACK. */
  authenticated?: { username: string | undefined, data: Buffer | undefined }
  /** A re-authentication (AUTH 0x19) is under way: another one is out of turn. */
  reauthenticating?: boolean
  /** An exchange waiting for the client's AUTH 0x18: called with its data (undefined: give up). */
  awaitingAuth?: (answer: { data: Buffer | undefined } | undefined) => void
  /** Filter → its Subscription Identifier, for the client's filters that have one (subscription-ids.ts). */
  subscriptionIds?: Map<string, number>
  /** Topic Alias → topic, as the client set them on its PUBLISHes (topic-aliases.ts). */
  aliasesIn?: Map<number, string>
  /** The aliases the server sets on PUBLISHes to the client; absent when it accepts none. */
  aliasesOut?: OutgoingAliases
}

/**
 * Symbol-keyed, not a WeakMap: aedes writes every acknowledgement through the connection's stream and the router
 * every delivery, and for an MQTT 3.1.1 client the check is one missing-property read.
 */
const V5 = Symbol('culex.mqtt5')
type Marked = { [V5]?: V5Connection }

export function markV5 (client: Client, connect: V5Connect, server: V5ServerInfo, sessionExpiry: number): V5Connection {
  const connection: V5Connection = { client, connect, server, sessionExpiry, unsubscribes: new Map(), subscribes: new Map(), disconnectSent: false }
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
