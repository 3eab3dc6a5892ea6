import { AddressRate } from './rate.js'

/**
 * Whether a new socket may be accepted, decided before TLS, HTTP or MQTT spends anything on it. Counts every
 * open socket, those that have not sent CONNECT yet included, so idle half-open connections count too.
 */
export interface AdmissionLimits {
  /** All listeners together; 0 = no limit. */
  maxConnections: number
  /** Per listener name; 0 or absent = only the global limit. */
  perListener: Readonly<Record<string, number>>
  /** New connections per second from one source address; 0 = no limit. */
  connectionRatePerSecond: number
}

export type Admitted = { ok: true, release: () => void } | { ok: false, limit: string }

export class Admission {
  private total = 0
  private readonly open = new Map<string, number>()
  private readonly rate: AddressRate | undefined

  constructor (private readonly limits: AdmissionLimits, private readonly now: () => number = Date.now) {
    this.rate = limits.connectionRatePerSecond > 0 ? new AddressRate(limits.connectionRatePerSecond) : undefined
  }

  admit (listener: string, address: string): Admitted {
    const here = this.open.get(listener) ?? 0
    const max = this.limits.perListener[listener] ?? 0
    if (max > 0 && here >= max) return { ok: false, limit: `listeners.${listener}.maxConnections` }
    if (this.limits.maxConnections > 0 && this.total >= this.limits.maxConnections) return { ok: false, limit: 'limits.maxConnections' }
    if (this.rate !== undefined && !this.rate.tryTake(address, this.now())) return { ok: false, limit: 'limits.connectionRatePerSecond' }
    this.total++
    this.open.set(listener, here + 1)
    let released = false
    return {
      ok: true,
      release: () => {
        if (released) return
        released = true
        this.total--
        this.open.set(listener, (this.open.get(listener) ?? 1) - 1)
      }
    }
  }

  get connections (): number {
    return this.total
  }
}
