/** A token bucket of `perSecond` tokens (burst = one second's worth); 0 = unlimited. */
export class RateLimit {
  readonly #perSecond: number
  #tokens: number
  #at: number

  constructor (perSecond: number, now = Date.now()) {
    this.#perSecond = perSecond
    this.#tokens = perSecond
    this.#at = now
  }

  take (now = Date.now()): boolean {
    if (this.#perSecond === 0) return true
    this.#tokens = Math.min(this.#perSecond, this.#tokens + (now - this.#at) * this.#perSecond / 1000)
    this.#at = now
    if (this.#tokens < 1) return false
    this.#tokens--
    return true
  }
}
