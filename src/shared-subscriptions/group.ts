import type { GroupMessage } from '../store/group-queue.js'
import { Membership } from './membership.js'
import type { ShareName } from './share-name.js'
import { Picker, type Strategy } from './strategies.js'

/** One message of a group, from the moment it matched until a member acknowledged it (or it was dropped). */
export interface Entry<H> {
  readonly id: number
  readonly group: Group<H>
  readonly topic: string
  /** The publish QoS; each delivery goes out at min(this, the member's granted QoS). */
  readonly qos: number
  /** In memory while it may be sent soon; a durable message waiting in the queue keeps it on disk only. */
  payload: Buffer | undefined
  readonly bytes: number
  readonly brokerId: string | undefined
  readonly brokerCounter: number | undefined
  readonly publisher: string | undefined
  /** MQTT 5 PUBLISH properties; the Message Expiry Interval counts from enqueuedAt. */
  readonly properties: Record<string, unknown> | undefined
  readonly enqueuedAt: number
  attempts: number
  /** When each delivery that failed went out (epoch ms), for the dead-letter envelope; kept with a durable message. */
  attemptTimes: number[] | undefined
  /** When the latest delivery went out. */
  sentAt: number
  /** While delayed: when the retry falls due (epoch ms). */
  dueAt: number | undefined
  /** Key of its record in the durable group queue, if it has one. */
  storeKey: string | undefined
  /** delayed: waiting out its retry backoff, neither in flight nor in line. */
  state: 'pending' | 'inflight' | 'delayed' | 'done'
  /** Deliveries still waiting for an acknowledgement and not timed out. */
  live: number
  deliveries: Array<Delivery<H>>
  /** The member that lost it last: the next delivery prefers another one. */
  lostBy: string | undefined
  /** What the member that refused it last said (MQTT 5), for its dead letter. */
  refusal?: string
}

/** One delivery of an entry to one connection, identified there by its packet identifier. */
export interface Delivery<H> {
  readonly entry: Entry<H>
  readonly handle: H
  readonly clientId: string
  readonly messageId: number
  readonly sentAt: number
  /** Timed out: the member lost the message, but an acknowledgement it still sends completes it. */
  expired: boolean
}

export interface GroupCounts {
  delivered: number
  redelivered: number
  acknowledged: number
  deadLettered: number
  dropped: number
  /** Deliveries not acknowledged within ackTimeoutMs. */
  ackTimeouts: number
  /** Deliveries the member refused (an MQTT 5 PUBACK/PUBREC reason code ≥ 0x80; none with MQTT 3.1.1). */
  rejections: number
}

/** One shared subscription: its members, its strategy and its waiting messages. */
export class Group<H> {
  readonly members = new Membership<H>()
  readonly picker: Picker
  /** Messages that were delivered and lost: they go out again before anything newer. */
  readonly retry = new Map<number, Entry<H>>()
  readonly fresh = new Map<number, Entry<H>>()
  /** Messages waiting out their retry backoff (not counted as waiting: the queue limits never evict them). */
  readonly delayed = new Map<number, Entry<H>>()
  /**
   * hash-topic only: topics with a delayed message, and how many. Later messages of such a topic wait behind it, so
   * the member that owns the topic still gets them in publish order.
   */
  readonly #heldTopics = new Map<string, number>()
  readonly counts: GroupCounts = { delivered: 0, redelivered: 0, acknowledged: 0, deadLettered: 0, dropped: 0, ackTimeouts: 0, rejections: 0 }
  waitingBytes = 0
  inflight = 0
  removed = false
  pumping = false
  repump = false
  loading = false

  constructor (readonly share: ShareName, strategy: Strategy, random?: () => number) {
    this.picker = new Picker(strategy, random)
  }

  get waiting (): number {
    return this.retry.size + this.fresh.size
  }

  * pending (): Generator<Entry<H>> {
    yield * this.retry.values()
    yield * this.fresh.values()
  }

  /** Arrival of the oldest message waiting or delayed (epoch ms); Infinity when none. A scrape-time walk. */
  oldestWaitingAt (): number {
    let oldest = Infinity
    for (const e of this.retry.values()) oldest = Math.min(oldest, e.enqueuedAt)
    for (const e of this.delayed.values()) oldest = Math.min(oldest, e.enqueuedAt)
    // fresh is in arrival order: its first entry is its oldest
    for (const e of this.fresh.values()) return Math.min(oldest, e.enqueuedAt)
    return oldest
  }

  /** Whether the entry must wait because an earlier message of its topic waits out a backoff (hash-topic). */
  holds (entry: Entry<H>): boolean {
    return this.#heldTopics.size > 0 && this.#heldTopics.has(entry.topic)
  }

  /** in flight → delayed until `dueAt`. */
  addDelayed (entry: Entry<H>, dueAt: number): void {
    if (entry.state === 'inflight') this.inflight--
    entry.state = 'delayed'
    entry.dueAt = dueAt
    this.delayed.set(entry.id, entry)
    if (this.picker.strategy === 'hash-topic') this.#heldTopics.set(entry.topic, (this.#heldTopics.get(entry.topic) ?? 0) + 1)
  }

  addPending (entry: Entry<H>, retry: boolean): void {
    if (entry.state === 'inflight') this.inflight--
    else if (entry.state === 'delayed') this.#undelay(entry)
    entry.state = 'pending'
    ;(retry ? this.retry : this.fresh).set(entry.id, entry)
    this.waitingBytes += entry.bytes
  }

  /** Takes an entry out of the waiting list; false if it was not there. */
  removePending (entry: Entry<H>): boolean {
    if (!this.retry.delete(entry.id) && !this.fresh.delete(entry.id)) return false
    this.waitingBytes -= entry.bytes
    return true
  }

  /** pending → in flight (first delivery or redelivery); in flight → in flight (another delivery) changes nothing. */
  markInflight (entry: Entry<H>): void {
    if (entry.state === 'pending') this.removePending(entry)
    if (entry.state !== 'inflight') this.inflight++
    entry.state = 'inflight'
  }

  markDone (entry: Entry<H>): void {
    if (entry.state === 'pending') this.removePending(entry)
    else if (entry.state === 'inflight') this.inflight--
    else if (entry.state === 'delayed') this.#undelay(entry)
    entry.state = 'done'
  }

  #undelay (entry: Entry<H>): void {
    this.delayed.delete(entry.id)
    entry.dueAt = undefined
    const held = this.#heldTopics.get(entry.topic)
    if (held === undefined) return
    if (held <= 1) this.#heldTopics.delete(entry.topic)
    else this.#heldTopics.set(entry.topic, held - 1)
  }
}

export interface EntryFields {
  topic: string
  qos: number
  payload: Buffer | undefined
  bytes: number
  brokerId?: string
  brokerCounter?: number
  publisher?: string
  properties?: Record<string, unknown>
  enqueuedAt: number
  attempts: number
  attemptTimes?: number[]
  storeKey: string | undefined
}

export function createEntry<H> (id: number, group: Group<H>, f: EntryFields): Entry<H> {
  return {
    id,
    group,
    topic: f.topic,
    qos: f.qos,
    payload: f.payload,
    bytes: f.bytes,
    brokerId: f.brokerId,
    brokerCounter: f.brokerCounter,
    publisher: f.publisher,
    properties: f.properties,
    enqueuedAt: f.enqueuedAt,
    attempts: f.attempts,
    attemptTimes: f.attemptTimes,
    sentAt: 0,
    dueAt: undefined,
    storeKey: f.storeKey,
    state: 'pending',
    live: 0,
    deliveries: [],
    lostBy: undefined
  }
}

/** The entry as the durable store writes it. */
export function messageOf<H> (entry: Entry<H>): GroupMessage {
  const m: GroupMessage = { topic: entry.topic, payload: entry.payload ?? Buffer.alloc(0), qos: entry.qos }
  if (entry.brokerId !== undefined) m.brokerId = entry.brokerId
  if (entry.brokerCounter !== undefined) m.brokerCounter = entry.brokerCounter
  if (entry.publisher !== undefined) m.publisher = entry.publisher
  if (entry.properties !== undefined) m.properties = entry.properties
  return m
}
