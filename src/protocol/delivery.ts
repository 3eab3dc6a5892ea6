import type { Client } from 'aedes'
import { internals, type ClientInternals, type Deliver, type DeliveryPacket } from './aedes-internals.js'
import { DONE } from '../store/contract.js'
import { encodePacket, publishSize, type OutgoingPacket } from './frames.js'
import { HeldCopies } from './held-copies.js'
import type { LiveBehindReplay } from './live-behind-replay.js'
import { tooLarge, V311, waitForRoom, type Outbound } from './outbound.js'
import { isExtraCopy, planDelivery } from './delivery-plan.js'
import { packetIds } from './packet-ids.js'
import { sentObserver } from './sent-observer.js'
import type { UndeliveredSink } from './undelivered.js'
import { v5Of } from './v5/connection.js'
import { subscriberProperties } from './v5/outgoing.js'
import { receiveWindowOf } from './v5/receive-window.js'
import { retainedProperties, retainedSubscriptionIds } from './v5/retained.js'
import { subscriptionIdsFor, withSubscriptionIds } from './v5/subscription-ids.js'

/**
 * Marks packets a shared-subscription group hands to the member it chose (src/shared-subscriptions). A symbol-keyed
 * property rather than a WeakSet: adding to a WeakSet for every shared delivery cost about 0.3 µs.
 */
const SHARED = Symbol('culex.sharedDelivery')
/**
 * A copy waiting for room in the client's Receive Maximum carries what the router planned for it when it first came
 * (HOLDING); when it is let through, HELD tells the router to send it as planned.
 */
const HOLDING = Symbol('culex.holdingDelivery')
const HELD = Symbol('culex.heldDelivery')
interface HeldPlan { retained: boolean, subscriptionIds: number[] | undefined }
/** What to tell a shared group when its copy cannot be sent to the member it chose. */
const UNSENT = Symbol('culex.sharedUnsent')
/** A shared delivery also carries its group's share name and its message's arrival (epoch ms), for delivery lag. */
type Marked = DeliveryPacket & { [SHARED]?: true, [HOLDING]?: HeldPlan, [HELD]?: HeldPlan, group?: string, arrivedAt?: number, [UNSENT]?: (detail: string) => void }

/**
 * Marks a packet a shared-subscription group delivers to one member: the router sends it at the QoS it carries
 * (the group computed min(publish QoS, the member's granted QoS)), without planning over the client's other filters
 * and without counting it as one of their copies, so a client with both a shared and a normal subscription gets both.
 * `unsent` is called (on a later turn) when the member cannot take the copy: larger than its Maximum Packet Size.
 */
export function markSharedDelivery (packet: DeliveryPacket, unsent?: (detail: string) => void): void {
  (packet as Marked)[SHARED] = true
  if (unsent !== undefined) (packet as Marked)[UNSENT] = unsent
}

/**
 * Per-client delivery router. aedes 1.2 picks the delivery QoS from the one subscription whose listener fires
 * first and only downgrades for exact filters, so wildcard subscribers got more than they were granted and
 * overlapping subscriptions were resolved by chance. It also drops any message whose broker counter is not above
 * the last one delivered, which loses a QoS 1 message that a later QoS 0 message overtook. The router replaces
 * both: every copy of a message is delivered at min(publish QoS, highest granted QoS among the client's matching
 * subscriptions) [MQTT-3.3.5-1], once, whichever listener fires first.
 *
 * Then the router writes the copy itself (deliverCopy), a copy no live subscription matches any more included, so
 * that every packet id comes from the session's allocator; aedes' own delivery functions are no longer used.
 */
// aedes' counter-based dedupe is replaced by the router's exact one: reads always miss, writes are ignored. It holds
// nothing, so every client shares it.
const noDuplicates = new Proxy(Object.create(null) as Record<string, number>, { set: () => true })

/** What the router of one connection is given: its session's store, and where undelivered copies are reported. */
export interface RouteOptions {
  session?: PersistentSession
  undelivered: UndeliveredSink
  /** limits.maxInflightMessages and limits.maxInflightBytes: what may wait for room in a Receive Maximum. */
  maxHeldMessages: number
  maxHeldBytes: number
  /** A client disconnected because too much waited for room in its Receive Maximum. */
  onSlowConsumer: (client: Client, held: number) => void
  /** A retained message read for a SUBSCRIBE whose topic the client got live meanwhile (retained-order.ts): not sent. */
  alreadyLive: (client: Client, topic: string) => boolean
}

export function routeDeliveries (client: Client, opts: RouteOptions): void {
  const c = internals(client)
  const session = opts.session
  // decided before the router is installed (protocol/v5/accept.ts runs first among the connect steps)
  const v5 = v5Of(client)
  const window = receiveWindowOf(client)
  const out: Outbound = v5 === undefined
    ? V311
    : {
        v5: true,
        maxPacketBytes: v5.connect.maximumPacketSize,
        connection: v5,
        window,
        held: new HeldCopies(opts.maxHeldMessages, opts.maxHeldBytes),
        undelivered: opts.undelivered,
        onSlowConsumer: opts.onSlowConsumer,
        slow: false
      }
  // Copies still expected for a message that matched several of this client's filters (made when one does).
  let pendingCopies: Map<string, number> | undefined

  c.duplicates = noDuplicates

  // Room in the Receive Maximum: held copies go, oldest first, through the whole delivery chain (the slow-reader
  // limit counts them as it counts any copy), while there is room.
  window?.onFreed(() => {
    const held = out.held as HeldCopies<DeliveryPacket>
    while (held.size > 0 && !window.full && !c.closed) {
      const packet = held.shift() as Marked
      packet[HELD] = packet[HOLDING]
      c.deliverQoS(packet, noop)
    }
  })

  const route = (qos0Only: boolean): Deliver => (packet, cb) => {
    const held = (packet as Marked)[HELD]
    if (held !== undefined) {
      (packet as Marked)[HELD] = undefined
      deliverCopy(c, out, packet, cb, session, 0, '', held.retained, held.subscriptionIds)
      return
    }
    const shared = (packet as Marked)[SHARED] === true
    // a shared copy may have waited in its group; 0 = a live copy, which arrived just now
    const arrivedAt = shared ? (packet as Marked).arrivedAt ?? 0 : 0
    const group = shared ? (packet as Marked).group ?? '' : ''
    // aedes sends a retained message on SUBSCRIBE as a packet of its own with brokerId null
    // (lib/handlers/subscribe.js); a live copy carries the id of the broker it was published on, with RETAIN 1 when
    // its subscription is Retain As Published
    const retained = !shared && packet.brokerId === null
    if (retained && opts.alreadyLive(client, packet.topic)) {
      cb()
      return
    }
    // MQTT 5 No Local: a v5 publisher's id is on its packets (protocol/v5/accept.ts)
    const own = packet.clientId !== undefined && packet.clientId === c.id
    const plan = shared ? { matches: 1, maxQos: packet.qos, deliverable: 1 } : planDelivery(c.subscriptions, packet.topic, own)
    // MQTT 5 Subscription Identifiers: those of the subscriptions that deliver the copy (none for a client that gave none)
    const ids = out.connection === undefined
      ? undefined
      : retained ? retainedSubscriptionIds(packet.payload) : subscriptionIdsFor(out.connection, c.subscriptions, packet.topic, own, shared ? group : undefined)
    if (plan.matches === 0) {
      // No live subscription matches (it was removed while the message was in flight): sent as aedes' deliver0 or
      // deliverQoS would have sent it (at QoS 0, or at the QoS it carries), with an id from the session's allocator.
      if (qos0Only) packet.qos = 0
      deliverCopy(c, out, packet, cb, session, arrivedAt, group, retained, ids)
      return
    }
    if (plan.matches > 1 && packet.brokerId != null && isExtraCopy(pendingCopies ??= new Map(), `${packet.brokerId}:${String(packet.brokerCounter)}`, plan.matches)) {
      setImmediate(cb)
      return
    }
    if (plan.deliverable === 0) {
      // every matching subscription is No Local and this is the client's own message: not sent, as if delivered
      if (session !== undefined && packet.qos > 0) session.clear(c, packet).catch(noop)
      setImmediate(cb)
      return
    }
    packet.qos = Math.min(packet.qos, plan.maxQos) as 0 | 1 | 2
    const behind = session?.liveQos0
    if (behind !== undefined && behind.holding && packet.qos === 0 && !shared && !retained) {
      behind.hold(packet, () => { deliverCopy(c, out, packet, noop, session, arrivedAt, group, retained, ids) })
      setImmediate(cb)
      return
    }
    // a retained copy (sent on SUBSCRIBE) is not queued; a shared one is the group's
    if (session !== undefined && packet.qos > 0 && !shared && !retained && session.leftToQueue(packet)) {
      setImmediate(cb)
      return
    }
    deliverCopy(c, out, packet, cb, session, arrivedAt, group, retained, ids)
  }
  c.deliver0 = route(true)
  c.deliverQoS = route(false)
}

/** What the router needs of a persistent session's store; called through, as other features wrap these methods. */
export interface PersistentSession {
  /**
   * Whether a QoS 1/2 copy is the session queue's to send instead: while the queue is replayed, or when the queue
   * no longer holds it unsent (the replay sent it already).
   */
  leftToQueue: (packet: DeliveryPacket) => boolean
  /** Where live QoS 0 copies wait until the replay at CONNECT has ended (live-behind-replay.ts). */
  liveQos0?: LiveBehindReplay
  /** aedes' persistence.outgoingUpdate: the packet id a queued copy is sent with, recorded before it is sent. */
  update: (client: Client, packet: OutgoingCopy) => Promise<unknown>
  /** aedes' persistence.outgoingClearMessageId: a queued copy that will not be sent. */
  clear: (client: Client, packet: DeliveryPacket) => Promise<unknown>
}

/** The copy as it is sent, with the broker counter its session-queue entry is found by. */
export interface OutgoingCopy extends OutgoingPacket {
  brokerId?: string | null
  brokerCounter?: number
}

/**
 * Sends one routed copy, doing what aedes' deliver0/deliverQoS and write() did — authorizeForward, a packet id from
 * the session's allocator (packet-ids.ts) unless the copy brings one (a shared delivery), for a
 * persistent session the store's packet-id update before the write, and the callback once the socket takes more
 * (the publisher's acknowledgement waits for it) — without their cost: aedes wrote each copy from a setImmediate of
 * its own, through two packet objects and mqtt-packet's six separate writes, each passing every wrapper of the
 * connection's write. The copy leaves as one buffer, in the order the router got it (the store's updates resolve
 * in call order).
 */
function deliverCopy (c: ClientInternals, out: Outbound, packet: DeliveryPacket, cb: () => void, session: PersistentSession | undefined, arrivedAt: number, group: string, retained: boolean, subscriptionIds: number[] | undefined): void {
  const qos = packet.qos
  const forward = c.broker.authorizeForward(c, packet as never) as DeliveryPacket | null | undefined
  // an MQTT 3.1.1 subscriber gets no properties: the copy never carries them
  const properties = out.v5 && forward != null
    ? withSubscriptionIds(subscriberProperties(forward.properties ?? (retained ? retainedProperties(forward.payload) : undefined)), subscriptionIds)
    : undefined
  // a packet larger than the client accepts is not sent, as if it had been delivered (MQTT 5 [MQTT-3.1.2-25])
  const size = forward == null || out.maxPacketBytes === undefined ? 0 : publishSize(forward, qos, properties)
  if (forward == null || size > (out.maxPacketBytes ?? Infinity)) {
    // as aedes: a queued copy the client may not receive leaves the session queue
    if (session !== undefined && qos > 0) session.clear(c, packet).catch(noop)
    // a shared delivery brings an id taken for it, which this copy will not use
    if (qos > 0 && packet.messageId !== undefined) packetIds(c).release(packet.messageId)
    if (forward != null) tooLarge(c, out, packet, size, (packet as Marked)[SHARED] === true, (packet as Marked)[UNSENT])
    setImmediate(cb)
    return
  }
  const brought = forward.messageId
  if (qos === 0 || (brought !== undefined && brought !== 0)) {
    if (qos > 0) noteSent(c, out, forward, brought as number, qos, arrivedAt, group)
    sendCopy(c, out, packet, forward, properties, qos === 0 ? undefined : brought, cb, session, retained)
    return
  }
  if (out.window?.full === true) {
    hold(c, out, packet, session, retained, subscriptionIds)
    setImmediate(cb)
    return
  }
  const ids = packetIds(c)
  const messageId = ids.take()
  if (messageId !== undefined) {
    noteSent(c, out, forward, messageId, qos, arrivedAt, group)
    sendCopy(c, out, packet, forward, properties, messageId, cb, session, retained)
    return
  }
  // Every id is held: the copy waits for one, as it would for a socket that takes no more data.
  ids.wait((id) => {
    if (id === undefined) {
      setImmediate(cb)
      return
    }
    // other copies may have filled the client's Receive Maximum while this one waited
    if (out.window?.full === true) {
      ids.release(id)
      hold(c, out, packet, session, retained, subscriptionIds)
      setImmediate(cb)
      return
    }
    noteSent(c, out, forward, id, qos, arrivedAt, group)
    sendCopy(c, out, packet, forward, properties, id, cb, session, retained)
  })
}

/** The client's Receive Maximum is full: the copy waits (outbound.ts), with the plan it is to be sent by. */
function hold (c: ClientInternals, out: Outbound, packet: DeliveryPacket, session: PersistentSession | undefined, retained: boolean, subscriptionIds: number[] | undefined): void {
  (packet as Marked)[HOLDING] = { retained, subscriptionIds }
  waitForRoom(c, out, packet, session !== undefined, retained)
}

function noteSent (c: ClientInternals, out: Outbound, forward: DeliveryPacket, messageId: number, qos: number, arrivedAt: number, group: string): void {
  // the copy as it goes (its QoS set by the router); a shared one is marked with its group
  out.window?.sent(messageId, group === '' ? forward : { topic: forward.topic, payload: forward.payload, qos, retain: forward.retain, group })
  const observer = sentObserver(c)
  if (observer !== undefined) observer.sent(messageId, qos, arrivedAt === 0 ? Date.now() : arrivedAt, group)
}

function sendCopy (c: ClientInternals, out: Outbound, packet: DeliveryPacket, forward: DeliveryPacket, properties: Record<string, unknown> | undefined, messageId: number | undefined, cb: () => void, session: PersistentSession | undefined, retained: boolean): void {
  const qos = packet.qos
  const copy: OutgoingCopy = {
    cmd: 'publish',
    topic: forward.topic,
    payload: forward.payload,
    qos,
    retain: forward.retain,
    dup: forward.dup,
    messageId,
    brokerId: packet.brokerId,
    brokerCounter: packet.brokerCounter
  }
  if (properties !== undefined) copy.properties = properties
  if (session === undefined || qos === 0 || retained) {
    writeCopy(c, out, copy, cb)
    return
  }
  const update = session.update(c, copy)
  // A QoS 1 packet id is staged as the store returns (DONE): the copy is written in this turn, not from a microtask,
  // so the slow-reader limit sees the socket take it and keeps no record of it waiting
  if (update === DONE) {
    writeCopy(c, out, copy, cb)
    return
  }
  update.then(() => writeCopy(c, out, copy, cb), (err: unknown) => {
    // as aedes: a copy the store cannot account for ends the connection
    c.emit('error', err)
    cb()
  })
}

function writeCopy (c: ClientInternals, out: Outbound, copy: OutgoingCopy, cb: () => void): void {
  if (!(c.connecting || c.connected)) {
    setImmediate(cb)
    return
  }
  // a Topic Alias is set as the copy is encoded, just before its write: the client sees it set before it is used
  const aliases = out.connection?.aliasesOut
  let frame: Buffer
  try {
    frame = encodePacket(aliases === undefined ? copy : aliases.apply(copy), out.v5)
  } catch {
    // as aedes' write(): a packet that cannot be encoded ends the connection
    c.emit('error', new Error('packet received not valid'))
    setImmediate(cb)
    return
  }
  if (!c.conn.write(frame) && c.errored !== true) c.waitForDrain(cb)
  // A retained copy sent on SUBSCRIBE (aedes gives it no broker id) lets the next one follow in this turn of the
  // event loop, so the matches of a SUBSCRIBE leave in one socket write per store read instead of one write and one
  // turn each (the last of 100 matches took 15-18 ms). The socket's backpressure still holds them (above).
  else if (copy.retain === true && copy.brokerId == null) process.nextTick(cb)
  else setImmediate(cb)
}

function noop (): void {}

export type { DeliveryPacket }
