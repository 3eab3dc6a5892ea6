import type { GroupMessage, RetryState } from '../store/group-queue.js'
import type { Backoff } from './backoff.js'
import type { Group } from './group.js'
import type { QueueLimits } from './policy.js'
import type { Strategy } from './strategies.js'

/** What the engine asks of the broker: src/shared-subscriptions/hooks.ts implements it on aedes. */
export interface EnginePort<H> {
  /**
   * Whether this connection is open and may be sent a message on `topic` (the ACL) at `qos` (a QoS 1/2 one waits
   * while the client has its MQTT 5 Receive Maximum unacknowledged).
   */
  mayReceive: (handle: H, topic: string, qos: number) => boolean
  /** A packet identifier free on this connection. */
  allocateId: (handle: H) => number
  /** Hands a packet to the connection; `sent` runs once its socket took it. */
  send: (handle: H, packet: OutPacket, sent: () => void) => void
  /** The group's filter starts or stops receiving the broker's messages. */
  listen: (group: Group<H>) => void
  unlisten: (group: Group<H>) => void
  /** Call Dispatcher.release at `atMs` (epoch ms), or at once if that has passed: a delayed retry falls due. */
  wake: (atMs: number) => void
}

/** A delivery as the connection is handed it (the shape of an aedes publish packet, every field always present). */
export interface OutPacket {
  cmd: 'publish'
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: false
  dup: boolean
  /** Set for QoS 1/2: the identifier allocateId gave. */
  messageId: number | undefined
  brokerId: string | undefined
  brokerCounter: number | undefined
  /** The share name and the message's arrival (epoch ms): delivery lag is measured from it (never sent). */
  group: string
  arrivedAt: number
  /** MQTT 5 PUBLISH properties, the Message Expiry Interval counted down to the time left. */
  properties?: Record<string, unknown>
}

/** The durable group queue (src/store/group-queue.ts). */
export interface GroupStore {
  add: (share: string, message: GroupMessage, enqueuedAt: number) => { key: string, done: Promise<void> }
  setRetry: (key: string, message: GroupMessage, enqueuedAt: number, retry: RetryState) => Promise<void>
  remove: (keys: string[]) => Promise<void>
  payloads: (keys: string[]) => Promise<Array<Buffer | undefined>>
}

/**
 * Why a group gave a message up: it was delivered maxDeliveries times and never acknowledged, or the last of them
 * was refused (MQTT 5), the group's queue was full, the group lost its last member with the message still waiting,
 * or it waited past its MQTT 5 Message Expiry Interval.
 */
export type DeadLetterReason = 'max-deliveries' | 'queue-full' | 'no-members' | 'rejected' | 'expired'

/** A message the group gives up on; the dead-letter feature will publish it. */
export interface DeadLetterEvent {
  reason: DeadLetterReason
  /** For `rejected`: what the member said (its reason code and string). */
  detail?: string
  attempts: number
  /** When each delivery went out (epoch ms), oldest first; the ones before a restart only if the group was durable. */
  attemptTimes: number[]
  group: string
  /** The `$share/<group>/<filter>` subscription. */
  share: string
  packet: { topic: string, payload: Buffer, qos: number }
}

/** A message that matched a group's filter: the aedes packet itself, whose clientId is the publisher's. */
export interface IncomingMessage {
  topic: string
  payload: Buffer
  qos: number
  brokerId?: string | null
  brokerCounter?: number
  clientId?: string
  properties?: Record<string, unknown>
}

type LogFn = (fields: Record<string, unknown>, msg: string) => void
export interface EngineLog { info: LogFn, warn: LogFn, error: LogFn }

export interface EngineOptions {
  strategyFor: (group: string) => Strategy
  /** 0 = never time out. */
  ackTimeoutMs: number
  /** The wait before a message whose delivery timed out (or was refused) is offered again. */
  backoffFor: (group: string) => Backoff
  /** 0 = redeliver for ever. */
  maxDeliveries: number
  /**
   * A member's refusal (MQTT 5 PUBACK/PUBREC ≥ 0x80) offers the message to another member (true), or dead-letters it
   * at once as [MQTT-4.8.2-6] requires (false).
   */
  redispatchRejected: boolean
  /** 0 = no cap. */
  maxInflightPerMember: number
  limits: QueueLimits
  onDeadLetter: (event: DeadLetterEvent) => void
  log: EngineLog
  now?: () => number
  random?: () => number
}

export interface EngineTotals {
  delivered: number
  redelivered: number
  acknowledged: number
  deadLettered: number
  dropped: number
  failovers: number
  ackTimeouts: number
  rejections: number
}
