import { SessionRecords, type Expiring } from '../session-records.js'
import { scanKeys } from './scan.js'
import { defineScript, type Script } from './scripts.js'
import { SESSION, SESSIONS_LEFT } from './state-scripts.js'
import type { RedisDeps } from './write-order.js'

/** Session records (`sessions` hash, session-records.ts' fields) and the list of sessions, read from Redis. */
/** How often stats() reads the cluster-wide counts again. */
const COUNTS_EVERY_MS = 10_000

export class RedisSessionRecords {
  readonly #d: RedisDeps
  readonly #session: Script
  readonly #left: Script
  #counts = { sessions: 0, retained: 0 }
  #countedAt = 0

  constructor (deps: RedisDeps) {
    this.#d = deps
    this.#session = defineScript(deps.redis, 'culexSession', SESSION)
    this.#left = defineScript(deps.redis, 'culexSessionsLeft', SESSIONS_LEFT)
  }

  async has (clientId: string): Promise<boolean> {
    return await this.#d.redis.hexists(this.#d.keys.sessions, clientId) === 1
  }

  /**
   * The record changed by a script, so two nodes never overwrite each other's fields; it names the run holding the
   * connection (`brokerId`), whose disconnect only counts.
   */
  connected (clientId: string, connected: boolean, at: number, expirySeconds: number | undefined, brokerId: string): void {
    this.#d.order.track(this.#session([this.#d.keys.sessions], [clientId, connected ? 'up' : 'down', at, expirySeconds ?? '', brokerId]))
      .catch((err: unknown) => { this.#d.logger.warn({ err, clientId }, 'session record not written') })
  }

  /**
   * A connection of this run is about to read the session (session-scripts.ts, SESSION's claim): 'over' when the
   * session has expired (not claimed), 'none' when there is no record, else marked connected, held by `brokerId`.
   */
  async claim (clientId: string, maxMs: number, at: number, expirySeconds: number | undefined, brokerId: string): Promise<'none' | 'claimed' | 'over'> {
    const reply = Number(await this.#d.order.track(this.#session([this.#d.keys.sessions], [clientId, 'claim', at, expirySeconds ?? '', brokerId, maxMs])))
    return reply === 2 ? 'over' : reply === 1 ? 'claimed' : 'none'
  }

  /** A dead run's sessions are disconnected from `at` (their expiry counts from then). */
  async left (brokerId: string, at: number): Promise<number> {
    return Number(await this.#d.order.track(this.#left([this.#d.keys.sessions], [brokerId, at])))
  }

  async expiring (maxMs: number, now: number): Promise<Expiring> {
    const records = new SessionRecords()
    for (const [clientId, json] of Object.entries(await this.#d.redis.hgetall(this.#d.keys.sessions))) records.load(clientId, JSON.parse(json) as Record<string, unknown>)
    return records.expiring(maxMs, now)
  }

  /** Every client id with a session record, subscriptions, a queue or inbound QoS 2 records. */
  async list (): Promise<string[]> {
    const { redis, keys } = this.#d
    const ids = new Set(await redis.hkeys(keys.sessions))
    for (const kind of ['subs', 'q', 'in'] as const) {
      const { match, clientId } = keys.perClient(kind)
      for await (const found of scanKeys(redis, match)) for (const key of found) ids.add(clientId(key))
    }
    return [...ids].sort()
  }

  /** The counts stats() reports, as last read; reads them again (in the background) every COUNTS_EVERY_MS. */
  counts (): { sessions: number, retained: number } {
    if (Date.now() - this.#countedAt >= COUNTS_EVERY_MS) this.refreshCounts().catch(() => undefined)
    return this.#counts
  }

  /** Sessions counted as `list` does (a SCAN), retained messages by HLEN. */
  async refreshCounts (): Promise<void> {
    this.#countedAt = Date.now()
    const [sessions, retained] = await Promise.all([this.list(), this.#d.redis.hlen(this.#d.keys.retained)])
    this.#counts = { sessions: sessions.length, retained }
  }
}
