import { Readable } from 'node:stream'
import { encodeRecord } from './codec.js'
import { DeadLetterStore } from './dead-letters.js'
import { GroupQueueStore } from './group-queue.js'
import { IncomingIndex } from './incoming-index.js'
import { encodeClientId, isReadBack, PREFIX, subscriptionKey } from './layout.js'
import { loadAll } from './load.js'
import { LogReopener } from './log-reopen.js'
import type { StoreDb } from './open.js'
import { Outbox } from './outbox.js'
import { RangeCompactor, type CompactableDb } from './range-compactor.js'
import { packetRecord } from './packets.js'
import { DropReporter } from './queue-limits.js'
import { ValueReader } from './reader.js'
import { RetainedStore } from './retained-store.js'
import { SessionRecords, type Expiring } from './session-records.js'
import { SubscriptionIndex } from './subscription-index.js'
import { Wills } from './wills.js'
import type {
  BrokerRef, ClientRef, PacketLike, SessionInfo, SessionQueues, StoreOptions, StoreStats, SubscriptionInput, SubscriptionRecord, TopicSubscription
} from './types.js'
import { inCallOrder, WriteQueue, type WriteOp } from './write-queue.js'
import type { CulexStore } from './contract.js'

/**
 * Culex's aedes-persistence 11 implementation on LevelDB. Every index lives in memory (loaded at open); LevelDB
 * holds the payloads and is the truth after a restart. Use `openStore` (index.ts) to get one.
 */
export class LevelStore implements CulexStore {
  readonly #db: StoreDb
  readonly #dir: string
  readonly #queue: WriteQueue
  readonly #reopener: LogReopener
  readonly #drops: DropReporter
  readonly #subs: SubscriptionIndex
  readonly #retained: RetainedStore
  readonly #incoming = new IncomingIndex()
  readonly #wills: Wills
  readonly #outbox: Outbox
  readonly #sessions = new SessionRecords()
  readonly #groups: GroupQueueStore
  /** The durable dead-letter log (src/store/dead-letters.ts). */
  readonly deadLetters: DeadLetterStore
  #broker: BrokerRef | undefined
  #closing: Promise<void> | undefined

  constructor (db: StoreDb, opts: StoreOptions) {
    this.#db = db
    this.#dir = opts.dir
    this.#reopener = new LogReopener(db, opts.dir, opts.logger)
    this.#queue = new WriteQueue({ db, dir: opts.dir, sync: opts.sync, logger: opts.logger, tracked: isReadBack, reopener: this.#reopener })
    this.#drops = new DropReporter(opts.logger, opts.onDrop)
    this.#subs = new SubscriptionIndex({ matchQos0: opts.limits.queueQos0 })
    const deps = { queue: this.#queue, reader: new ValueReader(db, this.#queue, this.#reopener), limits: opts.limits, drops: this.#drops, logger: opts.logger }
    this.#outbox = new Outbox(deps)
    this.#retained = new RetainedStore(deps)
    this.#groups = new GroupQueueStore(deps)
    // level's universal type leaves out compactRange; in Node the database is classic-level's, which has it.
    const compactable = db as StoreDb & CompactableDb
    this.deadLetters = new DeadLetterStore({ ...deps, compactor: new RangeCompactor(compactable, PREFIX.deadLetter, opts.logger) })
    this.#wills = new Wills(this.#queue)
  }

  /** Fills the in-memory indexes from disk; called once by openStore. */
  async load (): Promise<void> {
    await loadAll(this.#db, this.#dir, {
      subscription: (clientId, filter, record) => this.#subs.load(clientId, filter, record),
      outgoing: (clientId, seq, head) => this.#outbox.load(clientId, seq, head),
      incoming: (clientId, messageId, packet) => this.#incoming.load(clientId, messageId, packet),
      will: (clientId, packet) => this.#wills.load(clientId, packet),
      retained: (topic) => this.#retained.load(topic),
      session: (clientId, fields) => this.#sessions.load(clientId, fields),
      group: (share, seq, key, head) => this.#groups.load(share, seq, key, head),
      deadLetter: (seq, head) => this.deadLetters.load(seq, head)
    })
    this.deadLetters.loaded()
  }

  get broker (): BrokerRef | undefined {
    return this.#broker
  }

  get dir (): string {
    return this.#dir
  }

  get location (): string {
    return this.#dir
  }

  /** The session queues as the broker's replay and shared subscriptions use them (src/store/outbox.ts). */
  get sessionQueues (): SessionQueues {
    return this.#outbox
  }

  /** The durable queues of shared subscriptions (src/store/group-queue.ts). */
  get groupQueues (): GroupQueueStore {
    return this.#groups
  }

  async setup (broker: BrokerRef): Promise<void> {
    this.#broker = broker
    // with a fixed broker id the counter restarts at 0; new messages must not reuse the ids of queued ones
    const highest = this.#outbox.maxCounter(broker.id)
    if (broker.counter < highest) broker.counter = highest
  }

  // retained ------------------------------------------------------------------------------------------------------

  /** Staged: resolves once queued (reads see it at once); durable with the next committed op (see docs/store.md). */
  async storeRetained (packet: PacketLike): Promise<void> {
    this.#retained.store(packet)
  }

  createRetainedStreamCombi (patterns: string[]): Readable {
    return this.#retained.stream(patterns)
  }

  createRetainedStream (pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern])
  }

  // subscriptions -------------------------------------------------------------------------------------------------

  addSubscriptions (client: ClientRef, subs: SubscriptionInput[]): Promise<void> {
    return inCallOrder(() => {
      const change = this.#subs.add(client.id, subs)
      const enc = encodeClientId(client.id)
      const ops: WriteOp[] = []
      for (const [filter, record] of change.puts) ops.push({ type: 'put', key: subscriptionKey(enc, filter), value: encodeRecord({ ...record }) })
      for (const filter of change.dels) ops.push({ type: 'del', key: subscriptionKey(enc, filter) })
      return this.#queue.commit(ops, change.undo)
    })
  }

  removeSubscriptions (client: ClientRef, filters: string[]): Promise<void> {
    return inCallOrder(() => {
      const { removed, undo } = this.#subs.remove(client.id, filters)
      const enc = encodeClientId(client.id)
      return this.#queue.commit(removed.map((filter) => ({ type: 'del', key: subscriptionKey(enc, filter) })), undo)
    })
  }

  async subscriptionsByClient (client: ClientRef): Promise<Array<SubscriptionRecord & { topic: string }>> {
    return this.#subs.byClient(client.id)
  }

  /** From memory; `$` topics never match wildcard-first filters and `$share/…` filters never match. */
  subscriptionsByTopic (topic: string): Promise<TopicSubscription[]> {
    return inCallOrder(() => Promise.resolve(this.#subs.match(topic)))
  }

  /** Synchronous, for the broker's QoS 0 queueing (limits.queueQos0); see SubscriptionIndex#matchAtQos0. */
  subscriptionsAtQos0 (topic: string, publishQos: number): TopicSubscription[] {
    return this.#subs.matchAtQos0(topic, publishQos)
  }

  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return this.#subs.countOffline()
  }

  /**
   * aedes calls this on a clean-session CONNECT only. The old session's queue goes too ([MQTT-3.1.2-6]):
   * otherwise aedes would replay it to the new clean session.
   */
  async cleanSubscriptions (client: ClientRef): Promise<void> {
    await this.#endSession(client.id, [])
  }

  // outgoing ------------------------------------------------------------------------------------------------------

  async outgoingEnqueue (sub: { clientId: string, qos?: number }, packet: PacketLike): Promise<void> {
    await this.#outbox.enqueue([sub], packet)
  }

  /** Also the durability barrier for staged writes: resolves only after a commit, even with no subscriptions. */
  outgoingEnqueueCombi (subs: Array<{ clientId: string, qos?: number, rap?: boolean }>, packet: PacketLike): Promise<void> {
    return inCallOrder(() => this.#outbox.enqueue(subs, packet))
  }

  outgoingUpdate (client: ClientRef, packet: PacketLike): Promise<void> {
    return inCallOrder(() => this.#outbox.update(client, packet))
  }

  outgoingClearMessageId (client: ClientRef, packet: PacketLike | number): Promise<Record<string, unknown> | undefined> {
    return inCallOrder(() => this.#outbox.clear(client, packet))
  }

  outgoingStream (client: ClientRef): Readable {
    return this.#outbox.stream(client)
  }

  // incoming QoS 2 ------------------------------------------------------------------------------------------------

  /** In memory at once (a resend is a duplicate from now on); on disk only through incomingWrite. */
  async incomingStorePacket (client: ClientRef, packet: PacketLike): Promise<void> {
    const messageId = Number(packet.messageId)
    const record = packetRecord(packet, {})
    const value = client.clean === true ? undefined : encodeRecord(record)
    const ops = this.#incoming.store(client.id, messageId, record, value)
    if (ops.length > 0) this.#queue.stage(ops)
  }

  /**
   * Writes a persistent client's QoS 2 record once its publish is stored everywhere (session, group and QoS 0
   * queues, in several batches): written earlier, a failure or crash after it made the resend a duplicate of a
   * message stored nowhere. If this write fails the record is forgotten, and the resend is stored again.
   */
  incomingWrite (client: ClientRef, messageId: number): Promise<void> {
    return inCallOrder(() => {
      const write = this.#incoming.write(client.id, messageId)
      return write === undefined ? Promise.resolve() : this.#queue.commit(write.ops, write.undo)
    })
  }

  /** The publish of a QoS 2 message failed before its record was written: the resend is new. */
  incomingForget (client: ClientRef, messageId: number): void {
    this.#incoming.forget(client.id, messageId)
  }

  incomingGetPacket (client: ClientRef, packet: PacketLike): Promise<Record<string, unknown>> {
    return this.#incoming.lookup(client.id, Number(packet.messageId))
  }

  async incomingDelPacket (client: ClientRef, packet: PacketLike): Promise<void> {
    const ops = this.#incoming.delete(client.id, Number(packet.messageId))
    if (ops === undefined) throw new Error('no such packet')
    if (ops.length > 0) await this.#queue.commit(ops)
  }

  async cleanIncoming (client: ClientRef): Promise<void> {
    const ops = this.#incoming.clean(client.id)
    if (ops.length > 0) await this.#queue.commit(ops)
  }

  // wills ---------------------------------------------------------------------------------------------------------

  async putWill (client: ClientRef, packet: PacketLike): Promise<void> {
    await this.#wills.put(client, packet, this.#broker?.id)
  }

  async getWill (client: ClientRef): Promise<Record<string, unknown> | undefined> {
    return this.#wills.get(client.id)
  }

  async delWill (client: ClientRef): Promise<Record<string, unknown> | undefined> {
    return await this.#wills.del(client)
  }

  streamWill (brokers: Record<string, unknown> = {}): Readable {
    return Readable.from(this.#wills.orphans(brokers), { objectMode: true })
  }

  /** Wills with an MQTT 5 Will Delay Interval (`publishAt` once their client has gone); see wills.ts. */
  delayedWills (): Array<Record<string, unknown>> {
    return this.#wills.delayed()
  }

  /** Records when the client's delayed will is due (undefined: not, its client is back); durable once resolved. */
  async willDue (clientId: string, publishAt: number | undefined): Promise<void> {
    await this.#wills.due(clientId, publishAt)
  }

  getClientList (filter: string): Readable {
    return Readable.from(this.#subs.clientsWith(filter), { objectMode: true })
  }

  // Culex extras --------------------------------------------------------------------------------------------------

  /** Registers the one observer of committed write batches (op count, milliseconds). */
  observeWrites (observer: (ops: number, ms: number) => void): void {
    this.#queue.observer = observer
  }

  /** Resolves once every write queued so far is on disk. */
  barrier (): Promise<void> {
    return this.#queue.barrier()
  }

  stats (): StoreStats {
    const totals = this.#outbox.totals()
    return {
      sessions: this.#sessionIds().size,
      queuedMessages: totals.messages,
      queuedBytes: totals.bytes,
      retained: this.#retained.count,
      subscriptions: this.#subs.count,
      writeBatches: this.#queue.batches,
      writeFailures: this.#queue.failedBatches,
      droppedMessages: this.#drops.dropped
    }
  }

  async sessionInfo (clientId: string): Promise<SessionInfo | undefined> {
    const subscriptions = this.#subs.byClient(clientId).map(({ topic, qos }) => ({ topic, qos }))
    const queue = this.#outbox.info(clientId)
    const record = this.#sessions.get(clientId)
    if (record === undefined && subscriptions.length === 0 && queue === undefined && this.#incoming.onDiskCount(clientId) === 0) return undefined
    return { clientId, subscriptions, queued: 0, inflight: 0, queuedBytes: 0, ...queue, ...record }
  }

  /** Whether a persistent session exists for this id, even with no subscriptions or messages [MQTT-3.2.2-2]. */
  hasSession (clientId: string): boolean {
    return this.#sessions.has(clientId)
  }

  /**
   * Records that a persistent (clean=false) client connected or disconnected, with its MQTT 5 Session Expiry
   * Interval in seconds (undefined: MQTT 3.1.1, or unchanged on a disconnect); staged like other session state.
   */
  sessionConnected (clientId: string, connected: boolean, at = Date.now(), expirySeconds?: number): void {
    const ops = connected ? this.#sessions.connected(clientId, at, expirySeconds) : this.#sessions.disconnected(clientId, at, expirySeconds)
    if (ops.length > 0 && !this.#queue.closed) this.#queue.stage(ops)
  }

  /** Persistent sessions whose client has been gone longer than their expiry (session-records.ts), and the next. */
  expiringSessions (maxMs: number, now = Date.now()): Expiring {
    return this.#sessions.expiring(maxMs, now)
  }

  /** Whether this persistent session is over by `now`, removed or not yet (session-records.ts). */
  sessionExpired (clientId: string, maxMs: number, now = Date.now()): boolean {
    return this.#sessions.expired(clientId, maxMs, now)
  }

  async listSessions (): Promise<string[]> {
    return [...this.#sessionIds()].sort()
  }

  /** Deletes a session's subscriptions, queue and inbound QoS 2 state. Disconnect the client first. */
  async purgeSession (clientId: string): Promise<boolean> {
    const existed = this.#sessionIds().has(clientId)
    await this.#endSession(clientId, this.#incoming.clean(clientId))
    return existed
  }

  /** One batch removing a session's subscriptions, queue and record, plus `more`. */
  async #endSession (clientId: string, more: WriteOp[]): Promise<void> {
    const { removed, undo } = this.#subs.clean(clientId)
    const enc = encodeClientId(clientId)
    const ops: WriteOp[] = removed.map((filter) => ({ type: 'del', key: subscriptionKey(enc, filter) }))
    ops.push(...this.#outbox.purge(clientId), ...more, ...this.#sessions.remove(clientId))
    await this.#queue.commit(ops, undo)
  }

  /** Flushes pending writes and closes the database; safe to call twice. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      await this.#outbox.idle()
      await this.#queue.close()
      await this.deadLetters.idle()
      this.#drops.close()
      await this.#reopener.close()
      await this.#db.close()
    })()
    return this.#closing
  }

  /** What the aedes abstract suite calls; the data stays on disk. */
  async destroy (): Promise<void> {
    await this.close()
  }

  #sessionIds (): Set<string> {
    return new Set([...this.#sessions.ids(), ...this.#subs.clientIds(), ...this.#outbox.clientIds(), ...this.#incoming.persistentClientIds()])
  }
}
