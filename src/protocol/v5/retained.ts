import { Readable } from 'node:stream'
import type { Client } from 'aedes'
import { topicMatches } from '../topic.js'
import { v5Of, type V5Connection } from './connection.js'
import { subscriptionIdsFor } from './subscription-ids.js'

/**
 * Retained messages sent on SUBSCRIBE, as MQTT 5 has them. aedes 1.2 sends them itself (lib/handlers/subscribe.js
 * completeSubscribe): right after it emits 'subscribe' it reads every granted filter's retained messages through
 * persistence.createRetainedStreamCombi and hands each to the client's deliverQoS as a new packet made of its
 * command, QoS, topic and payload only, with brokerId null. So:
 *
 * - the stream is read only for the filters whose Retain Handling asks for retained messages (0: always, 1: only
 *   for a subscription that did not exist, 2: never; MQTT 5 §3.3.1.3), and a message the client itself published
 *   is left out where its every matching filter is No Local [MQTT-3.8.3-3];
 * - what aedes leaves behind, the stored properties and the Subscription Identifiers of the filters the message
 *   matched, is kept by the payload, the one object that travels from the store to the delivery router unchanged.
 */
interface RetainedCopy { properties: unknown, subscriptionIds: number[] | undefined }
const copies = new WeakMap<object, RetainedCopy>()

/** Subscription objects of a SUBSCRIBE whose filter the client held already when the packet arrived. */
const existing = new WeakSet<object>()

export interface RetainedSource {
  createRetainedStreamCombi: (patterns: string[]) => Readable
}

interface StoredRetained { topic?: unknown, payload?: unknown, properties?: unknown, clientId?: unknown }

/** A SUBSCRIBE's filter as aedes emits it with 'subscribe': its granted QoS (128 = refused) and its options. */
export interface GrantedSubscription { topic: string, qos: number, rh?: number, nl?: boolean }

/** Called with a v5 client's SUBSCRIBE before aedes handles it: which of its filters the client holds already. */
export function noteExistingSubscriptions (subscriptions: Record<string, unknown>, subs: ReadonlyArray<{ topic: string }>): void {
  for (const sub of subs) if (subscriptions[sub.topic] !== undefined) existing.add(sub)
}

const REFUSED = 128
const SEND_IF_NEW = 1
const NEVER = 2

function wantsRetained (sub: GrantedSubscription): boolean {
  if (sub.qos === REFUSED) return false
  if (sub.rh === NEVER) return false
  return !(sub.rh === SEND_IF_NEW && existing.has(sub))
}

/**
 * `onSubscribe` is aedes' 'subscribe' event. The SUBSCRIBE it reports is the one whose retained messages aedes
 * reads next, in the same synchronous run (between them aedes only publishes its $SYS notice): that run is the
 * only window in which the next read is taken for it, and only when its filters are the granted ones of that SUBSCRIBE.
 */
export function carryRetained (store: RetainedSource, onSubscribe: (listener: (subs: GrantedSubscription[], client: Client) => void) => void): void {
  let pending: { connection: V5Connection | undefined, subs: GrantedSubscription[] } | undefined
  onSubscribe((subs, client) => {
    pending = { connection: v5Of(client), subs }
    process.nextTick(() => { pending = undefined })
  })
  const stream = store.createRetainedStreamCombi.bind(store)
  store.createRetainedStreamCombi = (patterns) => {
    const subscribe = pending
    pending = undefined
    if (subscribe === undefined || !isGrantedOf(patterns, subscribe.subs)) return stream(patterns).map(keep(undefined, []))
    const { connection } = subscribe
    // an MQTT 3.1.1 client's SUBSCRIBE has no options to honour and its copies carry no properties: the store's
    // stream as it is (a Readable.map costs an async iterator, a stream and a promise per message)
    if (connection === undefined) return stream(patterns)
    const wanted = subscribe.subs.filter(wantsRetained)
    if (wanted.length === 0) return Readable.from([])
    return stream(wanted.map(sub => sub.topic))
      .filter((packet: StoredRetained) => !isOwnNoLocal(connection, wanted, packet))
      .map(keep(connection, wanted))
  }
}

function isGrantedOf (patterns: string[], subs: GrantedSubscription[]): boolean {
  let i = 0
  for (const sub of subs) {
    if (sub.qos === REFUSED) continue
    if (patterns[i++] !== sub.topic) return false
  }
  return i === patterns.length
}

function isOwnNoLocal (connection: V5Connection, wanted: GrantedSubscription[], packet: StoredRetained): boolean {
  if (packet.clientId === undefined || packet.clientId !== connection.client.id) return false
  const topic = String(packet.topic)
  return wanted.every(sub => sub.nl === true || !topicMatches(sub.topic, topic))
}

function keep (connection: V5Connection | undefined, wanted: GrantedSubscription[]) {
  // the filters of this SUBSCRIBE as the identifiers' lookup reads a client's subscriptions
  const filters: Record<string, { nl?: boolean }> = Object.create(null)
  for (const sub of wanted) filters[sub.topic] = sub
  return (packet: StoredRetained): StoredRetained => {
    const subscriptionIds = connection === undefined
      ? undefined
      : subscriptionIdsFor(connection, filters, String(packet.topic), packet.clientId !== undefined && packet.clientId === connection.client.id)
    if ((packet.properties !== undefined || subscriptionIds !== undefined) && typeof packet.payload === 'object' && packet.payload !== null) {
      copies.set(packet.payload, { properties: packet.properties, subscriptionIds })
    }
    return packet
  }
}

/** The stored properties of a retained message aedes is sending to a new subscriber, found by its payload. */
export function retainedProperties (payload: unknown): unknown {
  return typeof payload === 'object' && payload !== null ? copies.get(payload)?.properties : undefined
}

/** The Subscription Identifiers of the filters a retained message sent on SUBSCRIBE matched. */
export function retainedSubscriptionIds (payload: unknown): number[] | undefined {
  return typeof payload === 'object' && payload !== null ? copies.get(payload)?.subscriptionIds : undefined
}
