import { encodeRecord } from './codec.js'
import { PREFIX, encodeClientId } from './layout.js'
import type { WriteOp } from './write-queue.js'

/**
 * One record per persistent session, written when a clean=false client connects and disconnects. A session exists
 * even with no subscriptions and no queued message [MQTT-3.2.2-2], and its last disconnect time is what session
 * expiry measures.
 */
export interface SessionRecord {
  createdAt: number
  connectedAt: number
  /** Absent while the client is connected. */
  disconnectedAt?: number
  /**
   * The MQTT 5 Session Expiry Interval in seconds (0xFFFFFFFF = never), as the client last set it (CONNECT, then
   * DISCONNECT) and the broker capped it. Absent for an MQTT 3.1.1 session and in records written before MQTT 5:
   * the broker's `sessions.expiryMs` applies.
   */
  expirySeconds?: number
}

/** The Session Expiry Interval that means the session never expires (MQTT 5 §3.1.2.11.2). */
export const NEVER_EXPIRES = 0xFFFFFFFF

/**
 * Whether a session's record has its client connected: a record has no `disconnectedAt` while it is (in a cluster,
 * to any node: the store every node shares holds it); false without one.
 */
export function recordConnected (info: { connectedAt?: number, disconnectedAt?: number } | undefined): boolean {
  return info?.connectedAt !== undefined && info.disconnectedAt === undefined
}

/**
 * What a connection that resumes a session found (`claimSession`): no session, the session now marked connected,
 * or a session over (expired, not removed yet).
 */
export type SessionClaim = 'none' | 'claimed' | 'over'

/** When the sessions expire: the first that expired and when the next one will. */
export interface Expiring {
  expired: string[]
  /** The earliest time a disconnected session not yet expired will expire; undefined if none will. */
  nextAt: number | undefined
}

export function sessionKey (client: string): string {
  return PREFIX.session + client
}

export class SessionRecords {
  readonly #records = new Map<string, SessionRecord>()

  load (clientId: string, fields: Record<string, unknown>): void {
    if (typeof fields.createdAt !== 'number' || typeof fields.connectedAt !== 'number') throw new Error('session record without times')
    this.#records.set(clientId, fields as unknown as SessionRecord)
  }

  has (clientId: string): boolean {
    return this.#records.has(clientId)
  }

  get (clientId: string): SessionRecord | undefined {
    return this.#records.get(clientId)
  }

  ids (): IterableIterator<string> {
    return this.#records.keys()
  }

  connected (clientId: string, at: number, expirySeconds?: number): WriteOp[] {
    const record: SessionRecord = { createdAt: this.#records.get(clientId)?.createdAt ?? at, connectedAt: at }
    if (expirySeconds !== undefined) record.expirySeconds = expirySeconds
    return this.#put(clientId, record)
  }

  /** `expirySeconds` undefined keeps the interval the session had (a DISCONNECT without one, a crash). */
  disconnected (clientId: string, at: number, expirySeconds?: number): WriteOp[] {
    const previous = this.#records.get(clientId)
    if (previous === undefined) return []
    const record: SessionRecord = { ...previous, disconnectedAt: at }
    if (expirySeconds !== undefined) record.expirySeconds = expirySeconds
    return this.#put(clientId, record)
  }

  remove (clientId: string): WriteOp[] {
    if (!this.#records.delete(clientId)) return []
    return [{ type: 'del', key: sessionKey(encodeClientId(clientId)) }]
  }

  /**
   * Sessions whose client has been gone longer than its session's expiry: its own interval (MQTT 5) capped by
   * `maxMs`, or `maxMs` itself (MQTT 3.1.1); `maxMs` 0 = no cap, and no expiry for a session without an interval.
   */
  expiring (maxMs: number, now: number): Expiring {
    const expired: string[] = []
    let nextAt: number | undefined
    for (const [id, r] of this.#records) {
      if (r.disconnectedAt === undefined) continue
      const ms = expiryMs(r.expirySeconds, maxMs)
      if (ms === undefined) continue
      const at = expiresAt(r.disconnectedAt, ms)
      if (now >= at) expired.push(id)
      else if (nextAt === undefined || at < nextAt) nextAt = at
    }
    return { expired, nextAt }
  }

  /** Whether this session's client has been gone longer than its expiry (as `expiring` counts it) at `now`. */
  expired (clientId: string, maxMs: number, now: number): boolean {
    const r = this.#records.get(clientId)
    if (r?.disconnectedAt === undefined) return false
    const ms = expiryMs(r.expirySeconds, maxMs)
    return ms !== undefined && now >= expiresAt(r.disconnectedAt, ms)
  }

  #put (clientId: string, record: SessionRecord): WriteOp[] {
    this.#records.set(clientId, record)
    return [{ type: 'put', key: sessionKey(encodeClientId(clientId)), value: encodeRecord({ ...record }) }]
  }
}

/** How long a session is kept after its client leaves, in ms; undefined = forever. */
export function expiryMs (expirySeconds: number | undefined, maxMs: number): number | undefined {
  const own = expirySeconds === undefined || expirySeconds === NEVER_EXPIRES ? undefined : expirySeconds * 1000
  if (maxMs === 0) return own
  return own === undefined ? maxMs : Math.min(own, maxMs)
}

/** When a session gone at `disconnectedAt` has been gone longer than `ms`: at once for 0, else a millisecond after. */
export function expiresAt (disconnectedAt: number, ms: number): number {
  return disconnectedAt + (ms === 0 ? 0 : ms + 1)
}
