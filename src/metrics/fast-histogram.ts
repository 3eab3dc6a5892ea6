import type { Registry } from 'prom-client'

/** One label set's buckets: what the hot path holds on to and observes into, with no label lookup per value. */
export class HistogramSeries {
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor (readonly labels: Readonly<Record<string, string>>, private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length)
  }

  reset (): void {
    this.counts.fill(0)
    this.sum = 0
    this.count = 0
  }

  observe (value: number): void {
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]) {
        this.counts[i]++
        break
      }
    }
    this.sum += value
    this.count++
  }
}

export interface FastHistogramConfig {
  name: string
  help: string
  /** Upper bounds, ascending; +Inf is added. */
  buckets: readonly number[]
}

/**
 * A Prometheus histogram for values observed once per message: prom-client's observe() hashes the label set on every
 * call (about a microsecond), this one is a few additions into a series the caller picked once (`series`). Rendered
 * in the usual _bucket / _sum / _count form by the broker's registry.
 */
export class FastHistogram {
  readonly #series = new Map<string, HistogramSeries>()

  constructor (private readonly config: FastHistogramConfig) {}

  /** The series of one label set, made on first use; keep the label values bounded (no client ids). */
  series (labels: Readonly<Record<string, string>>): HistogramSeries {
    const key = JSON.stringify(labels)
    let s = this.#series.get(key)
    if (s === undefined) this.#series.set(key, s = new HistogramSeries(labels, this.config.buckets))
    return s
  }

  register (registry: Registry): void {
    const { name, help, buckets } = this.config
    const metric = {
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => ({ name, help, type: 'histogram', aggregator: 'sum', values: this.#values(buckets) }),
      // registry.resetMetrics(): the series stay (the hot path holds them), their counts go back to 0
      reset: () => {
        for (const series of this.#series.values()) series.reset()
      }
    }
    registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0])
  }

  #values (buckets: readonly number[]): Array<{ labels: Record<string, string | number>, value: number, metricName: string }> {
    const { name } = this.config
    const out: Array<{ labels: Record<string, string | number>, value: number, metricName: string }> = []
    for (const s of this.#series.values()) {
      let cumulative = 0
      for (let i = 0; i < buckets.length; i++) {
        cumulative += s.counts[i]
        out.push({ labels: { ...s.labels, le: buckets[i] }, value: cumulative, metricName: `${name}_bucket` })
      }
      out.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${name}_bucket` })
      out.push({ labels: { ...s.labels }, value: s.sum, metricName: `${name}_sum` })
      out.push({ labels: { ...s.labels }, value: s.count, metricName: `${name}_count` })
    }
    return out
  }
}
