/**
 * The wait before a message that was not acknowledged in time is offered again. Pure (unit-tested on its own).
 */
export interface Backoff {
  /** Wait before the second delivery; 0 = at once. */
  initialMs: number
  multiplier: number
  maxMs: number
  /** Each wait varies at random by up to ± this fraction. */
  jitter: number
}

/**
 * Wait after delivery number `attempt` (1 = the first delivery) failed: initialMs × multiplier^(attempt−1), capped
 * at maxMs, then varied by ± jitter. `random` is in [0, 1).
 */
export function retryDelayMs (b: Backoff, attempt: number, random: () => number): number {
  if (b.initialMs <= 0) return 0
  const base = Math.min(b.maxMs, b.initialMs * Math.pow(b.multiplier, Math.max(0, attempt - 1)))
  if (b.jitter <= 0) return Math.round(base)
  return Math.max(0, Math.round(base * (1 + b.jitter * (2 * random() - 1))))
}
