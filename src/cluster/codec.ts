import type { DeliveryPacket } from '../protocol/aedes-internals.js'
import type { QueuedCopies } from '../store/index.js'

/**
 * What travels on a node's stream: a message for its local subscribers, the news that a client id connected
 * elsewhere (its older connection here must go), or an administrator's kick of a client id made on another node
 * (`from`, answered there with whether a connection was closed, kicks.ts). An entry is one field, its kind, holding
 * one buffer: ioredis and Redis handle one argument instead of a dozen per message (about a third less CPU on each
 * side than a field per part), and a binary payload crosses untouched.
 */
export type BusEntry =
  | { kind: 'message', packet: DeliveryPacket, run: string, queued?: QueuedCopies }
  | { kind: 'connected', clientId: string, nodeId: string, generation: number }
  | { kind: 'share', note: ShareNote }
  | { kind: 'kick', clientId: string, from: string, request: string }
  | { kind: 'kicked', request: string, found: boolean }

/**
 * Between the node owning a shared group and the nodes its members are connected to (shared-groups.ts): `from` is
 * the sending node, `conn` a member's connection (unique in the cluster), `token` one of its subscriptions.
 */
export type ShareNote = { from: string } & (
  | { t: 'join', key: string, conn: string, clientId: string, token: string, qos: number, persistent: boolean, ready: boolean, window?: number }
  | { t: 'ready' | 'capacity', conn: string }
  | { t: 'unsubscribed' | 'disconnected', key: string, conn: string, token: string }
  | { t: 'gone', conn: string, clientId: string }
  | { t: 'ended', clientId: string }
  | { t: 'ack', conn: string, id: number }
  | { t: 'reject', conn: string, id: number, why: string, redispatch: boolean }
  | { t: 'deliver', conn: string, packet: Record<string, unknown> }
  /** The sender owns the group now (or, as an answer to a join, the owner is `owner`): members join there. */
  | { t: 'owner', key: string, owner: string }
)

const MESSAGE = 'm'
/** A message with the queue entries its origin made: a kind of its own, which a node of an earlier version skips. */
const MESSAGE_QUEUED = 'q'
const CONNECTED = 'c'
const SHARE = 's'
const KICK = 'k'
const KICKED = 'K'

const RETAIN = 0x04
const HAS_CLIENT_ID = 0x08
const HAS_EXTRAS = 0x10
const HAS_QUEUED = 0x20
/** Queue entries an entry carries at most; a message queued for more sessions leaves them to a look-up in Redis. */
export const MAX_CARRIED_COPIES = 64
/** What this version reads beyond the first format (NodeRecord.bus): messages that carry their queue entries. */
export const BUS_FEATURES = 1

/**
 * A message: flags (QoS in the low 2 bits, retain, which optional parts follow), the origin's broker counter
 * (float64), then length-prefixed sending run, broker id, topic, publisher id, extras (MQTT 5 properties and the
 * absolute message expiry, as JSON), the queue entries the origin made (when it queued the message (float64), their
 * count (uint16), then per entry a length-prefixed client id, its seq (float64) and QoS (uint8)), and the payload to
 * the end. `run` names this run of the sending node: with a fixed `brokerId` the broker counter starts again at each
 * start, so broker id and counter alone could name two messages.
 */
export function encodeMessage (packet: DeliveryPacket, run: string, queued?: QueuedCopies): Array<string | Buffer> {
  const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload ?? '')
  const sender = Buffer.from(run)
  const brokerId = Buffer.from(packet.brokerId ?? '')
  const topic = Buffer.from(packet.topic)
  const clientId = packet.clientId === undefined ? undefined : Buffer.from(packet.clientId)
  const extras = extrasOf(packet)
  const json = extras === undefined ? undefined : Buffer.from(JSON.stringify(extras, withBuffers))
  const copies = queued === undefined || queued.copies.length > MAX_CARRIED_COPIES ? undefined : queued.copies.map(([id, seq, qos]) => [Buffer.from(id), seq, qos] as const)
  let copiesSize = 0
  if (copies !== undefined) for (const [id] of copies) copiesSize += 2 + id.length + 9
  const size = 1 + 8 + 2 + sender.length + 2 + brokerId.length + 2 + topic.length + (clientId === undefined ? 0 : 2 + clientId.length) + (json === undefined ? 0 : 4 + json.length) +
    (copies === undefined ? 0 : 10 + copiesSize) + payload.length
  const buf = Buffer.allocUnsafe(size)
  buf[0] = (packet.qos & 3) | (packet.retain === true ? RETAIN : 0) | (clientId === undefined ? 0 : HAS_CLIENT_ID) | (json === undefined ? 0 : HAS_EXTRAS) | (copies === undefined ? 0 : HAS_QUEUED)
  buf.writeDoubleLE(packet.brokerCounter ?? 0, 1)
  let at = 9
  at = putShort(buf, at, sender)
  at = putShort(buf, at, brokerId)
  at = putShort(buf, at, topic)
  if (clientId !== undefined) at = putShort(buf, at, clientId)
  if (json !== undefined) {
    buf.writeUInt32LE(json.length, at)
    at += 4 + json.copy(buf, at + 4)
  }
  if (copies !== undefined) {
    buf.writeDoubleLE((queued as QueuedCopies).at, at)
    buf.writeUInt16LE(copies.length, at + 8)
    at += 10
    for (const [id, seq, qos] of copies) {
      at = putShort(buf, at, id)
      buf.writeDoubleLE(seq, at)
      buf[at + 8] = qos
      at += 9
    }
  }
  payload.copy(buf, at)
  return [copies === undefined ? MESSAGE : MESSAGE_QUEUED, buf]
}

/** `generation`: the connection's place in the cluster-wide order of connections (see hooks.ts). */
export function encodeConnected (clientId: string, nodeId: string, generation: number): string[] {
  return [CONNECTED, JSON.stringify([clientId, nodeId, generation])]
}

export function encodeKick (clientId: string, from: string, request: string): string[] {
  return [KICK, JSON.stringify([clientId, from, request])]
}

export function encodeKicked (request: string, found: boolean): string[] {
  return [KICKED, JSON.stringify([request, found])]
}

export function encodeShareNote (note: ShareNote): Array<string | Buffer> {
  return [SHARE, JSON.stringify(note, withBuffers)]
}

/** undefined for an entry this version does not know (a newer node's, or the stream's opening entry): skipped. */
export function decodeEntry (fields: Buffer[]): BusEntry | undefined {
  if (fields.length !== 2) return undefined
  const kind = fields[0].toString()
  if (kind === CONNECTED) {
    const [clientId, nodeId, generation] = JSON.parse(fields[1].toString()) as [string, string, number]
    return { kind: 'connected', clientId, nodeId, generation }
  }
  if (kind === SHARE) return { kind: 'share', note: JSON.parse(fields[1].toString(), toBuffers) as ShareNote }
  if (kind === MESSAGE || kind === MESSAGE_QUEUED) return { kind: 'message', ...decodeMessage(fields[1]) }
  // an administrator's kick is rare: looked for after the messages
  if (kind === KICK) {
    const [clientId, from, request] = JSON.parse(fields[1].toString()) as [string, string, string]
    return { kind: 'kick', clientId, from, request }
  }
  if (kind !== KICKED) return undefined
  const [request, found] = JSON.parse(fields[1].toString()) as [string, boolean]
  return { kind: 'kicked', request, found }
}

function decodeMessage (buf: Buffer): { packet: DeliveryPacket, run: string, queued?: QueuedCopies } {
  const flags = buf[0]
  const brokerCounter = buf.readDoubleLE(1)
  let at = 9
  const runLength = buf.readUInt16LE(at)
  const run = buf.toString('utf8', at + 2, at += 2 + runLength)
  const brokerIdLength = buf.readUInt16LE(at)
  const brokerId = buf.toString('utf8', at + 2, at += 2 + brokerIdLength)
  const topicLength = buf.readUInt16LE(at)
  const topic = buf.toString('utf8', at + 2, at += 2 + topicLength)
  const packet: DeliveryPacket = {
    cmd: 'publish',
    topic,
    payload: Buffer.alloc(0),
    qos: (flags & 3) as 0 | 1 | 2,
    retain: (flags & RETAIN) !== 0,
    dup: false,
    messageId: undefined as unknown as number,
    brokerId,
    brokerCounter
  }
  if ((flags & HAS_CLIENT_ID) !== 0) {
    const length = buf.readUInt16LE(at)
    packet.clientId = buf.toString('utf8', at + 2, at += 2 + length)
  }
  if ((flags & HAS_EXTRAS) !== 0) {
    const length = buf.readUInt32LE(at)
    Object.assign(packet, JSON.parse(buf.toString('utf8', at + 4, at += 4 + length), toBuffers) as Record<string, unknown>)
  }
  let queued: QueuedCopies | undefined
  if ((flags & HAS_QUEUED) !== 0) {
    queued = { at: buf.readDoubleLE(at), copies: [] }
    const count = buf.readUInt16LE(at + 8)
    at += 10
    for (let i = 0; i < count; i++) {
      const length = buf.readUInt16LE(at)
      const id = buf.toString('utf8', at + 2, at += 2 + length)
      queued.copies.push([id, buf.readDoubleLE(at), buf[at + 8]])
      at += 9
    }
  }
  packet.payload = buf.subarray(at)
  return queued === undefined ? { packet, run } : { packet, run, queued }
}

function putShort (buf: Buffer, at: number, part: Buffer): number {
  buf.writeUInt16LE(part.length, at)
  return at + 2 + part.copy(buf, at + 2)
}

/** MQTT 5 properties and the absolute expiry aedes-packet carries; undefined for a plain 3.1.1 message. */
function extrasOf (packet: DeliveryPacket): Record<string, unknown> | undefined {
  const p = packet as DeliveryPacket & { messageExpiry?: number }
  if (p.properties === undefined && p.messageExpiry === undefined) return undefined
  const extras: Record<string, unknown> = {}
  if (p.properties !== undefined) extras.properties = p.properties
  if (p.messageExpiry !== undefined) extras.messageExpiry = p.messageExpiry
  return extras
}

// Correlation data and the like are Buffers, which JSON would turn into arrays of numbers.
function withBuffers (this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key]
  return Buffer.isBuffer(raw) ? { $b: raw.toString('base64') } : value
}

function toBuffers (_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && typeof (value as { $b?: unknown }).$b === 'string' && Object.keys(value).length === 1) {
    return Buffer.from((value as { $b: string }).$b, 'base64')
  }
  return value
}
