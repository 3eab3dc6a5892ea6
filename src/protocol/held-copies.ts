/**
 * Copies that wait, in memory and in order, for room in an MQTT 5 client's Receive Maximum (v5/receive-window.ts):
 * a clean session's live copies and a retained copy sent on SUBSCRIBE, which have no session queue to wait in. The
 * publisher does not wait for them (aedes acknowledges a QoS 1/2 publish only once every delivery has called
 * back, so one client that does not acknowledge would otherwise stall every publisher it subscribes to). They are
 * bounded like the slow-reader queue they are part of, by limits.maxInflightMessages and limits.maxInflightBytes: a
 * client past either is a slow consumer (`add` says so and keeps nothing more).
 */
export class HeldCopies<P> {
  #list: P[] = []
  #head = 0
  #bytes = 0
  readonly #sizes: number[] = []

  /** 0 = no bound of that kind. */
  constructor (private readonly maxMessages: number, private readonly maxBytes: number) {}

  get size (): number {
    return this.#list.length - this.#head
  }

  /** Keeps the copy; false (not kept) when it would break a bound. */
  add (copy: P, bytes: number): boolean {
    if ((this.maxMessages > 0 && this.size >= this.maxMessages) || (this.maxBytes > 0 && this.#bytes + bytes > this.maxBytes)) return false
    this.#list.push(copy)
    this.#sizes.push(bytes)
    this.#bytes += bytes
    return true
  }

  /** The oldest copy, no longer held. */
  shift (): P | undefined {
    if (this.size === 0) return undefined
    const copy = this.#list[this.#head]
    this.#bytes -= this.#sizes[this.#head]
    this.#head++
    // compacted once half is taken, so a long wait does not keep what was sent
    if (this.#head * 2 >= this.#list.length) {
      this.#list = this.#list.slice(this.#head)
      this.#sizes.splice(0, this.#head)
      this.#head = 0
    }
    return copy
  }

  /** Every copy still held, and forgets them. */
  take (): P[] {
    const out = this.#list.slice(this.#head)
    this.#list = []
    this.#sizes.length = 0
    this.#head = 0
    this.#bytes = 0
    return out
  }
}
