import { Readable } from 'node:stream'
import type { DeadLetterStore } from './dead-letters.js'
import type { GroupQueueStore } from './group-queue.js'
import { IncomingWrites } from './incoming-writes.js'
import { LevelParts } from './level-parts.js'
import type { LiveCopies } from './live-copies.js'
import type { StoreDb } from './open.js'
import type { Expiring, SessionClaim } from './session-records.js'
import type {
  BrokerRef, ClientRef, InboundRecordRef, PacketLike, SessionInfo, SessionQueues, StoreOptions, StoreStats, SubscriptionInput, SubscriptionRecord, TopicSubscription
} from './types.js'
import { inCallOrder } from './write-queue.js'
import { subscriptionWrites } from './subscription-writes.js'
import type { CulexStore } from './contract.js'

/** What a staged write resolves with: already settled, so every caller can share it. */
const STAGED = Promise.resolve()

/**
 * Culex's aedes-persistence 11 implementation on LevelDB. Every index lives in memory (loaded at open); LevelDB
 * holds the payloads and is the truth after a restart. Use `openStore` (index.ts) to get one. The parts it answers
 * from are in level-parts.ts.
 */
export class LevelStore implements CulexStore {
  readonly #p: LevelParts
  /** Inbound QoS 2 records: when each reaches the disk (incoming-writes.ts). */
  readonly #incoming: IncomingWrites
  /** The durable dead-letter log (src/store/dead-letters.ts). */
  readonly deadLetters: DeadLetterStore
  #broker: BrokerRef | undefined
  #closing: Promise<void> | undefined

  constructor (db: StoreDb, opts: StoreOptions) {
    this.#p = new LevelParts(db, opts)
    this.#incoming = new IncomingWrites(this.#p.incoming, this.#p.queue)
    this.deadLetters = this.#p.deadLetters
  }

  /** Fills the in-memory indexes from disk; called once by openStore. */
  async load (): Promise<void> {
    await this.#p.load()
  }

  get broker (): BrokerRef | undefined {
    return this.#broker
  }

  get dir (): string {
    return this.#p.dir
  }

  get location (): string {
    return this.#p.dir
  }

  /** The session queues as the broker's replay and shared subscriptions use them (src/store/outbox.ts). */
  get sessionQueues (): SessionQueues {
    return this.#p.outbox
  }

  /** The durable queues of shared subscriptions (src/store/group-queue.ts). */
  get groupQueues (): GroupQueueStore {
    return this.#p.groups
  }

  async setup (broker: BrokerRef): Promise<void> {
    this.#broker = broker
    // with a fixed broker id the counter restarts at 0; new messages must not reuse the ids of queued ones
    const highest = this.#p.outbox.maxCounter(broker.id)
    if (broker.counter < highest) broker.counter = highest
  }

  // retained ------------------------------------------------------------------------------------------------------

  /**
   * Staged: resolves once queued (reads see it at once); durable with the next committed op (see docs/store.md).
   * Not an async function: the settled promise it hands back is shared, one promise less per retained PUBLISH.
   */
  storeRetained (packet: PacketLike): Promise<void> {
    try {
      this.#p.retained.store(packet)
    } catch (err) {
      return Promise.reject(err)
    }
    return STAGED
  }

  createRetainedStreamCombi (patterns: string[]): Readable {
    return this.#p.retained.stream(patterns)
  }

  createRetainedStream (pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern])
  }

  // subscriptions -------------------------------------------------------------------------------------------------

  addSubscriptions (client: ClientRef, subs: SubscriptionInput[]): Promise<void> {
    return inCallOrder(() => {
      const change = this.#p.subs.add(client.id, subs)
      return this.#p.queue.commit(subscriptionWrites(client.id, change.puts, change.dels), change.undo)
    })
  }

  removeSubscriptions (client: ClientRef, filters: string[]): Promise<void> {
    return inCallOrder(() => {
      const { removed, undo } = this.#p.subs.remove(client.id, filters)
      return this.#p.queue.commit(subscriptionWrites(client.id, [], removed), undo)
    })
  }

  async subscriptionsByClient (client: ClientRef): Promise<Array<SubscriptionRecord & { topic: string }>> {
    return this.#p.subs.byClient(client.id)
  }

  /** From memory; `$` topics never match wildcard-first filters and `$share/…` filters never match. */
  subscriptionsByTopic (topic: string): Promise<readonly TopicSubscription[]> {
    return inCallOrder(() => Promise.resolve(this.#p.subs.match(topic)))
  }

  subscriptionsByTopicNow (topic: string): readonly TopicSubscription[] {
    return this.#p.subs.match(topic)
  }

  async hasSessionSubscribers (topic: string): Promise<boolean> {
    return this.#p.subs.match(topic).length > 0 || this.#p.subs.matchAtQos0(topic, 1).length > 0
  }

  /** Synchronous, for the broker's QoS 0 queueing (limits.queueQos0); see SubscriptionIndex#matchAtQos0. */
  subscriptionsAtQos0 (topic: string, publishQos: number): TopicSubscription[] {
    return this.#p.subs.matchAtQos0(topic, publishQos)
  }

  enqueueOfflineQos0 (packet: PacketLike & { topic: string }, isOnline: (clientId: string) => boolean): Promise<void> | undefined {
    const offline = this.#p.subs.matchAtQos0(packet.topic, packet.qos ?? 0).filter(sub => !isOnline(sub.clientId))
    return offline.length === 0 ? undefined : this.outgoingEnqueueCombi(offline, packet)
  }

  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return this.#p.subs.countOffline()
  }

  /**
   * aedes calls this on a clean-session CONNECT only. The old session's queue goes too ([MQTT-3.1.2-6]):
   * otherwise aedes would replay it to the new clean session.
   */
  async cleanSubscriptions (client: ClientRef): Promise<void> {
    await this.#p.endSession(client.id, [])
  }

  // outgoing ------------------------------------------------------------------------------------------------------

  async outgoingEnqueue (sub: { clientId: string, qos?: number }, packet: PacketLike): Promise<void> {
    await this.#p.outbox.enqueue([sub], packet)
  }

  /**
   * Also the durability barrier for staged writes: resolves only after a commit, even with no subscriptions. The
   * inbound QoS 2 record it carries is staged into the batch the entries are committed in (the next one: both are
   * added in this call), so a kill -9 leaves the message queued with its record, or neither.
   */
  outgoingEnqueueCombi (subs: ReadonlyArray<{ clientId: string, qos?: number, rap?: boolean }>, packet: PacketLike, inbound?: InboundRecordRef): Promise<void> {
    return inCallOrder(() => {
      if (inbound !== undefined) this.#incoming.stage(inbound)
      return this.#p.outbox.enqueue(subs, packet)
    })
  }

  outgoingEnqueueLive (subs: ReadonlyArray<{ clientId: string, qos?: number, rap?: boolean }>, packet: PacketLike): LiveCopies | undefined {
    return this.#p.outbox.enqueueLive(subs, packet)
  }

  outgoingUpdate (client: ClientRef, packet: PacketLike): Promise<void> {
    return inCallOrder(() => this.#p.outbox.update(client, packet))
  }

  outgoingClearMessageId (client: ClientRef, packet: PacketLike | number): Promise<Record<string, unknown> | undefined> {
    return inCallOrder(() => this.#p.outbox.clear(client, packet))
  }

  outgoingStream (client: ClientRef): Readable {
    return this.#p.outbox.stream(client)
  }

  // incoming QoS 2 ------------------------------------------------------------------------------------------------

  async incomingStorePacket (client: ClientRef, packet: PacketLike): Promise<void> {
    this.#incoming.store(client, packet)
  }

  incomingWrite (client: ClientRef, messageId: number): Promise<void> {
    return inCallOrder(() => this.#incoming.write(client.id, messageId))
  }

  incomingForget (client: ClientRef, messageId: number): void {
    this.#incoming.forget(client.id, messageId)
  }

  incomingGetPacket (client: ClientRef, packet: PacketLike): Promise<Record<string, unknown>> {
    return this.#p.incoming.lookup(client.id, Number(packet.messageId))
  }

  async incomingDelPacket (client: ClientRef, packet: PacketLike): Promise<void> {
    await this.#incoming.delete(client.id, Number(packet.messageId))
  }

  async cleanIncoming (client: ClientRef): Promise<void> {
    await this.#incoming.clean(client.id)
  }

  // wills ---------------------------------------------------------------------------------------------------------

  async putWill (client: ClientRef, packet: PacketLike): Promise<void> {
    await this.#p.wills.put(client, packet, this.#broker?.id)
  }

  async getWill (client: ClientRef): Promise<Record<string, unknown> | undefined> {
    return this.#p.wills.get(client.id)
  }

  async delWill (client: ClientRef): Promise<Record<string, unknown> | undefined> {
    return await this.#p.wills.del(client)
  }

  streamWill (brokers: Record<string, unknown> = {}): Readable {
    return Readable.from(this.#p.wills.orphans(brokers), { objectMode: true })
  }

  /** Wills with an MQTT 5 Will Delay Interval (`publishAt` once their client has gone); see wills.ts. */
  delayedWills (): Array<Record<string, unknown>> {
    return this.#p.wills.delayed()
  }

  /** Records when the client's delayed will is due (undefined: not, its client is back); durable once resolved. */
  async willDue (clientId: string, publishAt: number | undefined): Promise<void> {
    await this.#p.wills.due(clientId, publishAt)
  }

  getClientList (filter: string): Readable {
    return Readable.from(this.#p.subs.clientsWith(filter), { objectMode: true })
  }

  // Culex extras --------------------------------------------------------------------------------------------------

  /** Registers the one observer of committed write batches (op count, milliseconds). */
  observeWrites (observer: (ops: number, ms: number) => void): void {
    this.#p.queue.observer = observer
  }

  /** One node, no replicas: what is committed is as durable as it gets. */
  replicated (): undefined {
    return undefined
  }

  /** Resolves once every write queued so far is on disk. */
  barrier (): Promise<void> {
    return this.#p.queue.barrier()
  }

  stats (): StoreStats {
    return this.#p.stats()
  }

  async sessionInfo (clientId: string): Promise<SessionInfo | undefined> {
    return this.#p.sessionInfo(clientId)
  }

  /** Whether a persistent session exists for this id, even with no subscriptions or messages [MQTT-3.2.2-2]. */
  hasSession (clientId: string): boolean {
    return this.#p.sessions.has(clientId)
  }

  /**
   * Records that a persistent (clean=false) client connected or disconnected, with its MQTT 5 Session Expiry
   * Interval in seconds (undefined: MQTT 3.1.1, or unchanged on a disconnect); staged like other session state.
   */
  sessionConnected (clientId: string, connected: boolean, at = Date.now(), expirySeconds?: number): void {
    const ops = connected ? this.#p.sessions.connected(clientId, at, expirySeconds) : this.#p.sessions.disconnected(clientId, at, expirySeconds)
    if (ops.length > 0 && !this.#p.queue.closed) this.#p.queue.stage(ops)
  }

  /** Persistent sessions whose client has been gone longer than their expiry (session-records.ts), and the next. */
  expiringSessions (maxMs: number, now = Date.now()): Expiring {
    return this.#p.sessions.expiring(maxMs, now)
  }

  /** One node: the record is in memory, so the check and the claim are one step (session-records.ts). */
  claimSession (clientId: string, maxMs: number, expirySeconds?: number, now = Date.now()): SessionClaim {
    if (this.#p.sessions.expired(clientId, maxMs, now)) return 'over'
    if (!this.#p.sessions.has(clientId)) return 'none'
    this.sessionConnected(clientId, true, now, expirySeconds)
    return 'claimed'
  }

  async expireSession (clientId: string, maxMs: number, now = Date.now()): Promise<boolean> {
    if (!this.#p.sessions.expired(clientId, maxMs, now)) return false
    await this.#p.endSession(clientId, this.#p.incoming.clean(clientId))
    return true
  }

  async listSessions (): Promise<string[]> {
    return [...this.#p.sessionIds()].sort()
  }

  /** Deletes a session's subscriptions, queue and inbound QoS 2 state. Disconnect the client first. */
  async purgeSession (clientId: string): Promise<boolean> {
    const existed = this.#p.sessionIds().has(clientId)
    await this.#p.endSession(clientId, this.#p.incoming.clean(clientId))
    return existed
  }

  /** Flushes pending writes and closes the database; safe to call twice. */
  close (): Promise<void> {
    this.#closing ??= this.#p.close()
    return this.#closing
  }

  /** What the aedes abstract suite calls; the data stays on disk. */
  async destroy (): Promise<void> {
    await this.close()
  }
}