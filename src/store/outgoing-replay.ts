import type { Logger } from '../log/logger.js'
import { decodeRecord } from './codec.js'
import type { ClientQueue, QueueEntry } from './outgoing-index.js'
import { droppedPacket } from './packets.js'
import { countedDown, isExpired, messageExpiryMs, type DropReporter } from './queue-limits.js'
import type { RangeReader } from './reader.js'
import type { StoreLimits } from './types.js'
import type { WriteQueue } from './write-queue.js'

/**
 * Entries of the queue handed out together. The replay writes a whole chunk to the socket in one turn of the event loop,
 * so this is also the burst a reconnecting client receives before the broker looks at its socket's backpressure.
 */
const CHUNK = 256

export interface ReplayContext {
  queue: Pick<WriteQueue, 'commit'>
  reader: { scan: (gte: string, lte: string) => RangeReader }
  limits: StoreLimits
  drops: DropReporter
  logger: Logger
  /** The client's queue as it is now (entries may have been acknowledged since the snapshot). */
  current: (clientId: string) => ClientQueue | undefined
  /** Forgets a queue that became empty. */
  settle: (queue: ClientQueue) => void
}

/** A fresh object per caller: aedes wraps and mutates what it gets back. */
export function outputPacket (fields: Record<string, unknown>, dup: boolean): Record<string, unknown> {
  const packet = { ...fields }
  if (dup) packet.dup = true
  return packet
}

/**
 * Replays a snapshot of a queue in FIFO order, in chunks of packets read together. Entries acknowledged
 * meanwhile are skipped; waiting entries older than messageExpiryMs, or than their own MQTT 5 Message Expiry
 * Interval, are deleted and reported instead of yielded, and the others carry the interval left ([MQTT-3.3.2-6]);
 * a publish that was sent on another connection (another client object, or before a restart) comes out with DUP
 * set ([MQTT-3.3.1-1]).
 */
export async function * replay (ctx: ReplayContext, clientId: string, snapshot: QueueEntry[], token: number): AsyncGenerator<Array<Record<string, unknown>>> {
  if (snapshot.length === 0) return
  // The snapshot's keys in one range, read in key (= seq, = FIFO) order; rows of entries not in it are passed over
  const scan = ctx.reader.scan(snapshot[0].key, snapshot[snapshot.length - 1].key)
  // An entry in flight is replayed from the record it was sent as, kept in memory (below): only the others are read.
  const readChunk = (start: number): { chunk: QueueEntry[], values: Promise<Map<QueueEntry, Buffer | undefined>> } => {
    const chunk = snapshot.slice(start, start + CHUNK).filter((entry) => !entry.removed)
    const stored = chunk.filter((entry) => entry.inflight === undefined)
    const values = stored.length === 0
      ? Promise.resolve(new Map<QueueEntry, Buffer | undefined>())
      : scan.values(stored.map((entry) => entry.key)).then((found) => new Map(stored.map((entry, i) => [entry, found[i]])))
    // awaited below; this only keeps a read-ahead the caller abandoned from being an unhandled rejection
    values.catch(() => undefined)
    return { chunk, values }
  }
  try {
    yield * chunks(ctx, clientId, snapshot, token, readChunk)
  } finally {
    await scan.close()
  }
}

async function * chunks (ctx: ReplayContext, clientId: string, snapshot: QueueEntry[], token: number,
  readChunk: (start: number) => { chunk: QueueEntry[], values: Promise<Map<QueueEntry, Buffer | undefined>> }): AsyncGenerator<Array<Record<string, unknown>>> {
  const expiryMs = ctx.limits.messageExpiryMs
  let next = readChunk(0)
  for (let start = 0; start < snapshot.length; start += CHUNK) {
    const { chunk, values: reading } = next
    // the next chunk is read from disk while this one is being sent
    if (start + CHUNK < snapshot.length) next = readChunk(start + CHUNK)
    if (chunk.length === 0) continue
    const values = await reading
    const now = Date.now()
    const expired: Array<[ClientQueue, QueueEntry]> = []
    const ready: Array<[QueueEntry, Record<string, unknown>]> = []
    for (let i = 0; i < chunk.length; i++) {
      const entry = chunk[i]
      if (entry.removed) continue
      // An entry in flight replays the record it was sent as (packet id, or PUBREL), kept in memory: its write
      // may still be queued, and queued updates of outgoing entries are not visible to reads (layout.isReadBack).
      let fields = entry.inflight
      if (fields === undefined) {
        const value = values.get(entry)
        if (value === undefined) continue
        try {
          fields = decodeRecord(value).fields
        } catch (err) {
          ctx.logger.error({ err, clientId, key: entry.key }, 'undecodable queued message skipped')
          continue
        }
      }
      const queue = ctx.current(clientId)
      const ownExpiryMs = messageExpiryMs(fields)
      if (queue !== undefined && (isExpired(entry, now, expiryMs) || (ownExpiryMs !== undefined && isExpired(entry, now, ownExpiryMs)))) {
        queue.remove(entry)
        expired.push([queue, entry])
        ctx.drops.report({ reason: 'expired', clientId, packet: droppedPacket(fields) })
        continue
      }
      ready.push([entry, ownExpiryMs === undefined ? fields : countedDown(fields, entry.enqueuedAt, now)])
    }
    if (expired.length > 0) {
      for (const [queue] of expired) ctx.settle(queue)
      // a failed delete is logged by the queue; the entry is gone from memory and expires again after a restart
      ctx.queue.commit(expired.map(([, entry]) => ({ type: 'del', key: entry.key }))).catch(() => undefined)
    }
    const packets: Array<Record<string, unknown>> = []
    for (const [entry, fields] of ready) {
      if (entry.removed) continue
      const dup = entry.cmd === 'publish' && entry.messageId !== undefined && entry.sentOn !== token
      packets.push(outputPacket(fields, dup))
    }
    if (packets.length > 0) yield packets
  }
}
