import type { Redis } from 'ioredis'
import type { EnqueueTarget } from '../enqueue-targets.js'
import type { ClientQueue } from '../outgoing-index.js'
import { queueEntry, type QueueEntry } from '../queue-entry.js'

/** How many times an enqueue is matched again after another node changed the subscriptions under it. */
export const MAX_REMATCHES = 5

/**
 * The subscription generation a list of targets was matched at, and how to match again: the enqueue script writes
 * nothing if the generation in Redis has moved on (another node subscribed or unsubscribed meanwhile).
 */
export interface MatchCheck {
  generation: number
  rematch: () => Promise<{ subs: readonly EnqueueTarget[], generation: number }>
  /**
   * The targets are sessions.queueQos0's QoS 0 copies for offline sessions, queued beside aedes' enqueue of the
   * message's other copies: none for a session whose client is connected to a live node (queue-scripts.ts, -3).
   */
  partial?: boolean
}

export function noSuchPacket (): Error {
  return new Error('no such packet')
}

export function counterKey (brokerId: string | null | undefined, brokerCounter: number | undefined): string {
  return brokerId == null || brokerCounter === undefined ? '' : `${brokerId}:${brokerCounter}`
}

/** A change of a session's mirror, by seq, so that it applies to any mirror of the session, idempotently. */
export type Change = (queue: ClientQueue) => void

export function addEntry (fields: Parameters<typeof queueEntry>[0]): Change {
  return (queue) => { if (!queue.has(fields.seq)) queue.add(queueEntry(fields)) }
}

export function removeSeq (seq: number): Change {
  return (queue) => {
    const entry = queue.get(seq)
    if (entry !== undefined) queue.remove(entry)
  }
}

/** An entry from its state in the queue index (scripts.ts). */
export function parseEntry (seq: number, state: string): QueueEntry {
  return queueEntry(entryFields(seq, state))
}

export function entryFields (seq: number, state: string): Parameters<typeof queueEntry>[0] {
  const [qos, kind, mid, bytes, t, ...rest] = state.split('|')
  const bk = rest.join('|')
  const at = bk.lastIndexOf(':')
  return {
    seq,
    // a Redis entry is found by its seq in the session's hash: no LevelDB key to build from an encoded client id
    enc: '',
    key: String(seq),
    cmd: kind === 'r' ? 'pubrel' : 'publish',
    brokerId: at < 0 ? undefined : bk.slice(0, at),
    brokerCounter: at < 0 ? undefined : Number(bk.slice(at + 1)),
    messageId: mid === '' ? undefined : Number(mid),
    qos: Number(qos),
    bytes: Number(bytes),
    enqueuedAt: Number(t)
  }
}

/** A session's queue entries as Redis has them, in FIFO order (KEYS q and qx of keys.ts). */
export async function readQueue (redis: Redis, q: string, qx: string): Promise<QueueEntry[]> {
  return (await readQueueUpTo(redis, q, qx)).entries
}

/**
 * The same, and the last seq the queue had given out when it was read (read first, so every entry up to it that is
 * not among those read had been deleted already).
 */
export async function readQueueUpTo (redis: Redis, q: string, qx: string): Promise<{ entries: QueueEntry[], upTo: number }> {
  const [n, seqs] = await Promise.all([redis.hget(qx, 'n'), redis.zrange(q, 0, -1)])
  return { entries: await entriesOf(redis, qx, seqs), upTo: Number(n ?? 0) }
}

async function entriesOf (redis: Redis, qx: string, seqs: string[]): Promise<QueueEntry[]> {
  if (seqs.length === 0) return []
  const states = await redis.hmget(qx, ...seqs.map(seq => `e:${seq}`))
  const entries: QueueEntry[] = []
  seqs.forEach((seq, i) => {
    const state = states[i]
    if (state !== null) entries.push(parseEntry(Number(seq), state))
  })
  return entries
}

/** What sessionInfo reports of a queue. */
export function queueInfo (entries: QueueEntry[]): { queued: number, inflight: number, queuedBytes: number, oldestQueuedAt?: number } | undefined {
  if (entries.length === 0) return undefined
  let inflight = 0
  let queuedBytes = 0
  let oldest = Infinity
  for (const entry of entries) {
    if (entry.messageId !== undefined) inflight++
    queuedBytes += entry.bytes
    oldest = Math.min(oldest, entry.enqueuedAt)
  }
  return { queued: entries.length, inflight, queuedBytes, oldestQueuedAt: oldest }
}
