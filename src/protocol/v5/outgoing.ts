import { connackV5 } from './connack.js'
import { forwardableBytes } from './publish-properties.js'
import { acknowledgementV5 } from './refusals.js'
import type { V5Connection } from './connection.js'
import { subackV5 } from './suback.js'

/** A packet as aedes writes it (lib/write.js): an MQTT 3.1.1 packet object of mqtt-packet's shape. */
export interface AedesPacket {
  cmd: string
  messageId?: number
  returnCode?: number
  sessionPresent?: boolean
  granted?: number[]
  properties?: Record<string, unknown>
  reasonCode?: number
  [key: string]: unknown
}

const SUCCESS = 0x00

/**
 * The PUBLISH properties that travel from publisher to subscriber (MQTT 5 §3.3.2.3). Message Expiry Interval goes as
 * the copy has it: as published on a live delivery, counted down by the queue replay (store/outgoing-replay.ts), the
 * retained store and a shared group. Topic Alias belongs to one connection and Subscription Identifier is the
 * subscriber's: neither is forwarded; the delivery router and the replay set the receiving connection's own
 * (topic-aliases.ts, subscription-ids.ts).
 */
const FORWARDED = ['payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'userProperties'] as const

export function forwardedProperties (properties: unknown): Record<string, unknown> | undefined {
  if (properties === null || typeof properties !== 'object') return undefined
  const from = properties as Record<string, unknown>
  let out: Record<string, unknown> | undefined
  for (const key of FORWARDED) {
    if (from[key] !== undefined) (out ??= {})[key] = from[key]
  }
  return out
}

/**
 * The properties of a copy for an MQTT 5 subscriber: the publisher's property block itself when it may go on as it
 * came (publish-properties.ts: written as its bytes, never decoded), else the forwarded ones. The block is shared by
 * every copy of the message: properties of one receiver's own (Subscription Identifiers, a Topic Alias) go in a new
 * object (withSubscriptionIds, OutgoingAliases.apply), never into this one.
 */
export function subscriberProperties (given: unknown): Record<string, unknown> | undefined {
  return forwardableBytes(given) !== undefined ? given as Record<string, unknown> : forwardedProperties(given)
}

/** A copy of a PUBLISH for an MQTT 5 subscriber: its forwarded properties only (subscriberProperties), or none. */
export function withForwardedProperties<T extends object> (packet: T): T {
  const given = (packet as { properties?: unknown }).properties
  if (given === undefined) return packet
  return { ...packet, properties: subscriberProperties(given) }
}

/**
 * The MQTT 5 form of a packet aedes writes to a v5 client. aedes 1.2 builds every packet for MQTT 3.1.1; what MQTT 5
 * adds is filled in here: the CONNACK's reason code and properties, a reason code on each acknowledgement (0x00, or
 * for a refused or unmatched QoS 1/2 publish its reason: refusals.ts), one UNSUBACK code per filter (accept.ts notes them), and only the
 * forwarded properties on a PUBLISH. The packet aedes built is not changed: its listeners ('connackSent') see it as they always did.
 */
export function toV5 (packet: AedesPacket, connection: V5Connection): AedesPacket {
  switch (packet.cmd) {
    case 'connack':
      return connackV5(packet, connection, connection.server) as unknown as AedesPacket
    case 'puback':
    case 'pubrec':
    case 'pubcomp':
      return acknowledgementV5(packet, connection)
    case 'pubrel':
      return packet.reasonCode === undefined ? { ...packet, reasonCode: 0 } : packet
    case 'unsuback': {
      const id = packet.messageId ?? 0
      const codes = connection.unsubscribes.get(id) ?? [SUCCESS]
      connection.unsubscribes.delete(id)
      return { ...packet, granted: codes }
    }
    case 'publish':
      return withForwardedProperties(packet)
    case 'disconnect':
      return packet.reasonCode === undefined ? { ...packet, reasonCode: 0 } : packet
    case 'suback':
      return subackV5(packet, connection)
    default:
      // PINGRESP is the same packet
      return packet
  }
}
