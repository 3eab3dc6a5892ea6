import type { Redis } from 'ioredis'
import { CulexError } from '../../errors.js'
import type { Logger } from '../../log/logger.js'
import { decodeHead, type DecodedHead } from '../codec.js'
import type { KeyValueReader } from '../reader.js'
import type { KeyValueWriter, WriteOp } from '../write-queue.js'
import { field, logChange, type LogEntry } from './change-log.js'
import { scanHash } from './scan.js'
import { exec } from './subscriptions.js'
import type { WriteOrder } from './write-order.js'

/** How many changes a logged hash's change log keeps; a reader further behind reloads the whole hash. */
const LOG_LENGTH = 10_000

/** A hash whose changes are logged, so that every writer's copy of it can follow the others' (`fresh`). */
export interface KvChangeLog {
  /** STREAM of changes `{ c: the fields changed, one a line; n: writer; g: generation }` (change-log.ts). */
  log: string
  /** STRING, the generation of the last change (INCR with every entry). */
  gen: string
  /** This writer's name: its own entries are skipped. */
  writer: string
}

/** What a reader of the change log is told: the fields others changed, as they are now (undefined: deleted). */
export interface KvFollower {
  changed: (entries: Array<[key: string, value: Buffer | undefined]>) => void
  /** The reader was further behind than the log keeps: everything, reloaded through `load`. */
  reload: () => Promise<void>
}

/**
 * One Redis hash as the key-value store the dead-letter log and the shared groups' queues were written for
 * (their LevelDB keys become the hash's fields): a commit is one MULTI, resolved once Redis has applied it. With a
 * change log (the dead-letter log, which every node indexes), each commit also appends the fields it changed to a
 * stream, numbered by a generation counter, in the same MULTI; `fresh` reads the others' entries past the last one
 * seen and hands over those fields as they are now (the pattern of subscriptions.ts).
 */
export class RedisKv implements KeyValueWriter, KeyValueReader {
  readonly #redis: Redis
  readonly #hash: string
  readonly #order: WriteOrder
  readonly #logger: Logger
  readonly #changes: KvChangeLog | undefined
  #lastId = '0-0'
  #gen = 0
  #tail: Promise<unknown> = Promise.resolve()
  closed = false

  constructor (redis: Redis, hash: string, order: WriteOrder, logger: Logger, changes?: KvChangeLog) {
    this.#redis = redis
    this.#hash = hash
    this.#order = order
    this.#logger = logger
    this.#changes = changes
  }

  commit (ops: WriteOp[], undo?: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new CulexError('ERR_STORE_WRITE', 'the store is closed'))
    if (ops.length === 0) return this.#order.after()
    const tx = this.#redis.multi()
    for (const op of ops) {
      if (op.type === 'del') tx.hdel(this.#hash, op.key)
      else tx.hset(this.#hash, op.key, op.value as Buffer)
    }
    const c = this.#changes
    if (c !== undefined) logChange(tx, c, ops.map(op => op.key).join('\n'), c.writer, LOG_LENGTH)
    return this.#order.track(exec(tx).then((results) => {
      if (c !== undefined) this.#advance(results.at(-1) as [number, string])
    }, (err: unknown) => {
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
    const c = this.#changes
    // the log position first: a change made during the scan is read again by the next `fresh`
    if (c !== undefined && match === '*') {
      const [last, gen] = await Promise.all([this.#redis.xrevrange(c.log, '+', '-', 'COUNT', 1), this.#redis.get(c.gen)])
      this.#lastId = last[0]?.[0] ?? '0-0'
      this.#gen = Number(gen ?? 0)
    }
    const all: Array<[string, Buffer]> = []
    for await (const page of scanHash(this.#redis, this.#hash, match)) all.push(...page)
    all.sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    for (const [key, value] of all) each(key, decodeHead(value))
  }

  /** Catches up with the changes other writers logged (a no-op without a change log); calls run in order. */
  fresh (follower: KvFollower): Promise<void> {
    const c = this.#changes
    if (c === undefined) return Promise.resolve()
    const read = this.#redis.xrange(c.log, `(${this.#lastId}`, '+') as Promise<LogEntry[]>
    const done = this.#tail.then(async () => await read).then(async (entries) => { await this.#apply(entries, c, follower) })
    this.#tail = done.catch(() => undefined)
    return done
  }

  async #apply (read: LogEntry[], c: KvChangeLog, follower: KvFollower): Promise<void> {
    // entries a refresh before this one applied already (both were read before either was applied)
    const entries = read.filter(([, fields]) => Number(field(fields, 'g')) > this.#gen)
    if (entries.length === 0) return
    const last = entries[entries.length - 1]
    if (Number(field(entries[0][1], 'g')) > this.#gen + 1) {
      await follower.reload()
      return
    }
    const keys = new Set<string>()
    for (const [, fields] of entries) {
      if (field(fields, 'n') !== c.writer) for (const key of field(fields, 'c').split('\n')) keys.add(key)
    }
    const changed = [...keys]
    const values = await this.read(changed)
    follower.changed(changed.map((key, i) => [key, values[i]]))
    this.#lastId = last[0]
    this.#gen = Number(field(last[1], 'g'))
  }

  /** This writer's own change: its entry is the next one, unless another writer's came between. */
  #advance ([gen, id]: [number, string]): void {
    if (gen !== this.#gen + 1) return
    this.#gen = gen
    this.#lastId = id
  }
}
