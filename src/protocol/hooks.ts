import type { Client, PublishPacket, Subscription } from 'aedes'
import type { AuthenticateStep, ConnectStep, PublishDrop, PublishStep, SubscribeStep } from '../hook-chain.js'
import { internals, type BrokerInternals } from './aedes-internals.js'
import { attachPacketIds, packetIds } from './packet-ids.js'
import { routeDeliveries } from './delivery.js'
import { installPublishGate, type IncomingRecords, type PublishGate } from './publish-gate.js'
import { v5ServerInfo, type ProtocolOptions } from './protocol-options.js'
import type { PublishStore } from './qos-publish.js'
import { correctStoreCalls } from './store-corrections.js'
import { guardPackets, type ViolationKind } from './packet-guard.js'
import { endsFlow, tapAcknowledgements } from './packet-tap.js'
import { parseFast } from './fast-parser.js'
import { cacheMatches } from './match-cache.js'
import { closeAfterBug, guardReads } from './read-guard.js'
import { answerUnsupportedLevel } from './connect-level.js'
import { isReservedTopic } from './topic.js'
import type { PacketLike, SessionQueues } from '../store/types.js'
import type { MaybePromise } from '../store/contract.js'
import { liveQos0BehindReplay } from './live-behind-replay.js'
import { orderRetainedBeforeSubscribe } from './retained-order.js'
import { createQueueReplay, holdLiveDeliveries, isReplaying, type ReplayPacket, type ReplayStore } from './queue-replay.js'
import type { ConnectionHandler } from '../listeners/index.js'
import type { Logger } from '../log/logger.js'
import { clientLogger, remoteAddress } from '../log/client-log.js'
import { gateUntilConnack, type ConnackGate, type ConnackGateOptions } from './connack-gate.js'
import { createV5Connections } from './v5/accept.js'
import { noteLoginRefusal } from './v5/connack.js'
import { ReasonCodesSent } from './v5/reason-counts.js'
import { authenticateWithMethod } from './v5/enhanced-auth.js'
import type { BrokerMetrics } from '../metrics/index.js'
import { carryRetained, type GrantedSubscription, type RetainedSource } from './v5/retained.js'
import { noteSubscriptionId } from './v5/subscription-ids.js'
import { isV5, v5Of } from './v5/connection.js'
import { noteNoSubscribers, noteRefusedPublish, publishReasonCode } from './v5/refusals.js'
import { attachReceiveWindow } from './v5/receive-window.js'
import { watchAcknowledgements } from './v5/acknowledgements.js'
import { noteRefusedSubscription } from './v5/suback.js'
import { checkPayloadFormat } from './v5/payload-format.js'
import {
  ADMINISTRATIVE_ACTION, KEEP_ALIVE_TIMEOUT, MALFORMED_PACKET, PACKET_TOO_LARGE, PROTOCOL_ERROR, sayReceiveMaximumExceeded, sendDisconnect, sendDisconnectOnStream,
  SERVER_SHUTTING_DOWN, SESSION_TAKEN_OVER
} from './v5/disconnect.js'
import type { FrameViolation } from '../limits/frame-scanner.js'
import type { Duplex } from 'node:stream'

/** The store methods the protocol layer wraps to correct what aedes hands them. */
export interface ProtocolStore extends ReplayStore, RetainedSource, PublishStore {
  sessionQueues: ReplayStore['sessionQueues'] & Pick<SessionQueues, 'unsent' | 'holdsPacketId'>
  outgoingStream: (client: Client) => NodeJS.ReadableStream
  addSubscriptions: (client: Client, subs: Subscription[]) => Promise<void>
  subscriptionsByClient: (client: { id: string }) => Promise<Array<{ topic: string, qos: number }>>
  hasSession: (clientId: string) => MaybePromise<boolean>
  incomingDelPacket: (client: Client, packet: { messageId?: number }) => Promise<unknown>
  incomingGetPacket: (client: Client, packet: { messageId?: number }) => Promise<Record<string, unknown>>
  incomingWrite: IncomingRecords['incomingWrite']
  incomingForget: IncomingRecords['incomingForget']
  replicated: IncomingRecords['replicated']
}

/**
 * MQTT 3.1.1 behaviour that aedes 1.2 gets wrong, restored through its public hooks, and the MQTT 5 layer wired in.
 * Each step is chained by src/broker.ts; see the notes on each for the aedes behaviour it corrects.
 */
export function createProtocolHooks (broker: BrokerInternals, store: ProtocolStore, log: Logger, opts: ProtocolOptions) {
  const gate: PublishGate = installPublishGate(broker, store, opts.writesAfterEnqueue, opts.streamAppends)
  cacheMatches(broker.mq)
  const retainedOrder = orderRetainedBeforeSubscribe(store, broker.mq)
  const reasonCodesSent = new ReasonCodesSent()
  // MQTT 5 is one layer (protocol/v5): the version of each connection is decided by its first connect step.
  const v5 = createV5Connections(v5ServerInfo(opts, reasonCodesSent))
  const { granted, refuseSessionMarker } = correctStoreCalls(store, gate)

  // MQTT 5 Subscription Identifiers: a granted filter's, live or restored, kept by the connection (v5/subscription-ids.ts)
  const noteSubscriptionIds: SubscribeStep = (client, sub) => {
    const v5 = v5Of(client)
    if (v5 !== undefined) noteSubscriptionId(v5, sub)
    return true
  }

  carryRetained(store, listener => broker.on('subscribe', (subs: GrantedSubscription[], client: Client) => { listener(subs, client) }))

  // An MQTT 5 client is told why the server closes its connection: taken over by a new connection with its id, or
  // silent past its keepalive (and, from close below, the broker stopping).
  const registerClient = broker.registerClient.bind(broker)
  broker.registerClient = (client) => {
    const previous = broker.clients[client.id]
    if (previous !== undefined && previous !== client) sendDisconnect(previous, SESSION_TAKEN_OVER)
    registerClient(client)
  }
  broker.on('keepaliveTimeout', (client: Client) => { sendDisconnect(client, KEEP_ALIVE_TIMEOUT) })

  // aedes replays a reconnecting session's queue one message per event-loop turn; Culex's replay sends it in chunks.
  const replay = createQueueReplay(broker, store, opts.undelivered)
  store.outgoingStream = replay.outgoingStream

  // Whatever follows CONNECT waits until the login has succeeded (connack-gate.ts).
  const connackGates = new WeakMap<Client, ConnackGate>()
  broker.on('connackSent', (packet, client) => {
    const gate = connackGates.get(client)
    if (gate === undefined) return
    // one CONNACK per connection: the gate is done with after it, and an idle connection keeps none of it
    connackGates.delete(client)
    gate.connackSent(packet.returnCode ?? 0)
  })

  /**
   * aedes' connection handler, with the commonest packets parsed on a fast path, nothing after CONNECT handled before
   * CONNACK 0, and every packet checked for violations.
   */
  // What every connection is handed, made once: a closure per connection is kept as long as the connection is.
  const gateOptions: ConnackGateOptions = {
    maxBytes: opts.maxPendingBeforeConnackBytes,
    onOverflow: (client, heldBytes) => {
      log.warn({ remote: remoteAddress(client), heldBytes, maxBytes: opts.maxPendingBeforeConnackBytes }, 'too much sent before CONNACK, closing connection')
    }
  }
  const onViolation = (violator: Client, reason: string, kind: ViolationKind): void => {
    const clientLog = violator.id === null ? log : clientLogger(log, violator)
    clientLog.warn({ reason }, 'protocol violation, closing connection')
    sendDisconnect(violator, kind === 'malformed' ? MALFORMED_PACKET : PROTOCOL_ERROR, reason)
  }
  const onReadThrow = (c: Client, err: unknown): void => { closeAfterBug(log, c, err, 'read') }
  const handle = (aedesHandle: (stream: Parameters<ConnectionHandler>[0], req?: Parameters<ConnectionHandler>[1]) => Client): ConnectionHandler =>
    (stream, req) => {
      answerUnsupportedLevel(stream)
      const client = aedesHandle(stream, req)
      parseFast(client)
      connackGates.set(client, gateUntilConnack(client, gateOptions))
      guardPackets(client, onViolation)
      guardReads(client, onReadThrow)
      sayReceiveMaximumExceeded(client)
    }

  // A persistent session's QoS 1/2 messages are all in its queue before aedes delivers them live. aedes delivers
  // them from the moment it restores the session's subscriptions (before CONNACK) and during the replay, where they
  // overtook older queued messages, and a copy the replay had already sent went out a second time. The queue
  // sends those; a live copy goes out only while the queue holds it unsent and no replay is running.
  const warnSlowConsumer = (client: Client, held: number): void => {
    const receiveMaximum = v5Of(client)?.connect.receiveMaximum
    clientLogger(log, client).warn({ receiveMaximum, held, maxInflightMessages: opts.maxInflightMessages, maxInflightBytes: opts.maxInflightBytes }, 'disconnecting a client that does not acknowledge')
  }

  /** Has the replay send what a persistent session's queue holds unsent, unless a replay is running. */
  const sendQueued = (client: Client): void => {
    if (!isReplaying(client) && store.sessionQueues.waiting(client) > 0) replay.resume(client)
  }

  // An MQTT 5 client's Receive Maximum is kept on every path (v5/receive-window.ts); copies left in a persistent
  // session's queue while it was reached are sent by a resumed replay once an acknowledgement makes room.
  const routeClientDeliveries: ConnectStep = (client, packet) => {
    allocatePacketIds(client, packet.clean === false)
    const v5 = v5Of(client)
    const window = v5 === undefined ? undefined : attachReceiveWindow(client, v5.connect.receiveMaximum)
    if (window !== undefined) watchAcknowledgements(client, window, opts.undelivered)
    const route = { undelivered: opts.undelivered, maxHeldMessages: opts.maxInflightMessages, maxHeldBytes: opts.maxInflightBytes, onSlowConsumer: warnSlowConsumer, alreadyLive: retainedOrder.alreadyLive }
    if (packet.clean !== false) {
      routeDeliveries(client, route)
      return undefined
    }
    holdLiveDeliveries(client)
    window?.onFreed(() => { sendQueued(client) })
    routeDeliveries(client, {
      ...route,
      session: {
        leftToQueue: live => isReplaying(client) || !store.sessionQueues.unsent(client, live),
        liveQos0: liveQos0BehindReplay(client, opts.queueQos0 ? live => store.outgoingEnqueueCombi([{ clientId: client.id, qos: 0, rap: live.retain }], live as PacketLike) : undefined, { maxMessages: opts.maxInflightMessages, maxBytes: opts.maxInflightBytes }),
        // not async functions: they run for every copy, and hand back the store's promise
        update: (client, copy) => store.outgoingUpdate(client, copy as ReplayPacket),
        clear: (client, packet) => store.outgoingClearMessageId(client, packet as unknown as ReplayPacket)
      }
    })
    return undefined
  }

  // One packet-id allocator per connection (packet-ids.ts); a persistent session's also skips the ids its queue
  // holds from earlier connections. An id is free again once the client completes its flow: the PUBACK or PUBCOMP
  // is seen as it is read (for clean sessions too), and a delivery waiting for an id is served after aedes has
  // handled it, when the store has let the id go ('ack').
  const allocatePacketIds = (client: Client, persistent: boolean): void => {
    const ids = attachPacketIds(client, persistent ? id => store.sessionQueues.holdsPacketId(client, id) : undefined)
    tapAcknowledgements(client, (ack: { cmd: string, messageId?: number, reasonCode?: number }) => {
      if (endsFlow(ack) && ack.messageId !== undefined) ids.release(ack.messageId)
    })
    client.conn.on('close', () => ids.close())
  }
  broker.on('ack', (_packet: unknown, client: Client) => packetIds(client).retry())

  // aedes invents an id for an empty one whatever the clean flag, but an MQTT 3.1.1 persistent session needs a real
  // id [MQTT-3.1.3-8]. Refusing needs a CONNACK with code 2, which only authenticate can send, so the CONNECT is
  // noted here and refused there. An MQTT 5 client is told the id it was given (Assigned Client Identifier), so its
  // session can be kept and resumed under it.
  const withoutClientId = new WeakSet<Client>()
  const noteEmptyClientId: ConnectStep = (client, packet) => {
    if ((packet.clientId ?? '') === '' && packet.clean === false && !isV5(client)) withoutClientId.add(client)
    return undefined
  }
  const refuseEmptyPersistentId: AuthenticateStep = (client) => withoutClientId.has(client) ? 2 : undefined

  // Only the broker publishes under "$" ($SYS, $DLQ, $share): a client's publish there is acknowledged and dropped.
  const refuseReservedTopics: PublishStep = (_client, packet) =>
    isReservedTopic(packet.topic) ? { drop: 'reserved-topic', detail: `clients cannot publish to ${packet.topic.split('/')[0]}/ topics` } : undefined

  // A retained message keeps its publisher's id, for MQTT 5 No Local when it is sent on SUBSCRIBE (v5/retained.ts);
  // an MQTT 5 publisher's packets carry it already (v5/accept.ts)
  const notePublisherOfRetained: PublishStep = (client, packet) => {
    if (packet.retain && client !== null && client.id !== null) (packet as { clientId?: string }).clientId ??= client.id
    return undefined
  }

  return {
    gate,
    handle,
    acceptV5: v5.acceptV5,
    restoreV5Version: v5.restoreVersion,
    /**
     * A refused publish of a v5 client: its PUBACK/PUBREC says why. A refused QoS 2 one ends its flow there, so aedes'
     * state for it (the inbound slot and the QoS 2 record) is given up as the PUBREC is written.
     */
    noteRefusedPublish: (client: Client | null, packet: { qos: number, messageId?: number }, drop: PublishDrop) => {
      const id = packet.messageId
      const release = client === null || packet.qos !== 2 || id === undefined
        ? undefined
        : () => {
            internals(client)._inboundInflight.delete(id)
            store.incomingDelPacket(client, { messageId: id }).catch(noop)
          }
      noteRefusedPublish(client, packet, drop, release)
    },
    noteNoSubscribers,
    authenticateWithMethod,
    noteRefusedSubscription,
    noteLoginRefusal,
    /** A connection the frame guard closes (listeners): an MQTT 5 client gets DISCONNECT 0x95 or 0x81 first. */
    sayFrameViolation: (stream: Duplex, violation: FrameViolation) => {
      if (violation.kind === 'too-large') sendDisconnectOnStream(stream, PACKET_TOO_LARGE, `a packet of ${violation.declared} bytes, over the ${opts.maxRemainingLength} this server reads`)
      else sendDisconnectOnStream(stream, MALFORMED_PACKET, 'malformed remaining length')
    },
    /**
     * A publish refused with deadLetter.onRejectedPublish = disconnect: the connection closes unacknowledged, and an
     * MQTT 5 publisher is told why first, with the code its PUBACK would have had (0x87, 0x90, 0x97, 0x99). A will
     * has no connection to close.
     */
    tellPublishRefused: (client: Client | null, packet: PublishPacket, drop: PublishDrop) => {
      if (client !== null && internals(client).will !== packet) sendDisconnect(client, publishReasonCode(drop.drop), `${drop.drop}: ${drop.detail}`)
    },
    registerMetrics: (metrics: BrokerMetrics) => {
      metrics.counter({
        name: 'culex_mqtt5_reason_codes_sent_total',
        help: 'Reason codes sent to MQTT 5 clients, by packet and code (every code but success: 0x00 and a SUBACK\'s granted QoS).',
        labelNames: ['packet', 'code'],
        collect () {
          this.reset()
          for (const [packet, code, n] of reasonCodesSent.entries()) this.inc({ packet, code }, n)
        }
      })
    },
    checkPayloadFormat,
    /** A client an administrator disconnects (admin API): an MQTT 5 one gets DISCONNECT 0x98. */
    tellKicked: (client: Client) => { sendDisconnect(client, ADMINISTRATIVE_ACTION) },
    /** Sends what a persistent session's queue holds unsent (the cluster learned entries it had missed). */
    sendQueued,
    /** A client whose id connected on another node of the cluster: an MQTT 5 one gets DISCONNECT 0x8E, as locally. */
    tellTakenOver: (client: Client) => { sendDisconnect(client, SESSION_TAKEN_OVER) },
    /** Before the listeners drop their connections at shutdown: MQTT 5 clients get DISCONNECT 0x8B. */
    sayShuttingDown: () => {
      for (const client of Object.values(broker.clients)) sendDisconnect(client, SERVER_SHUTTING_DOWN)
    },
    routeClientDeliveries,
    noteEmptyClientId,
    refuseEmptyPersistentId,
    refuseSessionMarker,
    noteSubscriptionIds,
    afterRetainedInFlight: retainedOrder.afterRetainedInFlight,
    noteRetainedArrival: retainedOrder.noteArrival,
    noteRetainedRefused: retainedOrder.noteRefused,
    refuseReservedTopics,
    notePublisherOfRetained,
    closeAfterPublishError: (client: Client | null, err: unknown) => { closeAfterBug(log, client, err, 'publish') },
    recordGranted: (sub: Subscription) => { granted.add(sub) }
  }
}

function noop (): void {}
