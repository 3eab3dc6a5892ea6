import type { Client, PublishPacket } from 'aedes'
import { identityOf } from '../auth/hooks.js'
import type { Config } from '../config/schema.js'
import type { AuthenticateStep, PublishDrop, PublishStep } from '../hook-chain.js'
import type { Logger } from '../log/logger.js'
import { internals, type BrokerInternals } from '../protocol/aedes-internals.js'
import { isReservedTopic } from '../protocol/topic.js'
import { forwardedProperties } from '../protocol/v5/outgoing.js'
import type { UndeliveredCopy, UndeliveredReason } from '../protocol/undelivered.js'
import type { CulexStore, DropEvent } from '../store/index.js'
import type { StoredDeadLetter } from '../store/dead-letters.js'
import { payloadChecker } from './payload-rules.js'
import { DeadLetters, type DeadLetterPacket, type DeadLetterReason } from './service.js'

/** What a shared subscription gives up (src/shared-subscriptions DeadLetterEvent). */
export interface SharedDeadLetter {
  reason: 'max-deliveries' | 'queue-full' | 'no-members' | 'rejected' | 'expired'
  /** For `rejected`: what the last member said. */
  detail?: string
  attempts: number
  attemptTimes: number[]
  group: string
  share: string
  packet: { topic: string, payload: Buffer, qos: number }
}

export interface DeadLetterHooksDeps {
  aedes: BrokerInternals
  store: CulexStore
  config: Config
  log: Logger
  /** The auth feature's verdict from the ACL it has loaded (src/auth/hooks.ts mayPublishAs). */
  mayPublishAs: (who: { username?: string, clientId: string }, topic: string) => boolean
  /** An accepted publish the noSubscribers check found no subscriber for (an MQTT 5 publisher is told 0x10). */
  onNoSubscribers?: (client: Client | null, packet: PublishPacket) => void
  /** Cluster mode: whether another node has a subscriber for the topic, or a shared group matches it anywhere. */
  subscribedElsewhere?: (topic: string) => boolean
}

const storeDetail: Record<DropEvent['reason'], string> = {
  'queue-full': 'the session queue was full (sessions.maxQueuedMessages or maxQueuedBytes); sessions.overflowPolicy dropped this message',
  'broker-queue-full': 'the session queues together were full (sessions.maxTotalQueuedMessages or maxTotalQueuedBytes); sessions.overflowPolicy dropped this message',
  expired: 'the message waited in the session queue longer than its Message Expiry Interval or sessions.messageExpiryMs',
  'retained-limit': 'retained.maxMessages reached: the message was delivered but not kept as a new retained topic'
}

const retainedExpiredDetail = 'the retained message outlived its Message Expiry Interval; it was removed when it was next read'

const slowConsumerDetail = 'the subscriber (a clean session) stopped reading and was disconnected past limits.maxInflightMessages or maxInflightBytes before it acknowledged this copy'

const sharedDetail: Record<SharedDeadLetter['reason'], string> = {
  'max-deliveries': 'delivered sharedSubscriptions.maxDeliveries times without an acknowledgement',
  rejected: 'refused by a member on its last of sharedSubscriptions.maxDeliveries deliveries',
  'queue-full': "the shared subscription's queue was full (sharedSubscriptions.maxQueuedMessages or maxQueuedBytes)",
  'no-members': 'the shared subscription lost its last member while the message was waiting',
  expired: "the message waited in the shared subscription's queue longer than its Message Expiry Interval"
}

/**
 * The only part of the dead-letter feature that touches aedes: the publish steps that record refused publishes,
 * the authenticate wrapper that records refused wills, the store and shared-subscription feeds, and the publish
 * of envelopes and replays (src/broker.ts wires them).
 */
export function createDeadLetterHooks ({ aedes, store, config, log, mayPublishAs, onNoSubscribers, subscribedElsewhere }: DeadLetterHooksDeps) {
  const settings = config.deadLetter
  const enabled = settings.enabled
  let closed = false
  store.deadLetters.configure({ maxMessages: settings.maxMessages, maxBytes: settings.maxBytes, maxAgeMs: settings.maxAgeMs })
  const payloadProblem = payloadChecker(settings.payloadRules)

  const publish = (packet: DeadLetterPacket, done: (err?: Error) => void): void => {
    const out = { cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: packet.qos as 0 | 1 | 2, retain: packet.retain === true, dup: false } as PublishPacket & { properties?: unknown }
    if (packet.properties !== undefined) out.properties = packet.properties
    aedes.publish(out, done)
  }

  /** Any live subscription (clients, shared groups) or offline persistent session matching `topic`. */
  const hasSubscribers = async (topic: string): Promise<boolean> => {
    const matcher = (aedes as unknown as { mq?: { _matcher?: { match: (t: string) => unknown[] } } }).mq?._matcher
    if (matcher !== undefined && matcher.match(topic).length > 0) return true
    if (subscribedElsewhere?.(topic) === true) return true
    return await store.hasSessionSubscribers(topic)
  }

  /**
   * The ACL as the original publisher, as the auth feature has it loaded: the file on disk may be missing or
   * half-written, the broker keeps the last version it could read. Unknown publishers (store drops) are not checked.
   */
  const publisherMay = (entry: StoredDeadLetter, topic: string): boolean =>
    entry.clientId === undefined || mayPublishAs({ username: entry.username, clientId: entry.clientId }, topic)

  const recheck = async (entry: StoredDeadLetter, packet: DeadLetterPacket): Promise<{ reason: DeadLetterReason, detail: string } | undefined> => {
    if (!publisherMay(entry, packet.topic)) {
      return { reason: entry.reason === 'will-denied' ? 'will-denied' : 'unauthorized', detail: 'replay: the ACL does not allow the original publisher to publish to this topic' }
    }
    const topicBytes = Buffer.byteLength(packet.topic)
    if (topicBytes > config.limits.maxTopicLength) return { reason: 'too-large', detail: `replay: limits.maxTopicLength: topic is ${topicBytes} bytes, over ${config.limits.maxTopicLength}` }
    if (packet.payload.length > config.limits.maxPayloadBytes) return { reason: 'too-large', detail: `replay: limits.maxPayloadBytes: payload is ${packet.payload.length} bytes, over ${config.limits.maxPayloadBytes}` }
    const problem = payloadProblem(packet.topic, packet.payload)
    if (problem !== undefined) return { reason: 'invalid-payload', detail: `replay: ${problem}` }
    if (settings.noSubscribers && packet.qos > 0 && packet.retain !== true && !await hasSubscribers(packet.topic)) {
      return { reason: 'no-subscribers', detail: 'replay: no subscription matches the topic' }
    }
    return undefined
  }

  const service = new DeadLetters({
    store: store.deadLetters,
    brokerId: () => aedes.id,
    maxTopicLevels: config.mqtt.maxTopicLevels,
    maxTopicLength: config.limits.maxTopicLength,
    ratePerSecond: settings.ratePerSecond,
    log,
    publishEnvelope: (topic, payload) => {
      if (closed) return
      publish({ topic, payload, qos: 1, retain: false }, err => { if (err != null) log.warn({ err, topic }, 'dead-letter envelope not published') })
    },
    publishOriginal: async packet => await new Promise<void>((resolve, reject) => publish(packet, err => err == null ? resolve() : reject(err))),
    recheck
  })

  const publisherOf = (client: Client | null): { clientId?: string, username?: string } =>
    client === null ? {} : { clientId: client.id, username: identityOf(client)?.username }

  // aedes clears client.will right after it calls authorizePublish for it, so the first step notes which packet is a will.
  const wills = new WeakSet<object>()
  const noteWill: PublishStep = (client, packet) => {
    if (client !== null && internals(client).will === packet) wills.add(packet)
    return undefined
  }

  /**
   * Wraps a publish step that refuses: a refusal is recorded (and on disk) before the step returns, so the
   * publisher's PUBACK/PUBREC follows a durable dead letter. `reserved-topic` refusals are never recorded.
   */
  const recordDrops = (step: PublishStep): PublishStep => (client, packet) => {
    const verdict = step(client, packet)
    // Most publishes pass at once; only a refusal (or a step that is itself asynchronous) costs a promise.
    return verdict instanceof Promise ? verdict.then(v => recordDrop(client, packet, v)) : recordDrop(client, packet, verdict)
  }
  const recordDrop = (client: Client | null, packet: PublishPacket, verdict: PublishDrop | undefined): PublishDrop | undefined | Promise<PublishDrop> => {
    if (!enabled || verdict === undefined || verdict.drop === 'reserved-topic') return verdict
    const isWill = wills.has(packet)
    const reason: DeadLetterReason = isWill && verdict.drop === 'unauthorized' ? 'will-denied' : verdict.drop
    return service.record({ reason, detail: verdict.detail, packet: toPacket(packet), ...publisherOf(client) }).then(() => verdict)
  }

  /** deadLetter.payloadRules: a payload that breaks a rule of a matching filter is refused as invalid-payload. */
  const validatePayload: PublishStep = (_client, packet) => {
    const problem = payloadProblem(packet.topic, payloadOf(packet.payload))
    return problem === undefined ? undefined : { drop: 'invalid-payload', detail: problem }
  }

  /** deadLetter.noSubscribers: a QoS 1/2, non-retained message no subscription matches; it is still published. */
  const detectNoSubscribers: PublishStep = (client, packet) => {
    if (!enabled || !settings.noSubscribers || packet.qos === 0 || packet.retain || isReservedTopic(packet.topic)) return undefined
    return recordIfUnsubscribed(client, packet)
  }
  const recordIfUnsubscribed = async (client: Client | null, packet: PublishPacket): Promise<undefined> => {
    if (await hasSubscribers(packet.topic)) return undefined
    await service.record({ reason: 'no-subscribers', detail: 'no subscription matches the topic', packet: toPacket(packet), ...publisherOf(client) })
    onNoSubscribers?.(client, packet)
    return undefined
  }

  /**
   * Wraps auth's authenticate: a CONNECT refused (code 5) because the ACL denies its will topic records the will.
   * `willRefused` is auth's counter of exactly those refusals.
   */
  const watchWills = (step: AuthenticateStep, willRefused: () => number): AuthenticateStep => async (client, username, password) => {
    const before = willRefused()
    const verdict = await step(client, username, password)
    const will = (client as unknown as { _will?: PublishPacket | null })._will
    if (enabled && verdict === 5 && will != null && willRefused() > before) {
      await service.record({
        reason: 'will-denied',
        detail: 'the ACL does not allow this client to publish its will to this topic; the connection was refused (CONNACK 5)',
        packet: toPacket(will),
        clientId: client.id,
        username
      })
    }
    return verdict
  }

  const onStoreDrop = (event: DropEvent): void => {
    if (!enabled) return
    // a retained message belongs to no session
    const detail = event.reason === 'expired' && event.clientId === undefined ? retainedExpiredDetail : storeDetail[event.reason]
    void service.record({ reason: event.reason, detail, packet: toPacket(event.packet), target: event.clientId })
  }

  /** A clean session's QoS 1/2 copies lost when it was disconnected as a slow consumer (src/limits). */
  const onSlowConsumer = (client: Client, packets: readonly PublishPacket[]): void => {
    if (!enabled) return
    for (const packet of packets) {
      if (isReservedTopic(packet.topic)) continue
      void service.record({ reason: 'slow-consumer', detail: slowConsumerDetail, packet: { ...toPacket(packet), retain: false }, target: client.id })
    }
  }

  const onShared = (event: SharedDeadLetter): void => {
    log.warn({ reason: event.reason, share: event.share, attempts: event.attempts, topic: event.packet.topic, qos: event.packet.qos }, 'shared message dead-lettered')
    if (!enabled) return
    const detail = event.detail === undefined ? sharedDetail[event.reason] : `${sharedDetail[event.reason]}: ${event.detail}`
    void service.record({ reason: event.reason, detail, packet: { ...event.packet, retain: false }, target: event.share, attempts: event.attempts, attemptTimes: event.attemptTimes })
  }

  /**
   * Copies one subscriber did not get (src/protocol/undelivered.ts): larger than its Maximum Packet Size, refused by
   * it, or held for it past the slow-reader limits. Once per copy; the subscriber is the target.
   */
  const onUndelivered = (client: Client, copies: readonly UndeliveredCopy[], reason: UndeliveredReason, detail: string): void => {
    if (!enabled) return
    for (const copy of copies) {
      if (isReservedTopic(copy.topic)) continue
      void service.record({ reason, detail, packet: { ...toPacket(copy), retain: false }, target: client.id })
    }
  }

  let timer: NodeJS.Timeout | undefined
  const start = (): void => {
    if (settings.maxAgeMs === 0) return
    // caught up first: on a cluster, the dead letters other nodes wrote expire here too
    const expire = async (): Promise<void> => { await store.deadLetters.fresh(); await store.deadLetters.expire() }
    timer = setInterval(() => { expire().catch(err => log.warn({ err }, 'dead-letter expiry failed')) }, Math.min(settings.maxAgeMs, 60_000))
    timer.unref()
  }

  return {
    service,
    noteWill,
    recordDrops,
    validatePayload,
    detectNoSubscribers,
    watchWills,
    onStoreDrop,
    onSlowConsumer,
    onShared,
    onUndelivered,
    start,
    close: () => {
      closed = true
      if (timer !== undefined) clearInterval(timer)
      service.close()
    }
  }
}

function toPacket (packet: { topic: string, payload?: unknown, qos?: number, retain?: boolean, properties?: unknown }): DeadLetterPacket {
  const out: DeadLetterPacket = { topic: packet.topic, payload: payloadOf(packet.payload), qos: packet.qos ?? 0, retain: packet.retain === true }
  const properties = forwardedProperties(packet.properties)
  if (properties !== undefined) out.properties = properties
  return out
}

/**
 * A payload as bytes. The payload rules read only this, on every PUBLISH: not the properties, which toPacket copies
 * and which an MQTT 5 PUBLISH from the fast path decodes only when they are read (protocol/v5/publish-properties.ts).
 */
function payloadOf (p: unknown): Buffer {
  return Buffer.isBuffer(p) ? p : p instanceof Uint8Array ? Buffer.from(p) : Buffer.from(typeof p === 'string' ? p : '')
}
