import type { Logger } from '../log/logger.js'
import { decodeRecord } from './codec.js'
import type { ClientQueue } from './outgoing-index.js'
import type { QueueEntry } from './queue-entry.js'
import { droppedPacket } from './packets.js'
import { countedDown, isExpired, messageExpiryMs, type DropReporter } from './queue-limits.js'
import type { ValueReader } from './reader.js'
import type { StoreLimits } from './types.js'
import type { WriteQueue } from './write-queue.js'

/**
 * Entries of the queue handed out together, at most: the replay writes a whole chunk to the socket in one turn of the
 * event loop, so this is also the burst a reconnecting client receives before the broker looks at its socket's
 * backpressure. 1,024 small messages took about a fifth less CPU per message to drain than 256 (fewer socket
 * writes, fewer and larger batches of acknowledgements and of their deletes).
 */
const CHUNK = 1024
/**
 * The first chunk's entries, at most; each next chunk may hold four times as many, up to CHUNK. Nothing of a chunk
 * leaves before all of it is read, decoded and encoded, so a first chunk of CHUNK kept a reconnecting client waiting
 * for that much work (about 5 ms warm, 30 ms right after a start) before its first message, and the client's
 * acknowledgements only began after it. The next chunk is read while this one goes out, so a small first one costs
 * no reads of its own.
 */
const FIRST_CHUNK = 64
/** And payload bytes, at most (a chunk has one entry at least): large messages come in smaller chunks. */
const CHUNK_BYTES = 1024 * 1024

/** Where the chunk that begins at `start` ends: `entries`, or fewer whose payloads pass CHUNK_BYTES. */
function chunkEnd (snapshot: readonly QueueEntry[], start: number, entries: number): number {
  const last = Math.min(snapshot.length, start + entries)
  let bytes = snapshot[start].bytes
  let end = start + 1
  while (end < last && bytes + snapshot[end].bytes <= CHUNK_BYTES) bytes += snapshot[end++].bytes
  return end
}

export interface ReplayContext {
  queue: Pick<WriteQueue, 'commit'>
  reader: Pick<ValueReader, 'readAscending'>
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
  // An entry in flight is replayed from the record it was sent as, kept in memory (below): only the others are
  // read, in key (= seq, = FIFO) order. The values come in the chunk's order, undefined for an entry in flight.
  let entries = FIRST_CHUNK
  const readChunk = (start: number): Chunk => {
    const end = chunkEnd(snapshot, start, entries)
    entries = Math.min(CHUNK, entries * 4)
    const chunk = snapshot.slice(start, end).filter((entry) => !entry.removed)
    const keys: string[] = []
    // a live enqueue's entry not sent yet is not written yet either: its value is encoded from memory
    let unwritten = 0
    for (const entry of chunk) {
      if (entry.inflight !== undefined) continue
      if (entry.unwritten === undefined) keys.push(entry.key)
      else unwritten++
    }
    const values = keys.length === 0 && unwritten === 0
      ? Promise.resolve(new Array<Buffer | undefined>(chunk.length))
      : (keys.length === 0 ? Promise.resolve([]) : ctx.reader.readAscending(keys)).then((found) => {
          if (found.length === chunk.length) return found
          const aligned = new Array<Buffer | undefined>(chunk.length)
          for (let i = 0, j = 0; i < chunk.length; i++) {
            const entry = chunk[i]
            if (entry.inflight !== undefined) continue
            aligned[i] = entry.unwritten === undefined ? found[j++] : entry.unwritten.get(entry.qos, false)
          }
          return aligned
        })
    // awaited below; this only keeps a read-ahead the caller abandoned from being an unhandled rejection
    values.catch(() => undefined)
    return { chunk, values, end }
  }
  yield * chunks(ctx, clientId, snapshot, token, readChunk)
}

interface Chunk {
  chunk: QueueEntry[]
  values: Promise<Array<Buffer | undefined>>
  /** Where in the snapshot the next chunk begins. */
  end: number
}

async function * chunks (ctx: ReplayContext, clientId: string, snapshot: QueueEntry[], token: number, readChunk: (start: number) => Chunk): AsyncGenerator<Array<Record<string, unknown>>> {
  const expiryMs = ctx.limits.messageExpiryMs
  let next: Chunk | undefined = readChunk(0)
  while (next !== undefined) {
    const { chunk, values: reading, end }: Chunk = next
    // the next chunk is read from disk while this one is being sent
    next = end < snapshot.length ? readChunk(end) : undefined
    if (chunk.length === 0) continue
    const values = await reading
    const now = Date.now()
    const expired: Array<[ClientQueue, QueueEntry]> = []
    // the entries that go out and their packets, side by side
    const ready: QueueEntry[] = []
    const packets: Array<Record<string, unknown>> = []
    for (let i = 0; i < chunk.length; i++) {
      const entry = chunk[i]
      if (entry.removed) continue
      // An entry in flight replays the record it was sent as (packet id, or PUBREL), kept in memory: its write
      // may still be queued, and queued updates of outgoing entries are not visible to reads (layout.isReadBack).
      // That record is the entry's own, so what goes out is a copy; a record read from disk is decoded afresh.
      let fields = entry.inflight
      let own = false
      if (fields === undefined) {
        const value = values[i]
        if (value === undefined) continue
        try {
          // the entry's broker id is the record's, one string every entry from that broker shares
          fields = decodeRecord(value, entry.brokerId).fields
          own = true
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
      const dup = entry.cmd === 'publish' && entry.messageId !== undefined && entry.sentOn !== token
      if (ownExpiryMs !== undefined) {
        const packet = countedDown(fields, entry.enqueuedAt, now)
        if (dup) packet.dup = true
        packets.push(packet)
      } else if (own) {
        if (dup) fields.dup = true
        packets.push(fields)
      } else {
        packets.push(outputPacket(fields, dup))
      }
      ready.push(entry)
    }
    if (expired.length > 0) {
      for (const [queue] of expired) ctx.settle(queue)
      // a failed delete is logged by the queue; the entry is gone from memory and expires again after a restart
      ctx.queue.commit(expired.map(([, entry]) => ({ type: 'del', key: entry.key }))).catch(() => undefined)
      // an expiry's drop report may run code that acknowledges or removes entries of this chunk
      let kept = 0
      for (let i = 0; i < ready.length; i++) if (!ready[i].removed) packets[kept++] = packets[i]
      packets.length = kept
    }
    if (packets.length > 0) yield packets
  }
}
