import { readdir, stat, statfs } from 'node:fs/promises'
import path from 'node:path'
import { CulexError } from '../errors.js'
import type { Logger } from '../log/logger.js'
import { recoveryProblems } from './open.js'

/** The slice of a `level` database a reopen uses: the same object keeps working for everyone holding it. */
export interface ReopenableDb {
  readonly status: string
  open: (options: { createIfMissing: boolean }) => Promise<void>
  close: () => Promise<void>
}

/**
 * Retires LevelDB's write-ahead log after a failed write. A log append that fails (a full disk) can leave a torn
 * record, and LevelDB carries on appending after it: on the next recovery the reader stops at the torn record and
 * drops every record behind it, acknowledged ones included, silently at the end of a block and as "Corruption"
 * further on. So the write queue writes nothing more to that log: before its next batch, the database is closed and
 * opened again, which recovers the log up to the torn record (the failed write, never acknowledged, lost at the end
 * of the log without a report) and starts a new one. Opening also clears LevelDB's sticky error after a failed
 * table write. Reads wait while a reopen is under way. The database is closed only once the disk has room for the
 * table the recovery writes (see ROOM_MARGIN_BYTES): with the disk still full, each write fails at once and reads go
 * on from the open database; a reopen that fails all the same is tried again by the next write or read.
 */
/** Room asked for beyond the logs' size: the new MANIFEST, LOG and CURRENT files and the filesystem's rounding. */
export const ROOM_MARGIN_BYTES = 256 * 1024

/** Bytes free on the store's filesystem, and bytes a recovery may write: at most what its logs hold, plus a margin. */
async function room (dir: string): Promise<{ free: number, needed: number }> {
  const { bavail, bsize } = await statfs(dir)
  let needed = ROOM_MARGIN_BYTES
  for (const name of await readdir(dir)) {
    if (name.endsWith('.log')) needed += (await stat(path.join(dir, name))).size
  }
  return { free: bavail * bsize, needed }
}

export class LogReopener {
  readonly #db: ReopenableDb
  readonly #dir: string
  readonly #log: Logger
  #damaged = false
  #closed = false
  #attempt: Promise<void> | undefined
  reopens = 0

  constructor (db: ReopenableDb, dir: string, logger: Logger) {
    this.#db = db
    this.#dir = dir
    this.#log = logger
  }

  /** A batch write failed: the log may end in a torn record. */
  damaged (): void {
    this.#damaged = true
  }

  /** undefined if a batch may be written now; otherwise the reopen it must wait for (rejects if that fails). */
  writable (): Promise<void> | undefined {
    if (this.#attempt !== undefined) return this.#attempt
    return this.#damaged && !this.#closed ? this.#reopen() : undefined
  }

  /** undefined if the database can be read now; otherwise the reopen a read must wait for. */
  readable (): Promise<void> | undefined {
    if (this.#attempt !== undefined) return this.#attempt
    return this.#db.status === 'open' || this.#closed ? undefined : this.#reopen()
  }

  /** No reopen from now on (the store is closing); waits for one under way. */
  async close (): Promise<void> {
    this.#closed = true
    await this.#attempt?.catch(() => undefined)
  }

  #reopen (): Promise<void> {
    const attempt = (async () => {
      try {
        if (this.#db.status === 'open') {
          const { free, needed } = await room(this.#dir)
          if (free < needed) {
            throw new CulexError('ERR_STORE_WRITE', `the store at ${this.#dir} needs ${needed} bytes free to recover from a failed write, ` +
              `and ${free} are free; writes fail until there is room`)
          }
          await this.#db.close()
        }
        await this.#db.open({ createIfMissing: false })
      } catch (err) {
        if (err instanceof CulexError) throw err
        const detail = (err as { cause?: Error }).cause?.message ?? (err as Error).message
        this.#log.error({ err, dir: this.#dir }, 'store reopen failed')
        throw new CulexError('ERR_STORE_WRITE', `the store at ${this.#dir} cannot be reopened after a failed write: ${detail}`, { cause: err })
      } finally {
        this.#attempt = undefined
      }
      this.#damaged = false
      this.reopens++
      // The log ends at the failed write, which LevelDB drops without a report: any report is about something else.
      const dropped = await recoveryProblems(this.#dir)
      if (dropped.length > 0) this.#log.error({ dir: this.#dir, dropped }, 'store reopen: LevelDB dropped damaged records')
      else this.#log.warn({ dir: this.#dir }, 'store reopened after a failed write')
    })()
    this.#attempt = attempt
    return attempt
  }
}
