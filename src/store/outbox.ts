import type { Logger } from '../log/logger.js'
import { DONE } from './contract.js'
import { decodeRecord, encodeRecord, type QueuedHead } from './codec.js'
import { encodeClientId, outgoingKey } from './layout.js'
import { ClientQueue, type QueueInfo, type QueueTotals } from './outgoing-index.js'
import { queueEntry } from './queue-entry.js'
import { QueueLookups } from './queue-lookups.js'
import { packetRecord, payloadBytes, pubrelRecord } from './packets.js'
import type { EnqueueTarget } from './enqueue-targets.js'
import type { DropReporter } from './queue-limits.js'
import { outputPacket, replay } from './outgoing-replay.js'
import { LazyPacketIds } from './lazy-packet-ids.js'
import { LateAcks, LIVE_COPY_DELAY_MS, LiveCopies } from './live-copies.js'
import { place, writePlaced, type Placement, type PlacingContext } from './placement.js'
import type { ValueReader } from './reader.js'
import type { ClientRef, PacketLike, SessionQueues, StoreLimits } from './types.js'
import type { WriteOp, WriteQueue } from './write-queue.js'

export interface OutboxDeps {
  queue: WriteQueue
  reader: ValueReader
  limits: StoreLimits
  drops: DropReporter
  logger: Logger
}

function noSuchPacket (): Error {
  return new Error('no such packet')
}

/** The per-session outgoing queues: enqueue, messageId assignment, acknowledgement and replay. */
export class Outbox extends QueueLookups implements SessionQueues {
  readonly #deps: OutboxDeps
  /** Kept by every queue as entries come and go: what the broker-wide limits are checked against. */
  readonly #totals: QueueTotals = { entries: 0, bytes: 0 }
  #seq = 1
  /** The broker ids of loaded entries, one string each (a restart reads a copy per entry). */
  readonly #brokerIds = new Map<string, string>()
  readonly #evicting = new Set<Promise<void>>()
  /** The packet ids of QoS 1 copies sent, written only if no PUBACK comes back first. */
  readonly #lazyIds: LazyPacketIds
  /** Live copies sent before anything of them was written (LiveCopies): the same, sooner, as a publisher waits. */
  readonly #lazyCopies: LazyPacketIds
  readonly #placing: PlacingContext
  readonly #lateAcks = new LateAcks()

  constructor (deps: OutboxDeps) {
    super()
    this.#deps = deps
    this.#lazyIds = new LazyPacketIds(deps.queue)
    this.#lazyCopies = new LazyPacketIds(deps.queue, LIVE_COPY_DELAY_MS)
    this.#placing = {
      deps,
      totals: this.#totals,
      queueFor: (clientId) => this.#queueFor(clientId),
      nextSeq: () => this.#seq++,
      forget: (clientId) => { this.queues.delete(clientId) },
      settle: (queue) => { this.#dropIfEmpty(queue) },
      track: (work) => { this.#track(work) }
    }
  }

  /**
   * Indexes one stored entry at open; keys arrive in order, so queues are rebuilt in FIFO order. The key is left
   * to be made again when needed, and the broker id is interned: every entry from one broker holds the same string.
   */
  load (clientId: string, seq: number, head: QueuedHead): void {
    const queue = this.#queueFor(clientId)
    queue.add(queueEntry({
      seq,
      enc: queue.enc,
      cmd: head.cmd,
      brokerId: head.brokerId === undefined ? undefined : this.#internBrokerId(head.brokerId),
      brokerCounter: head.brokerCounter,
      messageId: head.messageId,
      qos: head.qos,
      bytes: head.payloadBytes,
      enqueuedAt: head.enqueuedAt
    }))
    if (seq >= this.#seq) this.#seq = seq + 1
  }

  #internBrokerId (brokerId: string): string {
    let interned = this.#brokerIds.get(brokerId)
    if (interned === undefined) {
      interned = brokerId
      this.#brokerIds.set(brokerId, interned)
    }
    return interned
  }

  /**
   * One entry per distinct client, whatever number of its filters matched, at the highest QoS those filters
   * granted (capped by the publish QoS). Resolves once committed, together with any write staged before it.
   */
  enqueue (targets: readonly EnqueueTarget[], packet: PacketLike): Promise<void> {
    const placed = place(this.#placing, targets, packet)
    // No persistent subscriber (a clean one's publish, a retained one nobody holds): nothing to build, only the wait
    // for what was staged before it; the per-client map, the op lists and the undo cost about 350 bytes per PUBLISH.
    return (placed === undefined ? undefined : writePlaced(this.#placing, placed, false)) ?? this.#deps.queue.commit([])
  }

  /**
   * enqueue for a QoS 1 message delivered in this same turn (qos-publish.ts): the entries are added to their queues
   * and nothing is written yet; LiveCopies#settle, called after the delivery, writes those not sent at once and holds
   * the others until acknowledged. Undefined when no session queues the message.
   */
  enqueueLive (targets: readonly EnqueueTarget[], packet: PacketLike): LiveCopies | undefined {
    const placed = place(this.#placing, targets, packet)
    if (placed === undefined) return undefined
    return new LiveCopies(placed, this.#writeUnsent, this.#barrier, this.#lateAcks)
  }

  readonly #barrier = (): Promise<void> => this.#deps.queue.barrier()
  readonly #writeUnsent = (placed: Placement): Promise<void> | undefined => writePlaced(this.#placing, placed, true)

  /** Resolves once the evictions under way have written their dead letters and deletes (for close). */
  async idle (): Promise<void> {
    while (this.#evicting.size > 0) await Promise.all(this.#evicting)
  }

  #track (work: Promise<void>): void {
    this.#evicting.add(work)
    void work.finally(() => this.#evicting.delete(work))
  }

  /** aedes' outgoingUpdate: assign the messageId a publish was sent with, or turn it into its pubrel. */
  update (client: ClientRef, packet: PacketLike): Promise<void> {
    const queue = this.queues.get(client.id)
    const messageId = packet.messageId
    if (messageId == null) return Promise.reject(noSuchPacket())
    const token = this.token(client)
    if (packet.cmd === 'pubrel') {
      const entry = queue?.byMessageId(messageId)
      // A QoS 2 copy the session queue never held (a retained message sent on SUBSCRIBE, which the delivery router
      // keeps out of it): its PUBREL is sent all the same [MQTT-4.3.3-1], with nothing to record. Refused, aedes
      // closed the connection at the subscriber's PUBREC.
      if (queue === undefined || entry === undefined) return Promise.resolve()
      const record = pubrelRecord(messageId)
      entry.cmd = 'pubrel'
      queue.setBytes(entry, 0)
      entry.sentOn = token
      entry.inflight = record
      return this.#deps.queue.commit([{ type: 'put', key: entry.key, value: encodeRecord(record, { t: entry.enqueuedAt }) }])
    }
    if (queue === undefined) return Promise.reject(noSuchPacket())
    const entry = packet.brokerId != null && packet.brokerCounter !== undefined
      ? queue.byCounter(packet.brokerId, packet.brokerCounter)
      : undefined
    if (entry === undefined) return Promise.reject(noSuchPacket())
    // PUBREC already arrived: the publish must not come back over its pubrel (the receiver would get it twice)
    if (entry.cmd === 'pubrel') return this.#deps.queue.commit([])
    if (entry.qos === 0) {
      // a queued QoS 0 copy is sent once and never acknowledged: sent, it is delivered (a live one's publish waits no more)
      const waiter = entry.waiter
      entry.waiter = undefined
      queue.remove(entry)
      waiter?.settled()
      this.#dropIfEmpty(queue)
      return this.#deps.queue.commit(entry.unwritten !== undefined ? [] : [{ type: 'del', key: entry.key }])
    }
    const qos = Math.min(entry.qos, packet.qos ?? entry.qos)
    const record = packetRecord(packet, { qos, messageId })
    entry.qos = qos
    queue.assignMessageId(entry, messageId)
    queue.setBytes(entry, payloadBytes(record.payload))
    entry.sentOn = token
    entry.inflight = record
    const enqueuedAt = entry.enqueuedAt
    if (qos === 1) {
      // The message itself was committed by enqueue; this only records the packet id it goes out with. Staged,
      // not awaited: a crash before the next batch commits loses at most the id, and the message is then resent
      // after the restart under a new id (a QoS 1 duplicate, never a loss). Held for LAZY_PUT_DELAY_MS (writeIds):
      // when the PUBACK comes back first, as it nearly always does, nothing is encoded nor written. QoS 2 still
      // waits: its id has to be on disk before the PUBLISH leaves, or a resend under a new id would be a second
      // delivery.
      if (entry.unwritten !== undefined) this.#lazyCopies.hold(entry, record)
      else this.#lazyIds.hold(entry, record)
      return DONE
    }
    return this.#deps.queue.commit([{ type: 'put', key: entry.key, value: encodeRecord(record, { t: enqueuedAt }) }])
  }

  /** Stages the packet ids held back (all of them at close): see LazyPacketIds. */
  writeIds (): void {
    this.#lazyIds.flush()
    this.#lazyCopies.flush()
  }

  /**
   * A PUBREL for a QoS 2 message that reached the session another way than its queue (a shared subscription's
   * delivery): recorded like the PUBREL of a queued message, so it is resent after a reconnect or a restart until
   * PUBCOMP [MQTT-4.4.0-1]. Resolves once committed; a second call for the same id changes nothing.
   */
  addPubrel (client: ClientRef, messageId: number): Promise<void> {
    const queue = this.#queueFor(client.id)
    if (queue.byMessageId(messageId)?.cmd === 'pubrel') return this.#deps.queue.commit([])
    const now = Date.now()
    const record = pubrelRecord(messageId)
    const seq = this.#seq++
    const entry = queueEntry({
      seq, enc: queue.enc, key: outgoingKey(queue.enc, seq), cmd: 'pubrel', brokerId: undefined, brokerCounter: undefined, messageId,
      qos: 2, bytes: 0, enqueuedAt: now, sentOn: this.token(client), inflight: record
    })
    queue.add(entry)
    return this.#deps.queue.commit([{ type: 'put', key: entry.key, value: encodeRecord(record, { t: now }) }], () => {
      queue.remove(entry)
      this.#dropIfEmpty(queue)
    })
  }

  /**
   * PUBACK / PUBCOMP: removes the entry and returns the packet; an unknown id is answered from memory. A copy with
   * no packet id is one that will never be sent (authorizeForward withheld it from a connected session): its
   * entry, found by broker counter, goes too, or it would wait in the queue, counted against the queue's limits,
   * until the next connection.
   */
  clear (client: ClientRef, packet: unknown): Promise<Record<string, unknown> | undefined> {
    const p = typeof packet === 'object' && packet !== null ? packet as PacketLike : undefined
    const queue = this.queues.get(client.id)
    if (p === undefined || queue === undefined) return Promise.resolve(undefined)
    const unsent = p.messageId == null
    const entry = !unsent
      ? queue.byMessageId(p.messageId as number)
      : p.brokerId != null && p.brokerCounter !== undefined ? queue.byCounter(p.brokerId, p.brokerCounter) : undefined
    if (entry === undefined || (unsent && entry.messageId !== undefined)) return Promise.resolve(undefined)
    // a live copy's successful PUBACK: its publish waits for nothing more (any other removal waits for what it wrote)
    const waiter = entry.waiter
    const code = (p as { reasonCode?: number }).reasonCode
    const received = waiter !== undefined && p.cmd === 'puback' && (code === undefined || code < 0x80)
    if (received) entry.waiter = undefined
    else if (p.cmd === 'puback') this.#lateAcks.acknowledged(queue.clientId, entry.enqueuedAt)
    queue.remove(entry)
    if (received) waiter.settled()
    this.#dropIfEmpty(queue)
    // The record kept in flight goes out as it is, not copied: the entry left the queue, so nothing reads it again
    const original = unsent
      ? Promise.resolve(undefined)
      : entry.inflight !== undefined
      ? Promise.resolve(entry.inflight)
      : this.#deps.reader.read([entry.key]).then((values) => values[0] === undefined ? undefined : outputPacket(decodeRecord(values[0]).fields, false))
    // A live copy acknowledged before it was written leaves nothing to delete.
    if (entry.unwritten !== undefined) return original
    // Staged, not awaited: a crash before the next batch loses at most the delete, and the message (or PUBREL) is
    // then resent after the restart, which QoS 1 and 2 allow. Waiting would hold aedes' reading of this client's
    // next packets for a disk write per batch of acknowledgements.
    this.#deps.queue.stage([{ type: 'del', key: entry.key }], () => {
      this.#queueFor(queue.clientId).restore([entry])
    })
    return original
  }

  /**
   * Replays a snapshot of the queue in FIFO order, in chunks; expired messages are dropped instead of yielded.
   * `unsentOnly`: only the messages never sent yet (what arrived during an earlier pass).
   */
  batches (client: ClientRef, unsentOnly = false): AsyncGenerator<Array<Record<string, unknown>>> {
    const queue = this.queues.get(client.id)
    const entries = queue === undefined ? [] : queue.snapshot()
    const snapshot = unsentOnly ? entries.filter(entry => entry.messageId === undefined) : entries
    const context = { ...this.#deps, current: (id: string) => this.queues.get(id), settle: (q: ClientQueue) => { this.#dropIfEmpty(q) } }
    return replay(context, client.id, snapshot, this.token(client))
  }

  /** Removes the whole queue (clean session, purge); returns the deletes to commit. */
  purge (clientId: string): WriteOp[] {
    const queue = this.queues.get(clientId)
    if (queue === undefined) return []
    this.queues.delete(clientId)
    const ops: WriteOp[] = []
    for (const entry of queue.snapshot()) {
      queue.remove(entry)
      if (entry.unwritten === undefined) ops.push({ type: 'del', key: entry.key })
    }
    return ops
  }

  info (clientId: string): QueueInfo | undefined {
    return this.queues.get(clientId)?.info()
  }

  totals (): { messages: number, bytes: number } {
    return { messages: this.#totals.entries, bytes: this.#totals.bytes }
  }

  #queueFor (clientId: string): ClientQueue {
    let queue = this.queues.get(clientId)
    if (queue === undefined) {
      queue = new ClientQueue(clientId, encodeClientId(clientId), this.#totals)
      this.queues.set(clientId, queue)
    }
    return queue
  }

  #dropIfEmpty (queue: ClientQueue): void {
    if (queue.size === 0 && this.queues.get(queue.clientId) === queue) this.queues.delete(queue.clientId)
  }
}
