import { encodeRecord } from './codec.js'
import type { QueueEntry } from './queue-entry.js'
import { LAZY_PUT_DELAY_MS, type WriteOp, type WriteQueue } from './write-queue.js'

/**
 * The records of QoS 1 copies sent, written late: the PUBACK nearly always comes back within the delay, and then
 * nothing is encoded nor written. Two kinds go through it: the packet id of a queued message already on disk (a
 * crash before it is written loses only the id: the message is resent under a new one, a QoS 1 duplicate), and a live
 * copy never written at all (LiveCopies: its publisher's PUBACK waits until it is acknowledged or written, so a crash
 * before either leaves the message unacknowledged, for its publisher to send again). Kept apart from the Outbox
 * because it is a timer-driven write path of its own.
 */
export class LazyPacketIds {
  readonly #queue: Pick<WriteQueue, 'stage' | 'commit' | 'closed'>
  readonly #delayMs: number
  /**
   * QoS 1 copies sent whose record is not written yet, flat: [entry, record sent, entry, record sent, ...], in two
   * generations: those held before the last tick of the timer (`#older`, written at the next one unless acknowledged
   * by then) and those held since, so that each waits at least the delay (and at most twice it). Held here rather than
   * as a put in the write queue, where each was an object, a closure and an entry of a map by key, and every later
   * write looked its key up there.
   */
  #older: Array<QueueEntry | Record<string, unknown>> = []
  #newer: Array<QueueEntry | Record<string, unknown>> = []
  #timer: NodeJS.Timeout | undefined

  constructor (queue: Pick<WriteQueue, 'stage' | 'commit' | 'closed'>, delayMs = LAZY_PUT_DELAY_MS) {
    this.#queue = queue
    this.#delayMs = delayMs
  }

  /** Holds the record an entry was sent with, to be written after the delay unless acknowledged first. */
  hold (entry: QueueEntry, record: Record<string, unknown>): void {
    this.#newer.push(entry, record)
    this.#timer ??= setTimeout(this.#tick, this.#delayMs).unref()
  }

  readonly #tick = (): void => {
    this.#timer = undefined
    const due = this.#older
    this.#older = this.#newer
    this.#newer = []
    this.#write(due)
    if (this.#older.length > 0) this.#timer = setTimeout(this.#tick, this.#delayMs).unref()
  }

  /** Writes every record held, however young (at close). */
  readonly flush = (): void => {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const held = this.#older.concat(this.#newer)
    this.#older = []
    this.#newer = []
    this.#write(held)
  }

  /**
   * Writes the records held whose entry is still queued with the record it was sent with: not acknowledged, nor sent
   * again under another id since (that send holds its own record). A publish waiting for an entry is told once the
   * batch holding it is committed, or failed.
   */
  #write (held: Array<QueueEntry | Record<string, unknown>>): void {
    if (held.length === 0) return
    const ops: WriteOp[] = []
    let waiting: QueueEntry[] | undefined
    for (let i = 0; i < held.length; i += 2) {
      const entry = held[i] as QueueEntry
      const record = held[i + 1] as Record<string, unknown>
      if (entry.removed || entry.inflight !== record) continue
      entry.unwritten = undefined
      ops.push({ type: 'put', key: entry.key, value: encodeRecord(record, { t: entry.enqueuedAt }) })
      if (entry.waiter !== undefined) {
        entry.waiter.late?.(entry)
        ;(waiting ??= []).push(entry)
      }
    }
    if (waiting !== undefined) {
      const settle = (err?: Error): void => {
        for (const entry of waiting) {
          const waiter = entry.waiter
          entry.waiter = undefined
          waiter?.settled(err)
        }
      }
      // a closed queue refuses the commit: the publish then fails, unacknowledged
      this.#queue.commit(ops).then(() => { settle() }, settle)
      return
    }
    if (ops.length > 0 && !this.#queue.closed) this.#queue.stage(ops)
  }
}
