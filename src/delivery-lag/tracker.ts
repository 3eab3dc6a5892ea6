import type { HistogramSeries } from '../metrics/fast-histogram.js'

interface Pending {
  arrivedAt: number
  series: HistogramSeries
}

/**
 * One connection's QoS 1/2 deliveries the client has not finished acknowledging (PUBACK for QoS 1, PUBCOMP for
 * QoS 2), by packet identifier, each with when its message arrived at the broker.
 */
export class ConnectionLag {
  readonly #pending = new Map<number, Pending>()

  get unacked (): number {
    return this.#pending.size
  }

  /** A PUBLISH went out under `messageId`; one sent under an id still held replaces it (the client reused it). */
  sent (messageId: number, arrivedAt: number, series: HistogramSeries): void {
    this.#pending.set(messageId, { arrivedAt, series })
  }

  /** The final acknowledgement: the time since arrival goes into the delivery's histogram series. */
  completed (messageId: number, now: number): void {
    const p = this.#pending.get(messageId)
    if (p === undefined) return
    this.#pending.delete(messageId)
    p.series.observe(Math.max(0, now - p.arrivedAt) / 1000)
  }

  /** Arrival of the oldest message still unacknowledged (epoch ms); undefined when none is. A scrape-time walk. */
  oldestArrival (): number | undefined {
    let oldest: number | undefined
    for (const p of this.#pending.values()) if (oldest === undefined || p.arrivedAt < oldest) oldest = p.arrivedAt
    return oldest
  }

  clear (): void {
    this.#pending.clear()
  }
}
