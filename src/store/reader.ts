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
export const SCAN_ROWS = 1024
/** What one batch of rows may hold: room for SCAN_ROWS small messages (classic-level stops a batch at 16 KB). */
export const SCAN_BYTES = 256 * 1024

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
    return this.#fromDisk(keys, (missing) => this.#db.getMany(missing))
  }

  /**
   * `read` for keys in ascending order, such as a run of a queue's keys: the values from one LevelDB range (an
   * iterator from the first key to the last, its snapshot taken at this call, rows of other keys in between passed
   * over). One Get per key (getMany) cost about twice the CPU of walking the range.
   */
  readAscending (keys: readonly string[]): Promise<Array<Buffer | undefined>> {
    return this.#fromDisk(keys, (missing) => this.#walk(missing))
  }

  /** Queued-but-uncommitted writes from the write queue, the other keys from `fetch`. */
  #fromDisk (keys: readonly string[], fetch: (missing: string[]) => Promise<Array<Buffer | undefined>>): Promise<Array<Buffer | undefined>> {
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
      ? fetch(missing)
      : reopen.catch(() => undefined).then(async () => await fetch(missing))
    return found.then((found) => {
      for (let i = 0; i < found.length; i++) values[slots[i]] = found[i] ?? undefined
      return values
    })
  }

  /** The values of ascending keys from one iterator over their range (its snapshot taken at this call). */
  async #walk (keys: string[]): Promise<Array<Buffer | undefined>> {
    const values: Array<Buffer | undefined> = new Array(keys.length)
    const it = this.#db.iterator({ gte: keys[0], lte: keys[keys.length - 1], keys: true, values: true, highWaterMarkBytes: SCAN_BYTES })
    try {
      let next = 0
      while (next < keys.length) {
        const rows = await it.nextv(SCAN_ROWS)
        // a batch may hold fewer rows than asked (the iterator's byte limit); only an empty one ends the range
        if (rows.length === 0) break
        for (const [key, value] of rows) {
          while (next < keys.length && keys[next] < key) next++
          if (next < keys.length && keys[next] === key) values[next++] = value
        }
      }
      return values
    } finally {
      await it.close()
    }
  }
}
