import type { Client } from 'aedes'
import type { DropReason, PublishDrop } from '../../hook-chain.js'
import { v5Of } from './connection.js'

/**
 * The PUBACK reason code of each reason Culex refuses a publish for (MQTT 5 §3.4.2.1 lists what a PUBACK may say):
 * a `$` topic is a Topic Name the server does not accept (0x90), the ACL's refusal is Not authorized (0x87), a
 * payload the rules refuse is Payload format invalid (0x99), and a payload over a size limit is Quota exceeded
 * (0x97; Packet too large, 0x95, exists only in CONNACK and DISCONNECT).
 */
const PUBACK_REASON: Readonly<Record<DropReason, number>> = {
  'reserved-topic': 0x90,
  unauthorized: 0x87,
  'invalid-payload': 0x99,
  'too-large': 0x97
}

/** The reason code a v5 publisher is told for a refused publish (PUBACK, or DISCONNECT when that closes it). */
export function publishReasonCode (drop: DropReason): number {
  return PUBACK_REASON[drop]
}

/**
 * A v5 client's QoS 1 PUBLISH that the publish chain refused: its PUBACK, which aedes writes as for any accepted
 * publish, carries the reason code and, unless the client asked for no problem information, the reason as a Reason
 * String (outgoing.ts). A refused QoS 2 PUBLISH is still answered PUBREC 0x00: a failure code there ends the flow,
 * and aedes would keep the message's QoS 2 state waiting for a PUBREL that never comes.
 */
export function noteRefusedPublish (client: Client | null, packet: { qos: number, messageId?: number }, drop: PublishDrop): void {
  const connection = client === null ? undefined : v5Of(client)
  if (connection === undefined || packet.qos !== 1 || packet.messageId === undefined) return
  connection.refusedPublishes.set(packet.messageId, { reasonCode: PUBACK_REASON[drop.drop], reasonString: `${drop.drop}: ${drop.detail}` })
}
