import { payloadOf } from './packets.js'
import type { PacketLike } from './types.js'

/**
 * Binary form of the one record shape on the hot path: a queued or retained publish as packetRecord() builds it,
 * with at most an enqueue time as meta. Encoding it with JSON.stringify took about a tenth of the broker's CPU
 * with a persistent subscriber; this layout is written and read with a handful of buffer writes. Any other shape
 * falls back to the JSON form (codec version 1).
 *
 *   [2][flags u8][qos u8][messageId u16be][t f64be][brokerCounter f64be]
 *   [brokerId length u16be][brokerId][topic length u16be][topic][clientId length u16be][clientId][payload]
 *
 * Absent values (flags clear) are written as zeros and decode as `undefined`, with the key present, as in the
 * JSON form.
 */
export const PUBLISH_CODEC_VERSION = 2
/** A PUBREL record ({ cmd: 'pubrel', messageId }, one per QoS 2 message sent): [3][has t u8][messageId u16be][t f64be]. */
export const PUBREL_CODEC_VERSION = 3
const PUBREL_BYTES = 12

const FIXED = 23

const RETAIN = 1
const DUP = 2
const MESSAGE_ID = 4
const STRING_PAYLOAD = 8
const ENQUEUED_AT = 16
const BROKER_ID = 32
const BROKER_COUNTER = 64
const CLIENT_ID = 128

/** The keys of packetRecord(), in its order; `clientId` may come first. */
const KEYS = ['cmd', 'brokerId', 'brokerCounter', 'topic', 'payload', 'qos', 'retain', 'dup', 'messageId']

function isPublishShape (record: Record<string, unknown>, meta: Record<string, unknown> | undefined): boolean {
  // for-in rather than Object.keys: the same own keys in the same order for these plain records, and no array per
  // record on the enqueue path.
  let i = 0
  let offset = 0
  for (const key in record) {
    if (i === 0 && key === 'clientId') offset = 1
    else if (KEYS[i - offset] !== key) return false
    i++
  }
  if (i - offset !== KEYS.length) return false
  if (offset === 1 && typeof record.clientId !== 'string') return false
  const { brokerId, brokerCounter, messageId, qos, payload } = record
  return isEnqueueTime(meta) && record.cmd === 'publish' && typeof record.topic === 'string' &&
    (qos === 0 || qos === 1 || qos === 2) && typeof record.retain === 'boolean' && typeof record.dup === 'boolean' &&
    (brokerId === undefined || typeof brokerId === 'string') &&
    (brokerCounter === undefined || typeof brokerCounter === 'number') &&
    (messageId === undefined || isMessageId(messageId)) &&
    (typeof payload === 'string' || Buffer.isBuffer(payload))
}

function isEnqueueTime (meta: Record<string, unknown> | undefined): boolean {
  if (meta === undefined) return true
  const keys = Object.keys(meta)
  return keys.length === 1 && keys[0] === 't' && typeof meta.t === 'number'
}

function isMessageId (value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) <= 0xffff
}

/** The binary form of a publish or PUBREL record, or undefined when the record has another shape. */
export function encodeBinaryRecord (record: Record<string, unknown>, meta: Record<string, unknown> | undefined): Buffer | undefined {
  if (record.cmd === 'pubrel') return encodePubrel(record, meta)
  if (!isPublishShape(record, meta)) return undefined
  return writePublish(record as unknown as PublishFields, meta === undefined ? undefined : meta.t as number)
}

/** What the binary form of a publish holds (checked by isPublishShape or encodeQueuedPublish first). */
interface PublishFields {
  brokerId: string | undefined
  brokerCounter: number | undefined
  clientId?: string | undefined
  topic: string
  payload: Buffer | string
  qos: number
  retain: boolean
  dup: boolean
  messageId: number | undefined
}

const hasOwn = (o: object, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key)

/**
 * The bytes encodeRecord(packetRecord(packet, { qos, retain, messageId: undefined }), { t: enqueuedAt }) gives a
 * copy queued for a session, written straight from the packet when that record would take the binary form, without
 * the record, its overrides and its meta (three objects per queued copy); undefined otherwise (the caller builds
 * the record). The same conditions as packetRecord's keys and isPublishShape's checks; a test holds them to it.
 */
export function encodeQueuedPublish (packet: PacketLike, qos: number, retain: boolean, enqueuedAt: number): Buffer | undefined {
  if (hasOwn(packet, 'properties') || hasOwn(packet, 'messageExpiry') || (hasOwn(packet, 'nl') && packet.nl !== undefined)) return undefined
  const clientId = hasOwn(packet, 'clientId') ? packet.clientId : undefined
  if (hasOwn(packet, 'clientId') && typeof clientId !== 'string') return undefined
  const { brokerId, brokerCounter, topic } = packet
  const payload = payloadOf(packet)
  const dup = packet.dup ?? false
  if ((packet.cmd ?? 'publish') !== 'publish' || typeof topic !== 'string' || typeof dup !== 'boolean' ||
    (qos !== 0 && qos !== 1 && qos !== 2) || (brokerId !== undefined && typeof brokerId !== 'string') ||
    (brokerCounter !== undefined && typeof brokerCounter !== 'number') || typeof enqueuedAt !== 'number') return undefined
  return writePublish({ brokerId, brokerCounter, clientId, topic, payload, qos, retain, dup, messageId: undefined }, enqueuedAt)
}

/**
 * The bytes encodeRecord(plainCopy(packet), { t: storedAt }) gives a retained message, written from the packet itself
 * when that copy would take the binary form: the copy and its meta object were made for every retained PUBLISH only
 * to be encoded. undefined otherwise (the caller encodes the copy). The copy has the packet's own keys only, so a
 * packet with an inherited enumerable key is left to it; a test holds the two to the same bytes.
 */
export function encodeRetainedPublish (packet: PacketLike, storedAt: number): Buffer | undefined {
  const record = packet as Record<string, unknown>
  for (const key in record) if (!hasOwn(record, key)) return undefined
  if (!isPublishShape(record, undefined)) return undefined
  return writePublish(record as unknown as PublishFields, storedAt)
}

function writePublish (record: PublishFields, enqueuedAt: number | undefined): Buffer | undefined {
  const { brokerId, clientId, topic, payload } = record
  const brokerIdBytes = brokerId === undefined ? 0 : Buffer.byteLength(brokerId)
  const topicBytes = Buffer.byteLength(topic)
  const clientIdBytes = clientId === undefined ? 0 : Buffer.byteLength(clientId)
  const payloadBytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
  if (brokerIdBytes > 0xffff || topicBytes > 0xffff || clientIdBytes > 0xffff) return undefined
  const out = Buffer.allocUnsafe(FIXED + brokerIdBytes + 2 + topicBytes + 2 + clientIdBytes + payloadBytes)
  let flags = 0
  if (record.retain) flags |= RETAIN
  if (record.dup) flags |= DUP
  if (record.messageId !== undefined) flags |= MESSAGE_ID
  if (typeof payload === 'string') flags |= STRING_PAYLOAD
  if (enqueuedAt !== undefined) flags |= ENQUEUED_AT
  if (brokerId !== undefined) flags |= BROKER_ID
  if (record.brokerCounter !== undefined) flags |= BROKER_COUNTER
  if (clientId !== undefined) flags |= CLIENT_ID
  out[0] = PUBLISH_CODEC_VERSION
  out[1] = flags
  out[2] = record.qos
  out.writeUInt16BE(record.messageId ?? 0, 3)
  out.writeDoubleBE(enqueuedAt ?? 0, 5)
  out.writeDoubleBE(record.brokerCounter ?? 0, 13)
  let at = 21
  at = writeString(out, at, brokerId, brokerIdBytes)
  at = writeString(out, at, topic, topicBytes)
  at = writeString(out, at, clientId, clientIdBytes)
  if (typeof payload === 'string') out.write(payload, at, 'utf8')
  else payload.copy(out, at)
  return out
}

function encodePubrel (record: Record<string, unknown>, meta: Record<string, unknown> | undefined): Buffer | undefined {
  const keys = Object.keys(record)
  if (keys.length !== 2 || keys[0] !== 'cmd' || keys[1] !== 'messageId' || !isMessageId(record.messageId) || !isEnqueueTime(meta)) return undefined
  const out = Buffer.alloc(PUBREL_BYTES)
  out[0] = PUBREL_CODEC_VERSION
  out[1] = meta === undefined ? 0 : 1
  out.writeUInt16BE(record.messageId, 2)
  out.writeDoubleBE((meta?.t as number | undefined) ?? 0, 4)
  return out
}

export function decodePubrel (buf: Buffer, fail: (reason: string) => Error): { fields: Record<string, unknown>, meta: Record<string, unknown> | undefined } {
  if (buf.length !== PUBREL_BYTES) throw fail('bad pubrel record length')
  return { fields: { cmd: 'pubrel', messageId: buf.readUInt16BE(2) }, meta: buf[1] === 1 ? { t: buf.readDoubleBE(4) } : undefined }
}

function writeString (out: Buffer, at: number, value: string | undefined, bytes: number): number {
  out.writeUInt16BE(bytes, at)
  if (value !== undefined && bytes > 0) out.write(value, at + 2, 'utf8')
  return at + 2 + bytes
}

export interface DecodedPublish {
  fields: Record<string, unknown>
  meta: Record<string, unknown> | undefined
  payloadStart: number
  stringPayload: boolean
}

/**
 * Decodes everything but the payload; `fail` builds the error for a value that cannot be this form. `knownBrokerId`:
 * the broker id the caller already holds for this record (a queue entry's, interned), used instead of a new string.
 */
export function decodePublishHead (buf: Buffer, fail: (reason: string) => Error, knownBrokerId?: string): DecodedPublish {
  if (buf.length < FIXED + 4) throw fail('too short')
  const flags = buf[1]
  const qos = buf[2]
  if (qos > 2) throw fail(`bad qos ${qos}`)
  let at = 21
  const read = (known?: string): string => {
    if (at + 2 > buf.length) throw fail('truncated')
    const length = buf.readUInt16BE(at)
    const end = at + 2 + length
    if (end > buf.length) throw fail('truncated')
    const value = known ?? buf.toString('utf8', at + 2, end)
    at = end
    return value
  }
  const brokerId = read(knownBrokerId)
  const topic = read()
  const clientId = read()
  const fields: Record<string, unknown> = {}
  if ((flags & CLIENT_ID) !== 0) fields.clientId = clientId
  fields.cmd = 'publish'
  fields.brokerId = (flags & BROKER_ID) !== 0 ? brokerId : undefined
  fields.brokerCounter = (flags & BROKER_COUNTER) !== 0 ? buf.readDoubleBE(13) : undefined
  fields.topic = topic
  fields.payload = undefined
  fields.qos = qos
  fields.retain = (flags & RETAIN) !== 0
  fields.dup = (flags & DUP) !== 0
  fields.messageId = (flags & MESSAGE_ID) !== 0 ? buf.readUInt16BE(3) : undefined
  const meta = (flags & ENQUEUED_AT) !== 0 ? { t: buf.readDoubleBE(5) } : undefined
  return { fields, meta, payloadStart: at, stringPayload: (flags & STRING_PAYLOAD) !== 0 }
}

/** What the loader keeps of a queued publish: no topic, client id or payload is decoded. */
export interface QueuedPublish {
  brokerId: string | undefined
  brokerCounter: number | undefined
  messageId: number | undefined
  qos: number
  enqueuedAt: number | undefined
  payloadBytes: number
}

/** The queue index's view of a publish record, checked as decodePublishHead checks it, with one string made. */
export function decodeQueuedPublish (buf: Buffer, fail: (reason: string) => Error): QueuedPublish {
  if (buf.length < FIXED + 4) throw fail('too short')
  const flags = buf[1]
  const qos = buf[2]
  if (qos > 2) throw fail(`bad qos ${qos}`)
  let at = 21
  let brokerId: string | undefined
  for (let i = 0; i < 3; i++) {
    if (at + 2 > buf.length) throw fail('truncated')
    const end = at + 2 + buf.readUInt16BE(at)
    if (end > buf.length) throw fail('truncated')
    if (i === 0 && (flags & BROKER_ID) !== 0) brokerId = buf.toString('utf8', at + 2, end)
    at = end
  }
  return {
    brokerId,
    brokerCounter: (flags & BROKER_COUNTER) !== 0 ? buf.readDoubleBE(13) : undefined,
    messageId: (flags & MESSAGE_ID) !== 0 ? buf.readUInt16BE(3) : undefined,
    qos,
    enqueuedAt: (flags & ENQUEUED_AT) !== 0 ? buf.readDoubleBE(5) : undefined,
    payloadBytes: buf.length - at
  }
}
