import type { DeliveryPacket } from '../protocol/aedes-internals.js'

/**
 * What travels on a node's stream: a message for its local subscribers, or the news that a client id connected
 * elsewhere (its older connection here must go). An entry is one field, its kind, holding one buffer: ioredis and
 * Redis handle one argument instead of a dozen per message (about a third less CPU on each side than a field per
 * part), and a binary payload crosses untouched.
 */
export type BusEntry =
  | { kind: 'message', packet: DeliveryPacket, run: string }
  | { kind: 'connected', clientId: string, nodeId: string, generation: number }
  | { kind: 'share', note: ShareNote }

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
const CONNECTED = 'c'
const SHARE = 's'

const RETAIN = 0x04
const HAS_CLIENT_ID = 0x08
const HAS_EXTRAS = 0x10

/**
 * A message: flags (QoS in the low 2 bits, retain, which optional parts follow), the origin's broker counter
 * (float64), then length-prefixed sending run, broker id, topic, publisher id, extras (MQTT 5 properties and the
 * absolute message expiry, as JSON), and the payload to the end. `run` names this run of the sending node: with a
 * fixed `brokerId` the broker counter starts again at each start, so broker id and counter alone could name two
 * messages.
 */
export function encodeMessage (packet: DeliveryPacket, run: string): Array<string | Buffer> {
  const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload ?? '')
  const sender = Buffer.from(run)
  const brokerId = Buffer.from(packet.brokerId ?? '')
  const topic = Buffer.from(packet.topic)
  const clientId = packet.clientId === undefined ? undefined : Buffer.from(packet.clientId)
  const extras = extrasOf(packet)
  const json = extras === undefined ? undefined : Buffer.from(JSON.stringify(extras, withBuffers))
  const size = 1 + 8 + 2 + sender.length + 2 + brokerId.length + 2 + topic.length + (clientId === undefined ? 0 : 2 + clientId.length) + (json === undefined ? 0 : 4 + json.length) + payload.length
  const buf = Buffer.allocUnsafe(size)
  buf[0] = (packet.qos & 3) | (packet.retain === true ? RETAIN : 0) | (clientId === undefined ? 0 : HAS_CLIENT_ID) | (json === undefined ? 0 : HAS_EXTRAS)
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
  payload.copy(buf, at)
  return [MESSAGE, buf]
}

/** `generation`: the connection's place in the cluster-wide order of connections (see hooks.ts). */
export function encodeConnected (clientId: string, nodeId: string, generation: number): string[] {
  return [CONNECTED, JSON.stringify([clientId, nodeId, generation])]
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
  return kind === MESSAGE ? { kind: 'message', ...decodeMessage(fields[1]) } : undefined
}

function decodeMessage (buf: Buffer): { packet: DeliveryPacket, run: string } {
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
  packet.payload = buf.subarray(at)
  return { packet, run }
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
