import type { AedesPublishPacket, Client } from 'aedes'
import type { SubscribeStep } from '../hook-chain.js'
import { clientLogger } from '../log/client-log.js'
import type { Logger } from '../log/logger.js'
import { internals, type BrokerInternals, type DeliveryPacket } from '../protocol/aedes-internals.js'
import { markSharedDelivery } from '../protocol/delivery.js'
import { packetIds } from '../protocol/packet-ids.js'
import { tapAcknowledgements } from '../protocol/packet-tap.js'
import { receiveWindowOf } from '../protocol/v5/receive-window.js'
import { acknowledgeShared, RemoteAcks, type AckPacket, type AckTargets } from './acknowledgements.js'
import { localMembers, RemoteMember, type MemberEvents, type RemoteAck, type SharedCluster, type SharedHandle, type SharedLocal } from './cluster-port.js'
import { SharedEngine } from './engine.js'
import type { Group } from './group.js'
import { sweepIntervalMs } from './policy.js'
import { IssuedIds } from './issued-ids.js'
import { PendingSubscribers } from './pending-subscribers.js'
import { restoreShared, storedMembers, storedShares } from './restore.js'
import { isShareFilter, isShareName, parseShare } from './share-name.js'
import type { EngineOptions, EnginePort, IncomingMessage, OutPacket } from './types.js'
import { WakeTimer } from './wake-timer.js'
import { wrapSharedStore, type SharedStore } from './store-wrap.js'

type Listener = (packet: AedesPublishPacket, cb: () => void) => void
type Handle = SharedHandle<Client>

/**
 * The only shared-subscription code that touches aedes (see docs/shared-subscriptions.md, "How it hooks in"):
 *
 * - broker.subscribe / broker.unsubscribe are overridden for `$share/` filters: aedes calls them for every
 *   subscription a client gains or loses (SUBSCRIBE, session restore, a QoS change as unsubscribe + subscribe, and
 *   every subscription when the client closes, with client.closed already true). The client is the one whose
 *   client.subscriptions[topic].func is the function passed (set just before the call), among the clients the last
 *   subscribe step saw. One listener per group is registered on the real filter instead.
 * - deliveries go through the client's deliverQoS/deliver0 with a packet identifier from the session's allocator and
 *   marked for the delivery router; for a persistent session the router then calls persistence.outgoingUpdate, which is
 *   answered here (the durable copy is the group queue's, not the session's).
 * - PUBACK/PUBREC/PUBCOMP are seen through the connection's packet tap (src/protocol/packet-tap.ts), for clean sessions too.
 */
export function createSharedHooks (broker: BrokerInternals, store: SharedStore, opts: Omit<EngineOptions, 'log'>, log: Logger) {
  const pending = new PendingSubscribers<Client>((client, filter, func) => internals(client).subscriptions[filter]?.func === func, client => client.closed)
  const owners = new WeakMap<object, Client>()
  const issued = new IssuedIds<Client>()
  const watched = new WeakSet<Client>()
  const watchedClose = new WeakSet<Client>()
  const listeners = new Map<Group<Handle>, Listener>()
  const remoteAcks = new RemoteAcks<Client>()
  let cluster: SharedCluster<Client> | undefined
  /** Publishes whose group-queue write failed, until their emit completes. */
  const unstored = new WeakMap<object, Error>()
  const origSubscribe = broker.subscribe.bind(broker)
  const origUnsubscribe = broker.unsubscribe.bind(broker)

  // What mayReceive hands authorizeForward (which reads the topic): one object, reused, as the check is synchronous.
  const probe = { cmd: 'publish', topic: '', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false } as unknown as AedesPublishPacket
  const wakeTimer = new WakeTimer(() => { engine.release() })
  const mayReceive = (client: Client, topic: string, qos: number): boolean => {
    // a member all of whose packet ids are held, or (MQTT 5) with its Receive Maximum unacknowledged, takes no
    // QoS 1/2 message until it acknowledges something
    if (client.closed || !packetIds(client).available() || (qos > 0 && receiveWindowOf(client)?.full === true)) return false
    probe.topic = topic
    return broker.authorizeForward(client, probe) != null
  }
  /** `refused`: a copy larger than the member accepts (MQTT 5 Maximum Packet Size) is refused on its behalf. */
  const deliverTo = (client: Client, packet: OutPacket, sent: () => void, refused: (why: string) => void): void => {
    const c = internals(client)
    // The engine's packet has the aedes publish shape: handed over as it is, marked for the delivery router.
    const out = packet as DeliveryPacket
    if (packet.qos === 0 || packet.messageId === undefined) {
      markSharedDelivery(out)
      c.deliver0(out, sent)
      return
    }
    const id = packet.messageId
    markSharedDelivery(out, why => {
      issued.end(client, id)
      refused(why)
    })
    issued.issue(client, id, packet.brokerCounter)
    c.deliverQoS(out, sent)
  }
  const port: EnginePort<Handle> = {
    mayReceive: (handle, topic, qos) => handle instanceof RemoteMember ? cluster?.mayReceive(handle, qos) === true : mayReceive(handle, topic, qos),
    allocateId: handle => {
      if (handle instanceof RemoteMember) return handle.nextId()
      // the session's allocator, shared with its other deliveries; mayReceive has just seen an id free
      const id = packetIds(handle).take()
      if (id === undefined) throw new Error('no free packet identifier')
      return id
    },
    send: (handle, packet, sent) => {
      if (handle instanceof RemoteMember) {
        cluster?.send(handle, packet)
        sent()
        return
      }
      deliverTo(handle, packet, sent, why => engine.reject(handle, packet.messageId as number, why))
    },
    listen: group => {
      // cluster mode: the group's messages come from its inbox in Redis (src/cluster/shared-groups.ts)
      if (cluster !== undefined) return
      const listener: Listener = (packet, cb) => {
        // The engine copies what it keeps; only a broker-made publish may carry a string payload.
        const payload = packet.payload as Buffer | string | undefined
        engine.publish(group, (Buffer.isBuffer(payload) ? packet : { ...packet, payload: Buffer.from(payload ?? '') }) as IncomingMessage, (err) => {
          if (err !== undefined) unstored.set(packet, err)
          cb()
        })
      }
      listeners.set(group, listener)
      origSubscribe(group.share.filter, listener, noop)
    },
    unlisten: group => {
      cluster?.removed(group.share.key)
      const listener = listeners.get(group)
      listeners.delete(group)
      if (listener !== undefined) origUnsubscribe(group.share.filter, listener, noop)
    },
    wake: atMs => { wakeTimer.wakeAt(atMs) }
  }

  const engine = new SharedEngine<Handle>(port, store.groupQueues, { ...opts, log: log as unknown as EngineOptions['log'] })
  let members: MemberEvents<Client> = localMembers(engine)
  const ackTargets: AckTargets<Client> = { issued, remote: remoteAcks, engine, redispatchRejected: opts.redispatchRejected }

  // aedes' emitter drops the errors its listeners report. A group-queue write that failed must still fail the
  // publish, so that its publisher gets no PUBACK/PUBREC and sends it again, instead of an acknowledgement for a
  // message that is stored nowhere.
  const mq = broker.mq
  const emit = mq.emit.bind(mq)
  mq.emit = (packet, done) => {
    emit(packet, (err) => {
      const failed = unstored.get(packet)
      if (failed !== undefined) unstored.delete(packet)
      done?.(failed ?? err)
    })
  }

  /** Acknowledgements of shared deliveries, read before aedes handles them. */
  const watch = (client: Client): void => {
    if (watched.has(client)) return
    watched.add(client)
    // room in an MQTT 5 member's Receive Maximum: its groups may send it what waits
    receiveWindowOf(client)?.onFreed(() => members.capacity(client))
    tapAcknowledgements(client, (packet: AckPacket) => { acknowledgeShared(ackTargets, client, packet) })
  }

  broker.subscribe = (topic, func, done) => {
    if (!isShareFilter(topic)) {
      origSubscribe(topic, func, done)
      return
    }
    const share = parseShare(topic)
    const client = pending.take(topic, func)
    let joined: Promise<void> | undefined
    if (client === undefined || !isShareName(share)) {
      log.warn({ topic }, 'shared subscription without a client, ignored')
    } else {
      owners.set(func, client)
      watch(client)
      joined = members.join(share, client, client.id, {
        token: func,
        qos: internals(client).subscriptions[topic]?.qos ?? 0,
        persistent: !client.clean,
        // A restored session's members wait for 'clientReady': nothing may be written before CONNACK.
        ready: client.connected
      })
    }
    // aedes passes no callback when it removes a subscription to re-add it with another QoS.
    if (typeof done !== 'function') return
    if (joined === undefined) setImmediate(done)
    else joined.then(() => done(), (err: unknown) => { log.error({ err, topic }, 'shared subscription not registered in the cluster'); done() })
  }

  broker.unsubscribe = (topic, func, done) => {
    if (!isShareFilter(topic)) {
      origUnsubscribe(topic, func, done)
      return
    }
    const share = parseShare(topic)
    const client = owners.get(func)
    if (isShareName(share) && client !== undefined) {
      if (client.closed) {
        members.disconnected(share.key, func)
        members.gone(client, client.id)
      } else {
        // A QoS change is an unsubscribe followed at once by a subscribe of the same client: only a removal that is
        // still not replaced on the next tick is an UNSUBSCRIBE.
        process.nextTick(() => members.unsubscribed(share.key, func))
      }
    }
    // aedes passes no callback when it removes a subscription to re-add it with another QoS.
    if (typeof done === 'function') setImmediate(done)
  }

  // A persistent member's connection is usable once aedes has sent CONNACK and replayed its session's queue.
  broker.on('clientReady', (client: Client) => members.ready(client))
  // Safety net for a connection whose shared subscriptions were replaced (a takeover): its deliveries still move.
  broker.on('clientDisconnect', (client: Client) => members.gone(client, client.id))

  wrapSharedStore(store, issued, () => members)

  /** Refuses bad share names with SUBACK 0x80 (aedes would grant them as literal filters that never match). */
  const checkShareName: SubscribeStep = (client, sub) => {
    if (!isShareFilter(sub.topic)) return true
    const parsed = parseShare(sub.topic)
    if (isShareName(parsed)) return true
    clientLogger(log, client).warn({ topic: sub.topic, reason: parsed.problem }, 'subscription refused')
    return { refuse: 'filter-invalid', detail: parsed.problem }
  }
  /** Last subscribe step: the client whose granted `$share/` filter aedes is about to subscribe. */
  const noteSubscriber: SubscribeStep = (client, sub) => {
    // A repeated SUBSCRIBE with the same QoS changes nothing: aedes does not call broker.subscribe for it.
    if (isShareFilter(sub.topic) && !client.closed && !client.conn.destroyed && internals(client).subscriptions[sub.topic]?.qos !== sub.qos) {
      if (!watchedClose.has(client)) {
        watchedClose.add(client)
        client.conn.once('close', () => { pending.forget(client) })
      }
      pending.note(client, sub.topic)
    }
    return true
  }

  /** A delivery decided by the node owning the group, to a client connected here. */
  const deliverForOwner = (client: Client, packet: OutPacket, acked: (ack: RemoteAck) => void): 'sent' | 'closed' | 'busy' => {
    if (client.closed) return 'closed'
    if (!mayReceive(client, packet.topic, packet.qos)) return 'busy'
    if (packet.qos > 0) {
      watch(client)
      const id = packetIds(client).take() as number
      packet.messageId = id
      remoteAcks.expect(client, id, acked)
    }
    deliverTo(client, packet, noop, why => {
      remoteAcks.delete(client, packet.messageId as number)
      acked({ kind: 'reject', why, redispatch: true })
    })
    return 'sent'
  }
  const local: SharedLocal<Client> = {
    engine,
    deliver: deliverForOwner,
    windowOf: client => receiveWindowOf(client)?.maximum,
    storedMembers: async share => await storedMembers(store, share),
    storedQueue: async key => await (store.groupQueueOf?.(key) ?? Promise.resolve([])),
    storedShares: async () => await storedShares(store)
  }

  let timer: NodeJS.Timeout | undefined
  return {
    engine,
    local,
    /** Cluster mode: member events go to the node owning each group; before start(). */
    useCluster: (c: SharedCluster<Client>): void => {
      cluster = c
      members = c.members
    },
    checkShareName,
    noteSubscriber,
    /** Restores the persistent members and the durable queues from the store; starts the ack-timeout sweep. */
    start: async (): Promise<void> => {
      // cluster mode: a node restores a group when it takes it over (src/cluster/shared-groups.ts)
      if (cluster === undefined) await restoreShared(store, engine, log)
      else store.groupQueues.takeLoaded()
      if (opts.ackTimeoutMs > 0) {
        timer = setInterval(() => engine.sweep(), sweepIntervalMs(opts.ackTimeoutMs))
        timer.unref()
      }
    },
    /** Stops dispatching and redelivery (the broker is stopping: what is in flight stays in the store). */
    close: (): void => {
      clearInterval(timer)
      wakeTimer.stop()
      engine.close()
    }
  }
}

function noop (): void {}
