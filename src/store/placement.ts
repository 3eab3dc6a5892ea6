import { CopyEncodings } from './codec.js'
import { targetsByClient, type EnqueueTarget } from './enqueue-targets.js'
import type { ClientQueue, QueueTotals } from './outgoing-index.js'
import { queueEntry, type EntryWaiter, type QueueEntry } from './queue-entry.js'
import { droppedPacket, payloadBytes, payloadOf } from './packets.js'
import type { Logger } from '../log/logger.js'
import { admit, reportEvicted, type DropReporter } from './queue-limits.js'
import type { ValueReader } from './reader.js'
import type { WriteOp, WriteQueue } from './write-queue.js'
import type { DropReason, PacketLike, StoreLimits } from './types.js'

/**
 * What an enqueue added: each queue with its entry (flat: [queue, entry, ...]), each copy's RETAIN, the evicted, and
 * whether a copy was refused (dead-lettered). The copies' values are encoded only when written (`copies`).
 */
export interface Placement {
  added: Array<ClientQueue | QueueEntry>
  /** Made only for a retained message: a copy of any other has RETAIN 0. */
  retained: boolean[] | undefined
  /** Made at the first eviction. */
  evicted: Array<[ClientQueue, QueueEntry, DropReason]> | undefined
  dropped: boolean
  /** The publishes of evicted live copies not written yet: told once the dead letters are written. */
  evictedWaiters?: EntryWaiter[]
  copies: CopyEncodings
}

/** The Outbox's state a placement works on. */
export interface PlacingContext {
  deps: { queue: WriteQueue, reader: ValueReader, limits: StoreLimits, drops: DropReporter, logger: Logger }
  totals: QueueTotals
  queueFor: (clientId: string) => ClientQueue
  nextSeq: () => number
  /** Drops a queue from the Outbox's map (it is empty). */
  forget: (clientId: string) => void
  /** Drops a queue from the Outbox's map if it is empty. */
  settle: (queue: ClientQueue) => void
  /** Keeps track of an eviction's dead letters until written (Outbox#idle). */
  track: (work: Promise<void>) => void
}

/**
 * Adds a message's entries to the queues of its targets: one entry per distinct client, whatever number of its filters
 * matched, at the highest QoS those filters granted (capped by the publish QoS), each admitted by the queue limits
 * (evicting older waiting entries, or refused and dead-lettered). Writes nothing: the caller does (Outbox). Undefined
 * when no target can take a copy at all.
 */
export function place (ctx: PlacingContext, targets: readonly EnqueueTarget[], packet: PacketLike): Placement | undefined {
  const limits = ctx.deps.limits
  const packetQos = packet.qos ?? 0
  if (targets.length === 0 || (packetQos === 0 && !limits.queueQos0)) return undefined
  const perClient = targetsByClient(targets)
  const now = Date.now()
  const bytes = payloadBytes(payloadOf(packet))
  const placed: Placement = { added: [], retained: packet.retain === true ? [] : undefined, evicted: undefined, dropped: false, copies: new CopyEncodings(packet, now) }
  for (const { clientId, cap, rap } of perClient) {
    const qos = Math.min(packetQos, cap)
    if (qos === 0 && !limits.queueQos0) continue
    const queue = ctx.queueFor(clientId)
    if (packet.brokerId != null && packet.brokerCounter !== undefined &&
      queue.byCounter(packet.brokerId, packet.brokerCounter) !== undefined) continue
    const admission = admit(queue, bytes, limits, ctx.totals)
    if (!admission.accept) {
      ctx.deps.drops.report({ reason: admission.reason, clientId, packet: droppedPacket({ ...packet, qos }) })
      placed.dropped = true
      if (queue.size === 0) ctx.forget(clientId)
      continue
    }
    for (const entry of admission.evict) {
      // a live copy whose own enqueue has not settled yet: its publish waits for this dead letter instead (Outbox)
      const waiter = entry.waiter
      if (waiter !== undefined) {
        entry.waiter = undefined
        ;(placed.evictedWaiters ??= []).push(waiter)
      }
      queue.remove(entry)
      ;(placed.evicted ??= []).push([queue, entry, admission.reason])
    }
    const seq = ctx.nextSeq()
    const entry = queueEntry({
      seq, enc: queue.enc, cmd: 'publish', brokerId: packet.brokerId ?? undefined, brokerCounter: packet.brokerCounter, qos, bytes, enqueuedAt: now
    })
    queue.add(entry)
    placed.added.push(queue, entry)
    // [MQTT-3.3.1-9]: a copy forwarded to an established subscription has RETAIN 0 unless retain-as-published
    placed.retained?.push(rap)
  }
  return placed
}

const NO_EVICTIONS: ReadonlyArray<[ClientQueue, QueueEntry, DropReason]> = Object.freeze([])

/**
 * Commits the entries placed (`unsentOnly`: those a live delivery did not send at once, LiveCopies); undefined when
 * that is nothing. The evicted stay on disk until their dead letters are written, in one batch with their deletes: a
 * crash in between leaves them queued (over the limit until the next enqueue), never gone without a dead letter.
 * A failed batch restores them instead.
 */
export function writePlaced (ctx: PlacingContext, placed: Placement, unsentOnly: boolean): Promise<void> | undefined {
  const ops: WriteOp[] = []
  // each queue with the entry written to it, flat: [queue, entry, queue, entry, ...]
  const written: Array<ClientQueue | QueueEntry> = []
  const added = placed.added
  const evicted = placed.evicted ?? NO_EVICTIONS
  for (let i = 0; i < added.length; i += 2) {
    const entry = added[i + 1] as QueueEntry
    // written already (acknowledged, or written by its hold before the delivery had ended), or held for its PUBACK
    if (unsentOnly && (entry.removed || entry.unwritten === undefined || entry.waiter !== undefined)) continue
    entry.unwritten = undefined
    written.push(added[i], entry)
    ops.push({ type: 'put', key: entry.key, value: placed.copies.get(entry.qos, placed.retained?.[i >> 1] ?? false) })
  }
  // nothing to write, and no dead letter written (dropped, evicted) whose commit the PUBACK must wait for
  if (unsentOnly && ops.length === 0 && evicted.length === 0 && !placed.dropped) return undefined
  const done = ctx.deps.queue.commit(ops, () => {
    for (let i = 0; i < written.length; i += 2) (written[i] as ClientQueue).remove(written[i + 1] as QueueEntry)
    for (const [queue, entry] of evicted) ctx.queueFor(queue.clientId).restore([entry])
    for (let i = 0; i < written.length; i += 2) ctx.settle(written[i] as ClientQueue)
  })
  if (placed.evicted !== undefined) {
    const waiters = placed.evictedWaiters
    const reported = placed.evicted
    ctx.track(done.then(async () => await reportEvicted(ctx.deps, reported), (err: Error) => err).then((err) => {
      if (waiters !== undefined) for (const waiter of waiters) waiter.settled(err)
    }))
  }
  return done
}
