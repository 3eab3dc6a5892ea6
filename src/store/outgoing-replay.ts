import type { Logger } from '../log/logger.js'
import { decodeRecord } from './codec.js'
import type { ClientQueue, QueueEntry } from './outgoing-index.js'
import { droppedPacket } from './packets.js'
import { isExpired, type DropReporter } from './queue-limits.js'
import type { ValueReader } from './reader.js'
import type { StoreLimits } from './types.js'
import type { WriteQueue } from './write-queue.js'

const CHUNK = 64

export interface ReplayContext {
  queue: WriteQueue
  reader: ValueReader
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
 * Replays a snapshot of a queue in FIFO order, reading values in chunks. Entries acknowledged meanwhile are
 * skipped; waiting entries older than messageExpiryMs are deleted and reported instead of yielded; a publish
 * that was sent on another connection (another client object, or before a restart) comes out with DUP set
 * ([MQTT-3.3.1-1]).
 */
export async function * replay (ctx: ReplayContext, clientId: string, snapshot: QueueEntry[], token: number): AsyncGenerator<Record<string, unknown>> {
  const expiryMs = ctx.limits.messageExpiryMs
  for (let start = 0; start < snapshot.length; start += CHUNK) {
    const chunk = snapshot.slice(start, start + CHUNK).filter((entry) => !entry.removed)
    if (chunk.length === 0) continue
    const values = await ctx.reader.read(chunk.map((entry) => entry.key))
    const now = Date.now()
    const expired: Array<[ClientQueue, QueueEntry]> = []
    const ready: Array<[QueueEntry, Record<string, unknown>]> = []
    for (let i = 0; i < chunk.length; i++) {
      const entry = chunk[i]
      const value = values[i]
      if (entry.removed || value === undefined) continue
      let fields: Record<string, unknown>
      try {
        fields = decodeRecord(value).fields
      } catch (err) {
        ctx.logger.error({ err, clientId, key: entry.key }, 'undecodable queued message skipped')
        continue
      }
      const queue = ctx.current(clientId)
      if (queue !== undefined && isExpired(entry, now, expiryMs)) {
        queue.remove(entry)
        expired.push([queue, entry])
        ctx.drops.report({ reason: 'expired', clientId, packet: droppedPacket(fields) })
        continue
      }
      ready.push([entry, fields])
    }
    if (expired.length > 0) {
      for (const [queue] of expired) ctx.settle(queue)
      // a failed delete is logged by the queue; the entry is gone from memory and expires again after a restart
      ctx.queue.commit(expired.map(([, entry]) => ({ type: 'del', key: entry.key }))).catch(() => undefined)
    }
    for (const [entry, fields] of ready) {
      if (entry.removed) continue
      const dup = entry.cmd === 'publish' && entry.messageId !== undefined && entry.sentOn !== token
      yield outputPacket(fields, dup)
    }
  }
}
