import type { LogReopener } from './log-reopen.js'
import type { WriteQueue } from './write-queue.js'

/** What the dead-letter log and the group queues need of a reader (LevelDB's ValueReader, or Redis' RedisKv). */
export type KeyValueReader = Pick<ValueReader, 'read'>

export interface ManyGetter {
  getMany: (keys: string[]) => Promise<Array<Buffer | undefined>>
}

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
}
