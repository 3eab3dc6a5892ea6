import type { AuthMethods } from '../auth/methods.js'
import type { StreamAppends, WritesAfterEnqueue } from './publish-gate.js'
import type { UndeliveredSink } from './undelivered.js'
import { sessionExpirySeconds, type V5ServerInfo } from './v5/connack.js'
import type { ReasonCodesSent } from './v5/reason-counts.js'

/**
 * What the protocol layer is configured with, and what MQTT 5 clients are told of it. Apart from hooks.ts because
 * turning configuration into the limits a CONNACK announces is pure arithmetic, with no aedes in it.
 */
export interface ProtocolOptions {
  /** mqtt.maxPendingBeforeConnackBytes: packets a client may send after CONNECT before its CONNACK, in bytes. */
  maxPendingBeforeConnackBytes: number
  /** sessions.expiryMs: how long a persistent session is kept, told to MQTT 5 clients in CONNACK. */
  sessionExpiryMs: number
  /** mqtt.maxInflightInboundMessages (0 = unlimited): an MQTT 5 client's Receive Maximum. */
  maxInflightInboundMessages: number
  /** mqtt.topicAliasMaximum: MQTT 5 Topic Aliases per connection, each way. */
  topicAliasMaximum: number
  /** The largest Remaining Length read before a connection is closed (the listeners' guard). */
  maxRemainingLength: number
  /** limits.minKeepaliveSeconds and limits.maxKeepaliveSeconds. */
  minKeepaliveSeconds: number
  maxKeepaliveSeconds: number
  /** mqtt.responseTopicPrefix: MQTT 5 Response Information ('' = none). */
  responseTopicPrefix: string
  /** MQTT 5 enhanced authentication: the methods offered, and how long each AUTH of a client is waited for. */
  authMethods: AuthMethods
  authTimeoutMs: number
  /** limits.maxInflightMessages and limits.maxInflightBytes: what may wait for room in an MQTT 5 Receive Maximum. */
  maxInflightMessages: number
  maxInflightBytes: number
  /** Where copies a client did not get are reported (the dead-letter feature). */
  undelivered: UndeliveredSink
  /** sessions.queueQos0: a persistent session's queue also holds QoS 0 copies. */
  queueQos0: boolean
  /** Whether other features write a publish after its enqueue (publish-gate.ts: where a QoS 2 record is written). */
  writesAfterEnqueue: WritesAfterEnqueue
  /** Cluster mode: a QoS 2 message's entries for the other nodes' streams, written with its publisher's record. */
  streamAppends?: StreamAppends
}

/** The largest Remaining Length MQTT can encode: a packet limit this high is no limit. */
const MQTT_MAX_REMAINING_LENGTH = 268_435_455

/** The server's side of every MQTT 5 connection (v5/accept.ts): its limits in the units CONNACK carries them in. */
export function v5ServerInfo (opts: ProtocolOptions, reasonCodesSent: ReasonCodesSent): V5ServerInfo {
  return {
    sessionExpirySeconds: sessionExpirySeconds(opts.sessionExpiryMs),
    receiveMaximum: opts.maxInflightInboundMessages > 0 ? Math.min(opts.maxInflightInboundMessages, 65_535) : undefined,
    // a packet of this many bytes has a Remaining Length of at most this less its two shortest header bytes
    maximumPacketSize: opts.maxRemainingLength >= MQTT_MAX_REMAINING_LENGTH ? undefined : opts.maxRemainingLength + 2,
    minKeepaliveSeconds: opts.minKeepaliveSeconds,
    maxKeepaliveSeconds: opts.maxKeepaliveSeconds,
    responseTopicPrefix: opts.responseTopicPrefix,
    authMethods: opts.authMethods,
    authTimeoutMs: opts.authTimeoutMs,
    reasonCodesSent,
    topicAliasMaximum: opts.topicAliasMaximum
  }
}
