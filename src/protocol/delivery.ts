import type { Client } from 'aedes'
import { internals, type ClientInternals, type Deliver, type DeliveryPacket } from './aedes-internals.js'
import { encodePacket, type OutgoingPacket } from './frames.js'
import { packetIds } from './packet-ids.js'
import { topicMatches } from './topic.js'

/**
 * Marks packets a shared-subscription group hands to the member it chose (src/shared-subscriptions). A symbol-keyed
 * property rather than a WeakSet: adding to a WeakSet for every shared delivery cost about 0.3 µs.
 */
const SHARED = Symbol('culex.sharedDelivery')
type Marked = DeliveryPacket & { [SHARED]?: true }

/**
 * Marks a packet a shared-subscription group delivers to one member: the router sends it at the QoS it carries
 * (the group computed min(publish QoS, the member's granted QoS)), without planning over the client's other filters
 * and without counting it as one of their copies, so a client with both a shared and a normal subscription gets both.
 */
export function markSharedDelivery (packet: DeliveryPacket): void {
  (packet as Marked)[SHARED] = true
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

export function routeDeliveries (client: Client, session?: PersistentSession): void {
  const c = internals(client)
  // Copies still expected for a message that matched several of this client's filters (made when one does).
  let pendingCopies: Map<string, number> | undefined

  c.duplicates = noDuplicates

  const route = (qos0Only: boolean): Deliver => (packet, cb) => {
    const shared = (packet as Marked)[SHARED] === true
    const plan = shared ? { matches: 1, maxQos: packet.qos } : planDelivery(c.subscriptions, packet.topic)
    if (plan.matches === 0) {
      // No live subscription matches (it was removed while the message was in flight): sent as aedes' deliver0 or
      // deliverQoS would have sent it (at QoS 0, or at the QoS it carries), with an id from the session's allocator.
      if (qos0Only) packet.qos = 0
      deliverCopy(c, packet, cb, session)
      return
    }
    if (plan.matches > 1 && packet.brokerId != null && isExtraCopy(pendingCopies ??= new Map(), `${packet.brokerId}:${String(packet.brokerCounter)}`, plan.matches)) {
      setImmediate(cb)
      return
    }
    packet.qos = Math.min(packet.qos, plan.maxQos) as 0 | 1 | 2
    // a retained copy (sent on SUBSCRIBE) is not queued; a shared one is the group's
    if (session !== undefined && packet.qos > 0 && !shared && packet.retain !== true && session.leftToQueue(packet)) {
      setImmediate(cb)
      return
    }
    deliverCopy(c, packet, cb, session)
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
function deliverCopy (c: ClientInternals, packet: DeliveryPacket, cb: () => void, session: PersistentSession | undefined): void {
  // aedes' no-local check is left out: mqtt-packet sets no-local only for MQTT 5 subscriptions, which aedes 1.2 refuses.
  const qos = packet.qos
  const forward = c.broker.authorizeForward(c, packet as never) as DeliveryPacket | null | undefined
  if (forward == null) {
    // as aedes: a queued copy the client may not receive leaves the session queue
    if (session !== undefined && qos > 0) session.clear(c, packet).catch(noop)
    // a shared delivery brings an id taken for it, which this copy will not use
    if (qos > 0 && packet.messageId !== undefined) packetIds(c).release(packet.messageId)
    setImmediate(cb)
    return
  }
  const brought = forward.messageId
  if (qos === 0 || (brought !== undefined && brought !== 0)) {
    sendCopy(c, packet, forward, qos === 0 ? undefined : brought, cb, session)
    return
  }
  const ids = packetIds(c)
  const messageId = ids.take()
  if (messageId !== undefined) {
    sendCopy(c, packet, forward, messageId, cb, session)
    return
  }
  // Every id is held: the copy waits for one, as it would for a socket that takes no more data.
  ids.wait((id) => {
    if (id === undefined) setImmediate(cb)
    else sendCopy(c, packet, forward, id, cb, session)
  })
}

function sendCopy (c: ClientInternals, packet: DeliveryPacket, forward: DeliveryPacket, messageId: number | undefined, cb: () => void, session: PersistentSession | undefined): void {
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
  if (session === undefined || qos === 0 || copy.retain === true) {
    writeCopy(c, copy, cb)
    return
  }
  session.update(c, copy).then(() => writeCopy(c, copy, cb), (err: unknown) => {
    // as aedes: a copy the store cannot account for ends the connection
    c.emit('error', err)
    cb()
  })
}

function writeCopy (c: ClientInternals, copy: OutgoingCopy, cb: () => void): void {
  if (!(c.connecting || c.connected)) {
    setImmediate(cb)
    return
  }
  let frame: Buffer
  try {
    frame = encodePacket(copy)
  } catch {
    // as aedes' write(): a packet that cannot be encoded ends the connection
    c.emit('error', new Error('packet received not valid'))
    setImmediate(cb)
    return
  }
  if (!c.conn.write(frame) && c.errored !== true) c.waitForDrain(cb)
  else setImmediate(cb)
}

function noop (): void {}

function isExtraCopy (pending: Map<string, number>, key: string, matches: number): boolean {
  const left = pending.get(key)
  if (left === undefined) {
    // A subscription change between copies can strand an entry; the cap keeps that from growing.
    if (pending.size > 10_000) pending.clear()
    pending.set(key, matches - 1)
    return false
  }
  if (left <= 1) pending.delete(key)
  else pending.set(key, left - 1)
  return true
}

export interface DeliveryPlan { matches: number, maxQos: number }

export function planDelivery (subscriptions: Record<string, { qos: number }>, topic: string): DeliveryPlan {
  let matches = 0
  let maxQos = 0
  for (const filter in subscriptions) {
    // Shared subscriptions are dispatched by their group, never as a plain subscription.
    if (filter.startsWith('$share/')) continue
    if (!topicMatches(filter, topic)) continue
    matches++
    const qos = subscriptions[filter].qos
    if (qos > maxQos) maxQos = qos
  }
  return { matches, maxQos }
}

export type { DeliveryPacket }
