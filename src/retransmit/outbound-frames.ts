import { WireTap, feedChunk, type WirePacket } from '../metrics/wire-tap.js'

/** One piece of a packet as it was written: bytes, or text with its encoding (mqtt-packet writes topics as strings). */
export type Part = Buffer | { text: string, encoding: BufferEncoding }

/** A QoS 1/2 PUBLISH or a PUBREL as it went out: its pieces, by reference, in the order they were written. */
export interface Frame {
  type: 'publish' | 'pubrel'
  qos: number
  messageId: number
  parts: Part[]
}

interface Pending { part: Part, bytes: number }

/**
 * Cuts what is written to one connection into MQTT packets, however the writer chunked them, and hands over every
 * QoS 1/2 PUBLISH and PUBREL. Seeing the bytes that really went out covers every way a packet is sent (live,
 * retained, replayed, shared) without knowing who wrote it, and nothing is copied: a retransmission is those same
 * pieces written again. The framing itself is the metrics' wire reader.
 */
export class OutboundFrames {
  readonly #tap: WireTap
  readonly #pending: Pending[] = []
  #pendingBytes = 0

  constructor (onFrame: (frame: Frame) => void) {
    this.#tap = new WireTap(packet => {
      const parts = this.#take(packet.bytes)
      if (isTracked(packet)) onFrame({ type: packet.type as Frame['type'], qos: packet.qos, messageId: packet.messageId, parts })
    })
  }

  /** False once the stream stopped being MQTT: nothing more is reported. */
  get usable (): boolean {
    return !this.#tap.broken
  }

  /** Whether everything written so far ends on a packet boundary: only then may another packet be written. */
  get atBoundary (): boolean {
    return this.#pendingBytes === 0
  }

  /** Takes what stream.write was given. */
  write (chunk: unknown, encoding?: BufferEncoding): void {
    if (this.#tap.broken) return
    let entry: Pending
    if (chunk instanceof Uint8Array) {
      entry = { part: Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), bytes: chunk.byteLength }
    } else if (typeof chunk === 'string') {
      const enc = encoding ?? 'utf8'
      entry = { part: { text: chunk, encoding: enc }, bytes: Buffer.byteLength(chunk, enc) }
    } else {
      return
    }
    if (entry.bytes === 0) return
    this.#pending.push(entry)
    this.#pendingBytes += entry.bytes
    feedChunk(this.#tap, chunk, encoding)
  }

  /** The first `bytes` bytes written and not yet handed out; a piece that straddles two packets is split. */
  #take (bytes: number): Part[] {
    const parts: Part[] = []
    let left = bytes
    while (left > 0 && this.#pending.length > 0) {
      const head = this.#pending[0]
      if (head.bytes <= left) {
        parts.push(head.part)
        this.#pending.shift()
        left -= head.bytes
      } else {
        const buf = toBuffer(head.part)
        parts.push(buf.subarray(0, left))
        this.#pending[0] = { part: buf.subarray(left), bytes: head.bytes - left }
        left = 0
      }
    }
    this.#pendingBytes -= bytes - left
    return parts
  }
}

function isTracked (packet: WirePacket): boolean {
  return (packet.type === 'publish' && packet.qos > 0) || packet.type === 'pubrel'
}

export function toBuffer (part: Part): Buffer {
  return Buffer.isBuffer(part) ? part : Buffer.from(part.text, part.encoding)
}

/** The pieces of a PUBLISH with DUP set in its fixed header [MQTT-3.3.1-1]; the original pieces are left as they are. */
export function withDup (parts: readonly Part[]): Part[] {
  const first = toBuffer(parts[0])
  const head = Buffer.from([first[0] | 0x08])
  return first.length > 1 ? [head, first.subarray(1), ...parts.slice(1)] : [head, ...parts.slice(1)]
}
