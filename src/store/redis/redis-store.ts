import { Readable } from 'node:stream'
import type { Redis } from 'ioredis'
import type { CulexStore, SharedQueues } from '../contract.js'
import { DeadLetterStore } from '../dead-letters.js'
import { GroupQueueStore } from '../group-queue.js'
import { DropReporter } from '../queue-limits.js'
import type { Expiring } from '../session-records.js'
import type {
  BrokerRef, ClientRef, PacketLike, SessionInfo, StoreOptions, StoreStats, SubscriptionInput, SubscriptionRecord, TopicSubscription
} from '../types.js'
import { parseNumberedKey, PREFIX } from '../layout.js'
import { RedisKeys } from './keys.js'
import { RedisKv } from './kv.js'
import { RedisOutbox } from './outbox.js'
import { RedisSessionRecords } from './session-records.js'
import { RedisState } from './state.js'
import { exec, RedisSubscriptions } from './subscriptions.js'
import { WriteOrder } from './write-order.js'

/** Counters of one broker id start at (starts before) × 2^32: a restart, or a second node with the same id, never reuses one. */
const EPOCH_SPAN = 2 ** 32
/** Group-queue keys of one open start at epoch × 10^9 (16-digit keys). */
const GROUP_SPAN = 1e9

export interface RedisStoreOptions extends Omit<StoreOptions, 'dir' | 'sync' | 'onCorrupt'> {
  prefix: string
  /** This node's name in the subscription change log (its own entries are skipped when it catches up). */
  node: string
  location: string
}

/**
 * The store contract on Redis (cluster mode, docs/store.md "Redis"): Redis holds every piece of durable state and
 * is read where another node may have changed it; what a node keeps in memory is either refreshed before use
 * (the subscription matcher) or belongs to the sessions connected to it (queue mirrors, QoS 2 records not written
 * yet). Every write resolves once Redis has applied it; multi-key changes are one script or one MULTI.
 */
export class RedisStore implements CulexStore {
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #order = new WriteOrder()
  readonly #drops: DropReporter
  readonly #subs: RedisSubscriptions
  readonly #outbox: RedisOutbox
  readonly #state: RedisState
  readonly #sessions: RedisSessionRecords
  readonly #groupKv: RedisKv
  readonly #deadKv: RedisKv
  readonly groupQueues: GroupQueueStore
  readonly deadLetters: DeadLetterStore
  readonly location: string
  #broker: BrokerRef | undefined
  #closing: Promise<void> | undefined
  /** The lists subscriptionsByTopic handed to aedes: the topic and subscription generation they were matched at. */
  readonly #matchedAt = new WeakMap<object, { topic: string, generation: number }>()

  constructor (redis: Redis, opts: RedisStoreOptions) {
    this.#redis = redis
    this.location = opts.location
    this.#keys = new RedisKeys(opts.prefix)
    this.#drops = new DropReporter(opts.logger, opts.onDrop)
    const deps = { redis, keys: this.#keys, order: this.#order, limits: opts.limits, drops: this.#drops, logger: opts.logger }
    this.#subs = new RedisSubscriptions(redis, this.#keys, opts.node, opts.limits.queueQos0)
    this.#outbox = new RedisOutbox(deps)
    this.#state = new RedisState(deps)
    this.#sessions = new RedisSessionRecords(deps)
    this.#groupKv = new RedisKv(redis, this.#keys.groups, this.#order, opts.logger)
    this.#deadKv = new RedisKv(redis, this.#keys.deadLetters, this.#order, opts.logger)
    this.groupQueues = new GroupQueueStore({ queue: this.#groupKv, reader: this.#groupKv })
    this.deadLetters = new DeadLetterStore({ queue: this.#deadKv, reader: this.#deadKv })
  }

  /** Loads the subscription matcher, the group queues and the dead-letter index; called once by openRedisStore. */
  async load (): Promise<void> {
    await this.#subs.load()
    await this.#groupKv.load((key, head) => {
      const parts = parseNumberedKey(key, 16)
      if (parts !== undefined) this.groupQueues.load(parts.clientId, parts.n, key, head)
    })
    this.groupQueues.reserveFrom(await this.#redis.incr(this.#keys.groupSeq) * GROUP_SPAN)
    await this.#deadKv.load((key, head) => { this.deadLetters.load(Number(key.slice(PREFIX.deadLetter.length)), head) })
    this.deadLetters.loaded()
    await this.#sessions.refreshCounts()
  }

  get broker (): BrokerRef | undefined {
    return this.#broker
  }

  get sessionQueues (): RedisOutbox {
    return this.#outbox
  }

  readonly sharedQueues: SharedQueues = {
    setHere: (isHere) => { this.#outbox.isHere = isHere },
    // matched fresh: the subscription may have been made on another node, which this node's matcher has not read yet
    learn: async (packet) => {
      const subs = await this.#subs.fresh(() => this.#subs.index.match(String(packet.topic)))
      await this.#outbox.learn(subs.map(s => s.clientId), packet)
    }
  }

  async setup (broker: BrokerRef): Promise<void> {
    this.#broker = broker
    const epoch = await this.#redis.incr(this.#keys.epoch(broker.id))
    broker.counter = Math.max(broker.counter, (epoch - 1) * EPOCH_SPAN)
  }

  // retained ------------------------------------------------------------------------------------------------------

  async storeRetained (packet: PacketLike): Promise<void> {
    await this.#state.storeRetained(packet)
  }

  createRetainedStreamCombi (patterns: string[]): Readable {
    return this.#state.retainedStream(patterns)
  }

  createRetainedStream (pattern: string): Readable {
    return this.#state.retainedStream([pattern])
  }

  // subscriptions -------------------------------------------------------------------------------------------------

  async addSubscriptions (client: ClientRef, subs: SubscriptionInput[]): Promise<void> {
    await this.#order.track(this.#subs.add(client.id, subs))
  }

  async removeSubscriptions (client: ClientRef, filters: string[]): Promise<void> {
    await this.#order.track(this.#subs.remove(client.id, filters))
  }

  async subscriptionsByClient (client: ClientRef): Promise<Array<SubscriptionRecord & { topic: string }>> {
    return await this.#subs.byClient(client.id)
  }

  /**
   * From the local matcher, without a round trip; the list remembers the generation it was matched at, and the
   * enqueue aedes makes with it is refused by Redis if another node changed a subscription since (then the
   * matcher catches up and the enqueue is matched again).
   */
  subscriptionsByTopic (topic: string): Promise<TopicSubscription[]> {
    return this.#subs.matchNow(topic).then(({ subs, generation }) => {
      this.#matchedAt.set(subs, { topic, generation })
      return subs
    })
  }

  /** From the matcher as last refreshed (it is refreshed before every subscriptionsByTopic). */
  subscriptionsAtQos0 (topic: string, publishQos: number): TopicSubscription[] {
    return this.#subs.index.matchAtQos0(topic, publishQos)
  }

  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return await this.#subs.fresh(() => this.#subs.index.countOffline())
  }

  getClientList (filter: string): Readable {
    const subs = this.#subs
    return Readable.from((async function * () { yield * await subs.fresh(() => subs.index.clientsWith(filter)) })(), { objectMode: true })
  }

  /** aedes calls this on a clean-session CONNECT only; the old session's queue goes too ([MQTT-3.1.2-6]). */
  async cleanSubscriptions (client: ClientRef): Promise<void> {
    await this.#endSession(client.id, false)
  }

  // outgoing ------------------------------------------------------------------------------------------------------

  async outgoingEnqueue (sub: { clientId: string, qos?: number }, packet: PacketLike): Promise<void> {
    await this.#outbox.enqueue([sub], packet)
  }

  outgoingEnqueueCombi (subs: Array<{ clientId: string, qos?: number, rap?: boolean }>, packet: PacketLike): Promise<void> {
    const matched = this.#matchedAt.get(subs)
    if (matched === undefined) return this.#outbox.enqueue(subs, packet)
    const rematch = async (): Promise<{ subs: TopicSubscription[], generation: number }> => await this.#subs.fresh(() => ({ subs: this.#subs.index.match(matched.topic), generation: this.#subs.generation }))
    return this.#outbox.enqueue(subs, packet, { generation: matched.generation, rematch })
  }

  outgoingUpdate (client: ClientRef, packet: PacketLike): Promise<void> {
    return this.#outbox.update(client, packet)
  }

  outgoingClearMessageId (client: ClientRef, packet: PacketLike | number): Promise<Record<string, unknown> | undefined> {
    return this.#outbox.clear(client, packet)
  }

  outgoingStream (client: ClientRef): Readable {
    return this.#outbox.stream(client)
  }

  // incoming QoS 2 ------------------------------------------------------------------------------------------------

  async incomingStorePacket (client: ClientRef, packet: PacketLike): Promise<void> {
    this.#state.incomingStore(client, packet)
  }

  incomingWrite (client: ClientRef, messageId: number): Promise<void> {
    return this.#state.incomingWrite(client, messageId)
  }

  incomingForget (client: ClientRef, messageId: number): void {
    this.#state.incomingForget(client, messageId)
  }

  incomingGetPacket (client: ClientRef, packet: PacketLike): Promise<Record<string, unknown>> {
    return this.#state.incomingGet(client, Number(packet.messageId))
  }

  async incomingDelPacket (client: ClientRef, packet: PacketLike): Promise<void> {
    await this.#state.incomingDel(client, Number(packet.messageId))
  }

  async cleanIncoming (client: ClientRef): Promise<void> {
    await this.#state.incomingClean(client.id)
  }

  // wills ---------------------------------------------------------------------------------------------------------

  async putWill (client: ClientRef, packet: PacketLike): Promise<void> {
    await this.#state.putWill(client, packet, this.#broker?.id)
  }

  async getWill (client: ClientRef): Promise<Record<string, unknown> | undefined> {
    return await this.#state.getWill(client.id)
  }

  async delWill (client: ClientRef): Promise<Record<string, unknown> | undefined> {
    return await this.#state.delWill(client)
  }

  streamWill (brokers: Record<string, unknown> = {}): Readable {
    return this.#state.orphanWills(brokers)
  }

  async delayedWills (): Promise<Array<Record<string, unknown>>> {
    return await this.#state.delayedWills()
  }

  async willDue (clientId: string, publishAt: number | undefined): Promise<void> {
    await this.#state.willDue(clientId, publishAt)
  }

  // Culex extras --------------------------------------------------------------------------------------------------

  observeWrites (observer: (ops: number, ms: number) => void): void {
    this.#order.observer = observer
  }

  /** Resolves once every write sent so far has been applied by Redis (and the counts stats() gives are read again). */
  async barrier (): Promise<void> {
    this.#outbox.flush()
    await this.#order.idle()
    await this.#sessions.refreshCounts()
  }

  /** Counts as of the last refresh (each call starts the next): sessions and retained are cluster-wide, queues this node's. */
  stats (): StoreStats {
    const counts = this.#sessions.counts()
    const totals = this.#outbox.totals()
    return {
      sessions: counts.sessions,
      queuedMessages: totals.messages,
      queuedBytes: totals.bytes,
      retained: counts.retained,
      subscriptions: this.#subs.index.count,
      writeBatches: this.#order.writes,
      writeFailures: this.#order.failures,
      droppedMessages: this.#drops.dropped
    }
  }

  async sessionInfo (clientId: string): Promise<SessionInfo | undefined> {
    const [subs, queue, raw, incoming] = await Promise.all([
      this.#subs.byClient(clientId), this.#outbox.info(clientId), this.#redis.hget(this.#keys.sessions, clientId), this.#redis.hlen(this.#keys.incoming(clientId))
    ])
    const subscriptions = subs.map(({ topic, qos }) => ({ topic, qos }))
    if (raw === null && subscriptions.length === 0 && queue === undefined && incoming === 0) return undefined
    const record = raw === null ? {} : JSON.parse(raw) as Record<string, unknown>
    return { clientId, subscriptions, queued: 0, inflight: 0, queuedBytes: 0, ...queue, ...record }
  }

  async hasSession (clientId: string): Promise<boolean> {
    return await this.#sessions.has(clientId)
  }

  /** Sent at once, not awaited (like the LevelDB store's staged record); later reads on the connection see it. */
  sessionConnected (clientId: string, connected: boolean, at = Date.now(), expirySeconds?: number): void {
    if (this.#closing === undefined) this.#sessions.connected(clientId, connected, at, expirySeconds, this.#broker?.id ?? '')
  }

  /** Cluster mode: the sessions a dead run of a node held are disconnected from now, so that they can expire. */
  async sessionsLeft (brokerId: string): Promise<number> {
    return await this.#sessions.left(brokerId, Date.now())
  }

  async expiringSessions (maxMs: number, now = Date.now()): Promise<Expiring> {
    return await this.#sessions.expiring(maxMs, now)
  }

  async listSessions (): Promise<string[]> {
    return await this.#sessions.list()
  }

  async purgeSession (clientId: string): Promise<boolean> {
    const existed = (await this.sessionInfo(clientId)) !== undefined
    await this.#endSession(clientId, true)
    return existed
  }

  /** One transaction removing a session's subscriptions, queue and record (and its inbound QoS 2 state). */
  async #endSession (clientId: string, incoming: boolean): Promise<void> {
    const tx = this.#redis.multi()
    tx.del(...this.#outbox.purge(clientId))
    if (incoming) {
      this.#state.incomingForgetAll(clientId)
      tx.del(this.#keys.incoming(clientId))
    }
    tx.hdel(this.#keys.sessions, clientId)
    const { undo, logged } = this.#subs.dropAll(clientId, tx)
    try {
      logged(await this.#order.track(exec(tx)))
    } catch (err) {
      undo()
      throw err
    }
  }

  close (): Promise<void> {
    this.#closing ??= (async () => {
      this.#outbox.flush()
      await this.#order.idle()
      this.#order.closed = true
      this.#groupKv.closed = true
      this.#deadKv.closed = true
      this.#drops.close()
      await this.#redis.quit().catch(() => { this.#redis.disconnect() })
    })()
    return this.#closing
  }

  async destroy (): Promise<void> {
    await this.close()
  }
}
