import { decodeRecord, encodeRecord, type DecodedHead } from './codec.js'
import { deadLetterKey } from './layout.js'
import type { ValueReader } from './reader.js'
import type { WriteOp, WriteQueue } from './write-queue.js'

/** One dead letter as stored (`d!<seq:16 digits>`); the payload stays on disk until it is asked for. */
export interface StoredDeadLetter {
  /** The sequence number as a string; ids only grow, also across restarts. */
  id: string
  reason: string
  detail: string
  topic: string
  qos: number
  retain: boolean
  clientId?: string
  username?: string
  target?: string
  attempts: number
  /** When each delivery went out (a shared subscription's max-deliveries), epoch ms. */
  attemptTimes?: number[]
  /** Epoch milliseconds. */
  firstRejectedAt: number
  rejectedAt: number
  brokerId?: string
  bytes: number
}

export type NewDeadLetter = Omit<StoredDeadLetter, 'id' | 'bytes'> & { payload: Buffer }

export interface DeadLetterLimits {
  /** 0 = unlimited. */
  maxMessages: number
  /** 0 = never expire. */
  maxAgeMs: number
}

export interface DeadLetterStoreDeps {
  queue: WriteQueue
  reader: ValueReader
}

const FIELDS = ['reason', 'detail', 'topic', 'qos', 'retain', 'clientId', 'username', 'target', 'attempts', 'attemptTimes', 'firstRejectedAt', 'rejectedAt', 'brokerId'] as const

/**
 * The durable dead-letter log (docs/dead-letter.md): an index of every record in memory (without payloads), records
 * in LevelDB. Bounded by count and age; what the bounds remove, oldest first, is counted in `evicted`.
 * Which message is dead-lettered and why is decided by src/dead-letter; this class only writes, reads and indexes.
 */
export class DeadLetterStore {
  readonly #deps: DeadLetterStoreDeps
  /** Insertion order is id order (ids only grow), so the first entry is always the oldest. */
  readonly #index = new Map<string, StoredDeadLetter>()
  #seq = 0
  #limits: DeadLetterLimits = { maxMessages: 0, maxAgeMs: 0 }
  evicted = 0

  constructor (deps: DeadLetterStoreDeps) {
    this.#deps = deps
  }

  get count (): number {
    return this.#index.size
  }

  configure (limits: DeadLetterLimits): void {
    this.#limits = limits
  }

  /** Indexes one record at open (keys arrive in key order). */
  load (seq: number, head: DecodedHead): void {
    const f = head.fields
    const entry: StoredDeadLetter = {
      id: String(seq),
      reason: String(f.reason ?? ''),
      detail: String(f.detail ?? ''),
      topic: String(f.topic ?? ''),
      qos: typeof f.qos === 'number' ? f.qos : 0,
      retain: f.retain === true,
      attempts: typeof f.attempts === 'number' ? f.attempts : 1,
      firstRejectedAt: typeof f.firstRejectedAt === 'number' ? f.firstRejectedAt : 0,
      rejectedAt: typeof f.rejectedAt === 'number' ? f.rejectedAt : 0,
      bytes: head.payloadBytes
    }
    for (const key of ['clientId', 'username', 'target', 'brokerId'] as const) {
      if (typeof f[key] === 'string') entry[key] = f[key]
    }
    if (Array.isArray(f.attemptTimes)) entry.attemptTimes = f.attemptTimes.filter((t): t is number => typeof t === 'number')
    this.#index.set(entry.id, entry)
    if (seq > this.#seq) this.#seq = seq
  }

  /**
   * Stores one dead letter; evicts the oldest over the bounds. `done` resolves once it is committed (a publisher
   * is acknowledged only after that). Throws if the store is closed.
   */
  add (letter: NewDeadLetter, now = Date.now()): { entry: StoredDeadLetter, done: Promise<void> } {
    // Seeded from the clock (microseconds fit 16 digits until 2286) so ids are not reused after a purge and restart.
    this.#seq = Math.max(this.#seq + 1, now * 1000)
    const entry: StoredDeadLetter = { id: String(this.#seq), bytes: letter.payload.length, ...withoutPayload(letter) }
    const fields: Record<string, unknown> = { payload: letter.payload }
    for (const key of FIELDS) if (letter[key] !== undefined) fields[key] = letter[key]
    const ops: WriteOp[] = [{ type: 'put', key: deadLetterKey(this.#seq), value: encodeRecord(fields) }]
    this.#index.set(entry.id, entry)
    ops.push(...this.#evict(now))
    const done = this.#deps.queue.commit(ops, () => { this.#index.delete(entry.id) })
    return { entry, done }
  }

  /** Entries, oldest first, that pass `keep`. */
  list (keep: (entry: StoredDeadLetter) => boolean = () => true): StoredDeadLetter[] {
    const out: StoredDeadLetter[] = []
    for (const entry of this.#index.values()) if (keep(entry)) out.push(entry)
    return out
  }

  get (id: string): StoredDeadLetter | undefined {
    return this.#index.get(id)
  }

  /** The original payload of a stored dead letter, or undefined when it is gone. */
  async payload (id: string): Promise<Buffer | undefined> {
    if (!this.#index.has(id)) return undefined
    const [value] = await this.#deps.reader.read([deadLetterKey(Number(id))])
    if (value === undefined) return undefined
    const payload = decodeRecord(value).fields.payload
    return Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : '')
  }

  /** Deletes dead letters; resolves with the ids that existed once the deletion is committed. */
  async remove (ids: string[]): Promise<string[]> {
    const removed: StoredDeadLetter[] = []
    for (const id of ids) {
      const entry = this.#index.get(id)
      if (entry === undefined) continue
      this.#index.delete(id)
      removed.push(entry)
    }
    if (removed.length > 0) {
      await this.#deps.queue.commit(removed.map(e => ({ type: 'del', key: deadLetterKey(Number(e.id)) })), () => {
        for (const e of removed) this.#index.set(e.id, e)
      })
    }
    return removed.map(e => e.id)
  }

  /** Removes what is over maxAgeMs (called on a timer as well as on every add). */
  async expire (now = Date.now()): Promise<void> {
    const ops = this.#evict(now)
    if (ops.length > 0) await this.#deps.queue.commit(ops)
  }

  #evict (now: number): WriteOp[] {
    const ops: WriteOp[] = []
    const { maxMessages, maxAgeMs } = this.#limits
    for (const entry of this.#index.values()) {
      const tooMany = maxMessages > 0 && this.#index.size > maxMessages
      const tooOld = maxAgeMs > 0 && now - entry.rejectedAt > maxAgeMs
      if (!tooMany && !tooOld) break
      this.#index.delete(entry.id)
      this.evicted++
      ops.push({ type: 'del', key: deadLetterKey(Number(entry.id)) })
    }
    return ops
  }
}

function withoutPayload (letter: NewDeadLetter): Omit<StoredDeadLetter, 'id' | 'bytes'> {
  const { payload: _payload, ...rest } = letter
  return rest
}
