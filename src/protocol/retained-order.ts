import type { Client } from 'aedes'
import type { PublishStep, SubscribeStep } from '../hook-chain.js'
import { internals, type MqEmitter } from './aedes-internals.js'
import type { PublishStore } from './qos-publish.js'
import { topicMatches } from './topic.js'

/**
 * How long a SUBSCRIBE waits at most for the retained messages that arrived before it (one refused or failed after
 * it arrived may never be routed, and must not hold subscriptions up for longer), and how long after it the copies
 * its retained read sends are compared with the live ones.
 */
export const RETAINED_ORDER_CAP_MS = 1000

interface InFlight {
  arrivedAt: number
  /** Set once stored: the retained store holds it, the emitter has not matched it yet. */
  storedTopic: string | undefined
}

/**
 * A retained PUBLISH is checked and stored before it is routed, and a SUBSCRIBE's retained messages are read after
 * its subscription is made, so a subscriber racing a retained publisher got the message twice: from the retained
 * store (RETAIN 1) and live (RETAIN 0). A shared subscription, which gets no retained messages, got the live copy of
 * a message published before the group existed. Mosquitto handles each packet whole as it reads it: one copy in the
 * first case, none in the second. So, by which of the two Culex read first:
 *
 * - the PUBLISH: the SUBSCRIBE's filters are granted once the retained messages that arrived before it have been
 *   routed (or refused). The message then comes once, from the retained store; a shared subscription gets nothing.
 *   A SUBSCRIBE with no retained message in flight is not held at all;
 * - the SUBSCRIBE: a copy its retained read would send is left out (`alreadyLive`) when the client got the message
 *   live since its SUBSCRIBE was granted (routed after it, to a filter the client held by then), or will get it live
 *   (stored, not routed yet, and the client holds a filter it matches). The message then comes once, live.
 *
 * A message in flight is known by its payload, the one object aedes hands on from the PUBLISH as read to the packet
 * it stores and routes; one published by the broker itself (a will, `$SYS`) is known from its store step on.
 */
export function orderRetainedBeforeSubscribe (store: Pick<PublishStore, 'storeRetained'>, mq: MqEmitter) {
  const inFlight = new Map<unknown, InFlight>()
  /** Topics with a retained message stored and not yet routed, and how many. */
  const storedNotRouted = new Map<string, number>()
  const waiting = new Set<{ left: Set<unknown>, done: () => void }>()
  /** Every retained routing and subscription made takes the next number: which came first. */
  let seq = 0
  /**
   * The number of the last routing of each topic with a retained message routed lately: this generation's, and the
   * one before (a generation lasts RETAINED_ORDER_CAP_MS). Dropped whole, not entry by entry: a Map iterated from the
   * front after many deletes walks their holes each time.
   */
  let routed = new Map<string, number>()
  let routedBefore = new Map<string, number>()
  let routedSince = Date.now()
  let lastRouted = 0
  /** When the last SUBSCRIBE was granted. */
  let subscribedAt = 0
  /** When in-flight entries that never settled were last looked for. */
  let sweptAt = Date.now()
  /** The number current when each listener was added to the emitter (a client's subscription, by its deliver function). */
  const listenedFrom = new WeakMap<object, number>()
  /** The number current when each client's last SUBSCRIBE was granted. */
  const subscribedFrom = new WeakMap<Client, number>()

  const arrived = (payload: unknown): InFlight => {
    const now = Date.now()
    const entry: InFlight = { arrivedAt: now, storedTopic: undefined }
    inFlight.set(payload, entry)
    // one that never settles (a path not foreseen) is forgotten after the cap: looked for once per cap
    if (now - sweptAt > RETAINED_ORDER_CAP_MS) {
      sweptAt = now
      for (const [p, e] of inFlight) if (now - e.arrivedAt > RETAINED_ORDER_CAP_MS) forget(p, e)
    }
    return entry
  }
  /** Matched by the emitter (or refused, or failed): no longer waiting to be routed. */
  const matched = (entry: InFlight): void => {
    const topic = entry.storedTopic
    if (topic === undefined) return
    entry.storedTopic = undefined
    const n = (storedNotRouted.get(topic) ?? 1) - 1
    if (n > 0) storedNotRouted.set(topic, n)
    else storedNotRouted.delete(topic)
  }
  const forget = (payload: unknown, entry: InFlight): void => {
    matched(entry)
    inFlight.delete(payload)
  }
  /** Routed (its deliveries done), refused or failed: SUBSCRIBEs waiting for it go on. */
  const settled = (payload: unknown): void => {
    const entry = inFlight.get(payload)
    if (entry === undefined) return
    forget(payload, entry)
    for (const w of waiting) {
      w.left.delete(payload)
      if (w.left.size === 0) w.done()
    }
  }

  const storeRetained = store.storeRetained.bind(store)
  store.storeRetained = (packet) => {
    const payload: unknown = packet.payload
    const entry = inFlight.get(payload) ?? arrived(payload)
    if (entry.storedTopic === undefined) {
      const topic = String(packet.topic)
      entry.storedTopic = topic
      storedNotRouted.set(topic, (storedNotRouted.get(topic) ?? 0) + 1)
    }
    const stored = storeRetained(packet)
    // not stored, it is not routed either (the publisher is refused)
    stored.then(undefined, () => { settled(payload) })
    return stored
  }

  const noteRouted = (topic: string): void => {
    const now = Date.now()
    // no SUBSCRIBE granted lately: no retained read for a routing to overtake (a storm of retained PUBLISHes with no
    // one subscribing costs a clock read each)
    if (now - subscribedAt > RETAINED_ORDER_CAP_MS) return
    if (now - routedSince > RETAINED_ORDER_CAP_MS) {
      routedBefore = routed
      routed = new Map()
      routedSince = now
    }
    lastRouted = ++seq
    routed.set(topic, lastRouted)
  }
  const on = mq.on.bind(mq)
  mq.on = (topic, notify, done) => {
    listenedFrom.set(notify, ++seq)
    return on(topic, notify, done)
  }
  const emit = mq.emit.bind(mq)
  mq.emit = (packet, done) => {
    if (packet.retain) noteRouted(packet.topic)
    const entry = inFlight.size === 0 ? undefined : inFlight.get(packet.payload)
    if (entry === undefined) {
      emit(packet, done)
      return
    }
    matched(entry)
    emit(packet, (err) => {
      settled(packet.payload)
      done?.(err)
    })
  }

  /** The first publish check: a retained PUBLISH is in flight from its arrival. */
  const noteArrival: PublishStep = (_client, packet) => {
    if (packet.retain && !inFlight.has(packet.payload)) arrived(packet.payload)
    return undefined
  }
  /** A retained PUBLISH refused by a check: it is not routed. */
  const noteRefused = (packet: { retain?: boolean, payload: unknown }): void => {
    if (packet.retain === true) settled(packet.payload)
  }

  const watch = (client: Client): true => {
    subscribedAt = Date.now()
    subscribedFrom.set(client, seq)
    return true
  }
  /** The last subscribe check: granted once the retained messages that arrived before it are routed. */
  const afterRetainedInFlight: SubscribeStep = (client) => {
    if (inFlight.size === 0) return watch(client)
    const now = Date.now()
    const left = new Set<unknown>()
    for (const [p, e] of inFlight) {
      if (now - e.arrivedAt > RETAINED_ORDER_CAP_MS) forget(p, e)
      else left.add(p)
    }
    if (left.size === 0) return watch(client)
    return new Promise<true>((resolve) => {
      const w = {
        left,
        done: () => {
          clearTimeout(cap)
          waiting.delete(w)
          resolve(watch(client))
        }
      }
      const cap = setTimeout(w.done, RETAINED_ORDER_CAP_MS)
      waiting.add(w)
    })
  }

  /**
   * A retained message read from the store for a SUBSCRIBE that reaches the client live: one still to be routed to
   * a filter the client holds, or one routed since the SUBSCRIBE was granted to a filter the client held then.
   */
  const alreadyLive = (client: Client, topic: string): boolean => {
    const pending = storedNotRouted.size > 0 && storedNotRouted.has(topic)
    const from = subscribedFrom.get(client)
    // the number of its routing since the SUBSCRIBE; nothing routed since (the common case): no topic looked up
    const r = from === undefined || lastRouted <= from ? undefined : routed.get(topic) ?? routedBefore.get(topic)
    const since = r !== undefined && r > (from ?? Infinity) ? r : undefined
    if (!pending && since === undefined) return false
    const subscriptions = internals(client).subscriptions
    for (const filter in subscriptions) {
      if (!topicMatches(filter, topic)) continue
      if (pending || (listenedFrom.get(subscriptions[filter].func as object) ?? 0) < (since as number)) return true
    }
    return false
  }
  return { noteArrival, noteRefused, afterRetainedInFlight, alreadyLive }
}
