import type { StoredGroupMessage } from '../store/group-queue.js'
import { retryDelayMs } from './backoff.js'
import type { DeliveryTracker } from './deliveries.js'
import { createEntry, messageOf, type Entry, type Group } from './group.js'
import { afterLoss } from './policy.js'
import { RetrySchedule } from './retry-schedule.js'
import { shareTopic } from './share-name.js'
import type { DeadLetterReason, EngineOptions, EnginePort, EngineTotals, GroupStore } from './types.js'

/** What redelivery needs of the dispatcher it serves. */
export interface RedeliveryHost<H> {
  readonly deliveries: DeliveryTracker<H>
  readonly totals: EngineTotals
  isClosed: () => boolean
  nextId: () => number
  pump: (group: Group<H>) => void
  deadLetter: (entry: Entry<H>, reason: DeadLetterReason) => void
}

export type LossReason = 'disconnect' | 'ack-timeout' | 'rejected'

/**
 * What happens to a message its member lost: a member that failed it (no acknowledgement within ackTimeoutMs, or,
 * with MQTT 5, a refusal) makes it wait out the group's backoff before it is offered again; a member that
 * disconnected hands it on at once; after maxDeliveries it is dead-lettered. A waiting message of a durable group
 * has its attempt count and due time in the store, so a restart keeps both.
 */
export class Redelivery<H> {
  readonly #schedule = new RetrySchedule<H>()
  readonly #now: () => number
  readonly #random: () => number

  constructor (
    private readonly host: RedeliveryHost<H>,
    private readonly port: EnginePort<H>,
    private readonly store: GroupStore | undefined,
    private readonly opts: EngineOptions
  ) {
    this.#now = opts.now ?? Date.now
    this.#random = opts.random ?? Math.random
  }

  /**
   * The member refused the delivery (an MQTT 5 PUBACK or PUBREC with a reason code ≥ 0x80, or a copy larger than its
   * Maximum Packet Size): a failure like an ack timeout, without waiting for it. `why` is kept for the dead letter.
   * With `redispatch` false the message is dead-lettered as `rejected` at once, never offered to another member.
   */
  reject (handle: H, messageId: number, why?: string, redispatch = true): boolean {
    const d = this.host.deliveries.get(handle, messageId)
    if (d === undefined) return false
    const expired = d.expired
    this.host.deliveries.remove(d)
    const entry = d.entry
    if (entry.state === 'inflight' && !expired) {
      entry.group.counts.rejections++
      this.host.totals.rejections++
      entry.refusal = why
      if (entry.live > 0) return true
      if (redispatch) {
        this.lost(entry, d.clientId, 'rejected')
      } else if (!this.host.isClosed()) {
        ;(entry.attemptTimes ??= []).push(entry.sentAt)
        this.host.deadLetter(entry, 'rejected')
      }
    }
    return true
  }

  /** The connection closed: what it had not acknowledged goes to another member at once. */
  gone (handle: H, clientId: string): void {
    const moved = new Map<Group<H>, number>()
    for (const d of this.host.deliveries.takeAll(handle)) {
      const entry = d.entry
      if (entry.state === 'inflight' && entry.live === 0) {
        moved.set(entry.group, (moved.get(entry.group) ?? 0) + 1)
        this.lost(entry, clientId, 'disconnect')
      }
    }
    this.#reportMoved(moved, clientId, 'disconnect')
  }

  /** Every delivery unacknowledged for longer than ackTimeoutMs: its message is retried after the backoff. */
  sweep (): void {
    if (this.opts.ackTimeoutMs <= 0 || this.host.isClosed()) return
    const byClient = new Map<string, Map<Group<H>, number>>()
    for (const d of this.host.deliveries.expire(this.#now() - this.opts.ackTimeoutMs)) {
      const entry = d.entry
      if (entry.state !== 'inflight') continue
      entry.group.counts.ackTimeouts++
      this.host.totals.ackTimeouts++
      if (entry.live > 0) continue
      let moved = byClient.get(d.clientId)
      if (moved === undefined) byClient.set(d.clientId, moved = new Map())
      moved.set(entry.group, (moved.get(entry.group) ?? 0) + 1)
      this.lost(entry, d.clientId, 'ack-timeout')
    }
    for (const [clientId, moved] of byClient) this.#reportMoved(moved, clientId, 'ack-timeout')
  }

  /** Delayed messages whose retry is due go back in line, before anything newer (the port's wake calls this). */
  release (): void {
    if (this.host.isClosed()) return
    const groups = new Set<Group<H>>()
    for (const entry of this.#schedule.takeDue(this.#now())) {
      entry.group.addPending(entry, true)
      groups.add(entry.group)
    }
    for (const group of groups) this.host.pump(group)
    this.#rearm()
  }

  /** Messages found in the store at start, in FIFO order; one whose retry is not due yet waits for it. */
  restore (group: Group<H>, stored: StoredGroupMessage[]): void {
    const now = this.#now()
    for (const s of stored) {
      const entry = createEntry(this.host.nextId(), group, { ...s, payload: undefined, storeKey: s.key })
      if (s.dueAt !== undefined && s.dueAt > now) {
        group.addDelayed(entry, s.dueAt)
        this.#schedule.add(entry, s.dueAt)
      } else {
        group.addPending(entry, false)
      }
    }
    this.#rearm()
  }

  /** Every delivery of the entry was lost: another attempt (now or after the backoff), or the dead-letter callback. */
  lost (entry: Entry<H>, clientId: string, reason: LossReason): void {
    if (this.host.isClosed()) return
    const group = entry.group
    this.host.totals.failovers++
    ;(entry.attemptTimes ??= []).push(entry.sentAt)
    if (afterLoss(entry.attempts, this.opts.maxDeliveries) === 'dead-letter') {
      this.host.deadLetter(entry, reason === 'rejected' ? 'rejected' : 'max-deliveries')
      return
    }
    if (group.removed) {
      this.host.deadLetter(entry, 'no-members')
      return
    }
    entry.lostBy = clientId
    const wait = reason === 'disconnect' ? 0 : retryDelayMs(this.opts.backoffFor(group.share.group), entry.attempts, this.#random)
    if (wait > 0) {
      this.#delay(entry, this.#now() + wait)
      return
    }
    group.addPending(entry, true)
    this.host.pump(group)
  }

  /** Parks the entry until `dueAt`; a durable one records its attempts and due time and leaves its payload on disk. */
  #delay (entry: Entry<H>, dueAt: number): void {
    entry.group.addDelayed(entry, dueAt)
    this.#schedule.add(entry, dueAt)
    if (entry.storeKey !== undefined && this.store !== undefined) {
      this.store.setRetry(entry.storeKey, messageOf(entry), entry.enqueuedAt, { attempts: entry.attempts, dueAt, attemptTimes: entry.attemptTimes }).catch(noop)
      entry.payload = undefined
    }
    if (this.#schedule.next === dueAt) this.port.wake(dueAt)
  }

  #rearm (): void {
    const next = this.#schedule.next
    if (next !== undefined) this.port.wake(next)
  }

  #reportMoved (moved: Map<Group<H>, number>, clientId: string, reason: 'disconnect' | 'ack-timeout'): void {
    for (const [group, count] of moved) {
      const fields = { share: shareTopic(group.share.key), clientId, reason, count }
      if (reason === 'disconnect') this.opts.log.info(fields, 'shared messages moved to another member')
      else this.opts.log.warn({ ...fields, ackTimeoutMs: this.opts.ackTimeoutMs }, 'shared messages moved to another member')
    }
  }
}

function noop (): void {}
