import type { Logger } from '../log/logger.js'
import { topicMatches } from '../protocol/topic.js'
import type { DeadLetterStore, StoredDeadLetter } from '../store/dead-letters.js'
import { RateLimit } from './rate.js'

/** Why a message became a dead letter (docs/dead-letter.md). */
export const REASONS = [
  'unauthorized', 'too-large', 'invalid-payload', 'queue-full', 'expired', 'retained-limit',
  'max-deliveries', 'no-members', 'no-subscribers', 'will-denied'
] as const
export type DeadLetterReason = typeof REASONS[number]

export const DLQ_PREFIX = '$DLQ/'

export interface DeadLetterPacket {
  topic: string
  payload: Buffer
  qos: number
  retain?: boolean
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
  /** For a replay that failed again: the earlier attempts + 1 and the first rejection time. */
  attempts?: number
  firstRejectedAt?: number
  /** When each delivery of a shared-subscription message went out (epoch ms). */
  attemptTimes?: number[]
}

/** The JSON published on `$DLQ/<reason>/<topic>`; also what the admin API and `culex dlq show` return. */
export interface Envelope {
  id: string
  reason: string
  detail: string
  topic: string
  qos: number
  retain: boolean
  payload: string
  payloadEncoding: 'base64'
  clientId: string | null
  username: string | null
  target: string | null
  attempts: number
  /** When each delivery went out (ISO 8601), for a shared subscription's max-deliveries; empty otherwise. */
  attemptTimes: string[]
  firstRejectedAt: string
  rejectedAt: string
  brokerId: string | null
}

export interface Filters {
  reason?: string
  /** An MQTT topic filter matched against the original topic. */
  topic?: string
  clientId?: string
  /** Epoch ms: rejected at or after. */
  since?: number
}

export interface ReplayResult {
  id: string
  outcome: 'published' | 'dead-lettered'
  /** When dead-lettered again: the new id and why. */
  newId?: string
  reason?: string
  detail?: string
}

export interface DeadLetterPorts {
  store: DeadLetterStore
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

/** Never dead-lettered: the dead-letter topic itself (no loops). */
export function isDeadLetterTopic (topic: string): boolean {
  return topic === '$DLQ' || topic.startsWith(DLQ_PREFIX)
}

/** `$DLQ/<reason>/<topic>`, cut to the topic-level and topic-length limits by dropping trailing levels. */
export function envelopeTopic (reason: string, topic: string, maxLevels: number, maxBytes: number): string {
  const head = DLQ_PREFIX + reason
  let levels = topic.split('/').slice(0, Math.max(0, maxLevels - 2))
  let out = levels.length === 0 ? head : `${head}/${levels.join('/')}`
  while (Buffer.byteLength(out) > maxBytes && levels.length > 0) {
    levels = levels.slice(0, -1)
    out = levels.length === 0 ? head : `${head}/${levels.join('/')}`
  }
  return out
}

export function toEnvelope (entry: StoredDeadLetter, payload: Buffer): Envelope {
  return {
    id: entry.id,
    reason: entry.reason,
    detail: entry.detail,
    topic: entry.topic,
    qos: entry.qos,
    retain: entry.retain,
    payload: payload.toString('base64'),
    payloadEncoding: 'base64',
    clientId: entry.clientId ?? null,
    username: entry.username ?? null,
    target: entry.target ?? null,
    attempts: entry.attempts,
    attemptTimes: (entry.attemptTimes ?? []).map(t => new Date(t).toISOString()),
    firstRejectedAt: new Date(entry.firstRejectedAt).toISOString(),
    rejectedAt: new Date(entry.rejectedAt).toISOString(),
    brokerId: entry.brokerId ?? null
  }
}

export function matchesFilters (entry: StoredDeadLetter, f: Filters): boolean {
  if (f.reason !== undefined && entry.reason !== f.reason) return false
  if (f.clientId !== undefined && entry.clientId !== f.clientId) return false
  if (f.since !== undefined && entry.rejectedAt < f.since) return false
  if (f.topic !== undefined && !topicMatches(f.topic, entry.topic)) return false
  return true
}

/** `--since`: an ISO 8601 time, epoch milliseconds, or an age such as 30s, 15m, 2h, 7d. Undefined if unreadable. */
export function parseSince (text: string, now = Date.now()): number | undefined {
  const age = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim())
  if (age !== null) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as 'ms' | 's' | 'm' | 'h' | 'd']
    return now - Number(age[1]) * unit
  }
  if (/^\d+$/.test(text.trim())) return Number(text)
  const t = Date.parse(text)
  return Number.isNaN(t) ? undefined : t
}

/**
 * The dead-letter log: records every refused or undeliverable message in the store and publishes its envelope,
 * within a rate limit; lists, replays and purges. No aedes in here: src/dead-letter/hooks.ts gives it its ports.
 */
export class DeadLetters {
  readonly #p: DeadLetterPorts
  readonly #rate: RateLimit
  /** Dead letters seen, by reason (suppressed ones included). */
  readonly counts: Record<string, number> = {}
  /** Dead letters over ratePerSecond: counted only, neither stored nor published. */
  readonly suppressed: Record<string, number> = {}
  #suppressedSinceLog = 0
  #logTimer: NodeJS.Timeout | undefined
  #closed = false

  constructor (ports: DeadLetterPorts) {
    this.#p = ports
    this.#rate = new RateLimit(ports.ratePerSecond)
  }

  /**
   * Records one dead letter. Resolves once it is on disk (undefined when it was not kept: a `$DLQ/` topic, over
   * the rate, or the store is closed). Never rejects.
   */
  async record (input: DeadLetterInput, opts: { bypassRate?: boolean } = {}): Promise<StoredDeadLetter | undefined> {
    const { packet } = input
    if (this.#closed || isDeadLetterTopic(packet.topic)) return undefined
    this.counts[input.reason] = (this.counts[input.reason] ?? 0) + 1
    if (opts.bypassRate !== true && !this.#rate.take()) {
      this.suppressed[input.reason] = (this.suppressed[input.reason] ?? 0) + 1
      this.#noteSuppressed()
      return undefined
    }
    const now = Date.now()
    let added: ReturnType<DeadLetterStore['add']>
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
        firstRejectedAt: input.firstRejectedAt ?? now,
        rejectedAt: now,
        brokerId: this.#p.brokerId(),
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
    const envelope = toEnvelope(added.entry, packet.payload)
    this.#p.publishEnvelope(envelopeTopic(input.reason, packet.topic, this.#p.maxTopicLevels, this.#p.maxTopicLength), Buffer.from(JSON.stringify(envelope)))
    return added.entry
  }

  list (f: Filters = {}): StoredDeadLetter[] {
    return this.#p.store.list(e => matchesFilters(e, f))
  }

  async show (id: string): Promise<Envelope | undefined> {
    const entry = this.#p.store.get(id)
    if (entry === undefined) return undefined
    const payload = await this.#p.store.payload(id)
    return payload === undefined ? undefined : toEnvelope(entry, payload)
  }

  /**
   * Republishes the original message to its original topic after the checks it failed run again. It leaves the log
   * either way; if it fails again it is recorded anew with attempts + 1. Undefined for an unknown id.
   */
  async replay (id: string): Promise<ReplayResult | undefined> {
    const entry = this.#p.store.get(id)
    if (entry === undefined) return undefined
    const payload = await this.#p.store.payload(id)
    if (payload === undefined) return undefined
    const removed = await this.#p.store.remove([id])
    if (removed.length === 0) return undefined // replayed or purged meanwhile
    const packet: DeadLetterPacket = { topic: entry.topic, payload, qos: entry.qos, retain: entry.retain }
    const verdict = await this.#p.recheck(entry, packet)
    if (verdict === undefined) {
      await this.#p.publishOriginal(packet)
      this.#p.log.info({ id, reason: entry.reason, topic: entry.topic }, 'dead letter replayed')
      return { id, outcome: 'published' }
    }
    const again = await this.record({
      ...verdict,
      packet,
      clientId: entry.clientId,
      username: entry.username,
      target: entry.target,
      attempts: entry.attempts + 1,
      firstRejectedAt: entry.firstRejectedAt
    }, { bypassRate: true })
    return { id, outcome: 'dead-lettered', newId: again?.id, reason: verdict.reason, detail: verdict.detail }
  }

  async replayAll (f: Filters): Promise<ReplayResult[]> {
    const results: ReplayResult[] = []
    for (const entry of this.list(f)) {
      const r = await this.replay(entry.id)
      if (r !== undefined) results.push(r)
    }
    return results
  }

  async purge (ids: string[]): Promise<string[]> {
    return await this.#p.store.remove(ids)
  }

  close (): void {
    this.#closed = true
    if (this.#logTimer !== undefined) clearTimeout(this.#logTimer)
    this.#flushSuppressedLog()
  }

  /** One warn line per 10 s about suppressed dead letters, not one per message. */
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
    this.#p.log.warn({ suppressed: this.#suppressedSinceLog, limit: 'deadLetter.ratePerSecond', ratePerSecond: this.#p.ratePerSecond }, 'dead letters over the rate limit were counted, not kept')
    this.#suppressedSinceLog = 0
  }
}
