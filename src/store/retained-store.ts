import { Readable } from 'node:stream'
import type { Logger } from '../log/logger.js'
import { decodeRecord, encodeRecord } from './codec.js'
import { retainedKey } from './layout.js'
import { droppedPacket, payloadBytes, payloadOf, plainCopy } from './packets.js'
import { messageExpiryMs, type DropReporter } from './queue-limits.js'
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
    queue.stage([{ type: 'put', key, value: encodeRecord(stamped(packet)) }], () => {
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

  async * #read (topics: string[]): AsyncGenerator<Record<string, unknown>> {
    const values = await this.#deps.reader.read(topics.map(retainedKey))
    for (let i = 0; i < topics.length; i++) {
      const value = values[i]
      if (value === undefined) continue
      let fields: Record<string, unknown>
      try {
        fields = decodeRecord(value).fields
      } catch (err) {
        this.#deps.logger.error({ err, topic: topics[i] }, 'undecodable retained message skipped')
        continue
      }
      const live = unexpired(fields, Date.now())
      if (live !== undefined) yield live
    }
  }
}

/**
 * The record of a retained message; one with an MQTT 5 Message Expiry Interval also records when it was stored
 * (`retainedAt`, wall-clock ms), which its expiry counts from, across restarts.
 */
function stamped (packet: PacketLike): Record<string, unknown> {
  const record = plainCopy(packet)
  if (messageExpiryMs(record) !== undefined) record.retainedAt = Date.now()
  return record
}

/**
 * A retained message as a new subscription gets it: undefined once its Message Expiry Interval has passed (it is
 * never sent again, [MQTT-3.3.2-5]; the record stays until the topic is retained or cleared again), else with the
 * interval less the whole seconds it has been retained ([MQTT-3.3.2-6]), at least 1.
 */
function unexpired (fields: Record<string, unknown>, now: number): Record<string, unknown> | undefined {
  const { retainedAt, ...message } = fields
  const ms = messageExpiryMs(fields)
  if (ms === undefined || typeof retainedAt !== 'number') return fields
  if (now - retainedAt >= ms) return undefined
  const properties = fields.properties as { messageExpiryInterval: number }
  const waited = Math.floor((now - retainedAt) / 1000)
  return { ...message, properties: { ...properties, messageExpiryInterval: Math.max(1, properties.messageExpiryInterval - waited) } }
}
