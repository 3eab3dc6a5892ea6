import type { Logger } from '../log/logger.js'
import type { StoredDeadLetter } from '../store/dead-letters.js'
import type { DeadLetterLog } from '../store/contract.js'
import { matchesFilters, type Filters } from './filters.js'
import { RateLimit } from './rate.js'
import { envelopeTopic, isDeadLetterTopic, toEnvelope, type Envelope } from './envelope.js'

/** Why a message became a dead letter (docs/dead-letter.md). */
export const REASONS = [
  'unauthorized', 'too-large', 'invalid-payload', 'queue-full', 'broker-queue-full', 'expired', 'retained-limit',
  'max-deliveries', 'no-members', 'no-subscribers', 'will-denied', 'slow-consumer', 'too-large-for-client', 'rejected'
] as const
export type DeadLetterReason = typeof REASONS[number]

export interface DeadLetterPacket {
  topic: string
  payload: Buffer
  qos: number
  retain?: boolean
  /** The MQTT 5 PUBLISH properties that travel with the message (protocol/v5/outgoing.ts forwardedProperties). */
  properties?: Record<string, unknown>
}

export interface DeadLetterInput {
  reason: DeadLetterReason
  detail: string
  packet: DeadLetterPacket
  /** The publisher, when known. */
  clientId?: string
  username?: string
  /** The subscriber session or shared group the message could not reach, when there is one. */
  target?: string
  /** More than one delivery attempt (a shared message given up after maxDeliveries). */
  attempts?: number
  /** When each delivery of a shared-subscription message went out (epoch ms). */
  attemptTimes?: number[]
}

export interface ReplayResult {
  id: string
  outcome: 'published' | 'dead-lettered'
  /** When dead-lettered again (it stays in the log under its id): why, and its attempts now. */
  reason?: string
  detail?: string
  attempts?: number
}

export interface DeadLetterPorts {
  store: DeadLetterLog
  brokerId: () => string
  maxTopicLevels: number
  maxTopicLength: number
  ratePerSecond: number
  log: Logger
  /** Publishes an envelope at QoS 1 from the broker itself (no ACL); errors are logged, never thrown. */
  publishEnvelope: (topic: string, payload: Buffer) => void
  /** Publishes a replayed original from the broker itself (after `recheck` passed). */
  publishOriginal: (packet: DeadLetterPacket) => Promise<void>
  /** The checks a replay runs again (ACL as the original publisher, size, payload rules, subscribers). */
  recheck: (entry: StoredDeadLetter, packet: DeadLetterPacket) => Promise<{ reason: DeadLetterReason, detail: string } | undefined>
}

/**
 * The dead-letter log: records every refused or undeliverable message in the store and publishes its envelope
 * (envelopes within a rate limit); lists, replays and purges. No aedes in here: src/dead-letter/hooks.ts gives it
 * its ports.
 */
export class DeadLetters {
  readonly #p: DeadLetterPorts
  readonly #rate: RateLimit
  /** Dead letters seen, by reason. */
  readonly counts: Record<string, number> = {}
  /** Dead letters stored but whose envelope was not published: over ratePerSecond, by reason. */
  readonly suppressed: Record<string, number> = {}
  /** Ids a replay is working on: a second replay of one of them meanwhile must not publish it twice. */
  readonly #replaying = new Set<string>()
  #suppressedSinceLog = 0
  #logTimer: NodeJS.Timeout | undefined
  #closed = false

  constructor (ports: DeadLetterPorts) {
    this.#p = ports
    this.#rate = new RateLimit(ports.ratePerSecond)
  }

  /**
   * Records one dead letter, whatever the rate (the log's bounds keep it small); only its envelope is rate-limited.
   * Resolves once it is on disk (undefined when it was not kept: a `$DLQ/` topic, larger than deadLetter.maxBytes
   * on its own, or the store is closed or failed). Never rejects. The store write is queued before the first
   * await: the store relies on that to commit a dropped message's delete in the same batch (StoreOptions.onDrop).
   */
  async record (input: DeadLetterInput): Promise<StoredDeadLetter | undefined> {
    const { packet } = input
    if (isDeadLetterTopic(packet.topic)) return undefined
    this.counts[input.reason] = (this.counts[input.reason] ?? 0) + 1
    const now = Date.now()
    let added: ReturnType<DeadLetterLog['add']>
    try {
      added = this.#p.store.add({
        reason: input.reason,
        detail: input.detail,
        topic: packet.topic,
        qos: packet.qos,
        retain: packet.retain === true,
        clientId: input.clientId,
        username: input.username,
        target: input.target,
        attempts: input.attempts ?? 1,
        attemptTimes: input.attemptTimes,
        firstRejectedAt: now,
        rejectedAt: now,
        brokerId: this.#p.brokerId(),
        properties: packet.properties,
        payload: packet.payload
      }, now)
    } catch (err) {
      this.#p.log.warn({ err, reason: input.reason, topic: packet.topic }, 'dead letter not stored')
      return undefined
    }
    try {
      await added.done
    } catch (err) {
      this.#p.log.error({ err, reason: input.reason, topic: packet.topic }, 'dead letter not stored')
      return undefined
    }
    if (!added.kept) {
      this.#p.log.warn({ reason: input.reason, topic: packet.topic, bytes: packet.payload.length, limit: 'deadLetter.maxBytes' }, 'dead letter larger than the whole log not kept')
    }
    this.#announce(added.entry, packet.payload)
    return added.kept ? added.entry : undefined
  }

  /**
   * The dead letters as the store has them now: on a cluster every node's, with what other nodes (or `culex dlq
   * --redis-url`) removed gone. Each of the reads and changes below starts from such a refresh.
   */
  async list (f: Filters = {}): Promise<StoredDeadLetter[]> {
    await this.#p.store.fresh()
    return this.#p.store.list(e => matchesFilters(e, f))
  }

  async show (id: string): Promise<Envelope | undefined> {
    await this.#p.store.fresh()
    const entry = this.#p.store.get(id)
    if (entry === undefined) return undefined
    const payload = await this.#p.store.payload(id)
    return payload === undefined ? undefined : toEnvelope(entry, payload)
  }

  /**
   * Republishes the original message to its original topic after the checks it failed run again, and only then
   * takes it out of the log. If a check refuses it or the publish fails, it stays, under its id, with attempts + 1
   * (on disk), the new reason and detail, and a new envelope. Undefined for an unknown id.
   */
  async replay (id: string): Promise<ReplayResult | undefined> {
    if (this.#replaying.has(id)) return undefined
    this.#replaying.add(id)
    try {
      return await this.#replay(id)
    } finally {
      this.#replaying.delete(id)
    }
  }

  async #replay (id: string): Promise<ReplayResult | undefined> {
    await this.#p.store.fresh()
    const entry = this.#p.store.get(id)
    if (entry === undefined) return undefined
    const payload = await this.#p.store.payload(id)
    if (payload === undefined) return undefined
    // a replay is a new publish: it carries the properties as they were, a Message Expiry Interval counting anew
    const packet: DeadLetterPacket = { topic: entry.topic, payload, qos: entry.qos, retain: entry.retain, properties: entry.properties }
    let verdict: { reason: DeadLetterReason, detail: string } | undefined
    try {
      verdict = await this.#p.recheck(entry, packet)
      if (verdict === undefined) await this.#p.publishOriginal(packet)
    } catch (err) {
      this.#p.log.warn({ err, id, topic: entry.topic }, 'dead letter replay failed')
      verdict = { reason: entry.reason as DeadLetterReason, detail: `replay: ${(err as Error).message}` }
    }
    if (verdict === undefined) {
      this.#p.log.info({ id, reason: entry.reason, topic: entry.topic }, 'dead letter replayed')
      // Published: a store error now leaves it in the log, to be replayed (or purged) again, never lost.
      await this.#p.store.remove([id]).catch((err: unknown) => { this.#p.log.error({ err, id }, 'replayed dead letter not removed') })
      return { id, outcome: 'published' }
    }
    // What the log holds afterwards: the record rewritten, or (when even that write fails) the one before.
    let attempts = entry.attempts
    try {
      const retried = this.#p.store.retry(id, { ...verdict, attempts: entry.attempts + 1, rejectedAt: Date.now() }, payload)
      if (retried !== undefined) {
        await retried.done
        attempts = retried.entry.attempts
        this.#announce(retried.entry, payload, true)
      }
    } catch (err) {
      this.#p.log.error({ err, id }, 'dead letter attempts not updated')
    }
    return { id, outcome: 'dead-lettered', reason: verdict.reason, detail: verdict.detail, attempts }
  }

  async replayAll (f: Filters): Promise<ReplayResult[]> {
    const results: ReplayResult[] = []
    for (const entry of await this.list(f)) {
      const r = await this.replay(entry.id)
      if (r !== undefined) results.push(r)
    }
    return results
  }

  async purge (ids: string[]): Promise<string[]> {
    await this.#p.store.fresh()
    return await this.#p.store.remove(ids)
  }

  /** Publishes the envelope of a stored dead letter, within ratePerSecond unless `always`. */
  #announce (entry: StoredDeadLetter, payload: Buffer, always = false): void {
    if (this.#closed) return
    if (!always && !this.#rate.take()) {
      this.suppressed[entry.reason] = (this.suppressed[entry.reason] ?? 0) + 1
      this.#noteSuppressed()
      return
    }
    const topic = envelopeTopic(entry.reason, entry.topic, this.#p.maxTopicLevels, this.#p.maxTopicLength)
    this.#p.publishEnvelope(topic, Buffer.from(JSON.stringify(toEnvelope(entry, payload))))
  }

  close (): void {
    this.#closed = true
    if (this.#logTimer !== undefined) clearTimeout(this.#logTimer)
    this.#flushSuppressedLog()
  }

  /** One warn line per 10 s about unpublished envelopes, not one per message. */
  #noteSuppressed (): void {
    this.#suppressedSinceLog++
    if (this.#logTimer !== undefined) return
    this.#logTimer = setTimeout(() => {
      this.#logTimer = undefined
      this.#flushSuppressedLog()
    }, 10_000)
    this.#logTimer.unref()
  }

  #flushSuppressedLog (): void {
    if (this.#suppressedSinceLog === 0) return
    this.#p.log.warn({ suppressed: this.#suppressedSinceLog, limit: 'deadLetter.ratePerSecond', ratePerSecond: this.#p.ratePerSecond }, 'dead letters over the rate limit were stored, their envelopes not published')
    this.#suppressedSinceLog = 0
  }
}
