import { createRequire } from 'node:module'
import type { Client, PublishPacket } from 'aedes'
import type { BrokerInternals, DeliveryPacket } from './aedes-internals.js'
import type { CulexStore } from '../store/contract.js'
import type { InboundRecordRef, PacketLike } from '../store/types.js'

/** The store calls a QoS 1/2 publish makes: aedes' persistence (aedes-persistence 11; CulexStore or the Redis store). */
export type PublishStore = Pick<CulexStore, 'storeRetained' | 'subscriptionsByTopic' | 'subscriptionsByTopicNow' | 'outgoingEnqueueCombi' | 'outgoingEnqueueLive'>

type PacketClass = new (original: PublishPacket, broker: BrokerInternals) => DeliveryPacket

/** aedes' own aedes-packet (aedes.js imports it), resolved as aedes resolves it: the object every listener gets. */
const Packet = createRequire(createRequire(import.meta.url).resolve('aedes'))('aedes-packet') as PacketClass

const SYS_PREFIX = '$SYS/'

function levelsOf (topic: string): number {
  let levels = 1
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) levels++
  return levels
}

/** A `$SYS/` message is queued only for filters that name `$SYS` (aedes' enqueueOffline drops `+` and `#` first). */
function namesLevel (sub: { topic: string }): boolean {
  const code = sub.topic.charCodeAt(0)
  return code !== 43 && code !== 35
}

type LiveEnqueue = NonNullable<ReturnType<NonNullable<PublishStore['outgoingEnqueueLive']>>>

/** Settles a live enqueue; the callback returned calls `done` once both it and the enqueue's settling have ended. */
function bothSettled (live: LiveEnqueue, done: (err?: Error | null) => void): (err?: Error | null) => void {
  let pending = 2
  let failure: Error | null | undefined
  const one = (err?: Error | null): void => {
    failure ??= err
    if (--pending === 0) done(failure)
  }
  live.settle(one)
  return one
}

/**
 * aedes' broker.publish of a QoS 1/2 packet, step for step and in its order (aedes.js: the topic level limit, a new
 * aedes-packet with the next broker counter, then storeRetained, enqueueOffline, emitPacket and callPublished), with
 * the same calls on the store, on `broker.mq.emit` (which sessions, shared subscriptions and the cluster wrap), on
 * the `published` hook and the 'publish' event, and the same outcome for each failure — without what aedes makes for
 * every message around them (a PublishState, runSeries' bound callback and step closure, enqueueOffline's
 * DoEnqueues and its closure), and, when the store matches from memory, without the promise of
 * subscriptionsByTopic and the turn of the microtask queue it costs: about 0.3 kB fewer allocated per persistent
 * QoS 1 message (bench/fixed-load.mjs --persistent --alloc: 8.1-8.4 → 7.9 kB). `inbound`, a QoS 2 publisher's
 * record, goes into the store with the enqueue (one atomic write: publish-gate.ts).
 */
export function publishQoS (broker: BrokerInternals, store: PublishStore, packet: PublishPacket, client: Client | null, done: (err?: Error | null) => void, inbound?: InboundRecordRef): void {
  if (levelsOf(packet.topic) > (broker as unknown as { maxTopicLevels: number }).maxTopicLevels) {
    done(new Error('topic has too many levels'))
    return
  }
  // one object for the steps below rather than a closure per step: this runs for every QoS 1/2 PUBLISH
  const run: Run = { broker, store, packet, p: new Packet(packet, broker), client, done, inbound }
  if (run.p.retain === true) store.storeRetained(run.p as PacketLike).then(() => { enqueue(run) }, done)
  else enqueue(run)
}

interface Run {
  broker: BrokerInternals
  store: PublishStore
  packet: PublishPacket
  /** The aedes-packet every listener gets. */
  p: DeliveryPacket
  client: Client | null
  done: (err?: Error | null) => void
  inbound: InboundRecordRef | undefined
}

function enqueue (run: Run): void {
  const store = run.store
  if (store.subscriptionsByTopicNow !== undefined) {
    let subs: ReadonlyArray<{ clientId: string, topic: string }>
    try {
      subs = store.subscriptionsByTopicNow(run.p.topic)
    } catch (err) {
      run.broker.emit('error', err)
      return
    }
    enqueueFor(run, subs)
    return
  }
  store.subscriptionsByTopic(run.p.topic).then(subs => { enqueueFor(run, subs) }, (err: Error) => {
    // as aedes: a store that cannot say who is subscribed fails the broker, and the publish never completes
    run.broker.emit('error', err)
  })
}

function enqueueFor (run: Run, subs: ReadonlyArray<{ clientId: string, topic: string }>): void {
  const { store, p, inbound } = run
  const stored = p as PacketLike
  const targets = p.topic.startsWith(SYS_PREFIX) ? subs.filter(namesLevel) : subs
  if (store.outgoingEnqueueLive !== undefined && p.qos === 1 && p.retain !== true && inbound === undefined && targets.length > 0) {
    let live
    try {
      live = store.outgoingEnqueueLive(targets, stored)
    } catch (err) {
      run.done(err as Error)
      return
    }
    if (live !== undefined) {
      emit(run, live)
      return
    }
  }
  store.outgoingEnqueueCombi(targets, stored, inbound).then(() => { emit(run) }, run.done)
}

/**
 * Hands the message to every listener, then calls `published`. `live`: the copies were queued unwritten; once every
 * listener has had its copy they are settled (live-copies.ts): those sent wait for their PUBACK, the others are
 * written, and `done` waits for both that and `published`.
 */
function emit (run: Run, live?: LiveEnqueue): void {
  const { broker, packet, client, p } = run
  if (client !== null && client !== undefined) p.clientId = client.id
  broker.mq.emit(p, (err) => {
    const finish = live === undefined ? run.done : bothSettled(live, run.done)
    if (err !== undefined && err !== null) {
      finish(err)
      return
    }
    broker.published(packet as never, client as never, finish)
    broker.emit('publish', packet, client)
  })
}
