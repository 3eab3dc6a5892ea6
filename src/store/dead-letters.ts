import { CulexError } from '../errors.js'
import { decodeRecord, encodeRecord, type DecodedHead } from './codec.js'
import { deadLetterKey } from './layout.js'
import type { RangeCompactor } from './range-compactor.js'
import type { KeyValueReader } from './reader.js'
import type { KeyValueWriter, WriteOp } from './write-queue.js'

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
  /** The message's MQTT 5 PUBLISH properties (those that travel with it), when it had any. */
  properties?: Record<string, unknown>
  bytes: number
}

export type NewDeadLetter = Omit<StoredDeadLetter, 'id' | 'bytes'> & { payload: Buffer }

export interface DeadLetterLimits {
  /** 0 = unlimited. */
  maxMessages: number
  /** Payload bytes of every kept dead letter together; 0 = unlimited. */
  maxBytes: number
  /** 0 = never expire. */
  maxAgeMs: number
}

export interface DeadLetterStoreDeps {
  queue: KeyValueWriter
  reader: KeyValueReader
  /** Reclaims the disk space of removed dead letters (see RangeCompactor). */
  compactor?: RangeCompactor
  /**
   * Several writers of one log (cluster nodes on one Redis): this one's ids are those ≡ offset (mod step), so two
   * writers that take an id in the same microsecond never take the same one.
   */
  ids?: { step: number, offset: number }
  /**
   * Several writers of one log: brings the index up to what the others changed (through `load`, `forget` and
   * `reset`); `fresh` runs it. Without it the index is the truth (one node).
   */
  refresh?: () => Promise<void>
}

/** Freed payload bytes that start a compaction of the log: a quarter of maxBytes, at least 1 MiB; 16 MiB without maxBytes. */
function compactionThreshold (maxBytes: number): number {
  return maxBytes > 0 ? Math.max(1_048_576, maxBytes / 4) : 16_777_216
}

const FIELDS = ['reason', 'detail', 'topic', 'qos', 'retain', 'clientId', 'username', 'target', 'attempts', 'attemptTimes', 'firstRejectedAt', 'rejectedAt', 'brokerId', 'properties'] as const

/** What a replay that failed changes in a dead letter it leaves in the log. */
export type DeadLetterRetry = Pick<StoredDeadLetter, 'reason' | 'detail' | 'attempts' | 'rejectedAt'>

/**
 * The durable dead-letter log (docs/dead-letter.md): an index of every record in memory (without payloads), records
 * in LevelDB. Bounded by count, payload bytes and age; what the bounds remove, oldest first, is counted in `evicted`.
 * Which message is dead-lettered and why is decided by src/dead-letter; this class only writes, reads and indexes.
 */
export class DeadLetterStore {
  readonly #deps: DeadLetterStoreDeps
  /**
   * In rejectedAt order, so the first entry is always the oldest: a new dead letter and one a failed replay
   * touched go to the end; at open, `loaded` restores the order (keys arrive in id order).
   */
  #index = new Map<string, StoredDeadLetter>()
  #bytes = 0
  #seq = 0
  #limits: DeadLetterLimits = { maxMessages: 0, maxBytes: 0, maxAgeMs: 0 }
  evicted = 0

  constructor (deps: DeadLetterStoreDeps) {
    this.#deps = deps
    this.configure(this.#limits)
  }

  get count (): number {
    return this.#index.size
  }

  /** Payload bytes of the dead letters kept (what deadLetter.maxBytes bounds). */
  get bytes (): number {
    return this.#bytes
  }

  configure (limits: DeadLetterLimits): void {
    this.#limits = limits
    if (this.#deps.compactor !== undefined) this.#deps.compactor.threshold = compactionThreshold(limits.maxBytes)
  }

  /** Resolves once a compaction under way has finished (for close). */
  async idle (): Promise<void> {
    await this.#deps.compactor?.idle()
  }

  /** Before a read that must see every writer's dead letters (the admin API): the index caught up with them. */
  async fresh (): Promise<void> {
    await this.#deps.refresh?.()
  }

  /** Indexes one record, at open (keys arrive in key order) or as another writer wrote it (replacing the entry). */
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
    if (f.properties !== null && typeof f.properties === 'object') entry.properties = f.properties as Record<string, unknown>
    const before = this.#index.get(entry.id)
    if (before !== undefined) this.#delete(before)
    this.#set(entry)
    if (seq > this.#seq) this.#seq = seq
  }

  /** Another writer removed it (purged, replayed or evicted it): out of the index, nothing written. */
  forget (id: string): void {
    const entry = this.#index.get(id)
    if (entry !== undefined) this.#delete(entry)
  }

  /** Empties the index before a reload of every record. */
  reset (): void {
    this.#index.clear()
    this.#bytes = 0
  }

  /** After the last `load`: a failed replay moved some entries later than their id says. */
  loaded (): void {
    this.#index = new Map([...this.#index].sort(([, a], [, b]) => a.rejectedAt - b.rejectedAt))
  }

  /**
   * Stores one dead letter; evicts the oldest over the bounds. One whose payload alone is over maxBytes is not
   * stored (`kept` false, counted as evicted) rather than emptying the log for it. `done` resolves once it is
   * committed (a publisher is acknowledged only after that). The put joins the write queue's next batch before this
   * returns, so a caller that queues other writes in the same tick (the store's own drops: the delete of an evicted
   * message) commits them in one batch with it. Throws if the store is closed.
   */
  add (letter: NewDeadLetter, now = Date.now()): { entry: StoredDeadLetter, kept: boolean, done: Promise<void> } {
    // Seeded from the clock (microseconds fit 16 digits until 2286) so ids are not reused after a purge and restart.
    const next = Math.max(this.#seq + 1, now * 1000)
    const ids = this.#deps.ids
    this.#seq = ids === undefined ? next : next + (((ids.offset - next) % ids.step) + ids.step) % ids.step
    const entry: StoredDeadLetter = { id: String(this.#seq), bytes: letter.payload.length, ...withoutPayload(letter) }
    if (this.#deps.queue.closed) throw new CulexError('ERR_STORE_WRITE', 'the store is closed')
    const kept = this.#limits.maxBytes === 0 || entry.bytes <= this.#limits.maxBytes
    const ops: WriteOp[] = []
    if (kept) {
      ops.push({ type: 'put', key: deadLetterKey(this.#seq), value: encodeRecord(recordFields(letter)) })
      this.#set(entry)
    } else {
      this.evicted++
    }
    const evicted = this.#evict(now)
    ops.push(...evicted.ops)
    const done = this.#deps.queue.commit(ops, () => { if (this.#index.get(entry.id) === entry) this.#delete(entry) })
    this.#deps.compactor?.freed(evicted.bytes, evicted.upTo, done)
    return { entry, kept, done }
  }

  /**
   * Rewrites a dead letter a replay could not publish (attempts + 1, why, when) under its id, in one put: it is
   * never absent from disk. It becomes the newest. Undefined when it is gone (purged or evicted meanwhile); throws
   * if the store is closed.
   */
  retry (id: string, changes: DeadLetterRetry, payload: Buffer): { entry: StoredDeadLetter, done: Promise<void> } | undefined {
    const before = this.#index.get(id)
    if (before === undefined) return undefined
    if (this.#deps.queue.closed) throw new CulexError('ERR_STORE_WRITE', 'the store is closed')
    const entry: StoredDeadLetter = { ...before, ...changes }
    const { id: _id, bytes: _bytes, ...fields } = entry
    this.#delete(before)
    this.#set(entry)
    const done = this.#deps.queue.commit([{ type: 'put', key: deadLetterKey(Number(id)), value: encodeRecord(recordFields({ ...fields, payload })) }], () => {
      // the record on disk is still the one before
      if (this.#index.get(id) === entry) {
        this.#delete(entry)
        this.#set(before)
      }
    })
    this.#deps.compactor?.freed(before.bytes, deadLetterKey(Number(id)), done)
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
      this.#delete(entry)
      removed.push(entry)
    }
    if (removed.length > 0) {
      const done = this.#deps.queue.commit(removed.map(e => ({ type: 'del', key: deadLetterKey(Number(e.id)) })), () => {
        for (const e of removed) if (!this.#index.has(e.id)) this.#set(e)
      })
      const upTo = deadLetterKey(Math.max(...removed.map(e => Number(e.id))))
      this.#deps.compactor?.freed(removed.reduce((sum, e) => sum + e.bytes, 0), upTo, done)
      await done
    }
    return removed.map(e => e.id)
  }

  /** Removes what is over maxAgeMs (called on a timer as well as on every add). */
  async expire (now = Date.now()): Promise<void> {
    const { ops, bytes, upTo } = this.#evict(now)
    if (ops.length === 0) return
    const done = this.#deps.queue.commit(ops)
    this.#deps.compactor?.freed(bytes, upTo, done)
    await done
  }

  /** Removes the oldest over the bounds: their deletes, payload bytes and the highest key among them. */
  #evict (now: number): { ops: WriteOp[], bytes: number, upTo: string } {
    const ops: WriteOp[] = []
    let bytes = 0
    let upTo = ''
    const { maxMessages, maxBytes, maxAgeMs } = this.#limits
    for (const entry of this.#index.values()) {
      const tooMany = maxMessages > 0 && this.#index.size > maxMessages
      const tooBig = maxBytes > 0 && this.#bytes > maxBytes
      const tooOld = maxAgeMs > 0 && now - entry.rejectedAt > maxAgeMs
      if (!tooMany && !tooBig && !tooOld) break
      this.#delete(entry)
      this.evicted++
      bytes += entry.bytes
      const key = deadLetterKey(Number(entry.id))
      if (key > upTo) upTo = key
      ops.push({ type: 'del', key })
    }
    return { ops, bytes, upTo }
  }

  #set (entry: StoredDeadLetter): void {
    this.#index.set(entry.id, entry)
    this.#bytes += entry.bytes
  }

  #delete (entry: StoredDeadLetter): void {
    this.#index.delete(entry.id)
    this.#bytes -= entry.bytes
  }
}

function recordFields (letter: NewDeadLetter): Record<string, unknown> {
  const fields: Record<string, unknown> = { payload: letter.payload }
  for (const key of FIELDS) if (letter[key] !== undefined) fields[key] = letter[key]
  return fields
}

function withoutPayload (letter: NewDeadLetter): Omit<StoredDeadLetter, 'id' | 'bytes'> {
  const { payload: _payload, ...rest } = letter
  return rest
}
