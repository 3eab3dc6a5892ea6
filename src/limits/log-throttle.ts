/**
 * Keeps a flood of refused connections or dropped messages from becoming a flood of log lines: at most one line
 * per key per interval, and the next line says how many were not written in between.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number, suppressed: number }>()

  constructor (private readonly intervalMs = 1000, private readonly now: () => number = Date.now, private readonly maxKeys = 1000) {}

  /** Returns the number of suppressed events to report if a line should be written now, or undefined to skip it. */
  take (key: string): number | undefined {
    const now = this.now()
    const entry = this.last.get(key)
    if (entry !== undefined && now - entry.at < this.intervalMs) {
      entry.suppressed++
      return undefined
    }
    const suppressed = entry?.suppressed ?? 0
    this.last.delete(key)
    if (this.last.size >= this.maxKeys) {
      const oldest = this.last.keys().next().value
      if (oldest !== undefined) this.last.delete(oldest)
    }
    this.last.set(key, { at: now, suppressed: 0 })
    return suppressed
  }
}
