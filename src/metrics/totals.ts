import { packetTypes, type WirePacket } from './wire-tap.js'
import type { Direction } from './connection-tap.js'

/** CONNACK return codes of MQTT 3.1.1 that refuse a connection, as metric label values. */
export const refusalReasons: Record<number, string> = {
  1: 'unacceptable_protocol_version',
  2: 'identifier_rejected',
  3: 'server_unavailable',
  4: 'bad_username_or_password',
  5: 'not_authorized'
}

/** A connection closed before the broker accepted its CONNECT (timeout, malformed packet, refused in preConnect). */
export const NO_CONNACK = 'closed_before_connack'

export interface DirectionTotals {
  /**
   * Packets by type, indexed by its number (packetTypes): the count of each packet is one indexed add, where a
   * property named by the type was a keyed lookup.
   */
  packets: number[]
  packetCount: number
  /** MQTT bytes (fixed header, length and body of every packet). */
  bytes: number
  /** PUBLISH packets by QoS (index 0..2). */
  messages: [number, number, number]
  /** Application payload bytes of those PUBLISH packets by QoS. */
  payloadBytes: [number, number, number]
}

function directionTotals (): DirectionTotals {
  return {
    packets: packetTypes.map(() => 0),
    packetCount: 0,
    bytes: 0,
    messages: [0, 0, 0],
    payloadBytes: [0, 0, 0]
  }
}

/**
 * Every running count the broker keeps for metrics and $SYS, as plain numbers: the hot path only adds to them;
 * the Prometheus registry and the $SYS publisher read them when they report.
 */
export class Totals {
  readonly startedAt = Date.now()
  readonly in = directionTotals()
  readonly out = directionTotals()
  /** Accepted connections (CONNACK 0). */
  connections = 0
  /** Highest number of clients connected at once. */
  maxConnected = 0
  /** Clients connected now, by protocol level (3: MQTT 3.1, 4: 3.1.1, 5: 5.0). */
  readonly connectedByLevel = [0, 0, 0, 0, 0, 0]
  // Every known reason starts at 0, so rate() works before the first refusal.
  readonly refused = new Map<string, number>([...Object.values(refusalReasons), NO_CONNACK].map(r => [r, 0]))
  readonly authFailures = new Map<string, number>(['bad_username_or_password', 'not_authorized'].map(r => [r, 0]))
  /** Clients disconnected through the admin API. */
  kicked = 0
  inflightOut = 0
  inflightIn = 0

  packet (direction: Direction, p: WirePacket): void {
    const t = direction === 'in' ? this.in : this.out
    t.packets[p.code]++
    t.packetCount++
    t.bytes += p.bytes
    if (p.type === 'publish' && p.qos < 3) {
      t.messages[p.qos]++
      t.payloadBytes[p.qos] += p.payloadBytes
    }
  }

  inflight (direction: Direction, delta: number): void {
    if (direction === 'out') this.inflightOut += delta
    else this.inflightIn += delta
  }

  refuse (reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1)
  }

  authFailure (reason: string): void {
    this.authFailures.set(reason, (this.authFailures.get(reason) ?? 0) + 1)
  }
}

export function sum (values: Iterable<number>): number {
  let total = 0
  for (const v of values) total += v
  return total
}
