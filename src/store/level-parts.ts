import { DeadLetterStore } from './dead-letters.js'
import { GroupQueueStore } from './group-queue.js'
import { IncomingIndex } from './incoming-index.js'
import { isReadBack, PREFIX } from './layout.js'
import { subscriptionWrites } from './subscription-writes.js'
import { loadAll } from './load.js'
import { LogReopener } from './log-reopen.js'
import type { StoreDb } from './open.js'
import { Outbox } from './outbox.js'
import { RangeCompactor, type CompactableDb } from './range-compactor.js'
import { DropReporter } from './queue-limits.js'
import { ValueReader } from './reader.js'
import { RetainedStore } from './retained-store.js'
import { SessionRecords } from './session-records.js'
import { SubscriptionIndex } from './subscription-index.js'
import { Wills } from './wills.js'
import type { SessionInfo, StoreOptions, StoreStats } from './types.js'
import { WriteQueue, type WriteOp } from './write-queue.js'

/**
 * What a LevelDB store is made of, each part an index in memory over its records on disk, all writing through one
 * write queue: built, loaded at open and closed together, and what a session or the store is across all of them.
 * LevelStore (level-store.ts) answers the store contract from them.
 */
export class LevelParts {
  readonly db: StoreDb
  readonly dir: string
  readonly queue: WriteQueue
  readonly reopener: LogReopener
  readonly drops: DropReporter
  readonly subs: SubscriptionIndex
  readonly retained: RetainedStore
  readonly incoming = new IncomingIndex()
  readonly wills: Wills
  readonly outbox: Outbox
  readonly sessions = new SessionRecords()
  readonly groups: GroupQueueStore
  /** The durable dead-letter log (src/store/dead-letters.ts). */
  readonly deadLetters: DeadLetterStore

  constructor (db: StoreDb, opts: StoreOptions) {
    this.db = db
    this.dir = opts.dir
    this.reopener = new LogReopener(db, opts.dir, opts.logger)
    this.queue = new WriteQueue({ db, dir: opts.dir, sync: opts.sync, logger: opts.logger, tracked: isReadBack, reopener: this.reopener })
    this.drops = new DropReporter(opts.logger, opts.onDrop)
    this.subs = new SubscriptionIndex({ matchQos0: opts.limits.queueQos0 })
    const deps = { queue: this.queue, reader: new ValueReader(db, this.queue, this.reopener), limits: opts.limits, drops: this.drops, logger: opts.logger }
    this.outbox = new Outbox(deps)
    this.retained = new RetainedStore(deps)
    this.groups = new GroupQueueStore(deps)
    // level's universal type leaves out compactRange; in Node the database is classic-level's, which has it.
    const compactable = db as StoreDb & CompactableDb
    this.deadLetters = new DeadLetterStore({ ...deps, compactor: new RangeCompactor(compactable, PREFIX.deadLetter, opts.logger) })
    this.wills = new Wills(this.queue)
  }

  /** Fills the in-memory indexes from disk. */
  async load (): Promise<void> {
    await loadAll(this.db, this.dir, {
      subscription: (clientId, filter, record) => this.subs.load(clientId, filter, record),
      outgoing: (clientId, seq, head) => this.outbox.load(clientId, seq, head),
      incoming: (clientId, messageId, packet) => this.incoming.load(clientId, messageId, packet),
      will: (clientId, packet) => this.wills.load(clientId, packet),
      retained: (topic) => this.retained.load(topic),
      session: (clientId, fields) => this.sessions.load(clientId, fields),
      group: (share, seq, key, head) => this.groups.load(share, seq, key, head),
      deadLetter: (seq, head) => this.deadLetters.load(seq, head)
    })
    this.deadLetters.loaded()
  }

  stats (): StoreStats {
    const totals = this.outbox.totals()
    return {
      sessions: this.sessionIds().size,
      queuedMessages: totals.messages,
      queuedBytes: totals.bytes,
      retained: this.retained.count,
      subscriptions: this.subs.count,
      writeBatches: this.queue.batches,
      writeFailures: this.queue.failedBatches,
      droppedMessages: this.drops.dropped
    }
  }

  /** Every client id a part holds session state for. */
  sessionIds (): Set<string> {
    return new Set([...this.sessions.ids(), ...this.subs.clientIds(), ...this.outbox.clientIds(), ...this.incoming.persistentClientIds()])
  }

  sessionInfo (clientId: string): SessionInfo | undefined {
    const subscriptions = this.subs.byClient(clientId).map(({ topic, qos }) => ({ topic, qos }))
    const queue = this.outbox.info(clientId)
    const record = this.sessions.get(clientId)
    if (record === undefined && subscriptions.length === 0 && queue === undefined && this.incoming.onDiskCount(clientId) === 0) return undefined
    return { clientId, subscriptions, queued: 0, inflight: 0, queuedBytes: 0, ...queue, ...record }
  }

  /** One batch removing a session's subscriptions, queue and record, plus `more`. */
  async endSession (clientId: string, more: WriteOp[]): Promise<void> {
    const { removed, undo } = this.subs.clean(clientId)
    const ops = subscriptionWrites(clientId, [], removed)
    ops.push(...this.outbox.purge(clientId), ...more, ...this.sessions.remove(clientId))
    await this.queue.commit(ops, undo)
  }

  /** Flushes pending writes and closes the database. */
  async close (): Promise<void> {
    await this.outbox.idle()
    this.outbox.writeIds()
    await this.queue.close()
    await this.deadLetters.idle()
    this.drops.close()
    await this.reopener.close()
    await this.db.close()
  }
}
