import { decodeRecord, encodeRecord, type DecodedHead } from './codec.js'
import { encodeClientId, groupQueueKey } from './layout.js'
import type { KeyValueReader } from './reader.js'
import type { KeyValueWriter } from './write-queue.js'

/** One message of a shared subscription's durable queue, as the group dispatcher hands it over. */
export interface GroupMessage {
  topic: string
  payload: Buffer
  qos: number
  brokerId?: string
  brokerCounter?: number
  /** Client id of the publisher (the hash-clientid strategy needs it after a restart too). */
  publisher?: string
  /** The MQTT 5 PUBLISH properties it was published with (its Message Expiry Interval counts from enqueuedAt). */
  properties?: Record<string, unknown>
}

/** The delivery history written with a message that was delivered before (meta `a`, `d`, `at` of its record). */
export interface RetryState {
  attempts: number
  dueAt?: number
  attemptTimes?: number[]
}

/** What the index keeps of a stored message: everything but the payload, which stays on disk until it is sent. */
export interface StoredGroupMessage {
  key: string
  topic: string
  qos: number
  bytes: number
  /** Deliveries made before the last write of this record (a redelivery rewrites it). */
  attempts: number
  enqueuedAt: number
  /** Set while the message waits out a retry backoff: when it may be sent again (epoch ms). */
  dueAt?: number
  /** When each failed delivery went out (epoch ms). */
  attemptTimes?: number[]
  brokerId?: string
  brokerCounter?: number
  publisher?: string
  properties?: Record<string, unknown>
}

export interface GroupQueueDeps {
  queue: KeyValueWriter
  reader: KeyValueReader
}

/**
 * The durable queues of shared subscriptions (`g!<share key>!<seq>`, docs/shared-subscriptions.md): a message for
 * a group with a persistent member is written here before the publisher is acknowledged and deleted when a member
 * acknowledges it, so it survives kill -9 whichever member holds it. Which message waits, goes to whom or is
 * dropped is decided by src/shared-subscriptions; this class only writes, reads and indexes the records.
 */
export class GroupQueueStore {
  readonly #deps: GroupQueueDeps
  readonly #keys = new Set<string>()
  #loaded = new Map<string, StoredGroupMessage[]>()
  #seq = 1

  constructor (deps: GroupQueueDeps) {
    this.#deps = deps
  }

  /** Messages stored, in flight or waiting, over every group. */
  get count (): number {
    return this.#keys.size
  }

  /** Indexes one record at open; keys arrive in key order, so each group's list is in FIFO order. */
  load (shareKey: string, seq: number, key: string, head: DecodedHead): void {
    const f = head.fields
    const m = head.meta ?? {}
    const entry: StoredGroupMessage = {
      key,
      topic: String(f.topic ?? ''),
      qos: typeof f.qos === 'number' ? f.qos : 1,
      bytes: head.payloadBytes,
      attempts: typeof m.a === 'number' ? m.a : 0,
      enqueuedAt: typeof m.t === 'number' ? m.t : 0
    }
    // Records written before retries had a backoff have neither.
    if (typeof m.d === 'number') entry.dueAt = m.d
    if (Array.isArray(m.at)) entry.attemptTimes = m.at.filter((x): x is number => typeof x === 'number')
    if (typeof f.brokerId === 'string') entry.brokerId = f.brokerId
    if (typeof f.brokerCounter === 'number') entry.brokerCounter = f.brokerCounter
    if (typeof f.clientId === 'string') entry.publisher = f.clientId
    if (f.properties !== null && typeof f.properties === 'object') entry.properties = f.properties as Record<string, unknown>
    let list = this.#loaded.get(shareKey)
    if (list === undefined) this.#loaded.set(shareKey, list = [])
    list.push(entry)
    this.#keys.add(key)
    if (seq >= this.#seq) this.#seq = seq + 1
  }

  /** New keys start past `seq` (a shared store hands each node its own range). */
  reserveFrom (seq: number): void {
    if (seq > this.#seq) this.#seq = seq
  }

  /**
   * A shared store (cluster mode): indexes afresh what `each` reads of one group's records (another node wrote
   * them) and hands them out, in FIFO order.
   */
  async reload (shareKey: string, each: (load: (seq: number, key: string, head: DecodedHead) => void) => Promise<void>): Promise<StoredGroupMessage[]> {
    this.#loaded.delete(shareKey)
    const seq = this.#seq
    await each((n, key, head) => { this.load(shareKey, n, key, head) })
    // the other node's keys are in its own range: this node's next key stays in this one's
    this.#seq = seq
    const list = this.#loaded.get(shareKey) ?? []
    this.#loaded.delete(shareKey)
    return list
  }

  /** What the open found, by share key; handed out once (the dispatcher owns the entries from then on). */
  takeLoaded (): Map<string, StoredGroupMessage[]> {
    const loaded = this.#loaded
    this.#loaded = new Map()
    return loaded
  }

  /** Appends a message to a group's queue; `done` resolves once it is committed (with every write before it). */
  add (shareKey: string, message: GroupMessage, enqueuedAt: number): { key: string, done: Promise<void> } {
    const key = groupQueueKey(encodeClientId(shareKey), this.#seq++)
    this.#keys.add(key)
    const done = this.#deps.queue.commit([{ type: 'put', key, value: encode(message, enqueuedAt, { attempts: 0 }) }], () => { this.#keys.delete(key) })
    return { key, done }
  }

  /**
   * Records the delivery history of a message that failed or is being delivered again, so a restart keeps its
   * attempt count and the due time of its retry. The record is encoded before this returns: the caller may drop
   * the payload from memory at once.
   */
  async setRetry (key: string, message: GroupMessage, enqueuedAt: number, retry: RetryState): Promise<void> {
    if (!this.#keys.has(key)) return
    await this.#deps.queue.commit([{ type: 'put', key, value: encode(message, enqueuedAt, retry) }])
  }

  /** Deletes acknowledged, dropped or dead-lettered messages. */
  async remove (keys: string[]): Promise<void> {
    const present = keys.filter(k => this.#keys.delete(k))
    if (present.length === 0) return
    await this.#deps.queue.commit(present.map(key => ({ type: 'del', key })), () => {
      for (const k of present) this.#keys.add(k)
    })
  }

  /** Payloads of stored messages (undefined for a key that is gone). */
  async payloads (keys: string[]): Promise<Array<Buffer | undefined>> {
    const values = await this.#deps.reader.read(keys)
    return values.map(v => {
      if (v === undefined) return undefined
      const payload = decodeRecord(v).fields.payload
      return Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : '')
    })
  }
}

function encode (message: GroupMessage, enqueuedAt: number, retry: RetryState): Buffer {
  const fields: Record<string, unknown> = { cmd: 'publish', topic: message.topic, payload: message.payload, qos: message.qos }
  if (message.brokerId !== undefined) fields.brokerId = message.brokerId
  if (message.brokerCounter !== undefined) fields.brokerCounter = message.brokerCounter
  if (message.publisher !== undefined) fields.clientId = message.publisher
  if (message.properties !== undefined) fields.properties = message.properties
  const meta: Record<string, unknown> = { t: enqueuedAt }
  if (retry.attempts > 0) meta.a = retry.attempts
  if (retry.dueAt !== undefined) meta.d = retry.dueAt
  if (retry.attemptTimes !== undefined && retry.attemptTimes.length > 0) meta.at = retry.attemptTimes
  return encodeRecord(fields, meta)
}
