import { Readable } from 'node:stream'
import type { Redis } from 'ioredis'
import type { CulexStore, SharedQueues } from '../contract.js'
import type { DeadLetterStore } from '../dead-letters.js'
import type { GroupQueueStore, StoredGroupMessage } from '../group-queue.js'
import type { Expiring, SessionClaim } from '../session-records.js'
import type {
  BrokerRef, ClientRef, InboundRecordRef, PacketLike, SessionInfo, StoreOptions, StoreStats, SubscriptionInput, SubscriptionRecord, TopicSubscription
} from '../types.js'
import type { RedisOutbox } from './outbox.js'
import { RedisParts } from './redis-parts.js'
import { sharedQueuesOf } from './shared-queues.js'
import type { ReplicaWaitOptions } from './replica-wait.js'

/** Counters of one broker id start at (starts before) × 2^32: a restart, or a second node with the same id, never reuses one. */
const EPOCH_SPAN = 2 ** 32

export interface RedisStoreOptions extends Omit<StoreOptions, 'dir' | 'sync' | 'onCorrupt'> {
  prefix: string
  /** This node's name in the subscription change log (its own entries are skipped when it catches up). */
  node: string
  location: string
  /** cluster.redisWaitReplicas / redisWaitTimeoutMs (undefined: no WAIT). */
  replicas?: ReplicaWaitOptions
}

/**
 * The store contract on Redis (cluster mode, docs/store.md "Redis"): Redis holds every piece of durable state and
 * is read where another node may have changed it; what a node keeps in memory is either refreshed before use
 * (the subscription matcher) or belongs to the sessions connected to it (queue mirrors, QoS 2 records not written
 * yet). Every write resolves once Redis has applied it; multi-key changes are one script or one MULTI.
 */
export class RedisStore implements CulexStore {
  readonly #p: RedisParts
  readonly groupQueues: GroupQueueStore
  readonly deadLetters: DeadLetterStore
  readonly location: string
  /** What the cluster asks of the session queues (shared-queues.ts). */
  readonly sharedQueues: SharedQueues
  #broker: BrokerRef | undefined
  #closing: Promise<void> | undefined
  /** The lists subscriptionsByTopic handed to aedes: the topic and subscription generation they were matched at. */
  readonly #matchedAt = new WeakMap<object, { topic: string, generation: number }>()

  constructor (redis: Redis, opts: RedisStoreOptions) {
    this.location = opts.location
    this.#p = new RedisParts(redis, opts)
    this.groupQueues = this.#p.groupQueues
    this.deadLetters = this.#p.deadLetters
    this.sharedQueues = sharedQueuesOf(this.#p)
  }

  /** Loads the subscription matcher, the group queues and the dead-letter index; called once by openRedisStore. */
  async load (): Promise<void> {
    await this.#p.load()
  }

  get broker (): BrokerRef | undefined {
    return this.#broker
  }

  get sessionQueues (): RedisOutbox {
    return this.#p.outbox
  }

  ping (): Promise<unknown> | undefined {
    return this.#p.redis.status === 'ready' ? this.#p.redis.ping() : undefined
  }

  connectionLost (): string | undefined {
    const status = this.#p.redis.status
    return status === 'ready' ? undefined : `connection ${status}`
  }

  /** A group's durable queue as Redis has it now: the node taking a group over restores it (cluster mode). */
  async groupQueueOf (shareKey: string): Promise<StoredGroupMessage[]> {
    return await this.#p.groupQueueOf(shareKey)
  }

  async setup (broker: BrokerRef): Promise<void> {
    this.#broker = broker
    const epoch = await this.#p.redis.incr(this.#p.keys.epoch(broker.id))
    broker.counter = Math.max(broker.counter, (epoch - 1) * EPOCH_SPAN)
  }

  // retained ------------------------------------------------------------------------------------------------------

  async storeRetained (packet: PacketLike): Promise<void> {
    await this.#p.state.storeRetained(packet)
  }

  createRetainedStreamCombi (patterns: string[]): Readable {
    return this.#p.state.retainedStream(patterns)
  }

  createRetainedStream (pattern: string): Readable {
    return this.#p.state.retainedStream([pattern])
  }

  // subscriptions -------------------------------------------------------------------------------------------------

  async addSubscriptions (client: ClientRef, subs: SubscriptionInput[]): Promise<void> {
    await this.#p.order.track(this.#p.subs.add(client.id, subs))
  }

  async removeSubscriptions (client: ClientRef, filters: string[]): Promise<void> {
    await this.#p.order.track(this.#p.subs.remove(client.id, filters))
  }

  async subscriptionsByClient (client: ClientRef): Promise<Array<SubscriptionRecord & { topic: string }>> {
    return await this.#p.subs.byClient(client.id)
  }

  /**
   * From the local matcher, without a round trip; the list remembers the generation it was matched at, and the
   * enqueue aedes makes with it is refused by Redis if another node changed a subscription since (then the
   * matcher catches up and the enqueue is matched again).
   */
  subscriptionsByTopic (topic: string): Promise<TopicSubscription[]> {
    return this.#p.subs.matchNow(topic).then(({ subs, generation }) => {
      this.#matchedAt.set(subs, { topic, generation })
      return subs
    })
  }

  async hasSessionSubscribers (topic: string): Promise<boolean> {
    return await this.#p.subs.hasAny(topic)
  }

  /** From the matcher as last refreshed (the enqueues check its generation, and refresh it when it lags). */
  subscriptionsAtQos0 (topic: string, publishQos: number): TopicSubscription[] {
    return this.#p.subs.index.matchAtQos0(topic, publishQos)
  }

  /** Sent even when the match finds no one: the enqueue script checks the generation (RedisSubscriptions#offlineQos0). */
  enqueueOfflineQos0 (packet: PacketLike & { topic: string }, isOnline: (clientId: string) => boolean): Promise<void> {
    const { subs, check } = this.#p.subs.offlineQos0(packet.topic, packet.qos ?? 0, isOnline)
    return this.#p.outbox.enqueue(subs, packet, check)
  }

  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return await this.#p.subs.fresh(() => this.#p.subs.index.countOffline())
  }

  getClientList (filter: string): Readable {
    const subs = this.#p.subs
    return Readable.from((async function * () { yield * await subs.fresh(() => subs.index.clientsWith(filter)) })(), { objectMode: true })
  }

  /** aedes calls this on a clean-session CONNECT only; the old session's queue goes too ([MQTT-3.1.2-6]). */
  async cleanSubscriptions (client: ClientRef): Promise<void> {
    await this.#p.endSession(client.id, false)
  }

  // outgoing ------------------------------------------------------------------------------------------------------

  async outgoingEnqueue (sub: { clientId: string, qos?: number }, packet: PacketLike): Promise<void> {
    await this.#p.outbox.enqueue([sub], packet)
  }

  /** The inbound QoS 2 record `inbound` names goes into the same script as the entries (state.ts' carry). */
  outgoingEnqueueCombi (subs: ReadonlyArray<{ clientId: string, qos?: number, rap?: boolean }>, packet: PacketLike, inbound?: InboundRecordRef): Promise<void> {
    const record = inbound === undefined ? undefined : this.#p.state.carry(inbound.client, inbound.messageId, inbound.appends?.(packet))
    const matched = this.#matchedAt.get(subs)
    if (matched === undefined) return this.#p.outbox.enqueue(subs, packet, undefined, record)
    const rematch = async (): Promise<{ subs: readonly TopicSubscription[], generation: number }> => await this.#p.subs.fresh(() => ({ subs: this.#p.subs.index.match(matched.topic), generation: this.#p.subs.generation }))
    return this.#p.outbox.enqueue(subs, packet, { generation: matched.generation, rematch }, record)
  }

  outgoingUpdate (client: ClientRef, packet: PacketLike): Promise<void> {
    return this.#p.outbox.update(client, packet)
  }

  outgoingClearMessageId (client: ClientRef, packet: PacketLike | number): Promise<Record<string, unknown> | undefined> {
    return this.#p.outbox.clear(client, packet)
  }

  outgoingStream (client: ClientRef): Readable {
    return this.#p.outbox.stream(client)
  }

  // incoming QoS 2 ------------------------------------------------------------------------------------------------

  async incomingStorePacket (client: ClientRef, packet: PacketLike): Promise<void> {
    this.#p.state.incomingStore(client, packet)
  }

  incomingWrite (client: ClientRef, messageId: number): Promise<void> {
    return this.#p.state.incomingWrite(client, messageId)
  }

  incomingForget (client: ClientRef, messageId: number): void {
    this.#p.state.incomingForget(client, messageId)
  }

  incomingGetPacket (client: ClientRef, packet: PacketLike): Promise<Record<string, unknown>> {
    return this.#p.state.incomingGet(client, Number(packet.messageId))
  }

  async incomingDelPacket (client: ClientRef, packet: PacketLike): Promise<void> {
    await this.#p.state.incomingDel(client, Number(packet.messageId))
  }

  async cleanIncoming (client: ClientRef): Promise<void> {
    await this.#p.state.incomingClean(client.id)
  }

  // wills ---------------------------------------------------------------------------------------------------------

  async putWill (client: ClientRef, packet: PacketLike): Promise<void> {
    await this.#p.state.putWill(client, packet, this.#broker?.id)
  }

  async getWill (client: ClientRef): Promise<Record<string, unknown> | undefined> {
    return await this.#p.state.getWill(client.id)
  }

  async delWill (client: ClientRef): Promise<Record<string, unknown> | undefined> {
    return await this.#p.state.delWill(client, this.#broker?.id)
  }

  streamWill (brokers: Record<string, unknown> = {}): Readable {
    return this.#p.state.orphanWills(brokers)
  }

  async delayedWills (): Promise<Array<Record<string, unknown>>> {
    return await this.#p.state.delayedWills()
  }

  async willDue (clientId: string, publishAt: number | undefined): Promise<void> {
    await this.#p.state.willDue(clientId, publishAt, this.#broker?.id)
  }

  // Culex extras --------------------------------------------------------------------------------------------------

  observeWrites (observer: (ops: number, ms: number) => void): void {
    this.#p.order.observer = observer
  }

  /** Resolves once every write sent so far has been applied by Redis (and the counts stats() gives are read again). */
  async barrier (): Promise<void> {
    this.#p.outbox.flush()
    await this.#p.order.idle()
    await this.#p.sessions.refreshCounts()
  }

  /** With cluster.redisWaitReplicas: once that many replicas have every write sent so far (Redis WAIT). */
  wroteElsewhere (): void {
    this.#p.replicas.wroteElsewhere()
  }

  replicated (): Promise<void> | undefined {
    return this.#p.replicas.replicated()
  }

  /** Counts as of the last refresh (each call starts the next): sessions and retained are cluster-wide, queues this node's. */
  stats (): StoreStats {
    return this.#p.stats()
  }

  async sessionInfo (clientId: string): Promise<SessionInfo | undefined> {
    return await this.#p.sessionInfo(clientId)
  }

  async hasSession (clientId: string): Promise<boolean> {
    return await this.#p.sessions.has(clientId)
  }

  /** Sent at once, not awaited (like the LevelDB store's staged record); later reads on the connection see it. */
  sessionConnected (clientId: string, connected: boolean, at = Date.now(), expirySeconds?: number): void {
    if (this.#closing === undefined) this.#p.sessions.connected(clientId, connected, at, expirySeconds, this.#broker?.id ?? '')
  }

  /** Cluster mode: the sessions a dead run of a node held are disconnected from now, so that they can expire. */
  async sessionsLeft (brokerId: string): Promise<number> {
    return await this.#p.sessions.left(brokerId, Date.now())
  }

  async expiringSessions (maxMs: number, now = Date.now()): Promise<Expiring> {
    return await this.#p.sessions.expiring(maxMs, now)
  }

  /** Cluster mode: decided in Redis with the expiry of every node (`expireSession`), so that only one of them wins. */
  async claimSession (clientId: string, maxMs: number, expirySeconds?: number, now = Date.now()): Promise<SessionClaim> {
    return await this.#p.sessions.claim(clientId, maxMs, now, expirySeconds, this.#broker?.id ?? '')
  }

  async expireSession (clientId: string, maxMs: number, now = Date.now()): Promise<boolean> {
    return await this.#p.endSession(clientId, true, { maxMs, now })
  }

  async listSessions (): Promise<string[]> {
    return await this.#p.sessions.list()
  }

  async purgeSession (clientId: string): Promise<boolean> {
    const existed = (await this.sessionInfo(clientId)) !== undefined
    await this.#p.endSession(clientId, true)
    return existed
  }

  close (): Promise<void> {
    this.#closing ??= this.#p.close()
    return this.#closing
  }

  async destroy (): Promise<void> {
    await this.close()
  }
}
