import type { Logger } from '../log/logger.js'
import type { OwedPacket } from './outgoing-index.js'

export type OverflowPolicy = 'dropOldest' | 'dropNewest'
export type CorruptPolicy = 'fail' | 'moveAside'
export type DropReason = 'queue-full' | 'broker-queue-full' | 'expired' | 'retained-limit'

export interface StoreLimits {
  /** Per persistent session: messages waiting to be sent (in-flight ones are not counted). 0 = unlimited. */
  maxQueuedMessages: number
  /** Per session: payload bytes of the waiting messages. 0 = unlimited. */
  maxQueuedBytes: number
  /**
   * Over all persistent sessions: entries their queues hold, waiting or in flight (each keeps an index entry on the
   * heap). A session over it loses its own oldest waiting message (dropOldest) or the new one. 0 = unlimited.
   */
  maxTotalQueuedMessages: number
  /** Over all persistent sessions: payload bytes of the entries their queues hold. 0 = unlimited. */
  maxTotalQueuedBytes: number
  overflowPolicy: OverflowPolicy
  /** 0 = never; a queued message older than this is dropped instead of being delivered. */
  messageExpiryMs: number
  /** false (default, like Mosquitto): QoS 0 messages are never queued for offline sessions. */
  queueQos0: boolean
  /** 0 = unlimited; over the limit a NEW retained topic is refused (existing ones can be replaced or cleared). */
  maxRetainedMessages: number
}

export interface DroppedPacket {
  topic: string
  payload: Buffer
  qos: number
  retain: boolean
  /** The stored MQTT 5 properties, for the dead-letter envelope. */
  properties?: unknown
}

export interface DropEvent {
  reason: DropReason
  clientId?: string
  packet: DroppedPacket
}

export interface StoreOptions {
  /** LevelDB directory (the broker passes <dataDir>/store). */
  dir: string
  /** true: every batch is fsync'd (survives power loss); false: survives a process crash. */
  sync: boolean
  logger: Logger
  limits: StoreLimits
  /** 'fail' (default): a corrupt directory stops the broker. 'moveAside': move it to <dir>.corrupt-<time> and start empty. */
  onCorrupt?: CorruptPolicy
  /**
   * Called for every message the store drops (overflow, expiry, retained limit). A queued message's delete is
   * queued right after this returns, in the same tick: a dead letter written synchronously here
   * (deadLetters.add) commits in one batch with it, so a crash loses neither or both.
   */
  onDrop?: (event: DropEvent) => void
}

export interface StoreStats {
  sessions: number
  queuedMessages: number
  queuedBytes: number
  retained: number
  subscriptions: number
  writeBatches: number
  /** Batches that failed (disk full, I/O error): their writes were refused and their publishers not acknowledged. */
  writeFailures: number
  droppedMessages: number
}

export interface SessionInfo {
  clientId: string
  subscriptions: Array<{ topic: string, qos: number }>
  /** Every message in the session's queue, in flight or not. */
  queued: number
  /** Of those, messages sent and not yet acknowledged. */
  inflight: number
  queuedBytes: number
  oldestQueuedAt?: number
  /** From the session record (absent for sessions written before it existed). */
  createdAt?: number
  connectedAt?: number
  /** Absent while the client is connected. */
  disconnectedAt?: number
}

/** The parts of an aedes Client (or the abstract suite's `{ id }`) the store reads. */
export interface ClientRef {
  id: string
  clean?: boolean
  brokerId?: string
}

/**
 * The inbound QoS 2 record a publish carries into its enqueue (src/protocol/publish-gate.ts): the store writes it in
 * the same atomic step as the message's queue entries, so a kill -9 leaves both or neither.
 */
export interface InboundRecordRef {
  client: ClientRef
  messageId: number
  /**
   * A shared store: the cluster's stream entries of the message (to the other nodes subscribed to it), appended in the
   * same script as the record and the queue entries, so that a kill -9 leaves all of them or none; the bus sends
   * them again after, and a node drops the repeat (cluster/bus.ts).
   */
  appends?: (packet: PacketLike) => StreamAppend[]
}

/** One entry for another node's stream: XADD key NOMKSTREAM MAXLEN ~ maxLen * fields. */
export interface StreamAppend {
  key: string
  maxLen: number
  fields: [string, Buffer]
}

/** The parts of the Aedes instance the store reads and writes. */
export interface BrokerRef {
  id: string
  counter: number
}

/** A packet as aedes hands it over: an aedes-packet, a parsed mqtt-packet or a will. */
export interface PacketLike {
  cmd?: string
  topic?: string
  payload?: Buffer | Uint8Array | string
  qos?: number
  retain?: boolean
  dup?: boolean
  messageId?: number | null
  brokerId?: string | null
  brokerCounter?: number
  clientId?: string
  [key: string]: unknown
}

export interface SubscriptionInput {
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
  subscriptionIdentifier?: number
  clientId?: string
}

export interface SubscriptionRecord {
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
  subscriptionIdentifier?: number
}

export interface TopicSubscription {
  clientId: string
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
}

/** What the broker's own replay and shared subscriptions use of the session queues, beyond aedes' interface (Outbox). */
export interface SessionQueues {
  /** A snapshot of the queue in chunks; `unsentOnly`: its messages never sent yet. */
  batches: (client: ClientRef, unsentOnly: boolean) => AsyncIterable<Array<Record<string, unknown>>>
  /** Queued messages never sent yet. */
  waiting: (client: ClientRef) => number
  /** Messages sent and not acknowledged yet (PUBRELs awaiting PUBCOMP included). */
  inflight: (client: ClientRef) => number
  /** Whether an unacknowledged PUBLISH or a PUBREL awaiting PUBCOMP of the session holds this packet id. */
  holdsPacketId: (client: ClientRef, messageId: number) => boolean
  /**
   * Whether the session still owes the client this packet, read from the queue now: a PUBLISH not acknowledged
   * (PUBACK) nor received (PUBREC) since, under this packet id once it has one; a PUBREL not completed (PUBCOMP).
   */
  owes: (client: ClientRef, packet: OwedPacket) => boolean
  /** Whether the queue holds this message (by broker id and counter) and has not sent it yet. */
  unsent: (client: ClientRef, packet: { brokerId?: string | null, brokerCounter?: number }) => boolean
  /** Records the PUBREL of a QoS 2 message delivered outside the queue (a shared subscription's); resolves once committed. */
  addPubrel: (client: ClientRef, messageId: number) => Promise<void>
}
