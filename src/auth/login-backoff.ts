import { createHash } from 'node:crypto'

/**
 * Slows password guessing without slowing the other users of a shared address (NAT, a proxy).
 *
 * Failures are counted per (address, user name). After n failures for one, every further attempt for it — right or
 * wrong password — is answered only after min(baseMs * 2^(n-1), maxMs): the delay is decided before the password
 * is checked, so a guesser who gives up on slow answers learns nothing from the timing, and a correct login for
 * another user from the same address is not held. Guessing many user names from one address (a password spray) is
 * slowed as a whole: once more than `maxUsersPerAddress` distinct user names have failed there, every attempt from
 * that address waits baseMs * 2^(k-1) (k = user names over the bound), capped by maxMs. A successful login clears its
 * own (address, user name) only; everything is forgotten 10 * maxMs after its last failure.
 */
export interface BackoffOptions {
  /** Delay after the first failure; 0 turns the backoff off. */
  baseMs: number
  maxMs: number
  /** Distinct failing user names an address may have before all its logins are slowed; 0 = never. */
  maxUsersPerAddress: number
  /** (address, user name) pairs and addresses remembered at most, each; the oldest is forgotten first. */
  maxEntries?: number
  now?: () => number
}

interface Entry { failures: number, last: number }
interface AddressEntry { users: Set<string>, last: number }

// Past this many user names over the bound the delay is at its cap for any sane baseMs/maxMs.
const USERS_OVER_BOUND_KEPT = 32

export class LoginBackoff {
  private readonly entries = new Map<string, Entry>()
  private readonly addresses = new Map<string, AddressEntry>()
  private readonly maxEntries: number
  private readonly now: () => number

  constructor (private readonly opts: BackoffOptions) {
    this.maxEntries = opts.maxEntries ?? 10_000
    this.now = opts.now ?? Date.now
  }

  private get forgetMs (): number {
    return 10 * this.opts.maxMs
  }

  /** Failed logins remembered for this user name from this address. */
  failures (address: string, username: string | undefined): number {
    // every login asks: with nothing remembered (the usual case) it costs no digest of the user name
    if (this.entries.size === 0) return 0
    return this.fresh(this.entries, pairKey(address, username))?.failures ?? 0
  }

  /** How long to hold the answer to a login attempt for this user name from this address. */
  delayMs (address: string, username: string | undefined): number {
    if (this.opts.baseMs === 0) return 0
    const users = this.fresh(this.addresses, address)?.users.size ?? 0
    const overBound = this.opts.maxUsersPerAddress === 0 ? 0 : Math.max(0, users - this.opts.maxUsersPerAddress)
    const n = Math.max(this.failures(address, username), overBound)
    if (n === 0) return 0
    return Math.min(this.opts.baseMs * 2 ** Math.min(n - 1, 30), this.opts.maxMs)
  }

  /** Records a failed login; returns the failures now remembered for this user name from this address. */
  failed (address: string, username: string | undefined): number {
    const key = pairKey(address, username)
    const now = this.now()
    const failures = this.failures(address, username) + 1
    remember(this.entries, key, { failures, last: now }, this.maxEntries)
    const users = this.fresh(this.addresses, address)?.users ?? new Set<string>()
    if (users.size < this.opts.maxUsersPerAddress + USERS_OVER_BOUND_KEPT) users.add(key)
    remember(this.addresses, address, { users, last: now }, this.maxEntries)
    return failures
  }

  succeeded (address: string, username: string | undefined): void {
    if (this.entries.size === 0 && !this.addresses.has(address)) return
    const key = pairKey(address, username)
    this.entries.delete(key)
    this.addresses.get(address)?.users.delete(key)
  }

  /** (address, user name) pairs remembered. */
  get size (): number {
    return this.entries.size
  }

  private fresh<E extends { last: number }>(map: Map<string, E>, key: string): E | undefined {
    const e = map.get(key)
    if (e !== undefined && this.now() - e.last > this.forgetMs) {
      map.delete(key)
      return undefined
    }
    return e
  }
}

/** A user name may be 64 KiB long; its digest keeps every remembered key small. */
function pairKey (address: string, username: string | undefined): string {
  return `${address} ${createHash('sha256').update(username ?? '\u0000anonymous').digest('base64')}`
}

/** Sets the key as the newest entry, forgetting the oldest past `max`. */
function remember<E> (map: Map<string, E>, key: string, value: E, max: number): void {
  map.delete(key)
  map.set(key, value)
  if (map.size > max) {
    const oldest = map.keys().next().value
    if (oldest !== undefined) map.delete(oldest)
  }
}
