import { Readable } from 'node:stream'
import type { Logger } from '../log/logger.js'
import { decodeRecord, encodeRecord } from './codec.js'
import { retainedKey } from './layout.js'
import { droppedPacket, payloadBytes, payloadOf, plainCopy } from './packets.js'
import { countedDown, messageExpiryMs, type DropReporter } from './queue-limits.js'
import type { ValueReader } from './reader.js'
import { RetainedIndex } from './retained-index.js'
import type { PacketLike, StoreLimits } from './types.js'
import type { WriteQueue } from './write-queue.js'

const CHUNK_MAX = 64

export interface RetainedDeps {
  queue: WriteQueue
  reader: ValueReader
  limits: StoreLimits
  drops: DropReporter
  logger: Logger
}

/** Retained messages: topics indexed in memory, values on disk, writes staged (see docs/store.md). */
export class RetainedStore {
  readonly #deps: RetainedDeps
  readonly #index = new RetainedIndex()

  constructor (deps: RetainedDeps) {
    this.#deps = deps
  }

  get count (): number {
    return this.#index.count
  }

  load (topic: string): void {
    this.#index.add(topic)
  }

  /** Upsert by topic; an empty payload deletes. Over maxRetainedMessages a new topic is refused and reported. */
  store (packet: PacketLike): void {
    const { queue, limits, drops } = this.#deps
    const topic = String(packet.topic)
    const key = retainedKey(topic)
    if (payloadBytes(payloadOf(packet)) === 0) {
      if (!this.#index.remove(topic)) return
      // undo only if no later write for the topic is queued: that one's index change stands
      queue.stage([{ type: 'del', key }], () => {
        if (queue.peek(key) === undefined) this.#index.add(topic)
      })
      return
    }
    const isNew = !this.#index.has(topic)
    if (isNew && limits.maxRetainedMessages > 0 && this.#index.count >= limits.maxRetainedMessages) {
      drops.report({ reason: 'retained-limit', packet: droppedPacket(packet) })
      return
    }
    this.#index.add(topic)
    // the arrival time: an MQTT 5 Message Expiry Interval counts from it (#read)
    queue.stage([{ type: 'put', key, value: encodeRecord(plainCopy(packet), { t: Date.now() }) }], () => {
      if (isNew && queue.peek(key) === undefined) this.#index.remove(topic)
    })
  }

  /** Messages matching any of the filters, each once. */
  stream (filters: string[]): Readable {
    return Readable.from(this.#matching(filters), { objectMode: true })
  }

  async * #matching (filters: string[]): AsyncGenerator<Record<string, unknown>> {
    const seen = new Set<string>()
    let topics: string[] = []
    // the first read goes out after the first match, so a sparse wildcard answers quickly; then batches grow
    let chunk = 1
    for (const filter of filters) {
      for (const topic of this.#index.match(filter)) {
        if (seen.has(topic)) continue
        seen.add(topic)
        topics.push(topic)
        if (topics.length >= chunk) {
          yield * this.#read(topics)
          topics = []
          chunk = Math.min(chunk * 4, CHUNK_MAX)
        }
      }
    }
    if (topics.length > 0) yield * this.#read(topics)
  }

  /**
   * A retained message with an MQTT 5 Message Expiry Interval is never sent once it has passed: it is removed and
   * reported (dead-lettered as `expired`) when it is next read, and before that it goes out with the interval left
   * [MQTT-3.3.2-5], [MQTT-3.3.2-6]. A record stored before arrival times were kept does not expire.
   */
  async * #read (topics: string[]): AsyncGenerator<Record<string, unknown>> {
    const keys = topics.map(retainedKey)
    const values = await this.#deps.reader.read(keys)
    const now = Date.now()
    for (let i = 0; i < topics.length; i++) {
      const value = values[i]
      if (value === undefined) continue
      let fields: Record<string, unknown>
      let storedAt = 0
      try {
        const record = decodeRecord(value)
        fields = record.fields
        if (typeof record.meta?.t === 'number') storedAt = record.meta.t
      } catch (err) {
        this.#deps.logger.error({ err, topic: topics[i] }, 'undecodable retained message skipped')
        continue
      }
      const expiryMs = messageExpiryMs(fields)
      if (expiryMs !== undefined && storedAt > 0) {
        if (now - storedAt > expiryMs) {
          this.#expire(topics[i], keys[i], value, fields)
          continue
        }
        fields = countedDown(fields, storedAt, now)
      }
      yield fields
    }
  }

  /** Removes an expired retained message, unless a newer write for its topic is queued (that one stands). */
  #expire (topic: string, key: string, value: Buffer, fields: Record<string, unknown>): void {
    const { queue, drops } = this.#deps
    const pending = queue.peek(key)
    if (pending !== undefined && pending !== value) return
    if (!this.#index.remove(topic)) return
    queue.stage([{ type: 'del', key }], () => {
      if (queue.peek(key) === undefined) this.#index.add(topic)
    })
    drops.report({ reason: 'expired', packet: droppedPacket(fields) })
  }
}
