/**
 * Follows the MQTT packet boundaries in a byte stream by reading only each fixed header, so a packet that
 * declares a Remaining Length over the limit is caught after at most 5 bytes, before mqtt-packet's parser would
 * buffer its body (it keeps every byte until the whole packet has arrived).
 */
export type FrameViolation = { kind: 'too-large', declared: number } | { kind: 'malformed' }

const enum State { Header, Length, Body }

export class FrameScanner {
  private state = State.Header
  private length = 0
  private multiplier = 1
  private lengthBytes = 0
  private bodyLeft = 0

  /** `maxRemainingLength`: the largest Remaining Length accepted. */
  constructor (private readonly maxRemainingLength: number) {}

  /** Feeds the next bytes; returns the first violation found, or undefined while the stream is acceptable. */
  scan (chunk: Uint8Array): FrameViolation | undefined {
    let i = 0
    while (i < chunk.length) {
      if (this.state === State.Body) {
        const take = Math.min(this.bodyLeft, chunk.length - i)
        this.bodyLeft -= take
        i += take
        if (this.bodyLeft === 0) this.state = State.Header
        continue
      }
      const byte = chunk[i++]
      if (this.state === State.Header) {
        this.state = State.Length
        this.length = 0
        this.multiplier = 1
        this.lengthBytes = 0
        continue
      }
      // Remaining Length: up to four bytes, 7 bits each, least significant first [MQTT-2.2.3].
      this.length += (byte & 0x7f) * this.multiplier
      this.multiplier *= 128
      this.lengthBytes++
      if ((byte & 0x80) !== 0) {
        if (this.lengthBytes === 4) return { kind: 'malformed' }
        continue
      }
      if (this.length > this.maxRemainingLength) return { kind: 'too-large', declared: this.length }
      this.bodyLeft = this.length
      this.state = this.length === 0 ? State.Header : State.Body
    }
    return undefined
  }
}
