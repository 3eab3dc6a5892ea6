import { topicMatches } from '../protocol/topic.js'
import type { Aedes, Client, PublishPacket, Subscription } from 'aedes'
import type { Writable } from 'node:stream'
import type { Config } from '../config/schema.js'
import type { AuthenticateStep, ConnectStep, PublishStep, SubscribeStep } from '../hook-chain.js'
import type { ConnectionGuard } from '../listeners/listener.js'
import { clientLogger } from '../log/client-log.js'
import type { Logger } from '../log/logger.js'
import { internals, type ClientInternals, type Deliver, type DeliveryPacket } from '../protocol/aedes-internals.js'
import { tapAcknowledgements } from '../protocol/packet-tap.js'
import { connectViolation, type ConnectLimits } from './connect-rules.js'
import { createConnectionGuard, type AcceptErrors } from './connection-guard.js'
import { newLimitCounters, type LimitCounters } from './counters.js'
import { LogThrottle } from './log-throttle.js'
import { OutboundWindow, STALL_GRACE_MS } from './outbound-window.js'
import { Unacknowledged } from './unacknowledged.js'
import { PublishThrottle } from './rate.js'

/**
 * The limits' steps in aedes' hooks (chained by src/broker.ts), and the only limits code that touches aedes
 * objects. The decisions themselves are in the pure modules next to this one; docs/security.md lists every limit
 * with its default and what a client over it gets.
 */
export interface LimitHooks {
  /** preConnect: remembers what CONNECT asked for (aedes does not keep the keepalive or the raw client id). */
  recordConnect: ConnectStep
  /** preConnect, after the delivery router: caps what may pile up behind a client that does not read. */
  watchOutbound: ConnectStep
  /** authenticate, first: client id and keepalive rules, CONNACK 2. */
  checkConnect: AuthenticateStep
  /** authorizePublish, first: holds a client over its publish rate (never drops). */
  throttlePublish: PublishStep
  /** authorizePublish: topic length and payload size, acknowledged and dropped. */
  checkPublishSize: PublishStep
  /** authorizeSubscribe: filter length, SUBACK 0x80. */
  checkFilter: SubscribeStep
  /** authorizeSubscribe, last: subscriptions per client, SUBACK 0x80. */
  countSubscriptions: SubscribeStep
  guard: ConnectionGuard & { acceptErrors: AcceptErrors }
  counters: LimitCounters
}

/**
 * What a clean session's unacknowledged copies may hold, as a multiple of limits.maxInflightBytes: the stalled window
 * and what the connection took before it stalled (its socket buffers).
 */
const UNACKNOWLEDGED_BYTES_PER_INFLIGHT_BYTE = 2
const UNACKNOWLEDGED_BYTES_WITHOUT_LIMIT = 64 * 1024 * 1024

interface LimitClient extends ClientInternals {
  connackSent: boolean
  _keepaliveTimer: NodeJS.Timeout | null
}

/** Told about a clean session's QoS 1/2 copies a slow consumer's disconnect discards. */
export type SlowConsumerSink = (client: Client, packets: readonly DeliveryPacket[]) => void

export function createLimitHooks (broker: Aedes, config: Config, log: Logger, onSlowConsumer: SlowConsumerSink): LimitHooks {
  const limits = config.limits
  const counters = newLimitCounters()
  // Smallest first, so the detail names the strictest limit a payload breaks.
  const topicLimits = Object.entries(limits.topicMaxPayloadBytes).sort((a, b) => a[1] - b[1])
  const throttle = new LogThrottle()
  const connects = new WeakMap<Client, { clientId: string, keepalive: number }>()
  const throttles = new WeakMap<Client, PublishThrottle>()
  const pendingFilters = new WeakMap<Client, Set<string>>()
  const connectLimits: ConnectLimits = {
    maxClientIdLength: limits.maxClientIdLength,
    clientIdPattern: limits.clientIdPattern === '' ? undefined : new RegExp(limits.clientIdPattern, 'u'),
    minKeepaliveSeconds: limits.minKeepaliveSeconds,
    maxKeepaliveSeconds: limits.maxKeepaliveSeconds
  }
  const warnClient = (client: Client, key: string, fields: Record<string, unknown>, msg: string): void => {
    const suppressed = throttle.take(`${key}:${client.id ?? ''}`)
    if (suppressed !== undefined) clientLogger(log, client).warn({ ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, msg)
  }

  // Filters granted by this step whose SUBACK has not gone out yet: the filters of one SUBSCRIBE are authorized
  // together, before any of them reaches client.subscriptions.
  broker.on('subscribe', (subs: Subscription[], client: Client) => {
    const pending = pendingFilters.get(client)
    if (pending === undefined) return
    for (const s of subs) pending.delete(s.topic)
    // an idle client keeps no empty set
    if (pending.size === 0) pendingFilters.delete(client)
  })

  const recordConnect: ConnectStep = (client, packet) => {
    connects.set(client, { clientId: packet.clientId ?? '', keepalive: packet.keepalive ?? 0 })
    return undefined
  }

  const watchOutbound: ConnectStep = (client, connect) => {
    if (limits.maxInflightMessages === 0 && limits.maxInflightBytes === 0) return undefined
    const c = internals(client)
    const window = new OutboundWindow(limits.maxInflightMessages, limits.maxInflightBytes)
    const conn = client.conn as Writable
    // A clean session's copies a slow consumer's disconnect would lose (see Unacknowledged), bounded by bytes only:
    // what the connection took before it stalled counts too, however many messages. A persistent session's stay in
    // the store and are resent when it reconnects.
    const trackedBytes = UNACKNOWLEDGED_BYTES_PER_INFLIGHT_BYTE * (limits.maxInflightBytes > 0 ? limits.maxInflightBytes : UNACKNOWLEDGED_BYTES_WITHOUT_LIMIT)
    const unacknowledged = connect.clean === false ? undefined : new Unacknowledged<DeliveryPacket | undefined>(0, trackedBytes)
    if (unacknowledged !== undefined) {
      tapAcknowledgements(client, (ack: { cmd: string }) => {
        if (ack.cmd === 'puback') unacknowledged.acknowledged(1)
        else if (ack.cmd === 'pubrec') unacknowledged.acknowledged(2)
      })
    }
    // Deliveries the broker is waiting for this client to take (see OutboundWindow for why they are let go), made on the first delivery.
    let waiting: Set<() => void> | undefined
    let stalled = false
    let disconnecting = false
    let writes = 0
    let refusedWrites = 0
    let stallTimer: NodeJS.Timeout | undefined
    const releaseAll = (): void => {
      if (waiting === undefined) return
      for (const done of waiting) setImmediate(done)
      waiting.clear()
    }
    const write = conn.write as (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean
    conn.write = ((chunk: unknown, encoding?: unknown, cb?: unknown) => {
      writes++
      const ok = write.call(conn, chunk, encoding, cb)
      if (!ok) refusedWrites++
      if (!ok && stallTimer === undefined && !stalled) {
        stallTimer = setTimeout(() => {
          stallTimer = undefined
          stalled = true
          releaseAll()
        }, STALL_GRACE_MS)
        stallTimer.unref()
      }
      return ok
    }) as Writable['write']
    conn.on('drain', () => {
      clearTimeout(stallTimer)
      stallTimer = undefined
      stalled = false
      window.drained()
    })
    const lost = (packets: readonly DeliveryPacket[]): void => { if (unacknowledged !== undefined && packets.length > 0) onSlowConsumer(client, packets) }
    const refuse = (packet: DeliveryPacket): void => {
      if (!disconnecting) {
        disconnecting = true
        counters.slowConsumersDisconnected++
        clientLogger(log, client).warn({ limit: window.binding, waiting: window.waiting, waitingBytes: window.waitingBytes, unacknowledged: unacknowledged?.size ?? 0 }, 'disconnecting a client that is not reading')
        lost((unacknowledged?.take() ?? []).filter(p => p !== undefined))
        client.emit('error', new Error(`${window.binding} exceeded: ${window.waiting} messages (${window.waitingBytes} bytes) waiting for a client that is not reading`))
      }
      // and every copy that still comes for it before aedes has removed it
      lost([packet])
    }
    const wrap = (deliver: Deliver): Deliver => (packet, cb) => {
      const bytes = sizeOf(packet)
      const verdict = disconnecting ? 'disconnect' : window.deliver(stalled, packet.qos, bytes)
      if (verdict === 'deliver') {
        let called = false
        let held = false
        const done = (): void => {
          if (called) return
          called = true
          if (held) waiting?.delete(done)
          cb()
        }
        // a copy that brings its packet id is a shared delivery: its group redelivers it, so it takes its place in
        // the order of acknowledgements without being dead-lettered
        const shared = packet.messageId !== undefined && packet.messageId !== 0
        const before = writes
        const refusedBefore = refusedWrites
        deliver(packet, done)
        // A copy the socket took at once is completed by the router in this turn of the event loop, however the
        // connection fares: only one that waits (for the socket to drain, a packet id, the store) is the stall's to let go.
        if (!called && (writes === before || refusedWrites !== refusedBefore)) {
          held = true
          waiting ??= new Set()
          waiting.add(done)
        }
        // the router sets the QoS the copy went out at, and writes a clean session's copy at once
        if (unacknowledged !== undefined && writes !== before && packet.qos > 0) unacknowledged.sent(packet.qos as 1 | 2, shared ? undefined : packet, bytes)
        if (stalled) releaseAll()
        return
      }
      if (verdict === 'drop') {
        counters.outboundDropped++
        warnClient(client, 'outbound', { limit: window.binding, waiting: window.waiting, topic: packet.topic }, 'message dropped for a client that is not reading')
      } else if (packet.qos > 0) {
        refuse(packet)
      }
      setImmediate(cb)
    }
    c.deliver0 = wrap(c.deliver0)
    c.deliverQoS = wrap(c.deliverQoS)
    return undefined
  }

  const checkConnect: AuthenticateStep = (client) => {
    const asked = connects.get(client)
    if (asked === undefined) return undefined
    // asked once per connection: nothing of it is kept for the connection's life
    connects.delete(client)
    const violation = connectViolation(connectLimits, asked.clientId, asked.keepalive)
    if (violation === undefined) return undefined
    counters.connectRefused++
    warnClient(client, violation.limit, { ...violation, returnCode: 2 }, 'connection refused over limit')
    return 2
  }

  // Synchronous unless it holds the client: an async step would put every publish through the microtask queue.
  const throttlePublish: PublishStep = (client, packet) => {
    if (client === null || internals(client).will === packet) return undefined
    if (limits.publishRateMessagesPerSecond === 0 && limits.publishRateBytesPerSecond === 0) return undefined
    let t = throttles.get(client)
    if (t === undefined) {
      t = new PublishThrottle(limits.publishRateMessagesPerSecond, limits.publishRateBytesPerSecond)
      throttles.set(client, t)
    }
    const { delayMs, limit } = t.reserve(Date.now(), sizeOf(packet))
    if (delayMs <= 0) return undefined
    counters.publishDelays++
    warnClient(client, limit, { limit, delayMs: Math.round(delayMs) }, 'publish rate over limit, pausing the client')
    // While this publish waits, aedes reads nothing more from the client: the socket is paused by backpressure.
    return holdKeepingAlive(client as LimitClient, delayMs).then(() => undefined)
  }

  const checkPublishSize: PublishStep = (_client, packet) => {
    const topicBytes = Buffer.byteLength(packet.topic)
    if (topicBytes > limits.maxTopicLength) {
      counters.publishesDropped++
      return { drop: 'too-large', detail: `limits.maxTopicLength: topic is ${topicBytes} bytes, over ${limits.maxTopicLength}` }
    }
    const bytes = payloadBytes(packet)
    if (bytes > limits.maxPayloadBytes) {
      counters.publishesDropped++
      return { drop: 'too-large', detail: `limits.maxPayloadBytes: payload is ${bytes} bytes, over ${limits.maxPayloadBytes}` }
    }
    for (const [filter, max] of topicLimits) {
      if (bytes > max && topicMatches(filter, packet.topic)) {
        counters.publishesDropped++
        return { drop: 'too-large', detail: `limits.topicMaxPayloadBytes[${filter}]: payload is ${bytes} bytes, over ${max}` }
      }
    }
    return undefined
  }

  const checkFilter: SubscribeStep = (client, sub) => {
    const bytes = Buffer.byteLength(sub.topic)
    if (bytes <= limits.maxTopicLength) return true
    counters.subscriptionsRefused++
    warnClient(client, 'filter', { limit: 'limits.maxTopicLength', bytes }, 'subscription refused over limit')
    return { refuse: 'filter-invalid', detail: `limits.maxTopicLength: filter is ${bytes} bytes, over ${limits.maxTopicLength}` }
  }

  const countSubscriptions: SubscribeStep = (client, sub) => {
    const c = client as LimitClient
    // A restored session's filters were admitted when they were first subscribed.
    if (limits.maxSubscriptionsPerClient === 0 || !c.connackSent) return true
    if (sub.topic in c.subscriptions) return true
    let pending = pendingFilters.get(client)
    if (pending === undefined) {
      pending = new Set()
      pendingFilters.set(client, pending)
    }
    if (pending.has(sub.topic)) return true
    let held = Object.keys(c.subscriptions).length
    for (const f of pending) if (!(f in c.subscriptions)) held++
    if (held < limits.maxSubscriptionsPerClient) {
      pending.add(sub.topic)
      return true
    }
    counters.subscriptionsRefused++
    warnClient(client, 'subscriptions', { limit: 'limits.maxSubscriptionsPerClient', topic: sub.topic, held }, 'subscription refused over limit')
    return { refuse: 'quota', detail: `limits.maxSubscriptionsPerClient: ${held} subscriptions held, the limit is ${limits.maxSubscriptionsPerClient}` }
  }

  return {
    recordConnect,
    watchOutbound,
    checkConnect,
    throttlePublish,
    checkPublishSize,
    checkFilter,
    countSubscriptions,
    guard: createConnectionGuard(config, log, counters),
    counters
  }
}

function payloadBytes (packet: PublishPacket): number {
  const p = packet.payload as Buffer | string | undefined
  return p === undefined ? 0 : typeof p === 'string' ? Buffer.byteLength(p) : p.length
}

function sizeOf (packet: PublishPacket): number {
  return Buffer.byteLength(packet.topic) + payloadBytes(packet)
}

/**
 * Waits `ms`, refreshing the client's keepalive timer meanwhile: its PINGREQs sit unread behind the held
 * publish, and the client must not be timed out for the broker's own pause.
 */
async function holdKeepingAlive (client: LimitClient, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!client.closed) {
    const left = end - Date.now()
    if (left <= 0) return
    await new Promise(resolve => setTimeout(resolve, Math.min(left, 1000)))
    client._keepaliveTimer?.refresh()
  }
}
