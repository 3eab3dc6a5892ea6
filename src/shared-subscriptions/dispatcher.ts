import { isReservedTopic, startsWithWildcard } from '../protocol/topic.js'
import { deadLetterEntry, type GiveUpContext } from './dead-lettering.js'
import { DeliveryTracker } from './deliveries.js'
import { createEntry, messageOf, type Entry, type Group } from './group.js'
import { MemberChooser, type Online } from './chooser.js'
import { admit, deliveredQos } from './policy.js'
import { Redelivery } from './redelivery.js'
import { shareTopic } from './share-name.js'
import type { DeadLetterReason, EngineOptions, EnginePort, EngineTotals, GroupStore, IncomingMessage, OutPacket } from './types.js'
import { isExpired, withTimeLeft } from './expiry.js'

/** Pending messages a pump looks past (sticky and hash strategies wait for one member) before it stops. */
const SCAN_LIMIT = 1000
/** Payloads read from the store at once when a durable queue drains. */
const LOAD_BATCH = 256

/**
 * The life of each shared message: it goes to one connected member chosen by the group's strategy, or waits (in
 * the durable store if the group has a persistent member); an unacknowledged delivery moves to another member when
 * its connection closes, or after the retry backoff once its ack timeout passes (redelivery.ts); after maxDeliveries
 * it is dead-lettered. Knows nothing of aedes.
 */
export class Dispatcher<H> {
  readonly totals: EngineTotals = { delivered: 0, redelivered: 0, acknowledged: 0, deadLettered: 0, dropped: 0, failovers: 0, ackTimeouts: 0, rejections: 0 }
  readonly deliveries = new DeliveryTracker<H>()
  /** Lost messages: backoff, failover, restore (redelivery.ts). */
  readonly redelivery: Redelivery<H>
  readonly #chooser: MemberChooser<H>
  readonly #now: () => number
  readonly #giveUp: GiveUpContext<H>
  #nextId = 1
  #closed = false

  constructor (private readonly port: EnginePort<H>, private readonly store: GroupStore | undefined, private readonly opts: EngineOptions) {
    this.#now = opts.now ?? Date.now
    this.#giveUp = { store, opts, totals: this.totals, finish: entry => { this.#finish(entry) } }
    this.#chooser = new MemberChooser(this.deliveries, opts.maxInflightPerMember, port.mayReceive)
    this.redelivery = new Redelivery({
      deliveries: this.deliveries,
      totals: this.totals,
      isClosed: () => this.#closed,
      nextId: () => this.#nextId++,
      pump: group => this.pump(group),
      deadLetter: (entry, reason) => this.#deadLetter(entry, reason)
    }, port, store, opts)
  }

  /**
   * A message matched the group's filter. `done` (the publisher's PUBACK waits for it) runs once the message is
   * stored (durable groups) and handed to a member or queued; see #deliver for what "handed" means. It gets the
   * error of a failed store write: the publisher must then not be acknowledged.
   */
  publish (group: Group<H>, message: IncomingMessage, done: (err?: Error) => void): void {
    // [MQTT-4.7.2-1]: a filter starting with a wildcard never matches a topic starting with "$".
    if (this.#closed || group.removed || (isReservedTopic(message.topic) && startsWithWildcard(group.share.filter))) {
      done()
      return
    }
    const entry = createEntry(this.#nextId++, group, {
      topic: message.topic,
      qos: message.qos,
      payload: message.payload,
      bytes: message.payload.length,
      brokerId: message.brokerId ?? undefined,
      brokerCounter: message.brokerCounter,
      publisher: message.clientId,
      properties: message.properties,
      enqueuedAt: this.#now(),
      attempts: 0,
      storeKey: undefined
    })
    let waits = 1
    let failure: Error | undefined
    const settle = (): void => { if (--waits === 0) done(failure) }
    if (entry.qos > 0 && this.store !== undefined && group.members.durable) {
      // Stored before the publisher's PUBACK (which waits for `done`), sent at the same time.
      const { key, done: stored } = this.store.add(group.share.key, messageOf(entry), entry.enqueuedAt)
      entry.storeKey = key
      waits++
      stored.then(() => {
        // A waiting durable message is read back from disk when it is sent, so a long queue costs no heap.
        if (entry.state === 'pending' && entry.attempts === 0) entry.payload = undefined
        settle()
      }, (err: unknown) => {
        this.opts.log.error({ err, share: shareTopic(group.share.key) }, 'shared message not stored')
        failure = err as Error
        settle()
      })
    }
    // Newer messages queue behind waiting ones (FIFO), and behind a delayed one of their topic (hash-topic), except
    // QoS 0, which never waits.
    const member = (group.waiting === 0 && !group.holds(entry)) || entry.qos === 0 ? this.#chooser.choose(group, entry) : undefined
    if (member !== undefined) {
      waits++
      this.#deliver(entry, member, settle)
    } else {
      this.#enqueue(group, entry)
      this.pump(group)
    }
    settle()
  }

  /** PUBACK, PUBREC or PUBCOMP from a connection; true when it acknowledged a shared delivery. */
  ack (handle: H, messageId: number): boolean {
    const d = this.deliveries.get(handle, messageId)
    if (d === undefined) return false
    this.deliveries.remove(d)
    const entry = d.entry
    if (entry.state !== 'done') {
      entry.group.counts.acknowledged++
      this.totals.acknowledged++
      this.#finish(entry)
      this.pump(entry.group)
    }
    return true
  }

  /** Dispatches waiting messages while members can take them. */
  pump (group: Group<H>): void {
    if (this.#closed || group.removed) return
    if (group.pumping || group.loading) {
      group.repump = true
      return
    }
    group.pumping = true
    try {
      do {
        group.repump = false
        this.#pumpOnce(group)
      } while (group.repump && !group.loading)
    } finally {
      group.pumping = false
    }
  }

  /** The group lost its last member: what waits for it is given up. */
  drop (group: Group<H>): void {
    const waiting = [...group.pending(), ...group.delayed.values()]
    if (waiting.length > 0) this.opts.log.warn({ share: shareTopic(group.share.key), count: waiting.length }, 'shared subscription removed with waiting messages')
    for (const entry of waiting) this.#deadLetter(entry, 'no-members')
  }

  get closed (): boolean {
    return this.#closed
  }

  /** Stops dispatching: what is in flight or waiting stays in the store for the next start. */
  close (): void {
    this.#closed = true
  }

  // internals -----------------------------------------------------------------------------------------------------

  #pumpOnce (group: Group<H>): void {
    if (group.waiting === 0 || group.members.online().length === 0) return
    let skipped = 0
    const now = this.#now()
    for (const entry of group.pending()) {
      if (group.holds(entry)) {
        if (++skipped > SCAN_LIMIT) return
        continue
      }
      // as in a session queue: a message that waited past its MQTT 5 Message Expiry Interval is never sent
      if (isExpired(entry, now)) {
        this.#deadLetter(entry, 'expired')
        continue
      }
      if (entry.payload === undefined) {
        this.#loadPayloads(group)
        return
      }
      const member = this.#chooser.choose(group, entry)
      if (member !== undefined) {
        this.#deliver(entry, member, noop)
        continue
      }
      if (!this.#chooser.anyCapacity(group) || ++skipped > SCAN_LIMIT) return
    }
  }

  #loadPayloads (group: Group<H>): void {
    const batch: Array<Entry<H>> = []
    for (const entry of group.pending()) {
      if (entry.payload !== undefined) continue
      batch.push(entry)
      if (batch.length >= LOAD_BATCH) break
    }
    // Only durable entries ever lose their payload (see publish).
    if (batch.length === 0 || this.store === undefined) return
    group.loading = true
    this.store.payloads(batch.map(e => e.storeKey as string)).then(payloads => {
      for (let i = 0; i < batch.length; i++) {
        const payload = payloads[i]
        if (payload !== undefined) batch[i].payload = payload
        else if (batch[i].state === 'pending') this.#finish(batch[i])
      }
    }, (err: unknown) => {
      this.opts.log.error({ err, share: shareTopic(group.share.key) }, 'shared queue unreadable')
    }).finally(() => {
      group.loading = false
      this.pump(group)
    })
  }

  /**
   * `sent` runs once a QoS 0 delivery is written to the member's socket (its backpressure, as for any subscriber),
   * but at once for QoS 1/2: the member's in-flight cap bounds those, and a publisher then waits for neither the
   * member's socket nor its acknowledgement (the group queue decouples them, as a work queue should).
   */
  #deliver (entry: Entry<H>, member: Online<H>, sent: () => void): void {
    const group = entry.group
    entry.attempts++
    group.counts.delivered++
    this.totals.delivered++
    const redelivery = entry.attempts > 1
    if (redelivery) {
      group.counts.redelivered++
      this.totals.redelivered++
    }
    const qos = deliveredQos(entry.qos, member.qos)
    const packet: OutPacket = {
      cmd: 'publish',
      topic: entry.topic,
      payload: entry.payload ?? Buffer.alloc(0),
      qos,
      retain: false,
      dup: redelivery && qos > 0,
      messageId: undefined,
      brokerId: entry.brokerId,
      brokerCounter: entry.brokerCounter,
      group: group.share.group,
      arrivedAt: entry.enqueuedAt
    }
    if (entry.properties !== undefined) packet.properties = withTimeLeft(entry, this.#now())
    if (qos === 0) {
      // Nothing to wait for: the message is delivered as far as QoS 0 goes.
      this.#finish(entry)
      this.port.send(member.handle, packet, sent)
      return
    }
    group.markInflight(entry)
    packet.messageId = this.port.allocateId(member.handle)
    entry.sentAt = this.#now()
    this.deliveries.add(entry, member.handle, member.clientId, packet.messageId, entry.sentAt)
    if (redelivery && entry.storeKey !== undefined && this.store !== undefined) {
      this.store.setRetry(entry.storeKey, messageOf(entry), entry.enqueuedAt, { attempts: entry.attempts, attemptTimes: entry.attemptTimes }).catch(noop)
    }
    this.port.send(member.handle, packet, noop)
    sent()
  }

  /**
   * The entry is done with (acknowledged, delivered at QoS 0, given up): its record goes. Other deliveries of it stay
   * tracked until their member acknowledges them or disconnects: that member still holds the message.
   */
  #finish (entry: Entry<H>): void {
    entry.group.markDone(entry)
    if (entry.storeKey !== undefined && this.store !== undefined && !this.#closed) this.store.remove([entry.storeKey]).catch(noop)
    entry.payload = undefined
  }

  #enqueue (group: Group<H>, entry: Entry<H>): void {
    if (entry.qos === 0) {
      // Like a session queue: QoS 0 messages never wait for a member.
      group.counts.dropped++
      this.totals.dropped++
      return
    }
    const verdict = admit(this.opts.limits, group.waiting, group.waitingBytes, entry.bytes, () => sizes(group))
    if (!verdict.accept) {
      this.#deadLetter(entry, 'queue-full')
      return
    }
    const evicted: Array<Entry<H>> = []
    for (const e of group.pending()) {
      if (evicted.length >= verdict.evict) break
      evicted.push(e)
    }
    for (const e of evicted) this.#deadLetter(e, 'queue-full')
    group.addPending(entry, false)
  }

  #deadLetter (entry: Entry<H>, reason: DeadLetterReason): void {
    deadLetterEntry(this.#giveUp, entry, reason)
  }
}

function * sizes<H> (group: Group<H>): Generator<number> {
  for (const e of group.pending()) yield e.bytes
}

function noop (): void {}
