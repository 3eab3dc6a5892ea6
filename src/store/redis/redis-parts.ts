import type { Redis } from 'ioredis'
import { decodeHead } from '../codec.js'
import { DeadLetterStore } from '../dead-letters.js'
import { GroupQueueStore, type StoredGroupMessage } from '../group-queue.js'
import { encodeClientId, groupQueueKey, parseNumberedKey, PREFIX } from '../layout.js'
import { DropReporter } from '../queue-limits.js'
import type { SessionInfo, StoreStats } from '../types.js'
import { escapeGlob, RedisKeys } from './keys.js'
import { RedisKv } from './kv.js'
import { RedisOutbox } from './outbox.js'
import { ReplicaWait } from './replica-wait.js'
import type { RedisStoreOptions } from './redis-store.js'
import { RedisSessionRecords } from './session-records.js'
import { RedisState } from './state.js'
import { RedisSubscriptions } from './subscriptions.js'
import { defineScript, type Script } from './scripts.js'
import { END_SESSION } from './session-scripts.js'
import { WriteOrder } from './write-order.js'

/** Group-queue keys of one open start at epoch × 10^9 (16-digit keys). */
const GROUP_SPAN = 1e9

/**
 * Dead-letter ids (microseconds since the epoch) of one open are those ≡ its start number (INCR dlq-seq) modulo
 * this: nodes that dead-letter in the same millisecond write under different ids. Two opens alive together
 * collide only if a thousand opens of the store happened between theirs.
 */
const DEAD_LETTER_WRITERS = 1000

/**
 * What the Redis store is made of, all writing in one order (write-order.ts): built, loaded at open and closed
 * together, and what a session or the store is across all of them. RedisStore (redis-store.ts) answers the store
 * contract from them.
 */
export class RedisParts {
  readonly redis: Redis
  readonly keys: RedisKeys
  readonly order = new WriteOrder()
  readonly drops: DropReporter
  readonly subs: RedisSubscriptions
  readonly outbox: RedisOutbox
  readonly state: RedisState
  readonly sessions: RedisSessionRecords
  readonly groupKv: RedisKv
  readonly deadKv: RedisKv
  readonly groupQueues: GroupQueueStore
  readonly deadLetters: DeadLetterStore
  readonly replicas: ReplicaWait
  readonly #deadIds = { step: DEAD_LETTER_WRITERS, offset: 0 }
  readonly #endSession: Script

  constructor (redis: Redis, opts: RedisStoreOptions) {
    this.redis = redis
    this.keys = new RedisKeys(opts.prefix)
    this.drops = new DropReporter(opts.logger, opts.onDrop)
    const deps = { redis, keys: this.keys, order: this.order, limits: opts.limits, drops: this.drops, logger: opts.logger }
    this.subs = new RedisSubscriptions(redis, this.keys, opts.node, opts.limits.queueQos0)
    this.outbox = new RedisOutbox(deps)
    this.state = new RedisState(deps)
    this.sessions = new RedisSessionRecords(deps)
    this.groupKv = new RedisKv(redis, this.keys.groups, this.order, opts.logger)
    // every node indexes the whole log: the changes are logged, and each node follows the others' before an admin read
    this.deadKv = new RedisKv(redis, this.keys.deadLetters, this.order, opts.logger, { log: this.keys.deadLog, gen: this.keys.deadGen, writer: opts.node })
    this.groupQueues = new GroupQueueStore({ queue: this.groupKv, reader: this.groupKv })
    this.deadLetters = new DeadLetterStore({ queue: this.deadKv, reader: this.deadKv, ids: this.#deadIds, refresh: async () => { await this.#followDeadLetters() } })
    this.#endSession = defineScript(redis, 'culexEndSession', END_SESSION)
    this.replicas = new ReplicaWait(redis, this.order, opts.replicas ?? { replicas: 0, timeoutMs: 0 }, opts.logger, this.keys.replicaMark)
  }

  /** Loads the subscription matcher, the group queues and the dead-letter index. */
  async load (): Promise<void> {
    await this.subs.load()
    await this.outbox.restoreEvicted()
    await this.groupKv.load((key, head) => {
      const parts = parseNumberedKey(key, 16)
      if (parts !== undefined) this.groupQueues.load(parts.clientId, parts.n, key, head)
    })
    this.groupQueues.reserveFrom(await this.redis.incr(this.keys.groupSeq) * GROUP_SPAN)
    this.#deadIds.offset = await this.redis.incr(this.keys.deadSeq) % DEAD_LETTER_WRITERS
    await this.#loadDeadLetters()
    await this.sessions.refreshCounts()
  }

  async #loadDeadLetters (): Promise<void> {
    this.deadLetters.reset()
    await this.deadKv.load((key, head) => { this.deadLetters.load(Number(key.slice(PREFIX.deadLetter.length)), head) })
    this.deadLetters.loaded()
  }

  async #followDeadLetters (): Promise<void> {
    await this.deadKv.fresh({
      changed: (entries) => {
        for (const [key, value] of entries) {
          const seq = Number(key.slice(PREFIX.deadLetter.length))
          if (value === undefined) this.deadLetters.forget(String(seq))
          else this.deadLetters.load(seq, decodeHead(value))
        }
        this.deadLetters.loaded()
      },
      reload: async () => { await this.#loadDeadLetters() }
    })
  }

  /** One group's queue as Redis has it now (a node taking the group over: the former owner wrote it). */
  async groupQueueOf (shareKey: string): Promise<StoredGroupMessage[]> {
    const head = groupQueueKey(encodeClientId(shareKey), 0).slice(0, -16)
    return await this.groupQueues.reload(shareKey, async (load) => {
      await this.groupKv.load((key, record) => {
        const parts = parseNumberedKey(key, 16)
        if (parts !== undefined && parts.clientId === shareKey) load(parts.n, key, record)
      }, `${escapeGlob(head)}*`)
    })
  }

  /** Counts as of the last refresh (each call starts the next): sessions and retained are cluster-wide, queues this node's. */
  stats (): StoreStats {
    const counts = this.sessions.counts()
    const totals = this.outbox.totals()
    return {
      sessions: counts.sessions,
      queuedMessages: totals.messages,
      queuedBytes: totals.bytes,
      retained: counts.retained,
      subscriptions: this.subs.index.count,
      writeBatches: this.order.writes,
      writeFailures: this.order.failures,
      droppedMessages: this.drops.dropped
    }
  }

  async sessionInfo (clientId: string): Promise<SessionInfo | undefined> {
    const [subs, queue, raw, incoming] = await Promise.all([
      this.subs.byClient(clientId), this.outbox.info(clientId), this.redis.hget(this.keys.sessions, clientId), this.redis.hlen(this.keys.incoming(clientId))
    ])
    const subscriptions = subs.map(({ topic, qos }) => ({ topic, qos }))
    if (raw === null && subscriptions.length === 0 && queue === undefined && incoming === 0) return undefined
    const record = raw === null ? {} : JSON.parse(raw) as Record<string, unknown>
    return { clientId, subscriptions, queued: 0, inflight: 0, queuedBytes: 0, ...queue, ...record }
  }

  /**
   * One script removing a session's subscriptions, queue and record (and its inbound QoS 2 state). With `expiry`,
   * only if the session is still over at `expiry.now` as Redis has its record (a client resuming it on any node
   * claimed it first); resolves whether it was removed.
   */
  async endSession (clientId: string, incoming: boolean, expiry?: { maxMs: number, now: number }): Promise<boolean> {
    const queue = this.outbox.purge(clientId)
    if (incoming) this.state.incomingForgetAll(clientId)
    const subs = this.subs.dropAll(clientId)
    const keys = [this.keys.sessions, ...queue, this.keys.incoming(clientId), ...subs.keys]
    const args = [clientId, expiry?.maxMs ?? '', expiry?.now ?? '', incoming ? '1' : '', ...subs.args]
    let reply: unknown
    try {
      reply = await this.order.track(this.#endSession(keys, args))
    } catch (err) {
      subs.undo()
      throw err
    }
    if (reply === null) {
      subs.undo()
      return false
    }
    subs.logged(reply as [number, Buffer])
    return true
  }

  async close (): Promise<void> {
    this.outbox.flush()
    await this.order.idle()
    this.order.closed = true
    this.groupKv.closed = true
    this.deadKv.closed = true
    this.drops.close()
    await this.redis.quit().catch(() => { this.redis.disconnect() })
  }
}
