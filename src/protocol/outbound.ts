import type { ClientInternals, DeliveryPacket } from './aedes-internals.js'
import type { HeldCopies } from './held-copies.js'
import { tooLargeDetail, type UndeliveredSink } from './undelivered.js'
import type { V5Connection } from './v5/connection.js'
import type { ReceiveWindow } from './v5/receive-window.js'

/**
 * How the delivery router writes copies to one client: its protocol version and, for MQTT 5, the largest packet it
 * accepts, its Receive Maximum (window) and the copies waiting for room in it, and where a copy it does not get is
 * reported.
 */
export interface Outbound {
  v5: boolean
  maxPacketBytes: number | undefined
  /** The MQTT 5 connection: its Subscription Identifiers and Topic Aliases. */
  connection?: V5Connection
  window?: ReceiveWindow
  held?: HeldCopies<DeliveryPacket>
  undelivered?: UndeliveredSink
  /** Told once when the held copies break their bound (`held`: how many there were), for the log. */
  onSlowConsumer?: (client: ClientInternals, held: number) => void
  /** Over the held bound: the connection is closing as a slow consumer. */
  slow?: boolean
}

/** Shared by every MQTT 3.1.1 and 3.1 client: one object less per connection. */
export const V311: Outbound = { v5: false, maxPacketBytes: undefined }

/**
 * The client has Receive Maximum QoS 1/2 PUBLISHes unacknowledged. The publisher is not kept waiting: a persistent
 * session's copy stays in its queue, which sends it once acknowledgements make room (hooks.ts resumes the queue
 * replay); a copy without a queue (a clean session's, a retained one sent on SUBSCRIBE) is held in memory, within
 * the slow-reader bounds, and sent by the router when there is room.
 */
export function waitForRoom (c: ClientInternals, out: Outbound, packet: DeliveryPacket, persistent: boolean, retained: boolean): void {
  if (persistent && !retained) return
  const held = out.held as HeldCopies<DeliveryPacket>
  if (!out.slow && held.add(packet, packet.topic.length + payloadBytes(packet.payload))) return
  // Past limits.maxInflightMessages or maxInflightBytes: a slow consumer, closed; a clean session's copies that
  // will not be delivered are dead-lettered — those it has not acknowledged, the held ones, this one, and those
  // still coming before the connection is gone.
  const heldCount = held.size
  const lost = out.slow ? [packet] : [...(out.window?.unshared() ?? []), ...held.take(), packet]
  if (!out.slow) {
    out.slow = true
    out.onSlowConsumer?.(c, heldCount)
    c.emit('error', new Error(`limits.maxInflightMessages or maxInflightBytes exceeded: messages held for a client that does not acknowledge (Receive Maximum ${out.window?.maximum ?? 0})`))
  }
  if (!persistent) out.undelivered?.(c, lost, 'slow-consumer', 'the subscriber (a clean session) stopped acknowledging with its Receive Maximum reached, and more than limits.maxInflightMessages or maxInflightBytes waited for it; it was disconnected')
}

/**
 * A copy larger than the client's Maximum Packet Size: a shared group offers it to another member (`unsent`, on a
 * later turn), any other is dead-lettered.
 */
export function tooLarge (c: ClientInternals, out: Outbound, packet: DeliveryPacket, size: number, shared: boolean, unsent: ((detail: string) => void) | undefined): void {
  const detail = tooLargeDetail(size, out.maxPacketBytes ?? 0)
  if (unsent !== undefined) setImmediate(unsent, detail)
  else if (!shared) out.undelivered?.(c, [packet], 'too-large-for-client', detail)
}

function payloadBytes (payload: unknown): number {
  return Buffer.isBuffer(payload) ? payload.length : typeof payload === 'string' ? Buffer.byteLength(payload) : 0
}
