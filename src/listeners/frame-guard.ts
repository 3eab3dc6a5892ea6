import type { Readable } from 'node:stream'
import { FrameScanner, type FrameViolation } from '../limits/frame-scanner.js'

/**
 * Closes a connection as soon as an MQTT packet on it declares a Remaining Length over `maxRemainingLength`, or a
 * malformed one, before the body is buffered: mqtt-packet's parser keeps every byte of a packet until it is
 * complete, so without this one CONNECT declaring 256 MiB holds memory for as long as the sender trickles it in.
 *
 * Every byte aedes gets passes through the stream's read() (it reads on 'readable'), so the check wraps read() on
 * this one stream: no copy and no extra stream. The socket's own buffer stays bounded by its high-water mark.
 */
export function guardFrames (stream: Readable, maxRemainingLength: number, onViolation: (v: FrameViolation) => void): void {
  const scanner = new FrameScanner(maxRemainingLength)
  // called on the stream rather than bound to it: a bound copy per connection costs memory and buys nothing
  const read = stream.read
  let tripped = false
  stream.read = (size?: number): unknown => {
    if (tripped) return null
    const chunk: unknown = read.call(stream, size)
    if (chunk instanceof Uint8Array) {
      const violation = scanner.scan(chunk)
      if (violation !== undefined) {
        tripped = true
        onViolation(violation)
        stream.destroy()
        return null
      }
    }
    return chunk
  }
}
