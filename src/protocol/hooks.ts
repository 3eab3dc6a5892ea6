import type { Client, Subscription } from 'aedes'
import type { AuthenticateStep, ConnectStep, PublishStep, SubscribeStep } from '../hook-chain.js'
import type { BrokerInternals } from './aedes-internals.js'
import { attachPacketIds, packetIds } from './packet-ids.js'
import { routeDeliveries } from './delivery.js'
import { installPublishGate, type IncomingRecords, type PublishGate } from './publish-gate.js'
import { guardPackets } from './packet-guard.js'
import { tapAcknowledgements } from './packet-tap.js'
import { parseFast } from './fast-parser.js'
import { closeAfterBug, guardReads } from './read-guard.js'
import { answerUnsupportedLevel } from './connect-level.js'
import { isReservedTopic } from './topic.js'
import type { SessionQueues } from '../store/types.js'
import { createQueueReplay, holdLiveDeliveries, isReplaying, type ReplayPacket, type ReplayStore } from './queue-replay.js'
import type { ConnectionHandler } from '../listeners/index.js'
import type { Logger } from '../log/logger.js'
import { clientLogger, remoteAddress } from '../log/client-log.js'
import { gateUntilConnack, type ConnackGate } from './connack-gate.js'
import { createV5Connections } from './v5/accept.js'
import { sessionExpirySeconds } from './v5/connack.js'
import { carryRetainedProperties, type RetainedSource } from './v5/retained.js'
import { noteRefusedPublish } from './v5/refusals.js'
import { ADMINISTRATIVE_ACTION, KEEP_ALIVE_TIMEOUT, sendDisconnect, SERVER_SHUTTING_DOWN, SESSION_TAKEN_OVER } from './v5/disconnect.js'

/** The store methods the protocol layer wraps to correct what aedes hands them. */
export interface ProtocolStore extends ReplayStore, RetainedSource {
  sessionQueues: ReplayStore['sessionQueues'] & Pick<SessionQueues, 'unsent' | 'holdsPacketId'>
  outgoingStream: (client: Client) => NodeJS.ReadableStream
  addSubscriptions: (client: Client, subs: Subscription[]) => Promise<void>
  subscriptionsByClient: (client: { id: string }) => Promise<Array<{ topic: string, qos: number }>>
  hasSession: (clientId: string) => boolean
  incomingDelPacket: (client: Client, packet: { messageId?: number }) => Promise<unknown>
  incomingGetPacket: (client: Client, packet: { messageId?: number }) => Promise<Record<string, unknown>>
  incomingWrite: IncomingRecords['incomingWrite']
  incomingForget: IncomingRecords['incomingForget']
}

/**
 * MQTT 3.1.1 behaviour that aedes 1.2 gets wrong, restored through its public hooks. Each step is chained by
 * src/broker.ts; see the notes on each for the aedes behaviour it corrects.
 */
export interface ProtocolOptions {
  /** mqtt.maxPendingBeforeConnackBytes: packets a client may send after CONNECT before its CONNACK, in bytes. */
  maxPendingBeforeConnackBytes: number
  /** sessions.expiryMs: how long a persistent session is kept, told to MQTT 5 clients in CONNACK. */
  sessionExpiryMs: number
  /** mqtt.maxInflightInboundMessages (0 = unlimited): an MQTT 5 client's Receive Maximum. */
  maxInflightInboundMessages: number
  /** The largest Remaining Length read before a connection is closed (the listeners' guard). */
  maxRemainingLength: number
  /** limits.minKeepaliveSeconds and limits.maxKeepaliveSeconds. */
  minKeepaliveSeconds: number
  maxKeepaliveSeconds: number
}

/** The largest Remaining Length MQTT can encode: a packet limit this high is no limit. */
const MQTT_MAX_REMAINING_LENGTH = 268_435_455

export function createProtocolHooks (broker: BrokerInternals, store: ProtocolStore, log: Logger, opts: ProtocolOptions) {
  const gate: PublishGate = installPublishGate(broker, store)
  // MQTT 5 is one layer (protocol/v5): the version of each connection is decided by its first connect step.
  const v5 = createV5Connections({
    sessionExpirySeconds: sessionExpirySeconds(opts.sessionExpiryMs),
    receiveMaximum: opts.maxInflightInboundMessages > 0 ? Math.min(opts.maxInflightInboundMessages, 65_535) : undefined,
    // a packet of this many bytes has a Remaining Length of at most this less its two shortest header bytes
    maximumPacketSize: opts.maxRemainingLength >= MQTT_MAX_REMAINING_LENGTH ? undefined : opts.maxRemainingLength + 2,
    minKeepaliveSeconds: opts.minKeepaliveSeconds,
    maxKeepaliveSeconds: opts.maxKeepaliveSeconds
  })
  const granted = new WeakSet<Subscription>()

  // aedes stores the whole SUBSCRIBE packet's list for a persistent session, refused filters included, and the
  // refused filter then receives messages after a reconnect. Only filters this broker granted reach the store.
  // Each granted filter triggers its own store call after its own authorization, so every one is stored.
  const addSubscriptions = store.addSubscriptions.bind(store)
  store.addSubscriptions = async (client, subs) => await addSubscriptions(client, subs.filter(s => granted.has(s)))

  // aedes sets Session Present only when the session has subscriptions, but a session exists without them
  // [MQTT-3.2.2-2]. For such a session aedes is given one marker filter to restore; the first subscribe step
  // refuses it, so Session Present is 1 and nothing is subscribed.
  const sessionMarkers = new WeakSet<object>()
  const subscriptionsByClient = store.subscriptionsByClient.bind(store)
  store.subscriptionsByClient = async (client) => {
    const subs = await subscriptionsByClient(client)
    if (subs.length > 0 || !store.hasSession(client.id)) return subs
    const marker = { topic: '$culex/session', qos: 0 }
    sessionMarkers.add(marker)
    return [marker]
  }
  const refuseSessionMarker: SubscribeStep = (_client, sub) => !sessionMarkers.has(sub)

  // aedes deletes the QoS 2 record when PUBREL arrives; from then on the id may carry a new message.
  const incomingDelPacket = store.incomingDelPacket.bind(store)
  store.incomingDelPacket = async (client, packet) => {
    gate.released(client, packet.messageId)
    return await incomingDelPacket(client, packet)
  }

  // aedes takes a QoS 2 PUBLISH whose id has a record for a duplicate and answers PUBREC at once. A resend of a
  // message still being stored (on a new connection, say) would so be acknowledged for a message a failure can
  // still lose: it waits until the first copy is stored (a duplicate) or has failed (its record is gone: new).
  const incomingGetPacket = store.incomingGetPacket.bind(store)
  store.incomingGetPacket = (client, packet) => {
    const first = packet.messageId === undefined ? undefined : gate.storing(client.id, packet.messageId)
    return first === undefined ? incomingGetPacket(client, packet) : first.then(() => incomingGetPacket(client, packet))
  }

  carryRetainedProperties(store)

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
  store.outgoingStream = createQueueReplay(broker, store)

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
  const handle = (aedesHandle: (stream: Parameters<ConnectionHandler>[0], req?: Parameters<ConnectionHandler>[1]) => Client): ConnectionHandler =>
    (stream, req) => {
      answerUnsupportedLevel(stream)
      const client = aedesHandle(stream, req)
      parseFast(client)
      connackGates.set(client, gateUntilConnack(client, {
        maxBytes: opts.maxPendingBeforeConnackBytes,
        onOverflow: heldBytes => {
          log.warn({ remote: remoteAddress(client), heldBytes, maxBytes: opts.maxPendingBeforeConnackBytes }, 'too much sent before CONNACK, closing connection')
        }
      }))
      guardPackets(client, (violator, reason) => {
        const clientLog = violator.id === null ? log : clientLogger(log, violator)
        clientLog.warn({ reason }, 'protocol violation, closing connection')
      })
      guardReads(client, (c, err) => { closeAfterBug(log, c, err, 'read') })
    }

  // A persistent session's QoS 1/2 messages are all in its queue before aedes delivers them live. aedes delivers
  // them from the moment it restores the session's subscriptions (before CONNACK) and during the replay, where they
  // overtook older queued messages, and a copy the replay had already sent went out a second time. The queue
  // sends those; a live copy goes out only while the queue holds it unsent and no replay is running.
  const routeClientDeliveries: ConnectStep = (client, packet) => {
    allocatePacketIds(client, packet.clean === false)
    if (packet.clean !== false) {
      routeDeliveries(client)
      return undefined
    }
    holdLiveDeliveries(client)
    routeDeliveries(client, {
      leftToQueue: live => isReplaying(client) || !store.sessionQueues.unsent(client, live),
      // not async functions: they run for every copy, and hand back the store's promise
      update: (client, copy) => store.outgoingUpdate(client, copy as ReplayPacket),
      clear: (client, packet) => store.outgoingClearMessageId(client, packet as unknown as ReplayPacket)
    })
    return undefined
  }

  // One packet-id allocator per connection (packet-ids.ts); a persistent session's also skips the ids its queue
  // holds from earlier connections. An id is free again once the client completes its flow: the PUBACK or PUBCOMP
  // is seen as it is read (for clean sessions too), and a delivery waiting for an id is served after aedes has
  // handled it, when the store has let the id go ('ack').
  const allocatePacketIds = (client: Client, persistent: boolean): void => {
    const ids = attachPacketIds(client, persistent ? id => store.sessionQueues.holdsPacketId(client, id) : undefined)
    tapAcknowledgements(client, (ack: { cmd: string, messageId?: number }) => {
      if ((ack.cmd === 'puback' || ack.cmd === 'pubcomp') && ack.messageId !== undefined) ids.release(ack.messageId)
    })
    client.conn.on('close', () => ids.close())
  }
  broker.on('ack', (_packet: unknown, client: Client) => packetIds(client).retry())

  // aedes invents an id for an empty one whatever the clean flag, but a persistent session needs a real id
  // [MQTT-3.1.3-8]. Refusing needs a CONNACK with code 2, which only authenticate can send, so the CONNECT is
  // noted here and refused there.
  const withoutClientId = new WeakSet<Client>()
  const noteEmptyClientId: ConnectStep = (client, packet) => {
    if ((packet.clientId ?? '') === '' && packet.clean === false) withoutClientId.add(client)
    return undefined
  }
  const refuseEmptyPersistentId: AuthenticateStep = (client) => withoutClientId.has(client) ? 2 : undefined

  // Only the broker publishes under "$" ($SYS, $DLQ, $share): a client's publish there is acknowledged and dropped.
  const refuseReservedTopics: PublishStep = (_client, packet) =>
    isReservedTopic(packet.topic) ? { drop: 'reserved-topic', detail: `clients cannot publish to ${packet.topic.split('/')[0]}/ topics` } : undefined

  return {
    gate,
    handle,
    acceptV5: v5.acceptV5,
    restoreV5Version: v5.restoreVersion,
    noteRefusedPublish,
    /** A client an administrator disconnects (admin API): an MQTT 5 one gets DISCONNECT 0x98. */
    tellKicked: (client: Client) => { sendDisconnect(client, ADMINISTRATIVE_ACTION) },
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
    refuseReservedTopics,
    closeAfterPublishError: (client: Client | null, err: unknown) => { closeAfterBug(log, client, err, 'publish') },
    recordGranted: (sub: Subscription) => { granted.add(sub) }
  }
}
