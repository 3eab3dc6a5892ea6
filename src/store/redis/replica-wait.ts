import type { Redis } from 'ioredis'
import { CulexError } from '../../errors.js'
import type { Logger } from '../../log/logger.js'
import type { WriteOrder } from './write-order.js'

/** cluster.redisWaitReplicas and cluster.redisWaitTimeoutMs. */
export interface ReplicaWaitOptions {
  /** Replicas that must have a write before a publish that made it is acknowledged; 0: no WAIT. */
  replicas: number
  timeoutMs: number
}

interface Next {
  promise: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

/**
 * Redis `WAIT` after the writes a QoS 1/2 publish made, before its acknowledgement (docs/cluster.md, "Durability").
 * WAIT counts the replicas that have every write this connection sent before it, and every store write goes over
 * this one connection, so one WAIT answers for all the publishes whose writes came before it: while one is out,
 * the publishes that finish meanwhile wait for the next, sent when it answers (a group commit).
 *
 * WAIT speaks for its own connection only: after ioredis reconnected, or after another connection of the node wrote
 * for a publish (the cluster's stream append, `wroteElsewhere`, called once Redis answered it), an increment of a key
 * of its own goes first, so the WAIT counts from the master's offset of that moment (which includes those writes),
 * and a WAIT answered on another connection than it was sent on is sent again.
 */
export class ReplicaWait {
  readonly #redis: Redis
  readonly #order: WriteOrder
  readonly #opts: ReplicaWaitOptions
  readonly #logger: Logger
  readonly #markKey: string
  /** WriteOrder.sent as covered by the last WAIT that reached enough replicas. */
  #confirmed = 0
  #inFlight: { covers: number, done: Promise<void> } | undefined
  #next: Next | undefined
  /** Connections lost so far (ioredis 'close'), and how many had been lost when the last WAIT was answered. */
  #lost = 0
  #waitedAfter = 0
  #behind = false
  /** Writes of other connections so far, and how many the last WAIT answered covered. */
  #elsewhere = 0
  #elsewhereWaited = 0

  constructor (redis: Redis, order: WriteOrder, opts: ReplicaWaitOptions, logger: Logger, markKey: string) {
    this.#redis = redis
    this.#order = order
    this.#opts = opts
    this.#logger = logger
    this.#markKey = markKey
    if (opts.replicas > 0) redis.on('close', () => { this.#lost++ })
  }

  /**
   * Resolves once the configured number of replicas has every write sent so far; rejects with ERR_STORE_REPLICAS
   * when they do not within the timeout. Undefined when no replica is asked for, or nothing was written since.
   */
  wroteElsewhere (): void {
    if (this.#opts.replicas > 0) this.#elsewhere++
  }

  replicated (): Promise<void> | undefined {
    if (this.#opts.replicas === 0) return undefined
    const need = this.#sent()
    if (need <= this.#confirmed) return undefined
    if (this.#inFlight === undefined) return this.#send()
    if (this.#inFlight.covers >= need) return this.#inFlight.done
    if (this.#next === undefined) {
      let resolve!: () => void
      let reject!: (err: unknown) => void
      const promise = new Promise<void>((resolve_, reject_) => { resolve = resolve_; reject = reject_ })
      this.#next = { promise, resolve, reject }
    }
    return this.#next.promise
  }

  /** Writes this WAIT has to cover: the store's own, and those other connections reported. */
  #sent (): number {
    return this.#order.sent + this.#elsewhere
  }

  #send (): Promise<void> {
    const covers = this.#sent()
    const done = this.#wait(covers)
    this.#inFlight = { covers, done }
    const settled = (): void => {
      this.#inFlight = undefined
      const next = this.#next
      this.#next = undefined
      if (next !== undefined) this.#send().then(next.resolve, next.reject)
    }
    done.then(settled, settled)
    return done
  }

  async #wait (covers: number): Promise<void> {
    const { replicas, timeoutMs } = this.#opts
    for (;;) {
      const lost = this.#lost
      const elsewhere = this.#elsewhere
      if (lost !== this.#waitedAfter || elsewhere !== this.#elsewhereWaited) this.#redis.incr(this.#markKey).catch(() => undefined)
      const acknowledged = await this.#redis.wait(replicas, timeoutMs)
      if (this.#lost !== lost) continue
      this.#waitedAfter = lost
      this.#elsewhereWaited = elsewhere
      if (acknowledged >= replicas) {
        this.#confirmed = Math.max(this.#confirmed, covers)
        if (this.#behind) {
          this.#behind = false
          this.#logger.warn({ replicas }, 'redis replicas caught up')
        }
        return
      }
      if (!this.#behind) {
        this.#behind = true
        this.#logger.error({ replicas, acknowledged, timeoutMs }, 'redis replicas behind: QoS 1/2 publishes are not acknowledged')
      }
      throw new CulexError('ERR_STORE_REPLICAS', `${acknowledged} of the ${replicas} Redis replicas asked for confirmed the write within ${timeoutMs} ms`)
    }
  }
}
