import type { Client, PublishPacket } from 'aedes'
import type { BrokerInternals } from './aedes-internals.js'
import { inArrivalOrder } from './ack-order.js'
import { publishQoS, type PublishStore } from './qos-publish.js'
import type { PacketLike, StreamAppend } from '../store/types.js'

/**
 * aedes 1.2 writes a QoS 1 PUBACK before it stores and routes the message, so a crash in between loses a message
 * the publisher was told is safe. The gate reverses that: the QoS 1 publish runs to completion (retained stored,
 * queued for every persistent subscriber, emitted, each queued copy committed or acknowledged by its subscriber:
 * src/store/live-copies.ts) inside authorizePublish, and only then does aedes send the PUBACK, in arrival order
 * (ack-order.ts). aedes then calls publish() for the same packet object, which the gate turns into a no-op.
 * QoS 2 already publishes before PUBREC, but a copy resent before the first one is stored looks new to aedes and was
 * delivered twice; the gate remembers each client's QoS 2 ids from PUBLISH to PUBREL and settles such a copy, so
 * it is acknowledged and not published again [MQTT-4.3.3-2], once the first copy is stored (and not if that fails).
 * A persistent client's QoS 2 record is written in one atomic step with the message's queue entries (the enqueue
 * carries it: a kill -9 leaves both or neither, so a resend after a crash is a duplicate exactly when the message is
 * queued), and deleted again if the publish failed later, so the resend that follows a failure is stored again
 * instead of being taken for a duplicate. With replicas asked for (cluster.redisWaitReplicas), a publish is acknowledged only once they have
 * its writes; a QoS 2 publish also waits for them before aedes looks for its record, so that a resend is not answered
 * from a record only the Redis master has (the DUP flag is gone by then: packet-guard.ts clears it).
 */
export interface PublishGate {
  /** Makes aedes' own publish of this packet a no-op (it was published already, or refused). */
  settle: (packet: PublishPacket) => void
  /** Publishes a client's QoS 1 message now, so the acknowledgement that follows is durable; settles QoS 2 resends. */
  commit: (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) => void
  /** Called when a QoS 2 message is released (PUBREL): its id may now carry a new message. */
  released: (client: Client, messageId: number | undefined) => void
  /** While a client id's QoS 2 publish of this id is being stored: settles once it is stored or has failed. */
  storing: (clientId: string, messageId: number) => Promise<unknown> | undefined
}

/** The store's inbound QoS 2 records of persistent clients, its replicas, and what a publish stores (CulexStore). */
export interface IncomingRecords extends PublishStore {
  incomingWrite: (client: Client, messageId: number) => Promise<void>
  incomingForget: (client: Client, messageId: number) => void
  replicated: () => Promise<void> | undefined
}

/**
 * Answers `done` once the store's replicas have what was written so far. With nothing to wait for (no replicas asked
 * for, the LevelDB store) `done` is answered at once and is the caller's own callback, not a closure made for it:
 * this runs for every QoS 1/2 publish.
 */
function whenReplicated (records: IncomingRecords, done: (err: Error | null) => void): void {
  const waiting = records.replicated()
  if (waiting === undefined) done(null)
  else waiting.then(() => { done(null) }, (err: Error) => { done(err) })
}

/**
 * Marks a packet whose publish is done with (published by the gate, or refused): a symbol-keyed property rather than a
 * WeakSet, whose add, has and delete for every QoS 1 publish cost about 0.5 µs per message (fan-in to a persistent
 * subscriber, CPU profile of the broker).
 */
const SETTLED = Symbol('culex.settledPublish')
type Settled = PublishPacket & { [SETTLED]?: object | undefined }

/** The mark holds the packet itself, so a copy spread from a marked packet is not taken as settled. */
function settle (packet: PublishPacket): void {
  (packet as Settled)[SETTLED] = packet
}

/**
 * Whether a publish of `topic` is written anywhere after its enqueue (a shared group's queue or inbox, a queued QoS 0
 * copy; the other nodes' streams are written with the record, `StreamAppends`): a QoS 2 record carried by the enqueue would then make a resend after a kill -9 between the two
 * a duplicate of a message those never got, so such a publish's record is written after them, as before (a resend
 * may then be published again: a duplicate, never a loss).
 */
export type WritesAfterEnqueue = (topic: string) => boolean

/** Cluster mode: a message's entries for the other nodes' streams, written with the record (cluster/hooks.ts). */
export type StreamAppends = (packet: PacketLike, publisherId: string) => StreamAppend[]

export function installPublishGate (broker: BrokerInternals, records: IncomingRecords, writesAfterEnqueue: WritesAfterEnqueue, streamAppends?: StreamAppends): PublishGate {
  const awaitingRelease = new WeakMap<Client, Set<number>>()
  /** How each QoS 2 publish of a connection ended (its error, if it failed), by id, until PUBREL. */
  const outcomes = new WeakMap<Client, Map<number, Promise<Error | undefined>>>()
  /** The QoS 2 publishes being stored, by client id (a resend can come on a new connection) and id. */
  const storing = new Map<string, Map<number, Promise<Error | undefined>>>()
  const publish = broker.publish.bind(broker)

  broker.publish = (packet, client, done) => {
    if (typeof client === 'function') {
      done = client
      client = null
    }
    const messageId = packet.messageId
    if ((packet as Settled)[SETTLED] === packet) {
      (packet as Settled)[SETTLED] = undefined
      const first = client === null || client === undefined || messageId === undefined ? undefined : outcomes.get(client)?.get(messageId)
      if (first === undefined || client === null || client === undefined || messageId === undefined) {
        done?.()
        return
      }
      // A QoS 2 resend is acknowledged only once the first copy is stored, and fails with it. aedes may have recorded
      // it as new (it looked before the first was recorded, or after the first failed): its record goes the same way.
      const resender = client
      void first.then(err => {
        if (err !== undefined) {
          records.incomingForget(resender, messageId)
          done?.(err)
          return
        }
        records.incomingWrite(resender, messageId).then(() => { whenReplicated(records, err => done?.(err ?? undefined)) }, (failed: Error) => done?.(failed))
      })
      return
    }
    if (packet.qos !== 2 || client === null || client === undefined || messageId === undefined) {
      publish(packet, client, done)
      return
    }
    const publisher = client
    let ended!: (err: Error | undefined) => void
    const outcome = new Promise<Error | undefined>(resolve => { ended = resolve })
    // Kept until PUBREL (released): a resend settled before the first copy ended learns from it how it ended.
    let ofClient = outcomes.get(publisher)
    if (ofClient === undefined) outcomes.set(publisher, ofClient = new Map())
    ofClient.set(messageId, outcome)
    let ofId = storing.get(publisher.id)
    if (ofId === undefined) storing.set(publisher.id, ofId = new Map())
    ofId.set(messageId, outcome)
    const end = (failure: Error | null | undefined): void => {
      const err = failure ?? undefined
      const current = storing.get(publisher.id)
      if (current?.get(messageId) === outcome) current.delete(messageId)
      if (current?.size === 0) storing.delete(publisher.id)
      if (err !== undefined) awaitingRelease.get(publisher)?.delete(messageId)
      ended(err)
      done?.(err)
    }
    publishQoS(broker, records, packet, publisher, err => {
      if (err !== undefined && err !== null) {
        records.incomingForget(publisher, messageId)
        end(err)
        return
      }
      records.incomingWrite(publisher, messageId).then(() => { whenReplicated(records, end) }, (failed: Error) => { end(failed) })
    }, writesAfterEnqueue(packet.topic)
      ? undefined
      : { client: publisher, messageId, ...(streamAppends === undefined ? {} : { appends: (p: PacketLike) => streamAppends(p, publisher.id) }) })
  }

  return {
    settle,
    released: (client, messageId) => {
      if (messageId === undefined) return
      awaitingRelease.get(client)?.delete(messageId)
      outcomes.get(client)?.delete(messageId)
    },
    storing: (clientId, messageId) => storing.get(clientId)?.get(messageId),
    commit: (client, packet, done) => {
      if (packet.qos === 2 && client !== null && packet.messageId !== undefined) {
        let ids = awaitingRelease.get(client)
        if (ids === undefined) awaitingRelease.set(client, ids = new Set())
        if (ids.has(packet.messageId)) settle(packet)
        else ids.add(packet.messageId)
        whenReplicated(records, done)
        return
      }
      if (packet.qos !== 1) {
        done(null)
        return
      }
      const acknowledge = client === null ? done : inArrivalOrder(client, done)
      publishQoS(broker, records, packet, client, err => {
        if (err !== undefined && err !== null) {
          acknowledge(err)
          return
        }
        settle(packet)
        whenReplicated(records, acknowledge)
      })
    }
  }
}
