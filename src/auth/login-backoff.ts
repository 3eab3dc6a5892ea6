/**
 * Slows password guessing from one address. After n failed logins from an address, every further login attempt
 * from it (right or wrong) is answered only after min(baseMs * 2^(n-1), maxMs): answering good guesses at once
 * would let a guesser give up on a slow answer and learn from the timing. A successful login clears the address;
 * so does 10 * maxMs without a failure.
 */
export interface BackoffOptions {
  /** Delay after the first failure; 0 turns the backoff off. */
  baseMs: number
  maxMs: number
  /** Addresses remembered at most; the oldest is forgotten first. Bounds memory under address spraying. */
  maxAddresses?: number
  now?: () => number
}

interface Entry { failures: number, last: number }

export class LoginBackoff {
  private readonly entries = new Map<string, Entry>()
  private readonly maxAddresses: number
  private readonly now: () => number

  constructor (private readonly opts: BackoffOptions) {
    this.maxAddresses = opts.maxAddresses ?? 10_000
    this.now = opts.now ?? Date.now
  }

  private get forgetMs (): number {
    return 10 * this.opts.maxMs
  }

  /** Failed logins remembered for this address. */
  failures (address: string): number {
    const e = this.entries.get(address)
    if (e === undefined) return 0
    if (this.now() - e.last > this.forgetMs) {
      this.entries.delete(address)
      return 0
    }
    return e.failures
  }

  /** How long to hold the answer to a login attempt from this address. */
  delayMs (address: string): number {
    const n = this.failures(address)
    if (n === 0 || this.opts.baseMs === 0) return 0
    return Math.min(this.opts.baseMs * 2 ** Math.min(n - 1, 30), this.opts.maxMs)
  }

  /** Records a failed login; returns the failures now remembered for the address. */
  failed (address: string): number {
    const failures = this.failures(address) + 1
    this.entries.delete(address)
    this.entries.set(address, { failures, last: this.now() })
    if (this.entries.size > this.maxAddresses) {
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
    return failures
  }

  succeeded (address: string): void {
    this.entries.delete(address)
  }

  get size (): number {
    return this.entries.size
  }
}
