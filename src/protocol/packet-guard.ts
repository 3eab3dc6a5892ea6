import type { Client } from 'aedes'
import { isUtf8 } from 'node:buffer'
import { internals, type MqttParser } from './aedes-internals.js'
import { tapPackets } from './packet-tap.js'

/**
 * Checks every parsed packet before aedes handles it, for the protocol violations that mqtt-packet parses without
 * complaint and aedes acts on. A violating packet has its command replaced, so aedes' dispatcher closes the
 * connection without answering it, as the specification requires [MQTT-4.8.0-1].
 */
interface ParsedPacket {
  cmd: string
  topic?: string
  qos?: number
  dup?: boolean
  messageId?: number
  clientId?: string
  username?: string
  subscriptions?: Array<{ topic: string, qos: number }>
  unsubscriptions?: string[]
  will?: { topic: string, qos: number } | null
}

const NUL = '\u0000'
const PACKET_ID_0 = 'packet identifier 0'
const NO_FILTERS = 'SUBSCRIBE without topic filters'
const NO_UNSUBSCRIBE_FILTERS = 'UNSUBSCRIBE without topic filters'
const DUP_AT_QOS_0 = 'DUP 1 on a QoS 0 PUBLISH'
const SECOND_CONNECT = 'a second CONNECT'

/**
 * What MQTT 5 calls a Protocol Error (a well-formed packet the protocol does not allow: §2.2.1, §3.8.3, §3.10.3);
 * every other violation here is a Malformed Packet (bytes that do not decode as MQTT: §1.5.4, §3.1.2.6).
 */
export type ViolationKind = 'malformed' | 'protocol-error'
const PROTOCOL_ERRORS: ReadonlySet<string> = new Set([PACKET_ID_0, NO_FILTERS, NO_UNSUBSCRIBE_FILTERS, DUP_AT_QOS_0, SECOND_CONNECT])

/** Decoded text that may stand for bytes that were not UTF-8: only then are the bytes themselves checked. */
export function mayBeMalformed (text: string): boolean {
  return text.includes('\uFFFD')
}

export function violation (packet: ParsedPacket): string | undefined {
  switch (packet.cmd) {
    case 'connect':
      // [MQTT-1.5.3-2]
      if (packet.clientId?.includes(NUL) === true || packet.username?.includes(NUL) === true) return 'U+0000 in the client identifier or user name'
      if (packet.will != null) {
        // [MQTT-3.1.2-14]
        if (packet.will.qos > 2) return 'will QoS 3'
        if (packet.will.topic.includes(NUL) || /[+#]/.test(packet.will.topic)) return 'invalid will topic'
      }
      return undefined
    case 'publish':
      // [MQTT-2.3.1-1]
      if ((packet.qos ?? 0) > 0 && packet.messageId === 0) return PACKET_ID_0
      // [MQTT-3.3.1-2]: only a resend of an unacknowledged QoS 1/2 PUBLISH is a duplicate
      if (packet.qos === 0 && packet.dup === true) return DUP_AT_QOS_0
      // [MQTT-4.7.3-2], [MQTT-1.5.3-2]
      return packet.topic?.includes(NUL) === true ? 'U+0000 in a topic name' : undefined
    case 'subscribe':
      if (packet.messageId === 0) return PACKET_ID_0
      // [MQTT-3.8.3-3]
      if (packet.subscriptions === undefined || packet.subscriptions.length === 0) return NO_FILTERS
      return packet.subscriptions.some(s => s.topic.includes(NUL)) ? 'U+0000 in a topic filter' : undefined
    case 'unsubscribe':
      if (packet.messageId === 0) return PACKET_ID_0
      // [MQTT-3.10.3-2]
      if (packet.unsubscriptions === undefined || packet.unsubscriptions.length === 0) return NO_UNSUBSCRIBE_FILTERS
      return packet.unsubscriptions.some(f => f.includes(NUL)) ? 'U+0000 in a topic filter' : undefined
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      // an acknowledgement answers a packet that had a non-zero identifier [MQTT-2.3.1-1]
      return packet.messageId === 0 ? PACKET_ID_0 : undefined
    default:
      return undefined
  }
}

/**
 * Notes the packet being parsed when a string mqtt-packet reads (client id, will topic, user name, topic names and
 * filters) is not well-formed UTF-8 [MQTT-1.5.3-1]: mqtt-packet decodes such bytes to U+FFFD without complaint, so
 * the check is on the bytes, as each string is read. The fast path hands a PUBLISH whose topic may be malformed to
 * mqtt-packet (src/protocol/fast-parser.ts), so every string of every packet passes here. Returns whether a packet
 * was so noted (one per connection is enough: the connection closes on it).
 */
function checkStringBytes (parser: MqttParser): (packet: object) => boolean {
  let malformed: object | undefined
  const parseString = parser._parseString
  parser._parseString = function checkedParseString (this: MqttParser): string | null {
    const start = this._pos
    const text = parseString.call(this)
    // start + 2: past the string's length prefix
    if (text !== null && mayBeMalformed(text) && !isUtf8(this._list.slice(start + 2, this._pos))) malformed = this.packet
    return text
  }
  return packet => packet === malformed
}

export function guardPackets (client: Client, onViolation: (client: Client, reason: string, kind: ViolationKind) => void): void {
  const parser = internals(client)._parser
  const isMalformed = checkStringBytes(parser)
  const state = internals(client)
  tapPackets(client, (packet: ParsedPacket) => {
    // [MQTT-3.1.0-2]: aedes closes on it too, but without saying why
    const reason = isMalformed(packet)
      ? 'a string that is not well-formed UTF-8'
      : packet.cmd === 'connect' && state.connackSent ? SECOND_CONNECT : violation(packet)
    if (reason !== undefined) {
      onViolation(client, reason, PROTOCOL_ERRORS.has(reason) ? 'protocol-error' : 'malformed')
      packet.cmd = 'protocol-violation'
      return
    }
    // The DUP flag belongs to one hop: subscribers get DUP=0 unless Culex itself resends [MQTT-3.3.1-3].
    if (packet.cmd === 'publish') packet.dup = false
  })
}
