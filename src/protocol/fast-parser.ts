import type { Client } from 'aedes'
import { isUtf8 } from 'node:buffer'
import { internals, newBufferList, type MqttParser } from './aedes-internals.js'
import { mayBeMalformed } from './packet-guard.js'

/** The command of each fixed-header byte of a two-byte acknowledgement, with the flag bits MQTT 3.1.1 requires. */
const ACK_COMMANDS: ReadonlyMap<number, string> = new Map([[0x40, 'puback'], [0x50, 'pubrec'], [0x62, 'pubrel'], [0x70, 'pubcomp']])
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
    // MQTT 5 packets carry properties this path does not read: a v5 connection is parsed by mqtt-packet throughout
    if (this._list.length !== 0 || this._stateCounter !== 0 || this.error !== null || this.settings.protocolVersion === 5) return parse.call(this, buf)
    let at = 0
    while (at < buf.length) {
      const end = nextPacket(this, buf, at)
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
function nextPacket (parser: MqttParser, buf: Buffer, at: number): number {
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
  if (!publish && length !== (first === PINGREQ ? 0 : 2)) return OTHER
  const end = i + length
  if (end > buf.length) return INCOMPLETE
  if (first === PINGREQ) {
    parser.emit('packet', { cmd: 'pingreq', retain: false, qos: 0, dup: false, length: 0, topic: null, payload: null })
    return end
  }
  if (!publish) {
    parser.emit('packet', { cmd: ACK_COMMANDS.get(first), retain: false, qos: (first >> 1) & 3, dup: false, length: 2, topic: null, payload: null, messageId: buf.readUInt16BE(i) })
    return end
  }
  const qos = (first >> 1) & 3
  if (qos === 3 || length < 2) return OTHER
  const topicEnd = i + 2 + buf.readUInt16BE(i)
  if (topicEnd + (qos > 0 ? 2 : 0) > end) return OTHER
  const retain = (first & 0x01) !== 0
  const dup = (first & 0x08) !== 0
  const topic = buf.toString('utf8', i + 2, topicEnd)
  // bytes that are not UTF-8: mqtt-packet parses the packet, and src/protocol/packet-guard.ts refuses it there
  if (mayBeMalformed(topic) && !isUtf8(buf.subarray(i + 2, topicEnd))) return OTHER
  // the shape and key order of mqtt-packet's Packet, so the objects aedes handles keep one hidden class per kind
  if (qos === 0) {
    parser.emit('packet', { cmd: 'publish', retain, qos, dup, length, topic, payload: buf.subarray(topicEnd, end) })
  } else {
    parser.emit('packet', { cmd: 'publish', retain, qos, dup, length, topic, payload: buf.subarray(topicEnd + 2, end), messageId: buf.readUInt16BE(topicEnd) })
  }
  return end
}
