import type { Redis } from 'ioredis'
import { CulexError } from '../../errors.js'
import type { Logger } from '../../log/logger.js'
import { decodeHead, type DecodedHead } from '../codec.js'
import type { KeyValueReader } from '../reader.js'
import type { KeyValueWriter, WriteOp } from '../write-queue.js'
import { scanHash } from './scan.js'
import { exec } from './subscriptions.js'
import type { WriteOrder } from './write-order.js'

/**
 * One Redis hash as the key-value store the dead-letter log and the shared groups' queues were written for
 * (their LevelDB keys become the hash's fields): a commit is one MULTI, resolved once Redis has applied it.
 */
export class RedisKv implements KeyValueWriter, KeyValueReader {
  readonly #redis: Redis
  readonly #hash: string
  readonly #order: WriteOrder
  readonly #logger: Logger
  closed = false

  constructor (redis: Redis, hash: string, order: WriteOrder, logger: Logger) {
    this.#redis = redis
    this.#hash = hash
    this.#order = order
    this.#logger = logger
  }

  commit (ops: WriteOp[], undo?: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new CulexError('ERR_STORE_WRITE', 'the store is closed'))
    if (ops.length === 0) return this.#order.after()
    const tx = this.#redis.multi()
    for (const op of ops) {
      if (op.type === 'del') tx.hdel(this.#hash, op.key)
      else tx.hset(this.#hash, op.key, op.value as Buffer)
    }
    return this.#order.track(exec(tx).then(() => undefined, (err: unknown) => {
      undo?.()
      this.#logger.error({ err, ops: ops.length }, 'store write failed')
      throw new CulexError('ERR_STORE_WRITE', `a write to Redis failed: ${(err as Error).message}`, { cause: err })
    }))
  }

  async read (keys: string[]): Promise<Array<Buffer | undefined>> {
    if (keys.length === 0) return []
    return (await this.#redis.hmgetBuffer(this.#hash, ...keys)).map(value => value ?? undefined)
  }

  /** Every record (whose key matches the glob `match`) in key order (the order the LevelDB loaders expect). */
  async load (each: (key: string, head: DecodedHead) => void, match = '*'): Promise<void> {
    const all: Array<[string, Buffer]> = []
    for await (const page of scanHash(this.#redis, this.#hash, match)) all.push(...page)
    all.sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    for (const [key, value] of all) each(key, decodeHead(value))
  }
}
