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
 * One connection's counts. A class rather than an object literal: a literal with getters is made in dictionary mode,
 * about 450 bytes more per held connection than these fields kept in the object.
 */
class Counts implements ConnectionStats {
  readonly openedAt = Date.now()
  packetsIn = 0
  packetsOut = 0
  bytesIn = 0
  bytesOut = 0
  messagesIn = 0
  messagesOut = 0
  // made on the first QoS 1/2 message, dropped at close
  #out: Set<number> | undefined = undefined
  #in: Set<number> | undefined = undefined
  #closed = false
  readonly #listener: TapListener

  constructor (listener: TapListener) {
    this.#listener = listener
  }

  get inflightOut (): ReadonlySet<number> { return this.#out ?? NONE }
  get inflightIn (): ReadonlySet<number> { return this.#in ?? NONE }

  track (direction: Direction, id: number, add: boolean): void {
    if (id < 0 || this.#closed) return
    let set = direction === 'out' ? this.#out : this.#in
    if (add) {
      if (set === undefined) {
        set = new Set()
        if (direction === 'out') this.#out = set
        else this.#in = set
      }
      if (set.has(id)) return
      set.add(id)
      this.#listener.onInflight(direction, 1)
    } else if (set?.delete(id) === true) {
      this.#listener.onInflight(direction, -1)
    }
  }

  /** The packets still in flight belong to the session now (the store keeps them for a persistent one). */
  close (): void {
    this.#closed = true
    if (this.#out !== undefined && this.#out.size > 0) this.#listener.onInflight('out', -this.#out.size)
    if (this.#in !== undefined && this.#in.size > 0) this.#listener.onInflight('in', -this.#in.size)
    this.#out = this.#in = undefined
  }
}

/**
 * Observes a connection stream before aedes gets it: every chunk aedes reads from it and every chunk aedes
 * writes to it goes through a framing reader. Nothing is changed or delayed; the wrappers only count.
 */
export function tapConnection (stream: Duplex, listener: TapListener): ConnectionStats {
  const stats = new Counts(listener)
  taps.set(stream, stats)

  const inbound = new WireTap(p => {
    stats.packetsIn++
    stats.bytesIn += p.bytes
    if (p.type === 'publish') {
      stats.messagesIn++
      if (p.qos === 2) stats.track('in', p.messageId, true)
    } else if (p.type === 'puback' || p.type === 'pubcomp') {
      stats.track('out', p.messageId, false)
    }
    listener.onPacket('in', p)
  })
  const outbound = new WireTap(p => {
    stats.packetsOut++
    stats.bytesOut += p.bytes
    if (p.type === 'publish') {
      stats.messagesOut++
      if (p.qos > 0) stats.track('out', p.messageId, true)
    } else if (p.type === 'pubcomp') {
      stats.track('in', p.messageId, false)
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
  stream.on('close', () => { stats.close() })
  return stats
}
