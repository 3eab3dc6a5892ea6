import { isUtf8 } from 'node:buffer'
import mqtt from 'mqtt-packet'
import { varIntSize, writeVarInt } from '../var-int.js'

/**
 * The properties of an MQTT 5 PUBLISH as they came, read only when someone reads them.
 *
 * Most PUBLISH properties travel from the publisher to the subscribers unchanged (MQTT 5 §3.3.2.3): decoding them
 * into an object for every message and encoding that object again for every MQTT 5 subscriber was work nobody
 * needed. The fast parser (protocol/fast-parser.ts) checks the block once (scanPublishProperties) and gives the
 * packet `properties` as a view of it: an object that reads like mqtt-packet's — same keys, same values, same order
 * — and is decoded, by mqtt-packet itself, the first time something reads a property the block holds (or its keys,
 * or changes it). Asking for a property the block does not hold (`properties.topicAlias`) answers from the scan.
 * The delivery router sends the block's bytes as they came (forwardableBytes) unless something changed the
 * properties or they hold what must not go on as it came. A change is seen only on the properties object itself:
 * the values read from it (the User Properties object, Correlation Data) are shared by every copy of the message
 * and must not be changed in place; properties that differ go in a new object.
 */

/** The PUBLISH properties the fast path takes, each with its bit in the scan's mask. */
const PAYLOAD_FORMAT_INDICATOR = 1 << 0
const MESSAGE_EXPIRY_INTERVAL = 1 << 1
const CONTENT_TYPE = 1 << 2
const RESPONSE_TOPIC = 1 << 3
const CORRELATION_DATA = 1 << 4
const TOPIC_ALIAS = 1 << 5
const USER_PROPERTY = 1 << 6
/**
 * Not a property: the Payload Format Indicator's value is 1 (any value but 0 reads as true, as mqtt-packet reads
 * it). The payload format check (payload-format.ts) reads the indicator of every MQTT 5 PUBLISH before anything
 * else does: answered from the scan, that read decodes nothing.
 */
const PAYLOAD_IS_UTF8 = 1 << 7

const BIT_OF_NAME: ReadonlyMap<string | symbol, number> = new Map([
  ['payloadFormatIndicator', PAYLOAD_FORMAT_INDICATOR],
  ['messageExpiryInterval', MESSAGE_EXPIRY_INTERVAL],
  ['contentType', CONTENT_TYPE],
  ['responseTopic', RESPONSE_TOPIC],
  ['correlationData', CORRELATION_DATA],
  ['topicAlias', TOPIC_ALIAS],
  ['userProperties', USER_PROPERTY]
])

/**
 * Properties that must not go on as they came: the Message Expiry Interval is counted down by the time the message
 * waited [MQTT-3.3.2-6], and a Topic Alias belongs to the publisher's connection [MQTT-3.3.2-7].
 */
const NOT_AS_THEY_CAME = MESSAGE_EXPIRY_INTERVAL | TOPIC_ALIAS

/** What scanPublishProperties answers for a block the fast path leaves to mqtt-packet. */
export const NOT_SCANNED = -1

/**
 * Checks the property block buf[start, end) of a PUBLISH and returns the mask of the properties it holds, or
 * NOT_SCANNED for any block mqtt-packet should parse instead, so that whatever it did with it (parse it, make an
 * array of a repeated property, refuse it) it still does: an identifier other than the seven a client's PUBLISH may
 * carry (a Subscription Identifier included), one of them twice (User Property aside), a value running past the
 * block, a string that is not well-formed UTF-8 (src/protocol/packet-guard.ts refuses it there).
 */
export function scanPublishProperties (buf: Buffer, start: number, end: number): number {
  let mask = 0
  let at = start
  while (at < end) {
    const id = buf[at++]
    let bit: number
    let next: number
    switch (id) {
      case 0x01:
        bit = PAYLOAD_FORMAT_INDICATOR
        next = at + 1
        if (next <= end && buf[at] !== 0) mask |= PAYLOAD_IS_UTF8
        break
      case 0x02: bit = MESSAGE_EXPIRY_INTERVAL; next = at + 4; break
      case 0x23: bit = TOPIC_ALIAS; next = at + 2; break
      case 0x09: bit = CORRELATION_DATA; next = at + 2 + (at + 2 <= end ? buf.readUInt16BE(at) : 0); break
      case 0x03:
      case 0x08:
        bit = id === 0x03 ? CONTENT_TYPE : RESPONSE_TOPIC
        next = utf8StringEnd(buf, at, end)
        break
      case 0x26: {
        bit = USER_PROPERTY
        const nameEnd = utf8StringEnd(buf, at, end)
        next = nameEnd === NOT_SCANNED ? NOT_SCANNED : utf8StringEnd(buf, nameEnd, end)
        break
      }
      default:
        return NOT_SCANNED
    }
    if (next === NOT_SCANNED || next > end || (bit !== USER_PROPERTY && (mask & bit) !== 0)) return NOT_SCANNED
    mask |= bit
    at = next
  }
  return mask
}

/** Where the length-prefixed UTF-8 string at `at` ends, or NOT_SCANNED if it runs past `end` or is not UTF-8. */
function utf8StringEnd (buf: Buffer, at: number, end: number): number {
  if (at + 2 > end) return NOT_SCANNED
  const stringEnd = at + 2 + buf.readUInt16BE(at)
  if (stringEnd > end) return NOT_SCANNED
  for (let i = at + 2; i < stringEnd; i++) {
    // ASCII is UTF-8; anything else is checked as a whole
    if (buf[i] >= 0x80) return isUtf8(buf.subarray(at + 2, stringEnd)) ? stringEnd : NOT_SCANNED
  }
  return stringEnd
}

/** What a view holds: the block as it came, what it holds, and whether the properties were read or changed. */
interface Block {
  bytes: Buffer
  mask: number
  decoded: boolean
  changed: boolean
}

const BLOCK = Symbol('culex.publishPropertyBlock')

type Target = Record<string | symbol, unknown>

/**
 * The traps of every view; each view's handler is an object of its own holding its Block, with these as its
 * prototype (a trap is called with the handler as `this`).
 */
const TRAPS: ProxyHandler<Target> & { block?: Block } = {
  get (this: { block: Block }, target, key, receiver) {
    if (key === BLOCK) return this.block
    if (!this.block.decoded) {
      const bit = BIT_OF_NAME.get(key)
      // a name the block does not hold reads as absent; any other key reads the same before and after decoding
      if (bit === undefined || (this.block.mask & bit) === 0) return Reflect.get(target, key, receiver)
      if (bit === PAYLOAD_FORMAT_INDICATOR) return (this.block.mask & PAYLOAD_IS_UTF8) !== 0
      decode(this.block, target)
    }
    return Reflect.get(target, key, receiver)
  },
  has (this: { block: Block }, target, key) {
    if (!this.block.decoded) {
      const bit = BIT_OF_NAME.get(key)
      if (bit !== undefined) return (this.block.mask & bit) !== 0
      return Reflect.has(target, key)
    }
    return Reflect.has(target, key)
  },
  ownKeys (this: { block: Block }, target) {
    decode(this.block, target)
    return Reflect.ownKeys(target)
  },
  getOwnPropertyDescriptor (this: { block: Block }, target, key) {
    decode(this.block, target)
    return Reflect.getOwnPropertyDescriptor(target, key)
  },
  set (this: { block: Block }, target, key, value, receiver) {
    decode(this.block, target)
    this.block.changed = true
    return Reflect.set(target, key, value, receiver)
  },
  defineProperty (this: { block: Block }, target, key, descriptor) {
    decode(this.block, target)
    this.block.changed = true
    return Reflect.defineProperty(target, key, descriptor)
  },
  deleteProperty (this: { block: Block }, target, key) {
    decode(this.block, target)
    this.block.changed = true
    return Reflect.deleteProperty(target, key)
  }
}

/** The properties of the block `bytes` (scanned: `mask` is what scanPublishProperties returned), read when read. */
export function publishProperties (bytes: Buffer, mask: number): Record<string, unknown> {
  const handler = Object.create(TRAPS) as { block: Block }
  handler.block = { bytes, mask, decoded: false, changed: false }
  return new Proxy<Target>({}, handler as ProxyHandler<Target>)
}

/**
 * The bytes to send these properties as, unchanged, to an MQTT 5 subscriber: a block as it came from the publisher
 * that nothing changed and that holds only properties forwarded as they are. Undefined for any other properties
 * (a plain object, a changed block, one with a Message Expiry Interval or a Topic Alias): those are encoded.
 */
export function forwardableBytes (properties: unknown): Buffer | undefined {
  if (properties === null || typeof properties !== 'object') return undefined
  const block = (properties as { [BLOCK]?: Block })[BLOCK]
  if (block === undefined || block.changed || (block.mask & NOT_AS_THEY_CAME) !== 0) return undefined
  return block.bytes
}

/**
 * mqtt-packet's reading of the block: what its parser makes of a PUBLISH carrying it, so the object is the one the
 * slow path would have built (keys in the order they came, repeated User Property names as arrays).
 */
function decode (block: Block, target: Target): void {
  if (block.decoded) return
  block.decoded = true
  const { bytes } = block
  // a QoS 0 PUBLISH to topic "p" with the block and no payload
  const remaining = 3 + varIntSize(bytes.length) + bytes.length
  const packet = Buffer.allocUnsafe(1 + varIntSize(remaining) + remaining)
  packet[0] = 0x30
  let at = writeVarInt(packet, 1, remaining)
  packet[at++] = 0
  packet[at++] = 1
  packet[at++] = 0x70
  at = writeVarInt(packet, at, bytes.length)
  bytes.copy(packet, at)
  const parser = mqtt.parser({ protocolVersion: 5 })
  let properties: Record<string, unknown> | undefined
  parser.on('packet', (p: mqtt.Packet) => { properties = (p as { properties?: Record<string, unknown> }).properties })
  parser.parse(packet)
  if (properties !== undefined) Object.assign(target, properties)
}
