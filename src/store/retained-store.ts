import { Readable } from 'node:stream'
import type { Logger } from '../log/logger.js'
import { encodeRecord } from './codec.js'
import { retainedKey } from './layout.js'
import { encodeRetainedPublish } from './publish-codec.js'
import { droppedPacket, payloadBytes, payloadOf, plainCopy } from './packets.js'
import type { DropReporter } from './queue-limits.js'
import type { ValueReader } from './reader.js'
import { readRetained } from './retained-expiry.js'
import { RetainedIndex } from './retained-index.js'
import type { PacketLike, StoreLimits } from './types.js'
import type { WriteQueue } from './write-queue.js'

/**
 * The most values read in one LevelDB getMany. A SUBSCRIBE matching 10,000 retained messages spent a tenth of its
 * time in the per-call work of 157 reads of 64; the delivery router writes what one read brings in one socket write.
 */
const CHUNK_MAX = 512

/** Matching topics and their values, being read. */
interface Batch {
  topics: string[]
  values: Promise<Array<Buffer | undefined>>
}

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
    // one walk down the topic tree per message: the second, to tell a new topic from a replaced one, only at the limit
    if (limits.maxRetainedMessages > 0 && this.#index.count >= limits.maxRetainedMessages && !this.#index.has(topic)) {
      drops.report({ reason: 'retained-limit', packet: droppedPacket(packet) })
      return
    }
    const isNew = this.#index.add(topic)
    // the arrival time: an MQTT 5 Message Expiry Interval counts from it (retained-expiry.ts)
    const storedAt = Date.now()
    const value = encodeRetainedPublish(packet, storedAt) ?? encodeRecord(plainCopy(packet), { t: storedAt })
    queue.stage([{ type: 'put', key, value }], () => {
      if (isNew && queue.peek(key) === undefined) this.#index.remove(topic)
    })
  }

  /**
   * Messages matching any of the filters, each once. One LevelDB read per batch of matches, whose messages are pushed
   * together: an async generator behind Readable.from cost a promise and a turn of its iterator per message, a
   * tenth of the broker's work for a SUBSCRIBE matching 10,000. The next batch is read while one is delivered: read
   * only once the stream asked for more, a SUBSCRIBE matching 10,000 kept the broker idle 40 % of its time, waiting
   * for each read in turn.
   */
  stream (filters: string[]): Readable {
    const topics = this.#matching(filters)
    // the first read goes out after the first match, so a sparse wildcard answers quickly; then batches grow
    let chunk = 1
    const read = (): Batch | undefined => {
      const batch: string[] = []
      for (let next = topics.next(); next.done !== true; next = topics.next()) {
        batch.push(next.value)
        if (batch.length >= chunk) break
      }
      if (batch.length === 0) return undefined
      chunk = Math.min(chunk * 4, CHUNK_MAX)
      const values = this.#deps.reader.read(batch.map(retainedKey))
      // awaited by pull; this only keeps a read-ahead of a stream destroyed meanwhile from an unhandled rejection
      values.catch(() => undefined)
      return { topics: batch, values }
    }
    let ahead: Batch | undefined
    let reading = false
    const pull = (): void => {
      const batch = ahead ?? read()
      ahead = undefined
      if (batch === undefined) {
        readable.push(null)
        return
      }
      reading = true
      batch.values.then((values) => {
        reading = false
        if (readable.destroyed) return
        ahead = read()
        let pushed = false
        const now = Date.now()
        for (let i = 0; i < batch.topics.length; i++) {
          const fields = this.#decode(batch.topics[i], values[i], now)
          if (fields === undefined) continue
          readable.push(fields)
          pushed = true
        }
        // Readable asks again only after a push: a batch whose values all went meanwhile goes on to the next at once
        if (!pushed && !readable.destroyed) pull()
      }, (err: unknown) => {
        readable.destroy(err as Error)
      })
    }
    const readable = new Readable({
      objectMode: true,
      read: () => {
        if (!reading) pull()
      }
    })
    return readable
  }

  /** The topics matching any of the filters, each once (one filter never matches a topic twice). */
  * #matching (filters: string[]): Generator<string> {
    const seen = filters.length > 1 ? new Set<string>() : undefined
    for (const filter of filters) {
      for (const topic of this.#index.match(filter)) {
        if (seen !== undefined) {
          if (seen.has(topic)) continue
          seen.add(topic)
        }
        yield topic
      }
    }
  }

  /** The message as sent (retained-expiry.ts); an expired one is removed and reported instead. */
  #decode (topic: string, value: Buffer | undefined, now: number): Record<string, unknown> | undefined {
    if (value === undefined) return undefined
    let read: ReturnType<typeof readRetained>
    try {
      read = readRetained(value, now)
    } catch (err) {
      this.#deps.logger.error({ err, topic }, 'undecodable retained message skipped')
      return undefined
    }
    if (!read.expired) return read.fields
    this.#expire(topic, value, read.fields)
    return undefined
  }

  /** Removes an expired retained message, unless a newer write for its topic is queued (that one stands). */
  #expire (topic: string, value: Buffer, fields: Record<string, unknown>): void {
    const { queue, drops } = this.#deps
    const key = retainedKey(topic)
    const pending = queue.peek(key)
    if (pending !== undefined && pending !== value) return
    if (!this.#index.remove(topic)) return
    queue.stage([{ type: 'del', key }], () => {
      if (queue.peek(key) === undefined) this.#index.add(topic)
    })
    drops.report({ reason: 'expired', packet: droppedPacket(fields) })
  }
}
