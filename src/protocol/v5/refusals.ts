import type { Client } from 'aedes'
import type { DropReason, PublishDrop } from '../../hook-chain.js'
import { v5Of, type V5Connection } from './connection.js'
import type { AedesPacket } from './outgoing.js'

/**
 * The PUBACK/PUBREC reason code of each reason Culex refuses a publish for (MQTT 5 §3.4.2.1 and §3.5.2.1 list what
 * they may say): a `$` topic is a Topic Name the server does not accept (0x90), the ACL's refusal is Not authorized
 * (0x87), a payload the rules refuse is Payload format invalid (0x99), and a payload over a size limit is Quota
 * exceeded (0x97; Packet too large, 0x95, exists only in CONNACK and DISCONNECT).
 */
const REFUSAL_REASON: Readonly<Record<DropReason, number>> = {
  'reserved-topic': 0x90,
  unauthorized: 0x87,
  'invalid-payload': 0x99,
  'too-large': 0x97
}

/** The reason code a v5 publisher is told for a refused publish (PUBACK/PUBREC, or DISCONNECT when that closes it). */
export function publishReasonCode (drop: DropReason): number {
  return REFUSAL_REASON[drop]
}

const SUCCESS = 0x00
/** The message was accepted and nobody subscribes to its topic (a success: the flow goes on). */
const NO_MATCHING_SUBSCRIBERS = 0x10
/** PUBCOMP for a PUBREL whose flow is not known (here: a refusing PUBREC ended it). */
const PACKET_IDENTIFIER_NOT_FOUND = 0x92

/** What the acknowledgement of one incoming QoS 1/2 PUBLISH says; `release` ends aedes' QoS 2 state for it. */
interface AckReason { reasonCode: number, reasonString: string, release?: () => void }

const reasons = new WeakMap<V5Connection, Map<number, AckReason>>()
/** Packet ids whose QoS 2 flow a refusing PUBREC ended, until the client uses them again. */
const ended = new WeakMap<V5Connection, Set<number>>()

function note (client: Client | null, packet: { qos: number, messageId?: number }, reason: AckReason): void {
  const connection = client === null ? undefined : v5Of(client)
  if (connection === undefined || packet.qos === 0 || packet.messageId === undefined) return
  let map = reasons.get(connection)
  if (map === undefined) reasons.set(connection, map = new Map())
  map.set(packet.messageId, reason)
}

/**
 * A v5 client's QoS 1/2 PUBLISH that the publish chain refused: its PUBACK or PUBREC, which aedes writes as for any
 * accepted publish, carries the reason code and, unless the client asked for no problem information, the reason as
 * a Reason String. A refusing PUBREC ends the QoS 2 flow (MQTT 5 §4.3.3): `release` gives up aedes' state for it
 * as the PUBREC is written, so the client may use the id again at once, and a PUBREL for it gets PUBCOMP 0x92.
 */
export function noteRefusedPublish (client: Client | null, packet: { qos: number, messageId?: number }, drop: PublishDrop, release?: () => void): void {
  note(client, packet, { reasonCode: REFUSAL_REASON[drop.drop], reasonString: `${drop.drop}: ${drop.detail}`, release })
}

/** An accepted v5 publish that no subscription matched: PUBACK/PUBREC 0x10 (known only when it is looked up). */
export function noteNoSubscribers (client: Client | null, packet: { qos: number, messageId?: number }): void {
  note(client, packet, { reasonCode: NO_MATCHING_SUBSCRIBERS, reasonString: 'no-subscribers: no subscription matches the topic' })
}

/**
 * Whether acknowledgementV5 would answer this PUBACK, PUBREC or PUBCOMP with reason code 0x00 and nothing else, and
 * change nothing: no reason is noted for its packet id, and (PUBREC, PUBCOMP) no QoS 2 flow of that id was ended by
 * a refusing PUBREC. The MQTT 5 writer writes those as their four bytes (writer.ts) without calling it.
 */
export function isPlainSuccess (connection: V5Connection, cmd: string, id: number): boolean {
  if (cmd !== 'puback' && ended.get(connection)?.has(id) === true) return false
  return cmd === 'pubcomp' || reasons.get(connection)?.has(id) !== true
}

/** The MQTT 5 PUBACK, PUBREC or PUBCOMP for what aedes writes (outgoing.ts). */
export function acknowledgementV5 (packet: AedesPacket, connection: V5Connection): AedesPacket {
  const id = packet.messageId
  if (id === undefined || packet.reasonCode !== undefined) return packet
  if (packet.cmd === 'pubcomp') {
    const gone = ended.get(connection)?.delete(id) === true
    return { ...packet, reasonCode: gone ? PACKET_IDENTIFIER_NOT_FOUND : SUCCESS }
  }
  if (packet.cmd === 'pubrec') ended.get(connection)?.delete(id)
  const map = reasons.get(connection)
  const reason = map?.get(id)
  if (reason === undefined) return { ...packet, reasonCode: SUCCESS }
  map?.delete(id)
  if (packet.cmd === 'pubrec' && reason.reasonCode >= 0x80) {
    reason.release?.()
    let ids = ended.get(connection)
    if (ids === undefined) ended.set(connection, ids = new Set())
    ids.add(id)
  }
  // [MQTT-3.1.2-29]: no Reason String when the client asked for no problem information
  return connection.connect.requestProblemInformation
    ? { ...packet, reasonCode: reason.reasonCode, properties: { reasonString: reason.reasonString } }
    : { ...packet, reasonCode: reason.reasonCode }
}
