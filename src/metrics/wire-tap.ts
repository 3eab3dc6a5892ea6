/**
 * A framing reader for one direction of an MQTT byte stream. It is fed the chunks exactly as they cross the
 * connection (split anywhere) and reports every complete packet: its type, its size on the wire and, for PUBLISH
 * and the acknowledgements, the few header fields the metrics need. It never copies a payload: only the fixed
 * header, the topic length and the packet identifier are read.
 */

/** MQTT control packet types by the high nibble of the first byte. */
export const packetTypes = [
  'reserved', 'connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp',
  'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect', 'auth'
] as const

export type PacketType = typeof packetTypes[number]

export interface WirePacket {
  type: PacketType
  /** The type as its number (the high nibble of the first byte): its index in packetTypes. */
  code: number
  /** Bytes of the whole packet: fixed header, remaining-length field and body. */
  bytes: number
  /** PUBLISH only: the QoS in its fixed header. */
  qos: number
  /** PUBLISH only: bytes of the application message. */
  payloadBytes: number
  /** PUBLISH at QoS 1 or 2, PUBACK, PUBREC, PUBREL, PUBCOMP: the packet identifier; -1 otherwise. */
  messageId: number
}

const PUBLISH = 3
// filled in and handed over synchronously, never kept: every tap can use the same one
const sharedPacket: WirePacket = { type: 'reserved', code: 0, bytes: 0, qos: 0, payloadBytes: 0, messageId: -1 }
const HEADER = 0
const LENGTH = 1
const BODY = 2

export class WireTap {
  #state: number = HEADER
  #type = 0
  #qos = 0
  #remaining = 0
  #lengthBytes = 0
  #multiplier = 1
  /** Position in the body of the next byte. */
  #pos = 0
  #topicLength = -1
  #messageId = -1
  /** Set once the stream stopped being MQTT; nothing more is reported. */
  #broken = false


  /** `onPacket` gets the same object each time: it reads the fields and keeps no reference. */
  constructor (private readonly onPacket: (packet: WirePacket) => void) {}

  get broken (): boolean {
    return this.#broken
  }

  feed (chunk: Uint8Array): void {
    let i = 0
    const n = chunk.length
    while (i < n && !this.#broken) {
      if (this.#state === HEADER) {
        const b = chunk[i++]
        this.#type = b >> 4
        this.#qos = this.#type === PUBLISH ? (b >> 1) & 3 : 0
        this.#remaining = 0
        this.#lengthBytes = 0
        this.#multiplier = 1
        this.#state = LENGTH
      } else if (this.#state === LENGTH) {
        const b = chunk[i++]
        this.#remaining += (b & 0x7f) * this.#multiplier
        this.#multiplier *= 128
        this.#lengthBytes++
        if ((b & 0x80) !== 0) {
          if (this.#lengthBytes === 4) this.#broken = true
          continue
        }
        this.#pos = 0
        this.#topicLength = -1
        this.#messageId = -1
        this.#state = BODY
        if (this.#remaining === 0) this.#finish()
      } else {
        const take = Math.min(n - i, this.#remaining - this.#pos)
        this.#readFields(chunk, i, take)
        i += take
        this.#pos += take
        if (this.#pos === this.#remaining) this.#finish()
      }
    }
  }

  /**
   * A chunk written as a string (mqtt-packet writes topics that way): when it lies inside a packet body and holds
   * none of the fields read, only its length is needed, so no Buffer is made for it.
   */
  feedText (text: string, encoding: BufferEncoding = 'utf8'): void {
    if (this.#state === BODY && !this.#broken) {
      const n = Buffer.byteLength(text, encoding)
      const end = this.#pos + n
      if (end <= this.#remaining && !this.#readsBetween(this.#pos, end)) {
        this.#pos = end
        if (end === this.#remaining) this.#finish()
        return
      }
    }
    this.feed(Buffer.from(text, encoding))
  }

  /** Whether a header field read by #readFields lies in body bytes [start, end). */
  #readsBetween (start: number, end: number): boolean {
    if (start < 2) return this.#type === PUBLISH || (this.#type >= 4 && this.#type <= 7)
    if (this.#type !== PUBLISH || this.#qos === 0) return false
    const idAt = 2 + this.#topicLength
    return start <= idAt + 1 && end > idAt
  }

  /** Reads the header fields that fall into chunk[from, from + count), the body bytes #pos .. #pos + count. */
  #readFields (chunk: Uint8Array, from: number, count: number): void {
    const start = this.#pos
    const end = start + count
    // chunk[base + p] is body byte p
    const base = from - start
    if (this.#type === PUBLISH) {
      // Topic length in body bytes 0-1, then the topic, then the packet identifier at QoS > 0.
      if (start <= 0 && end > 0) this.#topicLength = chunk[base] << 8
      if (start <= 1 && end > 1) this.#topicLength |= chunk[base + 1]
      if (this.#qos > 0 && this.#topicLength >= 0) {
        const idAt = 2 + this.#topicLength
        if (start <= idAt && end > idAt) this.#messageId = chunk[base + idAt] << 8
        if (start <= idAt + 1 && end > idAt + 1) this.#messageId |= chunk[base + idAt + 1]
      }
    } else if (this.#type >= 4 && this.#type <= 7) {
      if (start <= 0 && end > 0) this.#messageId = chunk[base] << 8
      if (start <= 1 && end > 1) this.#messageId |= chunk[base + 1]
    }
  }

  #finish (): void {
    const type = packetTypes[this.#type]
    const bytes = 1 + this.#lengthBytes + this.#remaining
    let payloadBytes = 0
    if (this.#type === PUBLISH) payloadBytes = Math.max(0, this.#remaining - 2 - Math.max(0, this.#topicLength) - (this.#qos > 0 ? 2 : 0))
    this.#state = HEADER
    const packet = sharedPacket
    packet.type = type
    packet.code = this.#type
    packet.bytes = bytes
    packet.qos = this.#qos
    packet.payloadBytes = payloadBytes
    packet.messageId = this.#messageId
    this.onPacket(packet)
  }
}

/** Feeds whatever stream.write was given (mqtt-packet writes topics as strings): bytes, or a string without copying it when it can. */
export function feedChunk (tap: WireTap, chunk: unknown, encoding?: BufferEncoding): void {
  if (chunk instanceof Uint8Array) tap.feed(chunk)
  else if (typeof chunk === 'string') tap.feedText(chunk, encoding)
}
