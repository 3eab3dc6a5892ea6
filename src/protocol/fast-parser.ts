import type { Client } from 'aedes'
import { isUtf8 } from 'node:buffer'
import { internals, newBufferList, type MqttParser } from './aedes-internals.js'
import { mayBeMalformed } from './packet-guard.js'
import { NOT_SCANNED, publishProperties, scanPublishProperties } from './v5/publish-properties.js'

/** The command of each fixed-header byte of a two-byte acknowledgement, with the flag bits MQTT 3.1.1 requires. */
const ACK_COMMANDS: ReadonlyMap<number, string> = new Map([[0x40, 'puback'], [0x50, 'pubrec'], [0x62, 'pubrel'], [0x70, 'pubcomp']])
/**
 * The MQTT 5 reason codes each acknowledgement may carry (MQTT 5 §3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1), as
 * mqtt-packet checks them; a code outside them is left to mqtt-packet, which refuses it.
 */
const PUBACK_PUBREC_CODES = new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99])
const PUBREL_PUBCOMP_CODES = new Set([0x00, 0x92])
const PUBLISH = 3
const PINGREQ = 0xc0

/** What nextPacket returns when it does not end a packet here. */
const OTHER = -1
const INCOMPLETE = -2

/**
 * A packet split across reads is kept here and joined with the next read; a larger one goes to mqtt-packet, whose
 * buffer list does not copy it again on every read.
 */
const MAX_HELD_BYTES = 64 * 1024

/**
 * Parses the packets a connection sends most — PUBLISH, the four acknowledgements, PINGREQ — without mqtt-packet.
 *
 * mqtt-packet spent about 2 µs on every packet (a buffer list, a state machine, a dozen debug calls), a sixth of
 * the broker's CPU at QoS 1. Each such packet is turned into the object mqtt-packet builds (same fields, same key
 * order, the payload a view of the read as mqtt-packet's is) and emitted the same way and in the same order, so
 * aedes and every listener see no difference. The first packet of any other kind, or one that is malformed in any
 * way, goes to mqtt-packet with everything after it, to be parsed or refused exactly as before; so does every read
 * while mqtt-packet holds part of a packet. The unit test feeds both parsers the same reads and compares every
 * packet and error.
 *
 * An MQTT 5 connection's PUBLISH and acknowledgements take the same path: an acknowledgement with a reason code and
 * no properties, a PUBLISH with its property block kept as it came (v5/publish-properties.ts: checked here, decoded
 * only when read) — anything else, an acknowledgement with properties included, goes to mqtt-packet.
 */
export function parseFast (client: Client): void {
  const parser = internals(client)._parser
  // nothing is held yet: the stream-less list holds the same bytes for a tenth of the memory
  if (parser._list.length === 0) parser._list = newBufferList()
  const parse = parser.parse
  let held: Buffer | undefined
  parser.parse = function parseFast (this: MqttParser, chunk: Buffer): number {
    let buf = chunk
    if (held !== undefined) {
      buf = Buffer.concat([held, chunk])
      held = undefined
    }
    if (this._list.length !== 0 || this._stateCounter !== 0 || this.error !== null) return parse.call(this, buf)
    const v5 = this.settings.protocolVersion === 5
    let at = 0
    while (at < buf.length) {
      const end = nextPacket(this, buf, at, v5)
      if (end === OTHER || (end === INCOMPLETE && buf.length - at > MAX_HELD_BYTES)) return parse.call(this, at === 0 ? buf : buf.subarray(at))
      if (end === INCOMPLETE) {
        held = at === 0 ? buf : buf.subarray(at)
        return held.length
      }
      at = end
    }
    return 0
  }
}

/** Emits the packet at `at` and returns where it ends, or OTHER (not one of ours, or malformed) or INCOMPLETE. */
function nextPacket (parser: MqttParser, buf: Buffer, at: number, v5: boolean): number {
  const first = buf[at]
  const publish = first >> 4 === PUBLISH
  if (!publish && first !== PINGREQ && !ACK_COMMANDS.has(first)) return OTHER
  let length = 0
  let multiplier = 1
  let i = at + 1
  for (let n = 0; ; n++) {
    if (i >= buf.length) return INCOMPLETE
    // a fifth length byte is malformed: mqtt-packet says so
    if (n === 4) return OTHER
    const byte = buf[i++]
    length += (byte & 0x7f) * multiplier
    multiplier *= 0x80
    if ((byte & 0x80) === 0) break
  }
  if (first === PINGREQ ? length !== 0 : !publish && (v5 ? length < 2 || length > 4 : length !== 2)) return OTHER
  const end = i + length
  if (end > buf.length) return INCOMPLETE
  if (first === PINGREQ) {
    parser.emit('packet', { cmd: 'pingreq', retain: false, qos: 0, dup: false, length: 0, topic: null, payload: null })
    return end
  }
  if (!publish) return v5 ? acknowledgementV5(parser, buf, first, i, length) : acknowledgement(parser, buf, first, i)
  const qos = (first >> 1) & 3
  if (qos === 3 || length < 2) return OTHER
  const topicEnd = i + 2 + buf.readUInt16BE(i)
  const idEnd = topicEnd + (qos > 0 ? 2 : 0)
  if (idEnd > end) return OTHER
  const retain = (first & 0x01) !== 0
  const dup = (first & 0x08) !== 0
  const topic = buf.toString('utf8', i + 2, topicEnd)
  // bytes that are not UTF-8: mqtt-packet parses the packet, and src/protocol/packet-guard.ts refuses it there
  if (mayBeMalformed(topic) && !isUtf8(buf.subarray(i + 2, topicEnd))) return OTHER
  if (v5) return publishV5(parser, buf, first, length, topic, topicEnd, idEnd, end)
  // the shape and key order of mqtt-packet's Packet, so the objects aedes handles keep one hidden class per kind
  if (qos === 0) {
    parser.emit('packet', { cmd: 'publish', retain, qos, dup, length, topic, payload: buf.subarray(topicEnd, end) })
  } else {
    parser.emit('packet', { cmd: 'publish', retain, qos, dup, length, topic, payload: buf.subarray(topicEnd + 2, end), messageId: buf.readUInt16BE(topicEnd) })
  }
  return end
}

function acknowledgement (parser: MqttParser, buf: Buffer, first: number, i: number): number {
  parser.emit('packet', { cmd: ACK_COMMANDS.get(first), retain: false, qos: (first >> 1) & 3, dup: false, length: 2, topic: null, payload: null, messageId: buf.readUInt16BE(i) })
  return i + 2
}

/**
 * An MQTT 5 acknowledgement: the packet identifier, then a reason code (0x00 when absent), then a Property Length,
 * here only 0 (MQTT 5 §3.4.2).
 */
function acknowledgementV5 (parser: MqttParser, buf: Buffer, first: number, i: number, length: number): number {
  const reasonCode = length > 2 ? buf[i + 2] : 0x00
  if (length === 4 && buf[i + 3] !== 0) return OTHER
  if (!(first === 0x40 || first === 0x50 ? PUBACK_PUBREC_CODES : PUBREL_PUBCOMP_CODES).has(reasonCode)) return OTHER
  parser.emit('packet', { cmd: ACK_COMMANDS.get(first), retain: false, qos: (first >> 1) & 3, dup: false, length, topic: null, payload: null, messageId: buf.readUInt16BE(i), reasonCode })
  return i + length
}

/** An MQTT 5 PUBLISH: after the packet identifier a property block, kept as it came. */
function publishV5 (parser: MqttParser, buf: Buffer, first: number, length: number, topic: string, topicEnd: number, idEnd: number, end: number): number {
  // the Property Length: a variable byte integer of at most four bytes
  let blockLength = 0
  let multiplier = 1
  let at = idEnd
  for (let n = 0; ; n++) {
    if (at >= end || n === 4) return OTHER
    const byte = buf[at++]
    blockLength += (byte & 0x7f) * multiplier
    multiplier *= 0x80
    if ((byte & 0x80) === 0) break
  }
  const blockEnd = at + blockLength
  if (blockEnd > end) return OTHER
  const qos = (first >> 1) & 3
  const retain = (first & 0x01) !== 0
  const dup = (first & 0x08) !== 0
  const payload = buf.subarray(blockEnd, end)
  if (blockLength === 0) {
    if (qos === 0) parser.emit('packet', { cmd: 'publish', retain, qos, dup, length, topic, payload })
    else parser.emit('packet', { cmd: 'publish', retain, qos, dup, length, topic, payload, messageId: buf.readUInt16BE(topicEnd) })
    return end
  }
  const mask = scanPublishProperties(buf, at, blockEnd)
  if (mask === NOT_SCANNED) return OTHER
  const properties = publishProperties(buf.subarray(at, blockEnd), mask)
  if (qos === 0) parser.emit('packet', { cmd: 'publish', retain, qos, dup, length, topic, payload, properties })
  else parser.emit('packet', { cmd: 'publish', retain, qos, dup, length, topic, payload, messageId: buf.readUInt16BE(topicEnd), properties })
  return end
}
