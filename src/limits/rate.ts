/**
 * Rate limits as a generic cell rate algorithm (GCRA): a budget of `perSecond` units that refills continuously,
 * with up to one second's worth usable at once (the burst). One timestamp per limited thing, no timers.
 */
export class Gcra {
  private tat = 0
  private readonly unitMs: number

  constructor (perSecond: number, private readonly burstMs = 1000) {
    this.unitMs = 1000 / perSecond
  }

  /** Takes `cost` units if the budget allows it now; otherwise takes nothing and returns false. */
  tryTake (now: number, cost = 1): boolean {
    const next = Math.max(this.tat, now) + cost * this.unitMs
    if (next - now > this.burstMs) return false
    this.tat = next
    return true
  }

  /** Always takes `cost` units; returns how long to wait before acting so the rate holds. */
  reserve (now: number, cost = 1): number {
    this.tat = Math.max(this.tat, now) + cost * this.unitMs
    return Math.max(0, this.tat - now - this.burstMs)
  }

  /** True once the budget is full again (nothing reserved beyond now): the entry can be forgotten. */
  idle (now: number): boolean {
    return this.tat <= now
  }
}

/** A client's publish budget in messages and in bytes per second; 0 turns either off. */
export class PublishThrottle {
  private readonly messages: Gcra | undefined
  private readonly bytes: Gcra | undefined

  constructor (messagesPerSecond: number, bytesPerSecond: number) {
    this.messages = messagesPerSecond > 0 ? new Gcra(messagesPerSecond) : undefined
    this.bytes = bytesPerSecond > 0 ? new Gcra(bytesPerSecond) : undefined
  }

  get enabled (): boolean {
    return this.messages !== undefined || this.bytes !== undefined
  }

  /** How long to hold this message (and with it the client's socket) so the client stays within both rates. */
  reserve (now: number, size: number): { delayMs: number, limit: string } {
    const m = this.messages?.reserve(now) ?? 0
    const b = this.bytes?.reserve(now, size) ?? 0
    return m >= b
      ? { delayMs: m, limit: 'limits.publishRateMessagesPerSecond' }
      : { delayMs: b, limit: 'limits.publishRateBytesPerSecond' }
  }
}

/** A rate per source address, for new connections; remembers at most `maxAddresses` addresses. */
export class AddressRate {
  private readonly byAddress = new Map<string, Gcra>()

  constructor (private readonly perSecond: number, private readonly maxAddresses = 10_000) {}

  tryTake (address: string, now: number): boolean {
    let g = this.byAddress.get(address)
    if (g === undefined) {
      if (this.byAddress.size >= this.maxAddresses) this.prune(now)
      g = new Gcra(this.perSecond)
      this.byAddress.set(address, g)
    }
    return g.tryTake(now)
  }

  private prune (now: number): void {
    for (const [address, g] of this.byAddress) if (g.idle(now)) this.byAddress.delete(address)
    // Still full: every address is busy, so the oldest one starts over with a fresh budget.
    if (this.byAddress.size >= this.maxAddresses) {
      const oldest = this.byAddress.keys().next().value
      if (oldest !== undefined) this.byAddress.delete(oldest)
    }
  }

  get size (): number {
    return this.byAddress.size
  }
}
