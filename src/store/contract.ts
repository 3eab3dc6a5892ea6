import type { Readable } from 'node:stream'
import type { DeadLetterStore } from './dead-letters.js'
import type { GroupQueueStore, StoredGroupMessage } from './group-queue.js'
import type { Expiring, SessionClaim } from './session-records.js'
import type {
  BrokerRef, ClientRef, InboundRecordRef, PacketLike, SessionInfo, SessionQueues, StoreStats, SubscriptionInput, SubscriptionRecord, TopicSubscription
} from './types.js'

/** A value the LevelDB store has in memory and a shared store (Redis) has to read. */
export type MaybePromise<T> = T | Promise<T>

/**
 * What a store write returns when it is complete by the time it returns (one shared, settled promise): a caller
 * handling thousands of them in one step, a queue's replay, need not wait for each.
 */
export const DONE: Promise<void> = Promise.resolve()

/** The durable queues of shared subscriptions, as src/shared-subscriptions uses them. */
export type GroupQueues = Pick<GroupQueueStore, 'count' | 'takeLoaded' | 'add' | 'setRetry' | 'remove' | 'payloads'>

/** The dead-letter log, as src/dead-letter, the CLI and the admin API use it. */
export type DeadLetterLog = Pick<DeadLetterStore,
'count' | 'bytes' | 'evicted' | 'configure' | 'idle' | 'add' | 'retry' | 'list' | 'get' | 'payload' | 'remove' | 'expire' | 'fresh'>

/**
 * What the broker, the CLI and the features use of the store: the aedes-persistence 11 interface plus Culex's own
 * parts. Two backends implement it: LevelStore (LevelDB, one node, the default) and RedisStore (cluster mode).
 * docs/store.md describes the semantics every backend keeps; test/store runs the same suites against both.
 */
export interface CulexStore {
  // aedes-persistence 11 ----------------------------------------------------------------------------------------
  setup: (broker: BrokerRef) => Promise<void>
  storeRetained: (packet: PacketLike) => Promise<void>
  createRetainedStreamCombi: (patterns: string[]) => Readable
  createRetainedStream: (pattern: string) => Readable
  addSubscriptions: (client: ClientRef, subs: SubscriptionInput[]) => Promise<void>
  removeSubscriptions: (client: ClientRef, filters: string[]) => Promise<void>
  subscriptionsByClient: (client: ClientRef) => Promise<Array<SubscriptionRecord & { topic: string }>>
  /** Read only: a store may hand out the same list for a topic until a subscription changes. */
  subscriptionsByTopic: (topic: string) => Promise<readonly TopicSubscription[]>
  /**
   * subscriptionsByTopic answered at once, by a store whose index is all in memory (LevelDB; not Redis, whose matcher
   * may have to catch up first): a publish then makes its enqueue in the same turn, without a promise in between.
   */
  subscriptionsByTopicNow?: (topic: string) => readonly TopicSubscription[]
  countOffline: () => Promise<{ subsCount: number, clientsCount: number }>
  cleanSubscriptions: (client: ClientRef) => Promise<void>
  outgoingEnqueue: (sub: { clientId: string, qos?: number }, packet: PacketLike) => Promise<void>
  /** With `inbound`, the publisher's QoS 2 record recorded by incomingStorePacket is written with the entries, atomically. */
  outgoingEnqueueCombi: (subs: ReadonlyArray<{ clientId: string, qos?: number, rap?: boolean }>, packet: PacketLike, inbound?: InboundRecordRef) => Promise<void>
  /**
   * outgoingEnqueueCombi for a non-retained QoS 1 message delivered in the same turn, by a store that can hold its
   * copies unwritten until acknowledged (LevelDB, src/store/live-copies.ts): entries added, nothing written yet; call
   * `settle` after the delivery. Undefined: no session queues the message (nothing to wait for).
   */
  outgoingEnqueueLive?: (subs: ReadonlyArray<{ clientId: string, qos?: number, rap?: boolean }>, packet: PacketLike) => { settle: (done: (err?: Error) => void) => void } | undefined
  outgoingUpdate: (client: ClientRef, packet: PacketLike) => Promise<void>
  outgoingClearMessageId: (client: ClientRef, packet: PacketLike | number) => Promise<Record<string, unknown> | undefined>
  outgoingStream: (client: ClientRef) => Readable
  incomingStorePacket: (client: ClientRef, packet: PacketLike) => Promise<void>
  incomingGetPacket: (client: ClientRef, packet: PacketLike) => Promise<Record<string, unknown>>
  incomingDelPacket: (client: ClientRef, packet: PacketLike) => Promise<void>
  cleanIncoming: (client: ClientRef) => Promise<void>
  putWill: (client: ClientRef, packet: PacketLike) => Promise<void>
  getWill: (client: ClientRef) => Promise<Record<string, unknown> | undefined>
  delWill: (client: ClientRef) => Promise<Record<string, unknown> | undefined>
  streamWill: (brokers?: Record<string, unknown>) => Readable
  getClientList: (filter: string) => Readable
  destroy: () => Promise<void>

  // Culex -------------------------------------------------------------------------------------------------------
  readonly broker: BrokerRef | undefined
  /** Where the data lives, for log lines: a LevelDB directory or a Redis address (password left out). */
  readonly location: string
  readonly sessionQueues: SessionQueues
  readonly groupQueues: GroupQueues
  readonly deadLetters: DeadLetterLog
  /** Writes a persistent client's QoS 2 record if its enqueue did not carry it (src/protocol/publish-gate.ts). */
  incomingWrite: (client: ClientRef, messageId: number) => Promise<void>
  /** The publish of a QoS 2 message failed: its record goes (from disk too if its enqueue wrote it), the resend is new. */
  incomingForget: (client: ClientRef, messageId: number) => void
  /**
   * Whether a persistent session's subscription matches a QoS 1/2 publish to `topic` (its QoS 0 ones too with
   * limits.queueQos0), as the store has them now: in a cluster, with the changes made on other nodes.
   */
  hasSessionSubscribers: (topic: string) => Promise<boolean>
  /** With limits.queueQos0: the subscriptions through which a publish goes out at QoS 0. */
  subscriptionsAtQos0: (topic: string, publishQos: number) => TopicSubscription[]
  /**
   * With limits.queueQos0: queues a publish's QoS 0 copies for the persistent sessions matched at QoS 0 whose client
   * `isOnline` (this node's view) does not name, and, in a cluster, whose client no live node holds; undefined when
   * there is nothing to queue and nothing to check.
   */
  enqueueOfflineQos0: (packet: PacketLike & { topic: string }, isOnline: (clientId: string) => boolean) => Promise<void> | undefined
  /** Wills with an MQTT 5 Will Delay Interval (`publishAt` once their client has gone). */
  delayedWills: () => MaybePromise<Array<Record<string, unknown>>>
  /**
   * Records when the client's delayed will is due (undefined: not, its client is back); durable once resolved. A store
   * the nodes of a cluster share marks a will due only if this run wrote it (another node's connection replaced it).
   */
  willDue: (clientId: string, publishAt: number | undefined) => Promise<void>
  /** Registers the one observer of committed write batches (op count, milliseconds). */
  observeWrites: (observer: (ops: number, ms: number) => void) => void
  /** Resolves once every write queued so far is durable. */
  barrier: () => Promise<void>
  /**
   * Resolves once the writes sent so far are on as many replicas as configured (Redis WAIT, cluster.redisWaitReplicas);
   * rejects with ERR_STORE_REPLICAS when they are not in time. Undefined when there is nothing to wait for (LevelDB,
   * no replicas asked for, nothing written since the last confirmation): a publish goes on in the same turn.
   */
  replicated: () => Promise<void> | undefined
  stats: () => StoreStats
  sessionInfo: (clientId: string) => Promise<SessionInfo | undefined>
  /** Whether a persistent session exists for this id, even with no subscriptions or messages [MQTT-3.2.2-2]. */
  hasSession: (clientId: string) => MaybePromise<boolean>
  /** A persistent client connected or disconnected (with its MQTT 5 Session Expiry Interval in seconds). */
  sessionConnected: (clientId: string, connected: boolean, at?: number, expirySeconds?: number) => void
  /** Persistent sessions whose client has been gone longer than their expiry, and when the next one will be. */
  expiringSessions: (maxMs: number, now?: number) => MaybePromise<Expiring>
  /**
   * A persistent CONNECT, let in, is about to read its session: 'over' if the session is over by `now` (its client
   * gone longer than its expiry; the caller removes it and the client starts anew), else a session that exists is
   * marked connected ('claimed'; `sessionConnected(false)` when the connection ends before it is registered) so
   * that no expiry removes it from now on, in a cluster on any node; 'none' without a session.
   */
  claimSession: (clientId: string, maxMs: number, expirySeconds?: number, now?: number) => MaybePromise<SessionClaim>
  /**
   * Removes the session if it is still over at `now` when it is removed (not claimed by a connection since),
   * as purgeSession does; resolves whether it did.
   */
  expireSession: (clientId: string, maxMs: number, now?: number) => Promise<boolean>
  listSessions: () => Promise<string[]>
  /** Deletes a session's subscriptions, queue and inbound QoS 2 state. Disconnect the client first. */
  purgeSession: (clientId: string) => Promise<boolean>
  /** Flushes pending writes and closes; safe to call twice. */
  close: () => Promise<void>
  /** A store every node of a cluster shares (Redis): how a node's view of the session queues follows the others'. */
  readonly sharedQueues?: SharedQueues
  /** A shared store: one shared group's durable queue as it is now (the node taking the group over restores it). */
  groupQueueOf?: (shareKey: string) => Promise<StoredGroupMessage[]>
  /**
   * A shared store: a PING on its connection, answered after the commands sent before it (a cluster node's liveness
   * probe, src/cluster/liveness.ts); undefined while that connection is down.
   */
  ping?: () => Promise<unknown> | undefined
  /**
   * A shared store: why its connection is down now (lost, or reconnecting after a failover), undefined while it is
   * up. The store logs the loss and the return itself; a cluster node is not ready meanwhile.
   */
  connectionLost?: () => string | undefined
  /**
   * A shared store: another connection of this node wrote to Redis for a publish (the cluster's stream append), and
   * the replica wait before its acknowledgement (cluster.redisWaitReplicas) must cover that write too.
   */
  wroteElsewhere?: () => void
  /** A shared store: the sessions a dead run of a node held are disconnected from now (their expiry starts). */
  sessionsLeft?: (brokerId: string) => Promise<number>
}

/** The session queues of a store shared by the nodes of a cluster, as src/cluster uses them (RedisStore). */
export interface SharedQueues {
  /**
   * Tells the store which sessions' clients are connected to this node (the sessions that learn, below), and which
   * node this is: it claims those sessions in the store, so that what any node queues for them is sent here.
   */
  setHere: (isHere: (clientId: string) => boolean, holder: { nodeId: string, brokerId: string, alivePrefix: string, generationOf: (client: object) => Promise<number> }) => void
  /** The live nodes holding (their client connected there) a session this node's enqueue of a message queued it for. */
  holdersOf: (packet: object) => readonly string[] | undefined
  /** A persistent session's connection here ended: its claim goes (unless a newer connection's replaced it), and its mirror here. */
  release: (client: { id: string }) => void
  /**
   * The session's view here read again from the store, claimed again: this node was taken for dead, and what other
   * nodes queued meanwhile did not reach it. Its unsent messages are then for the replay to send.
   */
  catchUp: (client: { id: string }) => Promise<void>
  /**
   * Other nodes queued these messages and sent them here live (read together from this node's stream): the
   * sessions connected here learn their entries, from `queued` when the origin sent them along, else those each
   * message matches (against every node's subscriptions as Redis has them now), with one round trip for the lot.
   */
  learn: (messages: Array<{ packet: PacketLike, queued?: QueuedCopies }>) => Promise<void>
  /**
   * The entries this node's enqueue of a message made (its queue entries in every session it matched, all of them),
   * for the other nodes to learn without asking Redis; undefined when not known completely.
   */
  queuedCopies: (packet: object) => QueuedCopies | undefined
  /** Resolves once Redis has applied the writes this node sent so far (a client's close here: its session record). */
  applied: () => Promise<void>
}

/** A message's entries in session queues: when it was queued, and (client id, seq, QoS) of each entry. */
export interface QueuedCopies {
  at: number
  copies: Array<[clientId: string, seq: number, qos: number]>
}
