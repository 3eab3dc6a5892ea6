/**
 * Mosquitto's `$SYS/broker/load/...` values: exponentially weighted moving averages of a rate per minute over 1, 5
 * and 15 minutes, updated at each $SYS interval exactly as Mosquitto's sys_tree.c does:
 *
 *   rate    = (count - previous count) * 60 / seconds since the previous update
 *   average = e^(-seconds / period) * average + (1 - e^(-seconds / period)) * rate
 */
export const loadPeriods = [
  { name: '1min', seconds: 60 },
  { name: '5min', seconds: 300 },
  { name: '15min', seconds: 900 }
] as const

export class LoadAverage {
  #count: number
  #at: number
  readonly #averages = [0, 0, 0]

  constructor (count: number, at: number) {
    this.#count = count
    this.#at = at
  }

  /** Takes the running total `count` read at time `at` (ms) and returns the three averages (1, 5, 15 min). */
  update (count: number, at: number): number[] {
    const seconds = (at - this.#at) / 1000
    if (seconds <= 0) return this.values()
    const perMinute = (count - this.#count) * 60 / seconds
    loadPeriods.forEach((period, i) => {
      const exponent = Math.exp(-seconds / period.seconds)
      this.#averages[i] = exponent * this.#averages[i] + (1 - exponent) * perMinute
    })
    this.#count = count
    this.#at = at
    return this.values()
  }

  values (): number[] {
    return [...this.#averages]
  }
}
