import mqtt from 'mqtt-packet'
import type { Client, Subscription } from 'aedes'
import { CONSUMED } from '../packet-tap.js'
import type { SubscribeRefusal, SubscribeRefusalReason } from '../../hook-chain.js'
import { v5Of, type V5Connection } from './connection.js'

/**
 * The SUBACK reason code of each reason Culex refuses a subscription for (MQTT 5 §3.9.3): the ACL's refusal is Not
 * authorized (0x87), a filter the broker does not take (over limits.maxTopicLength, a share name it cannot use) is
 * Topic Filter invalid (0x8F: "correctly formed but not allowed"), limits.maxSubscriptionsPerClient is Quota
 * exceeded (0x97). A refusal without a reason stays 0x80 (unspecified error), as an MQTT 3.1.1 client gets for all.
 */
const SUBACK_REASON: Readonly<Record<SubscribeRefusalReason, number>> = {
  unauthorized: 0x87,
  'filter-invalid': 0x8F,
  quota: 0x97
}
const REFUSED = 0x80

/** A refused subscription of a v5 client → its reason code and string; the SUBACK takes it from here. */
const refusals = new WeakMap<Subscription, { reasonCode: number, reasonString: string }>()

/** Told by the subscribe chain about every refused subscription that has a reason. */
export function noteRefusedSubscription (client: Client, sub: Subscription, refusal: SubscribeRefusal): void {
  if (v5Of(client) === undefined) return
  refusals.set(sub, { reasonCode: SUBACK_REASON[refusal.refuse], reasonString: `${refusal.refuse}: ${refusal.detail}` })
}

/** The SUBSCRIBE a v5 client sent, kept until its SUBACK (accept.ts screens it before aedes handles it). */
export function noteSubscribe (connection: V5Connection, packet: { messageId?: number, subscriptions?: Subscription[] }): void {
  if (packet.messageId !== undefined) connection.subscribes.set(packet.messageId, packet)
}

const PACKET_IDENTIFIER_IN_USE = 0x91

interface SubscribeOrUnsubscribe { cmd: string, messageId?: number, subscriptions?: unknown[], unsubscriptions?: unknown[] }

/**
 * A SUBSCRIBE or UNSUBSCRIBE whose packet identifier is that of one not answered yet (a client reusing an identifier
 * in use, [MQTT-2.2.1-3]) is answered at once with 0x91 (Packet Identifier in use) for each of its filters and not
 * handled: aedes would answer both, and the two answers could not be told apart. Returns whether it was so answered.
 */
export function answerIdentifierInUse (connection: V5Connection, packet: SubscribeOrUnsubscribe): boolean {
  const id = packet.messageId
  const subscribe = packet.cmd === 'subscribe'
  if (id === undefined || !(subscribe ? connection.subscribes.has(id) : connection.unsubscribes.has(id))) return false
  const filters = (subscribe ? packet.subscriptions : packet.unsubscriptions)?.length ?? 0
  const ack: { cmd: 'suback' | 'unsuback', messageId: number, granted: number[], properties?: { reasonString: string } } =
    { cmd: subscribe ? 'suback' : 'unsuback', messageId: id, granted: new Array<number>(filters).fill(PACKET_IDENTIFIER_IN_USE) }
  if (connection.connect.requestProblemInformation) ack.properties = { reasonString: `packet identifier ${id} is in use by a ${packet.cmd.toUpperCase()} not answered yet` }
  connection.server.reasonCodesSent.count(ack)
  connection.client.conn.write(mqtt.generate(ack as Parameters<typeof mqtt.generate>[0], { protocolVersion: 5 }))
  packet.cmd = CONSUMED
  return true
}

/**
 * aedes' SUBACK codes (QoS granted, or 0x80 for a refusal) with each refusal's reason code, in the order of the
 * SUBSCRIBE's filters as aedes answered them (it drops a repeated filter from the packet's list first), and the
 * reasons as one Reason String unless the client asked for no problem information [MQTT-3.1.2-29].
 */
export function subackV5<P extends { messageId?: number, granted?: number[], properties?: Record<string, unknown> }> (packet: P, connection: V5Connection): P {
  const id = packet.messageId ?? 0
  const subscribe = connection.subscribes.get(id)
  connection.subscribes.delete(id)
  const subs = subscribe?.subscriptions
  if (subs === undefined || packet.granted === undefined || !packet.granted.includes(REFUSED)) return packet
  const reasons: string[] = []
  const granted = packet.granted.map((code, i) => {
    const refusal = code === REFUSED ? refusals.get(subs[i]) : undefined
    if (refusal === undefined) return code
    reasons.push(`${subs[i].topic}: ${refusal.reasonString}`)
    return refusal.reasonCode
  })
  if (reasons.length === 0 || !connection.connect.requestProblemInformation) return { ...packet, granted }
  return { ...packet, granted, properties: { ...packet.properties, reasonString: reasons.join('; ') } }
}
