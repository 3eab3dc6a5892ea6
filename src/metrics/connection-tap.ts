import type { Duplex } from 'node:stream'
import { WireTap, feedChunk, type WirePacket } from './wire-tap.js'

export type Direction = 'in' | 'out'

/** What one connection has done so far, counted on the wire. */
export interface ConnectionStats {
  readonly openedAt: number
  packetsIn: number
  packetsOut: number
  bytesIn: number
  bytesOut: number
  messagesIn: number
  messagesOut: number
  /** Packet ids of QoS 1 and 2 messages sent to the client and not yet acknowledged (PUBACK or PUBCOMP). */
  readonly inflightOut: ReadonlySet<number>
  /** Packet ids of QoS 2 messages received from the client and not yet completed (PUBCOMP sent). */
  readonly inflightIn: ReadonlySet<number>
}

// What a connection with nothing in flight shows: the sets are made on its first QoS 1/2 message.
const NONE: ReadonlySet<number> = new Set()

export interface TapListener {
  onPacket: (direction: Direction, packet: WirePacket) => void
  /** The in-flight sets changed by `delta` messages in `direction` (out: to the client, in: from it). */
  onInflight: (direction: Direction, delta: number) => void
}

const taps = new WeakMap<object, ConnectionStats>()

/** The stats of a connection that went through `tapConnection` (aedes' `client.conn`). */
export function connectionStats (stream: object): ConnectionStats | undefined {
  return taps.get(stream)
}

/**
 * Observes a connection stream before aedes gets it: every chunk aedes reads from it and every chunk aedes
 * writes to it goes through a framing reader. Nothing is changed or delayed; the wrappers only count.
 */
export function tapConnection (stream: Duplex, listener: TapListener): ConnectionStats {
  const stats: ConnectionStats = {
    openedAt: Date.now(),
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    messagesIn: 0,
    messagesOut: 0,
    get inflightOut () { return inflightOut ?? NONE },
    get inflightIn () { return inflightIn ?? NONE }
  }
  taps.set(stream, stats)

  let inflightOut: Set<number> | undefined
  let inflightIn: Set<number> | undefined
  let closed = false
  const track = (direction: Direction, id: number, add: boolean): void => {
    if (id < 0 || closed) return
    let set = direction === 'out' ? inflightOut : inflightIn
    if (add) {
      if (set === undefined) {
        set = new Set()
        if (direction === 'out') inflightOut = set
        else inflightIn = set
      }
      if (set.has(id)) return
      set.add(id)
      listener.onInflight(direction, 1)
    } else if (set?.delete(id) === true) {
      listener.onInflight(direction, -1)
    }
  }

  const inbound = new WireTap(p => {
    stats.packetsIn++
    stats.bytesIn += p.bytes
    if (p.type === 'publish') {
      stats.messagesIn++
      if (p.qos === 2) track('in', p.messageId, true)
    } else if (p.type === 'puback' || p.type === 'pubcomp') {
      track('out', p.messageId, false)
    }
    listener.onPacket('in', p)
  })
  const outbound = new WireTap(p => {
    stats.packetsOut++
    stats.bytesOut += p.bytes
    if (p.type === 'publish') {
      stats.messagesOut++
      if (p.qos > 0) track('out', p.messageId, true)
    } else if (p.type === 'pubcomp') {
      track('in', p.messageId, false)
    }
    listener.onPacket('out', p)
  })

  // aedes reads with read() in paused mode (lib/client.js nextBatch) and writes each packet with
  // several synchronous write() calls (mqtt-packet writeToStream), so both wrappers see every byte once.
  const read = stream.read
  stream.read = function tappedRead (this: Duplex, size?: number) {
    const chunk: unknown = read.call(this, size)
    if (chunk !== null && !inbound.broken) feedChunk(inbound, chunk)
    return chunk
  }
  const write = stream.write
  // Fixed parameters, not a rest array: this runs for every write of every packet.
  stream.write = function tappedWrite (this: Duplex, chunk: unknown, encoding?: unknown, cb?: unknown) {
    if (!outbound.broken) feedChunk(outbound, chunk, typeof encoding === 'string' ? encoding as BufferEncoding : undefined)
    return (write as (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean).call(this, chunk, encoding, cb)
  } as Duplex['write']

  // 'close' comes once: on() spares the wrapper once() makes for every connection
  stream.on('close', () => {
    closed = true
    // The packets still in flight belong to the session now (the store keeps them for a persistent one).
    if (stats.inflightOut.size > 0) listener.onInflight('out', -stats.inflightOut.size)
    if (stats.inflightIn.size > 0) listener.onInflight('in', -stats.inflightIn.size)
    inflightOut = inflightIn = undefined
  })
  return stats
}
