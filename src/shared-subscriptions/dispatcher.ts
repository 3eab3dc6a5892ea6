import type { StoredGroupMessage } from '../store/group-queue.js'
import { isReservedTopic, startsWithWildcard } from '../protocol/topic.js'
import { DeliveryTracker } from './deliveries.js'
import { createEntry, messageOf, type Entry, type Group } from './group.js'
import { MemberChooser, type Online } from './chooser.js'
import { admit, afterLoss, deliveredQos } from './policy.js'
import { shareTopic } from './share-name.js'
import type { DeadLetterReason, EngineOptions, EnginePort, EngineTotals, GroupStore, IncomingMessage, OutPacket } from './types.js'

/** Pending messages a pump looks past (sticky and hash strategies wait for one member) before it stops. */
const SCAN_LIMIT = 1000
/** Payloads read from the store at once when a durable queue drains. */
const LOAD_BATCH = 256

/**
 * The life of each shared message: it goes to one connected member chosen by the group's strategy, or waits (in
 * the durable store if the group has a persistent member); an unacknowledged delivery moves to another member when
 * its connection closes or its ack timeout passes; after maxDeliveries it is dead-lettered. Knows nothing of aedes.
 */
export class Dispatcher<H> {
  readonly totals: EngineTotals = { delivered: 0, redelivered: 0, acknowledged: 0, deadLettered: 0, dropped: 0, failovers: 0 }
  readonly deliveries = new DeliveryTracker<H>()
  readonly #chooser: MemberChooser<H>
  readonly #now: () => number
  #nextId = 1
  #closed = false

  constructor (private readonly port: EnginePort<H>, private readonly store: GroupStore | undefined, private readonly opts: EngineOptions) {
    this.#now = opts.now ?? Date.now
    this.#chooser = new MemberChooser(this.deliveries, opts.maxInflightPerMember, port.mayReceive)
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
    // Newer messages queue behind waiting ones (FIFO), except QoS 0, which never waits.
    const member = group.waiting === 0 || entry.qos === 0 ? this.#chooser.choose(group, entry) : undefined
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

  /** The connection closed: what it had not acknowledged goes to another member at once. */
  gone (handle: H, clientId: string): void {
    const moved = new Map<Group<H>, number>()
    for (const d of this.deliveries.takeAll(handle)) {
      const entry = d.entry
      if (entry.state === 'inflight' && entry.live === 0) {
        moved.set(entry.group, (moved.get(entry.group) ?? 0) + 1)
        this.#lost(entry, clientId)
      }
    }
    this.#reportMoved(moved, clientId, 'disconnect')
  }

  /** Moves every delivery unacknowledged for longer than ackTimeoutMs to another member. */
  sweep (): void {
    if (this.opts.ackTimeoutMs <= 0 || this.#closed) return
    const byClient = new Map<string, Map<Group<H>, number>>()
    for (const d of this.deliveries.expire(this.#now() - this.opts.ackTimeoutMs)) {
      const entry = d.entry
      if (entry.state !== 'inflight' || entry.live > 0) continue
      let moved = byClient.get(d.clientId)
      if (moved === undefined) byClient.set(d.clientId, moved = new Map())
      moved.set(entry.group, (moved.get(entry.group) ?? 0) + 1)
      this.#lost(entry, d.clientId)
    }
    for (const [clientId, moved] of byClient) this.#reportMoved(moved, clientId, 'ack-timeout')
  }

  /** Messages found in the store at start, in FIFO order. */
  restore (group: Group<H>, stored: StoredGroupMessage[]): void {
    for (const s of stored) {
      group.addPending(createEntry(this.#nextId++, group, { ...s, payload: undefined, storeKey: s.key }), false)
    }
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
    const waiting = [...group.pending()]
    if (waiting.length > 0) this.opts.log.warn({ share: shareTopic(group.share.key), count: waiting.length }, 'shared subscription removed with waiting messages')
    for (const entry of waiting) this.#deadLetter(entry, 'no-members')
  }

  /** Stops dispatching: what is in flight or waiting stays in the store for the next start. */
  close (): void {
    this.#closed = true
  }

  // internals -----------------------------------------------------------------------------------------------------

  #pumpOnce (group: Group<H>): void {
    if (group.waiting === 0 || group.members.online().length === 0) return
    let skipped = 0
    for (const entry of group.pending()) {
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
      brokerCounter: entry.brokerCounter
    }
    if (qos === 0) {
      // Nothing to wait for: the message is delivered as far as QoS 0 goes.
      this.#finish(entry)
      this.port.send(member.handle, packet, sent)
      return
    }
    group.markInflight(entry)
    packet.messageId = this.port.allocateId(member.handle)
    this.deliveries.add(entry, member.handle, member.clientId, packet.messageId, this.#now())
    if (redelivery && entry.storeKey !== undefined && this.store !== undefined) {
      this.store.setAttempts(entry.storeKey, messageOf(entry), entry.enqueuedAt, entry.attempts).catch(noop)
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

  /** Every delivery of the entry was lost: another attempt, or the dead-letter callback. */
  #lost (entry: Entry<H>, clientId: string): void {
    if (this.#closed) return
    const group = entry.group
    this.totals.failovers++
    if (afterLoss(entry.attempts, this.opts.maxDeliveries) === 'dead-letter') {
      this.#deadLetter(entry, 'max-deliveries')
    } else if (group.removed) {
      this.#deadLetter(entry, 'no-members')
    } else {
      entry.lostBy = clientId
      group.addPending(entry, true)
      this.pump(group)
    }
  }

  #reportMoved (moved: Map<Group<H>, number>, clientId: string, reason: 'disconnect' | 'ack-timeout'): void {
    for (const [group, count] of moved) {
      const fields = { share: shareTopic(group.share.key), clientId, reason, count }
      if (reason === 'disconnect') this.opts.log.info(fields, 'shared messages moved to another member')
      else this.opts.log.warn({ ...fields, ackTimeoutMs: this.opts.ackTimeoutMs }, 'shared messages moved to another member')
    }
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
    const group = entry.group
    group.counts.deadLettered++
    this.totals.deadLettered++
    const report = (payload: Buffer | undefined): void => {
      try {
        this.opts.onDeadLetter({ reason, attempts: entry.attempts, group: group.share.group, share: shareTopic(group.share.key), packet: { topic: entry.topic, payload: payload ?? Buffer.alloc(0), qos: entry.qos } })
      } catch (err) {
        this.opts.log.error({ err }, 'onDeadLetter failed')
      }
    }
    const key = entry.storeKey
    const store = this.store
    if (entry.payload === undefined && key !== undefined && store !== undefined) {
      // The record is read back first and deleted in the tick it is reported, so the delete and the dead letter
      // (written synchronously by onDeadLetter) are one batch: a crash in between leaves it in the group queue.
      entry.storeKey = undefined
      this.#finish(entry)
      void store.payloads([key]).then(p => p[0], () => undefined).then(payload => {
        report(payload)
        store.remove([key]).catch(noop)
      })
      return
    }
    report(entry.payload)
    this.#finish(entry)
  }
}

function * sizes<H> (group: Group<H>): Generator<number> {
  for (const e of group.pending()) yield e.bytes
}

function noop (): void {}
