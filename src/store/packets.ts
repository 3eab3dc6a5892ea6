import type { DroppedPacket, PacketLike } from './types.js'

/** Own properties aedes-packet carries over when it wraps a packet; anything else (e.g. `length`) is wire noise. */
const CARRIED = ['clientId', 'nl', 'properties', 'messageExpiry'] as const

export function payloadOf (packet: PacketLike): Buffer | string {
  const payload = packet.payload
  if (typeof payload === 'string' || Buffer.isBuffer(payload)) return payload
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  return Buffer.alloc(0)
}

export function payloadBytes (payload: unknown): number {
  if (typeof payload === 'string') return Buffer.byteLength(payload)
  if (payload instanceof Uint8Array) return payload.byteLength
  return 0
}

/**
 * The aedes-packet shape (the abstract suite compares key sets, so every key is present even when undefined).
 * `messageId` is whatever the caller decides: undefined for a freshly queued copy.
 */
export function packetRecord (packet: PacketLike, overrides: { qos?: number, retain?: boolean, messageId?: number | undefined }): Record<string, unknown> {
  const messageId = 'messageId' in overrides ? overrides.messageId : (packet.messageId ?? undefined)
  // Nearly every record carries none of CARRIED (a copy as the delivery router sends it): one literal, its fields in
  // the object itself, rather than an empty object grown a key at a time into a separate property store. It is
  // kept in memory for as long as the copy is in flight.
  if (!carriesAny(packet)) {
    return {
      cmd: packet.cmd ?? 'publish',
      brokerId: packet.brokerId,
      brokerCounter: packet.brokerCounter,
      topic: packet.topic,
      payload: payloadOf(packet),
      qos: overrides.qos ?? packet.qos ?? 0,
      retain: overrides.retain ?? packet.retain ?? false,
      dup: packet.dup ?? false,
      messageId
    }
  }
  const record: Record<string, unknown> = {}
  for (const key of CARRIED) {
    if (carries(packet, key)) record[key] = packet[key]
  }
  record.cmd = packet.cmd ?? 'publish'
  record.brokerId = packet.brokerId
  record.brokerCounter = packet.brokerCounter
  record.topic = packet.topic
  record.payload = payloadOf(packet)
  record.qos = overrides.qos ?? packet.qos ?? 0
  record.retain = overrides.retain ?? packet.retain ?? false
  record.dup = packet.dup ?? false
  record.messageId = messageId
  return record
}

/**
 * aedes sets `nl` on every delivered copy, undefined for MQTT 3.1.1 subscriptions: an undefined no-local says
 * nothing, and leaving it out keeps the record in the binary form.
 */
function carries (packet: PacketLike, key: typeof CARRIED[number]): boolean {
  return Object.prototype.hasOwnProperty.call(packet, key) && !(key === 'nl' && packet.nl === undefined)
}

function carriesAny (packet: PacketLike): boolean {
  return carries(packet, 'clientId') || carries(packet, 'nl') || carries(packet, 'properties') || carries(packet, 'messageExpiry')
}

export function pubrelRecord (messageId: number): Record<string, unknown> {
  return { cmd: 'pubrel', messageId }
}

/** Retained messages and wills are stored as given (the abstract suite expects every own key back). */
export function plainCopy (packet: PacketLike): Record<string, unknown> {
  return Object.assign({}, packet)
}

export function droppedPacket (fields: Record<string, unknown>): DroppedPacket {
  const payload = fields.payload
  const dropped: DroppedPacket = {
    topic: String(fields.topic ?? ''),
    payload: typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payloadOf({ payload: payload as Buffer }) as Buffer,
    qos: typeof fields.qos === 'number' ? fields.qos : 0,
    retain: fields.retain === true
  }
  if (fields.properties !== undefined) dropped.properties = fields.properties
  return dropped
}
