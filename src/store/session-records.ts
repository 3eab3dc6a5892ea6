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

  connected (clientId: string, at: number): WriteOp[] {
    const record: SessionRecord = { createdAt: this.#records.get(clientId)?.createdAt ?? at, connectedAt: at }
    return this.#put(clientId, record)
  }

  disconnected (clientId: string, at: number): WriteOp[] {
    const previous = this.#records.get(clientId)
    if (previous === undefined) return []
    return this.#put(clientId, { ...previous, disconnectedAt: at })
  }

  remove (clientId: string): WriteOp[] {
    if (!this.#records.delete(clientId)) return []
    return [{ type: 'del', key: sessionKey(encodeClientId(clientId)) }]
  }

  /** Sessions whose client has been gone longer than `idleMs`. */
  idleLongerThan (idleMs: number, now: number): string[] {
    const out: string[] = []
    for (const [id, r] of this.#records) {
      if (r.disconnectedAt !== undefined && now - r.disconnectedAt > idleMs) out.push(id)
    }
    return out
  }

  #put (clientId: string, record: SessionRecord): WriteOp[] {
    this.#records.set(clientId, record)
    return [{ type: 'put', key: sessionKey(encodeClientId(clientId)), value: encodeRecord({ ...record }) }]
  }
}
