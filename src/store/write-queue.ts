import { CulexError } from '../errors.js'
import type { Logger } from '../log/logger.js'
import { writeBatch, type BatchOp, type ChainedBatchDb, type WriteOp } from './batch-write.js'
import type { LogReopener } from './log-reopen.js'

export type { WriteOp } from './batch-write.js'

/** What the dead-letter log and the group queues need of a write queue (LevelDB's WriteQueue, or Redis' RedisKv). */
export type KeyValueWriter = Pick<WriteQueue, 'commit' | 'closed'>

/**
 * Runs a write (or a per-message read) and hands back the write queue's own promise: wrapped in an async function
 * instead, it would settle a few microtask hops later than a write called after it that is not, and writes would no
 * longer resolve in call order (it also costs two more promises per message). A synchronous throw still becomes a
 * rejection, as aedes expects.
 */
export function inCallOrder<T> (run: () => Promise<T>): Promise<T> {
  try {
    return run()
  } catch (err) {
    return Promise.reject(err)
  }
}

/** The one promise every commit into a batch gets: its handlers run in the order they were attached (call order). */
interface Outcome {
  promise: Promise<void>
  resolve: () => void
  reject: (err: Error) => void
}

function outcome (): Outcome {
  let resolve!: () => void
  let reject!: (err: Error) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

interface Batch {
  ops: BatchOp[]
  /** Ops actually written: ops.length less the cancelled puts. */
  count: number
  /** Index in ops of the last put of each key, for cancelling it when a del of the key follows. */
  puts: Map<string, number>
  /** Created by the first commit into the batch. */
  outcome: Outcome | undefined
  undos: Array<() => void>
}

interface Pending {
  value: Buffer | null
  batch: Batch
}

/**
 * How long the packet id of a QoS 1 copy sent waits before it is written (LazyPacketIds): the PUBACK that deletes
 * the entry usually comes back within this window, and the id is then never encoded nor written.
 */
export const LAZY_PUT_DELAY_MS = 100

export interface WriteQueueOptions {
  db: ChainedBatchDb
  dir: string
  sync: boolean
  logger: Logger
  /** Retires the log after a failed batch, before the next one is written. */
  reopener: LogReopener
  /** Writes whose uncommitted values `peek` must return (keys read back from disk at run time). */
  tracked: (key: string, op: 'put' | 'del') => boolean
}

/**
 * The single FIFO group-commit queue every store write goes through.
 *
 * Ops that arrive while a batch is being written (or in the same tick) are collected into the next batch, so
 * there is at most one `db.batch` in flight. Promises resolve in call order after their batch is committed (the
 * commits of one batch share one promise, whose handlers run in the order they were attached):
 * a publish written before it is delivered (QoS 2, retained, any on the Redis store; a live QoS 1 one is delivered
 * first, live-copies.ts) is emitted only once its enqueue resolves, so completion order is delivery order (with
 * aedes' per-client dedupe, which drops a publish that overtakes a newer one, aedes.md §7-1, it was what kept
 * deliveries from being lost).
 */
export class WriteQueue {
  readonly #db: ChainedBatchDb
  readonly #dir: string
  readonly #sync: boolean
  readonly #log: Logger
  readonly #tracked: (key: string, op: 'put' | 'del') => boolean
  readonly #reopener: LogReopener
  readonly #overlay = new Map<string, Pending>()
  #next: Batch | undefined
  #writing: Batch | undefined
  #scheduled = false
  /** A reopen is under way: no batch is written until it settles. */
  #held = false
  #closed = false
  #startedAt = 0
  /** Told the size and duration of every committed batch (for metrics). */
  observer: ((ops: number, ms: number) => void) | undefined
  batches = 0
  failedBatches = 0
  /** Puts dropped because a del of the same key followed in the same uncommitted batch. */
  cancelledPuts = 0

  constructor (opts: WriteQueueOptions) {
    this.#db = opts.db
    this.#dir = opts.dir
    this.#sync = opts.sync
    this.#log = opts.logger
    this.#tracked = opts.tracked
    this.#reopener = opts.reopener
  }

  get closed (): boolean {
    return this.#closed
  }

  /**
   * Adds ops to the next batch and returns at once. The caller has already updated its in-memory index; `undo`
   * reverts that if the batch fails. Whoever commits the same batch later is the durability barrier.
   */
  stage (ops: WriteOp[], undo?: () => void): void {
    if (this.#closed) throw this.#closedError()
    const batch = this.#add(ops)
    if (undo !== undefined) batch.undos.push(undo)
  }

  /** Adds ops to the next batch; resolves once that batch (and every earlier one) is committed. */
  commit (ops: WriteOp[], undo?: () => void): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError())
    if (ops.length === 0 && this.#next === undefined && this.#writing === undefined) return Promise.resolve()
    const batch = this.#add(ops)
    if (undo !== undefined) batch.undos.push(undo)
    batch.outcome ??= outcome()
    return batch.outcome.promise
  }

  /** Resolves once everything queued so far is committed (rejects if that last batch failed). */
  barrier (): Promise<void> {
    return this.commit([])
  }

  /** A put or del that is queued but not committed yet: Buffer (put), null (del), undefined (nothing pending). */
  peek (key: string): Buffer | null | undefined {
    return this.#overlay.get(key)?.value
  }

  /** Flushes everything queued, then refuses new writes. */
  async close (): Promise<void> {
    if (this.#closed) return
    await this.barrier().catch(() => undefined)
    this.#closed = true
  }

  #closedError (): CulexError {
    return new CulexError('ERR_STORE_WRITE', `the store at ${this.#dir} is closed`)
  }

  #add (ops: WriteOp[]): Batch {
    let batch = this.#next
    if (batch === undefined) {
      batch = { ops: [], count: 0, puts: new Map(), outcome: undefined, undos: [] }
      this.#next = batch
    }
    for (const op of ops) {
      if (op.type === 'del') {
        // put then del of one key in one atomic batch leaves the key absent, as the del alone does
        const at = batch.puts.get(op.key)
        if (at !== undefined) {
          batch.ops[at] = null
          batch.count--
          batch.puts.delete(op.key)
          this.cancelledPuts++
        }
      } else {
        batch.puts.set(op.key, batch.ops.length)
      }
      batch.ops.push(op)
      batch.count++
      if (this.#tracked(op.key, op.type)) this.#overlay.set(op.key, { value: op.type === 'put' ? op.value : null, batch })
    }
    this.#schedule()
    return batch
  }

  #schedule (): void {
    if (this.#scheduled || this.#writing !== undefined || this.#held) return
    this.#scheduled = true
    setImmediate(this.#flush)
  }

  readonly #flush = (): void => {
    this.#scheduled = false
    const batch = this.#next
    if (batch === undefined || this.#writing !== undefined) return
    if (batch.count > 0 && this.#holdForReopen()) return
    this.#next = undefined
    this.#writing = batch
    this.#startedAt = performance.now()
    if (batch.count === 0) {
      this.#finish(batch, undefined)
      return
    }
    writeBatch(this.#db, batch.ops, this.#sync)
      .then(() => this.#finish(batch, undefined), (err: unknown) => this.#finish(batch, err))
  }

  /**
   * Holds the queue while the log is retired after a failed batch (src/store/log-reopen.ts): what is queued meanwhile
   * joins the next batch. Once reopened, the flush is scheduled (not run in the same microtask run), so a read waiting
   * for the reopen is issued before that batch and still sees the values as of its call.
   */
  #holdForReopen (): boolean {
    const reopen = this.#reopener.writable()
    if (reopen === undefined) return false
    this.#held = true
    reopen.then(() => {
      this.#held = false
      this.#schedule()
    }, (err: unknown) => {
      this.#held = false
      const batch = this.#next
      if (batch === undefined) return
      this.#next = undefined
      this.#writing = batch
      this.#finish(batch, err)
    })
    return true
  }

  #finish (batch: Batch, err: unknown): void {
    this.#writing = undefined
    if (batch.count > 0) this.batches++
    for (const op of batch.ops) {
      if (op !== null && this.#overlay.get(op.key)?.batch === batch) this.#overlay.delete(op.key)
    }
    if (err === undefined) {
      if (batch.count > 0) this.observer?.(batch.count, performance.now() - this.#startedAt)
      batch.outcome?.resolve()
    } else {
      this.failedBatches++
      this.#reopener.damaged()
      const cause = err as Error
      this.#log.error({ err: cause, dir: this.#dir, ops: batch.count }, 'store write failed')
      for (let i = batch.undos.length - 1; i >= 0; i--) {
        try {
          batch.undos[i]()
        } catch (undoErr) {
          this.#log.error({ err: undoErr }, 'store undo failed')
        }
      }
      // a failed reopen already says what failed
      const failure = err instanceof CulexError ? err : new CulexError('ERR_STORE_WRITE', `a write to the store at ${this.#dir} failed: ${cause?.message ?? String(err)}`, { cause: err })
      batch.outcome?.reject(failure)
    }
    if (this.#next !== undefined) this.#schedule()
  }
}
