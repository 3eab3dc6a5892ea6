import { CulexError } from '../../errors.js'
import type { Redis } from 'ioredis'
import type { Logger } from '../../log/logger.js'
import type { DropReporter } from '../queue-limits.js'
import type { StoreLimits } from '../types.js'
import type { RedisKeys } from './keys.js'

/** What the parts of the Redis store share. */
export interface RedisDeps {
  redis: Redis
  keys: RedisKeys
  order: WriteOrder
  limits: StoreLimits
  drops: DropReporter
  logger: Logger
}

/**
 * Keeps the store's answers in call order. Every command goes to Redis over one connection, so Redis applies and
 * answers them in order; a call that sends nothing (an enqueue with no persistent subscriber) must still not
 * resolve before an earlier write: aedes emits a publish when its enqueue resolves, and drops one overtaken by a
 * newer one (aedes.md §7-1). `after()` resolves once the last tracked write has settled.
 */
export class WriteOrder {
  #last: Promise<unknown> = Promise.resolve()
  #pending = new Set<Promise<unknown>>()
  /** Writes sent (a replica WAIT covers those sent before it), applied, and refused (or failed with the connection). */
  sent = 0
  writes = 0
  failures = 0
  /** The one observer of applied writes (1 write, milliseconds), for the broker's store metrics. */
  observer: ((ops: number, ms: number) => void) | undefined

  /** Set by close: later writes fail as the LevelDB store's do. */
  closed = false

  /**
   * Registers a write sent to Redis; what it returns rejects with ERR_STORE_WRITE when Redis refused the write or the
   * store was closed.
   */
  track<T> (sent: Promise<T>): Promise<T> {
    const write = this.hold(sent)
    this.sent++
    const started = performance.now()
    write.then(() => {
      this.writes++
      this.observer?.(1, performance.now() - started)
    }, () => {
      this.failures++
    })
    return write
  }

  /**
   * Registers a write that goes to Redis later, as part of a batch the batch tracks when it sends it (script-batch.ts):
   * in call order with the others (`after`, `idle`), but not counted as sent before it is.
   */
  hold<T> (later: Promise<T>): Promise<T> {
    const write = later.catch((err: unknown) => {
      if (err instanceof CulexError) throw err
      throw new CulexError('ERR_STORE_WRITE', this.closed ? 'the store is closed' : `a write to Redis failed: ${(err as Error).message}`, { cause: err })
    })
    this.#last = write
    this.#pending.add(write)
    const settled = (): void => { this.#pending.delete(write) }
    write.then(settled, settled)
    return write
  }

  after (): Promise<void> {
    return this.#last.then(() => undefined, () => undefined)
  }

  /** Resolves once every write tracked so far has settled. */
  async idle (): Promise<void> {
    await Promise.allSettled([...this.#pending])
  }
}
