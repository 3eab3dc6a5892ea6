/** One timer for the earliest retry the engine asks to be woken for; once woken it asks again for the next one. */
export class WakeTimer {
  readonly #fire: () => void
  #at = Infinity
  #timer: NodeJS.Timeout | undefined

  constructor (fire: () => void) {
    this.#fire = fire
  }

  /** Wakes the engine at `atMs` (epoch ms), unless it is already due to wake earlier. */
  wakeAt (atMs: number): void {
    if (atMs >= this.#at) return
    clearTimeout(this.#timer)
    this.#at = atMs
    this.#timer = setTimeout(() => {
      this.#at = Infinity
      this.#fire()
    }, Math.max(0, atMs - Date.now()))
    this.#timer.unref()
  }

  stop (): void {
    clearTimeout(this.#timer)
  }
}
