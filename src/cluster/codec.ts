import type { DeliveryPacket } from '../protocol/aedes-internals.js'

/**
 * What travels on a node's stream: a message for its local subscribers, or the news that a client id connected
 * elsewhere (its older connection here must go). Stream entries are flat field lists; Buffers both ways, so a
 * binary payload crosses untouched.
 */
export type BusEntry =
  | { kind: 'message', packet: DeliveryPacket }
  | { kind: 'connected', clientId: string, nodeId: string, generation: number }

const MESSAGE = 'm'
const CONNECTED = 'c'

/** The stream fields of a message: topic, payload, QoS, retain, its origin broker and counter, extras as JSON. */
export function encodeMessage (packet: DeliveryPacket): Array<string | Buffer> {
  const fields: Array<string | Buffer> = [
    'k', MESSAGE,
    't', packet.topic,
    'p', Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload ?? ''),
    'q', String(packet.qos),
    'r', packet.retain === true ? '1' : '0',
    'b', packet.brokerId ?? '',
    'n', String(packet.brokerCounter ?? 0)
  ]
  if (packet.clientId !== undefined) fields.push('i', packet.clientId)
  const extras = extrasOf(packet)
  if (extras !== undefined) fields.push('x', JSON.stringify(extras, withBuffers))
  return fields
}

/** `generation`: the connection's place in the cluster-wide order of connections (see hooks.ts). */
export function encodeConnected (clientId: string, nodeId: string, generation: number): string[] {
  return ['k', CONNECTED, 'i', clientId, 'o', nodeId, 'g', String(generation)]
}

/** undefined for an entry this version does not know (a newer node's), which is skipped. */
export function decodeEntry (fields: Buffer[]): BusEntry | undefined {
  const f = new Map<string, Buffer>()
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i].toString(), fields[i + 1])
  const text = (k: string): string => f.get(k)?.toString() ?? ''
  const kind = text('k')
  if (kind === CONNECTED) return { kind: 'connected', clientId: text('i'), nodeId: text('o'), generation: Number(text('g')) }
  if (kind !== MESSAGE) return undefined
  const packet: DeliveryPacket = {
    cmd: 'publish',
    topic: text('t'),
    payload: f.get('p') ?? Buffer.alloc(0),
    qos: Number(text('q')) as 0 | 1 | 2,
    retain: text('r') === '1',
    dup: false,
    messageId: undefined as unknown as number,
    brokerId: text('b'),
    brokerCounter: Number(text('n'))
  }
  if (f.has('i')) packet.clientId = text('i')
  if (f.has('x')) Object.assign(packet, JSON.parse(text('x'), toBuffers) as Record<string, unknown>)
  return { kind: 'message', packet }
}

/** MQTT 5 properties and the absolute message expiry aedes-packet carries; undefined for a plain 3.1.1 message. */
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
