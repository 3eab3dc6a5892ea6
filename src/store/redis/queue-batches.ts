import { CLEAR_BATCH, ENQUEUE_BATCH } from './queue-scripts.js'
import { ScriptBatch, type BatchItem } from './script-batch.js'
import { defineScript } from './scripts.js'
import type { RedisDeps } from './write-order.js'

/** An enqueue not written: its subscriptions were matched at a generation Redis has moved on from (or one before it's was). */
export const STALE = 'stale'

export interface Enqueued {
  /** Per client: the new seq, 0 (held already), -1 or -2 (refused by the session's or the broker-wide limits). */
  seqs: number[]
  /** (client index, seq, packet, limit) quadruples that dropOldest evicted. */
  evicted: Array<number | Buffer>
  /** Entries and bytes of every queue after the call; empty without broker-wide bounds. */
  totals: number[]
  /** The live nodes holding a session the message was queued for (their replay claimed it: outbox.ts). */
  holders: string[]
}

/**
 * The enqueues of one turn, in one ENQUEUE_BATCH call (queue-scripts.ts). `alivePrefix()`: the prefix of the cluster's
 * node liveness keys once this node is a cluster node ('' before: no holders are looked for).
 */
export function enqueueBatch (deps: RedisDeps, alivePrefix: () => string): ScriptBatch<Enqueued | typeof STALE> {
  const { redis, limits, keys } = deps
  const script = defineScript(redis, 'culexEnqueueBatch', ENQUEUE_BATCH)
  const head = [limits.maxQueuedMessages, limits.maxQueuedBytes, limits.overflowPolicy === 'dropNewest' ? 'newest' : 'oldest', limits.maxTotalQueuedMessages, limits.maxTotalQueuedBytes]
  return new ScriptBatch(deps.order, async (items) => {
    const [written, evicted, totals, holders] = await script(...joined([keys.subsGen, keys.queueTotals], [...head, alivePrefix()], items)) as [number[][], Array<Array<number | Buffer>>, number[], Buffer[][]]
    return items.map((_, i) => i < written.length ? { seqs: written[i], evicted: evicted[i], totals, holders: holders[i].map(String) } : STALE)
  })
}

/** The acknowledgements' deletes of one turn, in one CLEAR_BATCH call: per entry its seq and packet, or undefined. */
export function clearBatch (deps: RedisDeps): ScriptBatch<[number, Buffer] | undefined> {
  const script = defineScript(deps.redis, 'culexClearBatch', CLEAR_BATCH)
  return new ScriptBatch(deps.order, async (items) => {
    const reply = await script(...joined([deps.keys.queueTotals], [], items)) as Array<number | Buffer>
    return items.map((_, i) => reply[i * 2] === 0 ? undefined : [reply[i * 2] as number, reply[i * 2 + 1] as Buffer])
  })
}

function joined (keys: string[], args: Array<string | Buffer | number>, items: BatchItem[]): [string[], Array<string | Buffer | number>] {
  for (const item of items) {
    for (const key of item.keys) keys.push(key)
    for (const arg of item.args) args.push(arg)
  }
  return [keys, args]
}
