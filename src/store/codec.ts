import { packetRecord } from './packets.js'
import { decodePublishHead, decodePubrel, decodeQueuedPublish, encodeBinaryRecord, encodeQueuedPublish, PUBLISH_CODEC_VERSION, PUBREL_CODEC_VERSION } from './publish-codec.js'
import type { PacketLike } from './types.js'

/**
 * Value codec: [version:u8][header length:u32be][header JSON][payload bytes], or for a plain publish and a PUBREL
 * record the binary forms of publish-codec.ts (versions 2 and 3), which is what the hot path writes.
 *
 * The payload stays raw bytes after the header, so it round-trips byte-exact and a loader can read the header
 * (topic, qos, ids, enqueue time) without touching the payload. JSON keeps the header debuggable with any
 * LevelDB tool; keys whose value is `undefined` are listed in `u` because the aedes abstract suite compares
 * packets key by key. Buffers nested in the header (MQTT 5 correlation data) use Buffer's JSON form.
 */

const CODEC_VERSION = 1
const HEAD = 5

const PAYLOAD_BUFFER = 1
const PAYLOAD_STRING = 2

interface Header {
  f: Record<string, unknown>
  m?: Record<string, unknown>
  p?: number
  u?: string[]
}

export class UndecodableValueError extends Error {
  constructor (reason: string) {
    super(`undecodable value: ${reason}`)
    this.name = 'UndecodableValueError'
  }
}

export interface DecodedRecord {
  fields: Record<string, unknown>
  meta: Record<string, unknown> | undefined
}

export interface DecodedHead extends DecodedRecord {
  payloadBytes: number
}

export function encodeRecord (record: Record<string, unknown>, meta?: Record<string, unknown>): Buffer {
  return encodeBinaryRecord(record, meta) ?? encodeJsonRecord(record, meta)
}

/** The value of a copy queued for a session: encodeRecord of its packetRecord, written straight from the packet when it can be. */
export function encodeQueuedCopy (packet: PacketLike, qos: number, retain: boolean, enqueuedAt: number): Buffer {
  return encodeQueuedPublish(packet, qos, retain, enqueuedAt) ?? encodeRecord(packetRecord(packet, { qos, retain, messageId: undefined }), { t: enqueuedAt })
}

/**
 * The records of one publish's queued copies, encoded once per variant (QoS, RETAIN) however many queues take it:
 * nearly always one variant, kept in a field, the others in an array indexed by qos * 2 + retain.
 */
export class CopyEncodings {
  readonly #packet: PacketLike
  readonly #enqueuedAt: number
  #firstVariant = -1
  #firstValue: Buffer | undefined
  #others: Array<Buffer | undefined> | undefined

  constructor (packet: PacketLike, enqueuedAt: number) {
    this.#packet = packet
    this.#enqueuedAt = enqueuedAt
  }

  get (qos: number, retain: boolean): Buffer {
    const variant = qos * 2 + (retain ? 1 : 0)
    let value = variant === this.#firstVariant ? this.#firstValue : this.#others?.[variant]
    if (value === undefined) {
      value = encodeQueuedCopy(this.#packet, qos, retain, this.#enqueuedAt)
      if (this.#firstVariant === -1) {
        this.#firstVariant = variant
        this.#firstValue = value
      } else {
        (this.#others ??= [])[variant] = value
      }
    }
    return value
  }
}

/** The JSON form (codec version 1), for any record. */
export function encodeJsonRecord (record: Record<string, unknown>, meta?: Record<string, unknown>): Buffer {
  const fields: Record<string, unknown> = {}
  let undef: string[] | undefined
  let payload: Buffer | undefined
  let payloadKind = 0
  for (const key of Object.keys(record)) {
    const value = record[key]
    if (value === undefined) {
      (undef ??= []).push(key)
    } else if (key === 'payload' && typeof value === 'string') {
      payload = Buffer.from(value, 'utf8')
      payloadKind = PAYLOAD_STRING
    } else if (key === 'payload' && value instanceof Uint8Array) {
      payload = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
      payloadKind = PAYLOAD_BUFFER
    } else {
      fields[key] = value
    }
  }
  const header: Header = { f: fields }
  if (meta !== undefined) header.m = meta
  if (payloadKind !== 0) header.p = payloadKind
  if (undef !== undefined) header.u = undef
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  const out = Buffer.allocUnsafe(HEAD + json.length + (payload?.length ?? 0))
  out[0] = CODEC_VERSION
  out.writeUInt32BE(json.length, 1)
  json.copy(out, HEAD)
  if (payload !== undefined) payload.copy(out, HEAD + json.length)
  return out
}

function reviveBuffers (_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((value as { data?: unknown }).data)) {
    return Buffer.from((value as { data: number[] }).data)
  }
  return value
}

function readHeader (buf: Buffer): { header: Header, payloadStart: number } {
  if (!Buffer.isBuffer(buf) || buf.length < HEAD) throw new UndecodableValueError('too short')
  if (buf[0] !== CODEC_VERSION) throw new UndecodableValueError(`unknown codec version ${buf[0]}`)
  const length = buf.readUInt32BE(1)
  const payloadStart = HEAD + length
  if (payloadStart > buf.length) throw new UndecodableValueError('header longer than value')
  const text = buf.toString('utf8', HEAD, payloadStart)
  let header: Header
  try {
    header = JSON.parse(text, text.includes('"Buffer"') ? reviveBuffers : undefined) as Header
  } catch (err) {
    throw new UndecodableValueError(`bad header JSON (${(err as Error).message})`)
  }
  if (header === null || typeof header !== 'object' || header.f === null || typeof header.f !== 'object') {
    throw new UndecodableValueError('header has no fields')
  }
  return { header, payloadStart }
}

function withUndefined (header: Header): Record<string, unknown> {
  const fields = header.f
  if (header.u !== undefined) {
    for (const key of header.u) fields[key] = undefined
  }
  return fields
}

function fail (reason: string): UndecodableValueError {
  return new UndecodableValueError(reason)
}

function isPublishForm (buf: Buffer): boolean {
  return Buffer.isBuffer(buf) && buf.length > 0 && buf[0] === PUBLISH_CODEC_VERSION
}

/** `knownBrokerId`: the broker id the caller holds for this record (a queue entry's), not decoded again. */
export function decodeRecord (buf: Buffer, knownBrokerId?: string): DecodedRecord {
  if (Buffer.isBuffer(buf) && buf[0] === PUBREL_CODEC_VERSION) return decodePubrel(buf, fail)
  if (isPublishForm(buf)) {
    const { fields, meta, payloadStart, stringPayload } = decodePublishHead(buf, fail, knownBrokerId)
    fields.payload = stringPayload ? buf.toString('utf8', payloadStart) : buf.subarray(payloadStart)
    return { fields, meta }
  }
  const { header, payloadStart } = readHeader(buf)
  const fields = withUndefined(header)
  if (header.p === PAYLOAD_BUFFER) {
    fields.payload = buf.subarray(payloadStart)
  } else if (header.p === PAYLOAD_STRING) {
    fields.payload = buf.toString('utf8', payloadStart)
  } else if (header.p !== undefined) {
    throw new UndecodableValueError(`unknown payload kind ${String(header.p)}`)
  }
  return { fields, meta: header.m }
}

/** The header only: what the loader needs to index a queued message without copying its payload. */
export function decodeHead (buf: Buffer): DecodedHead {
  if (Buffer.isBuffer(buf) && buf[0] === PUBREL_CODEC_VERSION) return { ...decodePubrel(buf, fail), payloadBytes: 0 }
  if (isPublishForm(buf)) {
    const { fields, meta, payloadStart } = decodePublishHead(buf, fail)
    return { fields, meta, payloadBytes: buf.length - payloadStart }
  }
  const { header, payloadStart } = readHeader(buf)
  return { fields: withUndefined(header), meta: header.m, payloadBytes: buf.length - payloadStart }
}

/** What the session queues' index keeps of a queued entry (a publish or a PUBREL record). */
export interface QueuedHead {
  cmd: 'publish' | 'pubrel'
  brokerId: string | undefined
  brokerCounter: number | undefined
  messageId: number | undefined
  qos: number
  enqueuedAt: number
  payloadBytes: number
}

/**
 * decodeHead for the loader of the session queues: of the binary publish form only the fields the index keeps
 * (a start with a million queued messages decoded a topic and a client id per message only to drop them).
 */
export function decodeQueuedHead (buf: Buffer): QueuedHead {
  if (isPublishForm(buf)) {
    const p = decodeQueuedPublish(buf, fail)
    return { cmd: 'publish', brokerId: p.brokerId, brokerCounter: p.brokerCounter, messageId: p.messageId, qos: p.qos, enqueuedAt: p.enqueuedAt ?? 0, payloadBytes: p.payloadBytes }
  }
  const { fields: f, meta, payloadBytes } = decodeHead(buf)
  return {
    cmd: f.cmd === 'pubrel' ? 'pubrel' : 'publish',
    brokerId: typeof f.brokerId === 'string' ? f.brokerId : undefined,
    brokerCounter: typeof f.brokerCounter === 'number' ? f.brokerCounter : undefined,
    messageId: typeof f.messageId === 'number' ? f.messageId : undefined,
    qos: typeof f.qos === 'number' ? f.qos : 1,
    enqueuedAt: typeof meta?.t === 'number' ? meta.t : 0,
    payloadBytes
  }
}
