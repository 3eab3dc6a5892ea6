import type { Client } from 'aedes'
import type { LoginRefusal } from '../../hook-chain.js'
import type { AuthMethods } from '../../auth/methods.js'
import { v5Of, type V5Connection } from './connection.js'
import type { ReasonCodesSent } from './reason-counts.js'

/** What Culex does today that a v5 CONNACK must tell the client (the broker's settings, read once at start). */
export interface V5ServerInfo {
  /** How long Culex keeps a persistent session (sessions.expiryMs) in seconds; 0xFFFFFFFF when it never expires. */
  sessionExpirySeconds: number
  /** mqtt.maxInflightInboundMessages when it is a limit (QoS 2 messages awaiting PUBREL); undefined = none. */
  receiveMaximum: number | undefined
  /** The largest packet Culex reads before closing the connection, in bytes; undefined = the protocol's limit. */
  maximumPacketSize: number | undefined
  /** limits.minKeepaliveSeconds and limits.maxKeepaliveSeconds: a v5 client outside them is given a keepalive. */
  minKeepaliveSeconds: number
  maxKeepaliveSeconds: number
  /** mqtt.responseTopicPrefix: the Response Information a client that asks is given, before its id; '' = none. */
  responseTopicPrefix: string
  /** The enhanced authentication methods offered (src/auth/methods.ts). */
  authMethods: AuthMethods
  /** How long an enhanced authentication exchange waits for each AUTH of the client (mqtt.connectTimeoutMs). */
  authTimeoutMs: number
  /** The reason codes this broker sent to v5 clients (for /metrics). */
  reasonCodesSent: ReasonCodesSent
  /** mqtt.topicAliasMaximum: the Topic Aliases a client may set, and the most the server sets for one; 0 = none. */
  topicAliasMaximum: number
}

/**
 * The MQTT 3.1.1 return codes aedes and Culex's connect steps refuse with, as MQTT 5 reason codes: unacceptable
 * protocol version 0x84, identifier rejected 0x85, server unavailable 0x88, bad user name or password 0x86, not
 * authorized 0x87. Anything else is 0x80 (unspecified error).
 */
const REASON_OF_RETURN_CODE: readonly number[] = [0x00, 0x84, 0x85, 0x88, 0x86, 0x87]
const UNSPECIFIED_ERROR = 0x80
const NEVER_EXPIRES = 0xFFFFFFFF

export function connackReasonCode (returnCode: number): number {
  return REASON_OF_RETURN_CODE[returnCode] ?? UNSPECIFIED_ERROR
}

/** The CONNACK reason code of each refusal that says more than its MQTT 3.1.1 code (hook-chain.ts LoginRefusal). */
const LOGIN_REFUSAL_REASON: Readonly<Record<LoginRefusal['refuse'], number>> = {
  rate: 0x9F,
  'not-authorized': 0x87
}

/** Told by the authenticate chain about a refusal with a reason: a v5 client's CONNACK carries its code and detail. */
export function noteLoginRefusal (client: Client, refusal: LoginRefusal): void {
  const connection = v5Of(client)
  if (connection === undefined) return
  connection.refusal = LOGIN_REFUSAL_REASON[refusal.refuse]
  connection.refusalReason = refusal.detail
}

/**
 * The Session Expiry Interval Culex gives a v5 client, in seconds: the client's, at most sessions.expiryMs (the
 * broker's maximum). A client that sent an empty identifier is given one in CONNACK whatever its Clean Start (MQTT 5
 * §3.1.3.1, as Mosquitto does) and gets its interval too: the session is kept under the assigned identifier, which
 * the client resumes by connecting with it.
 */
export function grantedSessionExpiry (connect: V5Connection['connect'], server: V5ServerInfo): number {
  return Math.min(connect.sessionExpiryInterval, server.sessionExpirySeconds)
}

/**
 * Whether aedes is handed this v5 CONNECT as a persistent (clean=false) one: every session that may outlive or
 * precede the connection is. Clean Start 0 with an interval of 0 resumes a session that then ends with the
 * connection (sessions/hooks.ts removes it at once); Clean Start 1 with an interval starts a new one that is kept
 * (the old one is removed before aedes reads it, sessions/hooks.ts). Only Clean Start 1 with 0, or an empty
 * identifier (a new one, so no session to resume) with 0, is the clean session of MQTT 3.1.1.
 */
export function keepsSession (connection: V5Connection): boolean {
  return connection.sessionExpiry > 0 || !(connection.connect.cleanStart || connection.connect.assignedClientId)
}

export interface ConnackV5 {
  cmd: 'connack'
  reasonCode: number
  sessionPresent: boolean
  properties?: Record<string, unknown>
}

/**
 * aedes' CONNACK as MQTT 5, with the properties that tell the client what this broker does (MQTT 5 §3.2.2.3): an
 * absent property means its default, and a default that is not true here is sent explicitly.
 */
export function connackV5 (connack: { returnCode?: number, sessionPresent?: boolean }, connection: V5Connection, server: V5ServerInfo): ConnackV5 {
  const returnCode = connack.returnCode ?? 0
  if (returnCode !== 0) {
    const refused: ConnackV5 = { cmd: 'connack', reasonCode: connection.refusal ?? connackReasonCode(returnCode), sessionPresent: false }
    // a Reason String on CONNACK is allowed whatever Request Problem Information says [MQTT-3.1.2-29]
    if (connection.refusalReason !== undefined) refused.properties = { reasonString: connection.refusalReason }
    return refused
  }
  const reasonCode = 0
  const { connect, client } = connection
  const properties: Record<string, unknown> = {
    // retain, wildcard and shared subscriptions work as in MQTT 3.1.1; subscription identifiers are kept with the
    // subscription (subscription-ids.ts)
    retainAvailable: true,
    wildcardSubscriptionAvailable: true,
    sharedSubscriptionAvailable: true,
    subscriptionIdentifiersAvailable: true
  }
  // absent means 0: the client may set none
  if (server.topicAliasMaximum > 0) properties.topicAliasMaximum = server.topicAliasMaximum
  const expiry = grantedSessionExpiry(connect, server)
  // the server's interval replaces the client's (MQTT 5 §3.2.2.3.2)
  if (expiry !== connect.sessionExpiryInterval) properties.sessionExpiryInterval = expiry
  if (server.receiveMaximum !== undefined) properties.receiveMaximum = server.receiveMaximum
  if (server.maximumPacketSize !== undefined) properties.maximumPacketSize = server.maximumPacketSize
  if (connect.assignedClientId && client.id !== null) properties.assignedClientIdentifier = client.id
  if (connection.serverKeepAlive !== undefined) properties.serverKeepAlive = connection.serverKeepAlive
  if (connect.authenticationMethod !== undefined) properties.authenticationMethod = connect.authenticationMethod
  if (connection.authenticated?.data !== undefined) properties.authenticationData = connection.authenticated.data
  // MQTT 5 §4.10: the root of this client's response topics, only when it asked [MQTT-3.1.2-28]
  if (connect.requestResponseInformation && server.responseTopicPrefix !== '' && client.id !== null) properties.responseInformation = `${server.responseTopicPrefix}${client.id}/`
  return { cmd: 'connack', reasonCode, sessionPresent: connack.sessionPresent === true, properties }
}

/**
 * The keepalive a v5 client gets when the one it asked for is outside the limits (MQTT 5 §3.2.2.3.14): an MQTT
 * 3.1.1 client is refused instead, since it cannot be told. No keepalive (0) or one above the maximum becomes the
 * maximum, one under the minimum the minimum; undefined when the client's stands.
 */
export function serverKeepAlive (keepalive: number, server: V5ServerInfo): number | undefined {
  if (keepalive === 0) return server.minKeepaliveSeconds > 0 ? server.maxKeepaliveSeconds : undefined
  if (keepalive > server.maxKeepaliveSeconds) return server.maxKeepaliveSeconds
  if (keepalive < server.minKeepaliveSeconds) return server.minKeepaliveSeconds
  return undefined
}

/** sessions.expiryMs as a Session Expiry Interval. */
export function sessionExpirySeconds (expiryMs: number): number {
  return expiryMs === 0 ? NEVER_EXPIRES : Math.min(NEVER_EXPIRES - 1, Math.ceil(expiryMs / 1000))
}
