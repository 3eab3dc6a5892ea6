import type { Writable } from 'node:stream'

/**
 * Gathers every packet written to one connection during a turn of the event loop into one socket write.
 *
 * aedes writes each packet from its own setImmediate (deliveries, acknowledgements) and mqtt-packet corks a stream
 * only until the next tick, so with TCP_NODELAY every packet was its own writev and its own TCP segment: at QoS 1
 * fan-in that was half of the broker's CPU. Here the first write of a turn corks the stream and an immediate
 * queued behind the writes of this turn uncorks it, so what one turn writes leaves in one writev, before the loop
 * waits for I/O again. Nothing is held longer than that turn, write() still returns false over the high-water mark
 * (backpressure and 'drain' are unchanged), end() flushes (Writable.end uncorks), and destroy() flushes first, so
 * a packet written just before aedes destroys the connection (a refusing CONNACK) still goes out as before.
 */
export function batchWrites (stream: Writable): void {
  if (typeof stream.cork !== 'function' || typeof stream.uncork !== 'function') return
  let held = false
  const flush = (): void => {
    if (!held) return
    held = false
    stream.uncork()
  }
  const write = stream.write
  // Fixed parameters rather than a rest array, as in every wrapper of write(): it runs for every packet.
  stream.write = function batchedWrite (this: Writable, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (!held && !this.destroyed && !this.writableEnded) {
      held = true
      this.cork()
      setImmediate(flush)
    }
    return (write as (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean).call(this, chunk, encoding, cb)
  } as Writable['write']
  const destroy = stream.destroy
  stream.destroy = function flushingDestroy (this: Writable, ...args: unknown[]) {
    flush()
    return (destroy as (...a: unknown[]) => Writable).apply(this, args)
  } as Writable['destroy']
}
