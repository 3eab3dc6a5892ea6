import type { LogReopener } from './log-reopen.js'
import type { WriteQueue } from './write-queue.js'

/** What the dead-letter log and the group queues need of a reader (LevelDB's ValueReader, or Redis' RedisKv). */
export type KeyValueReader = Pick<ValueReader, 'read'>

/** A LevelDB iterator as the range read uses it: rows in key order, a batch at a time. */
export interface RowIterator {
  nextv: (size: number) => Promise<Array<[string, Buffer]>>
  close: () => Promise<void>
}

export interface ManyGetter {
  getMany: (keys: string[]) => Promise<Array<Buffer | undefined>>
  iterator: (options: { gte: string, lte: string, keys: true, values: true, highWaterMarkBytes: number }) => RowIterator
}

/** Rows asked of the iterator at a time: one native call and one turn of the event loop per batch. */
const SCAN_ROWS = 1024
/** What one batch of rows may hold: room for SCAN_ROWS small messages (classic-level stops a batch at 16 KB). */
const SCAN_BYTES = 256 * 1024

/**
 * Reads values as of the moment `read` is called: queued-but-uncommitted writes come from the write queue,
 * the rest from a LevelDB read whose implicit snapshot classic-level takes synchronously at call time. So a
 * caller may read a key and, in the same tick, queue its deletion: the read still sees the value.
 */
export class ValueReader {
  readonly #db: ManyGetter
  readonly #queue: WriteQueue
  readonly #reopener: LogReopener

  constructor (db: ManyGetter, queue: WriteQueue, reopener: LogReopener) {
    this.#db = db
    this.#queue = queue
    this.#reopener = reopener
  }

  read (keys: string[]): Promise<Array<Buffer | undefined>> {
    const values: Array<Buffer | undefined> = new Array(keys.length)
    const missing: string[] = []
    const slots: number[] = []
    for (let i = 0; i < keys.length; i++) {
      const pending = this.#queue.peek(keys[i])
      if (pending === undefined) {
        missing.push(keys[i])
        slots.push(i)
      } else {
        values[i] = pending ?? undefined
      }
    }
    if (missing.length === 0) return Promise.resolve(values)
    // The write queue writes nothing while the database is reopened, and resumes only after this read is issued. A
    // reopen refused for want of room left the database open; one that failed leaves the read to fail.
    const reopen = this.#reopener.readable()
    const found = reopen === undefined
      ? this.#db.getMany(missing)
      : reopen.catch(() => undefined).then(() => this.#db.getMany(missing))
    return found.then((found) => {
      for (let i = 0; i < found.length; i++) values[slots[i]] = found[i] ?? undefined
      return values
    })
  }

  /**
   * The values of the keys from `gte` to `lte` as of this call, read in key order as one range: a LevelDB iterator
   * (its snapshot is taken now) and the writes queued now for keys in the range. A queue's replay reads thousands
   * of consecutive keys; one Get per key (getMany) cost several times the CPU of walking them.
   */
  scan (gte: string, lte: string): RangeReader {
    const pending = this.#queue.pendingIn(gte, lte)
    const reopen = this.#reopener.readable()
    const options = { gte, lte, keys: true as const, values: true as const, highWaterMarkBytes: SCAN_BYTES }
    const iterator = reopen === undefined
      ? Promise.resolve(this.#db.iterator(options))
      : reopen.catch(() => undefined).then(() => this.#db.iterator(options))
    return new RangeScan(iterator, pending)
  }
}

/** A range of keys read in ascending runs: what a queue's replay reads its values through. */
export interface RangeReader {
  /** The value of each key (ascending, each after the keys of the calls before), or undefined where there is none. */
  values: (keys: readonly string[]) => Promise<Array<Buffer | undefined>>
  close: () => Promise<void>
}

/**
 * The rows of one range, asked for in ascending runs of keys (`values`; a call waits for the ones before it), each
 * batch of rows read ahead while the one before is used. `close` ends the iterator; so does reading past the
 * range's last row.
 */
export class RangeScan implements RangeReader {
  readonly #iterator: Promise<RowIterator>
  /** Puts (a Buffer) and deletes (null) queued for keys in the range when the scan began. */
  readonly #pending: Map<string, Buffer | null>
  #rows: Array<[string, Buffer]> = []
  #at = 0
  #ahead: Promise<Array<[string, Buffer]>> | undefined
  #done = false
  #closed = false
  #tail: Promise<unknown> = Promise.resolve()

  constructor (iterator: Promise<RowIterator>, pending: Map<string, Buffer | null>) {
    this.#iterator = iterator
    this.#pending = pending
    // a scan abandoned before its first read: the caller closes it, nothing else waits on the iterator
    iterator.catch(() => undefined)
  }

  values (keys: readonly string[]): Promise<Array<Buffer | undefined>> {
    const values = this.#tail.then(async () => await this.#values(keys))
    this.#tail = values.catch(() => undefined)
    return values
  }

  async #values (keys: readonly string[]): Promise<Array<Buffer | undefined>> {
    const values: Array<Buffer | undefined> = new Array(keys.length)
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]
      if (this.#pending.size > 0) {
        const pending = this.#pending.get(key)
        if (pending !== undefined) {
          values[i] = pending ?? undefined
          continue
        }
      }
      for (;;) {
        if (this.#at === this.#rows.length) {
          if (this.#done) break
          await this.#fill()
          continue
        }
        const row = this.#rows[this.#at]
        if (row[0] < key) {
          this.#at++
          continue
        }
        if (row[0] === key) values[i] = row[1]
        break
      }
    }
    return values
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#done = true
    const iterator = await this.#iterator.catch(() => undefined)
    if (iterator === undefined) return
    await this.#ahead?.catch(() => undefined)
    await iterator.close()
  }

  async #fill (): Promise<void> {
    const iterator = await this.#iterator
    const rows = await (this.#ahead ?? iterator.nextv(SCAN_ROWS))
    this.#ahead = undefined
    this.#rows = rows
    this.#at = 0
    // a batch may hold fewer rows than asked (the iterator's byte limit); only an empty one ends the range
    if (rows.length === 0) {
      this.#done = true
      await this.close()
      return
    }
    // the next batch is read from disk while this one is used
    this.#ahead = iterator.nextv(SCAN_ROWS)
    this.#ahead.catch(() => undefined)
  }
}
