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
  readonly enqueuedAt: number
  attempts: number
  /** Key of its record in the durable group queue, if it has one. */
  storeKey: string | undefined
  state: 'pending' | 'inflight' | 'done'
  /** Deliveries still waiting for an acknowledgement and not timed out. */
  live: number
  deliveries: Array<Delivery<H>>
  /** The member that lost it last: the next delivery prefers another one. */
  lostBy: string | undefined
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
}

/** One shared subscription: its members, its strategy and its waiting messages. */
export class Group<H> {
  readonly members = new Membership<H>()
  readonly picker: Picker
  /** Messages that were delivered and lost: they go out again before anything newer. */
  readonly retry = new Map<number, Entry<H>>()
  readonly fresh = new Map<number, Entry<H>>()
  readonly counts: GroupCounts = { delivered: 0, redelivered: 0, acknowledged: 0, deadLettered: 0, dropped: 0 }
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

  addPending (entry: Entry<H>, retry: boolean): void {
    if (entry.state === 'inflight') this.inflight--
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
    entry.state = 'done'
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
  enqueuedAt: number
  attempts: number
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
    enqueuedAt: f.enqueuedAt,
    attempts: f.attempts,
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
  return m
}
