import { encodeRecord } from './codec.js'
import type { QueueEntry } from './outgoing-index.js'
import { LAZY_PUT_DELAY_MS, type WriteOp, type WriteQueue } from './write-queue.js'

/**
 * The packet ids of QoS 1 copies sent, written late: the PUBACK nearly always comes back within LAZY_PUT_DELAY_MS,
 * and then nothing is encoded nor written. Kept apart from the Outbox because it is a timer-driven write path of its
 * own, with its own crash reasoning (losing an id only means a resend under a new one, a QoS 1 duplicate).
 */
export class LazyPacketIds {
  readonly #queue: Pick<WriteQueue, 'stage' | 'closed'>
  /**
   * QoS 1 copies sent whose packet id is not written yet, flat: [entry, record sent, entry, record sent, ...]. Held
   * here rather than as a put in the write queue, where each was an object, a closure and an entry of a map by key,
   * and every later write looked its key up there.
   */
  #unwritten: Array<QueueEntry | Record<string, unknown>> = []
  #timer: NodeJS.Timeout | undefined

  constructor (queue: Pick<WriteQueue, 'stage' | 'closed'>) {
    this.#queue = queue
  }

  /** Holds the record an entry was sent with, to be written LAZY_PUT_DELAY_MS from now unless acknowledged first. */
  hold (entry: QueueEntry, record: Record<string, unknown>): void {
    this.#unwritten.push(entry, record)
    this.#timer ??= setTimeout(this.flush, LAZY_PUT_DELAY_MS).unref()
  }

  /**
   * Stages the packet ids of the QoS 1 copies sent LAZY_PUT_DELAY_MS ago or more (and, at close, all of them) whose
   * entry is still queued with the record it was sent with: not acknowledged, nor sent again under another id since.
   */
  readonly flush = (): void => {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const held = this.#unwritten
    if (held.length === 0) return
    this.#unwritten = []
    const ops: WriteOp[] = []
    for (let i = 0; i < held.length; i += 2) {
      const entry = held[i] as QueueEntry
      const record = held[i + 1] as Record<string, unknown>
      if (entry.removed || entry.inflight !== record) continue
      ops.push({ type: 'put', key: entry.key, value: encodeRecord(record, { t: entry.enqueuedAt }) })
    }
    if (ops.length > 0 && !this.#queue.closed) this.#queue.stage(ops)
  }
}
