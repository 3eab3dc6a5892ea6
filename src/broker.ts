import { Aedes, type Client } from 'aedes'
import type { Config } from './config/schema.js'
import type { Logger } from './log/logger.js'
import { logClientEvents, clientLogger } from './log/client-log.js'
import { startListeners, closeListeners, type Listener } from './listeners/index.js'
import { startAdminServer, type AdminServer } from './admin/server.js'
import { adminRoutes, listenerInfo, type AdminRoute } from './admin/routes.js'
import { createMetrics, type BrokerMetrics } from './metrics/index.js'
import { startSysTopics, type SysTopics } from './sys-topics/index.js'
import type { CulexStore, DropEvent } from './store/index.js'
import { logRecovered, openConfiguredStore, registerStoreMetrics } from './broker-store.js'
import { queueOfflineQos0, trackSessions } from './sessions/hooks.js'
import { delayWills } from './will-delay/hooks.js'
import { createProtocolHooks } from './protocol/hooks.js'
import { version } from './version.js'
import type { BrokerInternals, DeliveryPacket } from './protocol/aedes-internals.js'
import { assertAedesInternals } from './protocol/aedes-internals-check.js'
import {
  chainAuthenticate, chainAuthorizeForward, chainAuthorizePublish, chainAuthorizeSubscribe, chainPreConnect
} from './hook-chain.js'
import { assertAuthConfig, createAuthHooks, identityOf, type AuthCounters, type ReloadResult } from './auth/hooks.js'
import { createLimitHooks } from './limits/hooks.js'
import type { AuthMethods } from './auth/methods.js'
import { createSharedSubscriptions } from './shared-subscriptions/index.js'
import { createDeadLetters } from './dead-letter/index.js'
import { createRetransmission } from './retransmit/hooks.js'
import { createDeliveryLag } from './delivery-lag/index.js'
import { assertClusterConfig, createCluster, type Cluster } from './cluster/index.js'
import type { LimitCounters } from './limits/counters.js'

export interface Culex {
  readonly aedes: Aedes
  readonly store: CulexStore
  readonly listeners: readonly Listener[]
  readonly admin: AdminServer | undefined
  /** Counts on the wire and from aedes' events; features register their own metrics here. */
  readonly metrics: BrokerMetrics
  /** Cluster mode (cluster.redisUrl set): this node's membership and its bus. */
  readonly cluster: Cluster | undefined
  /**
   * Password file and ACL (reload is what SIGHUP does), what authentication and the limits refused, and the MQTT 5
   * enhanced authentication methods offered (register one before clients use it; docs/security.md).
   */
  readonly security: { reload: () => Promise<ReloadResult>, auth: AuthCounters, limits: LimitCounters, authMethods: AuthMethods }
  /** Stops accepting, disconnects every client, flushes and closes the store. */
  close: () => Promise<void>
}

/**
 * The composition root: the one place that creates aedes, chains every feature's steps into its hooks in a named
 * order, and starts and stops the parts in order.
 */
export async function startBroker (config: Config, log: Logger): Promise<Culex> {
  // Culex patches aedes and mqtt-packet internals: another version than the pinned one stops the start, by name.
  assertAedesInternals()
  // Security settings that cannot work, and unreadable password or ACL files, stop the start before the store opens.
  assertAuthConfig(config)
  if (config.cluster.redisUrl !== '') assertClusterConfig(config.cluster)
  const auth = await createAuthHooks(config, log)
  // The store reports what its limits drop; the dead-letter feature, created once aedes exists, takes it from there.
  let onStoreDrop: (event: DropEvent) => void = () => {}
  const openedAt = performance.now()
  const store = await openConfiguredStore(config, log, event => onStoreDrop(event)).catch((err: unknown) => {
    auth.close()
    throw err
  })
  await logRecovered(store, openedAt, log)

  const aedes = new Aedes({
    ...(config.brokerId === '' ? {} : { id: config.brokerId }),
    persistence: store,
    connectTimeout: config.mqtt.connectTimeoutMs,
    drainTimeout: config.mqtt.drainTimeoutMs,
    maxInflightInbound: config.mqtt.maxInflightInboundMessages,
    maxTopicLevels: config.mqtt.maxTopicLevels
  })
  const broker = aedes as BrokerInternals
  // One bad will or store error must never take the process down with an unhandled 'error' event.
  (aedes as NodeJS.EventEmitter).on('error', (err: Error) => log.error({ err }, 'broker error'))

  const deadLetter = createDeadLetters({
    aedes: broker,
    store,
    config,
    log: log.child({ component: 'dead-letter' }),
    mayPublishAs: auth.mayPublishAs,
    // an MQTT 5 publisher's PUBACK/PUBREC says 0x10 (No matching subscribers)
    onNoSubscribers: (client, packet) => { protocol.noteNoSubscribers(client, packet) },
    subscribedElsewhere: topic => cluster?.subscribedElsewhere(topic) === true
  })
  const limits = createLimitHooks(aedes, config, log, deadLetter.onSlowConsumer)
  const protocol = createProtocolHooks(broker, store, log, {
    maxInflightMessages: config.limits.maxInflightMessages,
    maxInflightBytes: config.limits.maxInflightBytes,
    undelivered: deadLetter.onUndelivered,
    maxPendingBeforeConnackBytes: config.mqtt.maxPendingBeforeConnackBytes,
    sessionExpiryMs: config.sessions.expiryMs,
    maxInflightInboundMessages: config.mqtt.maxInflightInboundMessages,
    topicAliasMaximum: config.mqtt.topicAliasMaximum,
    maxRemainingLength: limits.guard.maxPacketBytes,
    minKeepaliveSeconds: config.limits.minKeepaliveSeconds,
    maxKeepaliveSeconds: config.limits.maxKeepaliveSeconds,
    responseTopicPrefix: config.mqtt.responseTopicPrefix,
    authMethods: auth.methods,
    authTimeoutMs: config.mqtt.connectTimeoutMs,
    queueQos0: config.sessions.queueQos0,
    ...(config.cluster.redisUrl === '' ? {} : { streamAppends: (packet, publisherId) => cluster?.streamAppends(packet as DeliveryPacket, publisherId) ?? [] }),
    writesAfterEnqueue: topic => shared.hasGroupFor(topic) || cluster?.sharedGroupFor(topic) === true ||
      (config.sessions.queueQos0 && store.subscriptionsAtQos0(topic, 2).length > 0)
  })
  auth.attach(aedes)
  onStoreDrop = deadLetter.onStoreDrop
  let listeners: Listener[] = []
  // Before any other feature wraps aedes' message router (sessions.queueQos0 does): a message from another node
  // reaches the router aedes had, to be delivered here only.
  const cluster = config.cluster.redisUrl === ''
    ? undefined
    : createCluster({
      config: config.cluster,
      broker,
      store,
      tellTakenOver: protocol.tellTakenOver,
      tellKicked: protocol.tellKicked,
      sendQueued: protocol.sendQueued,
      // its delayed wills are timed here from now; its sessions' expiry may be due
      onRunSettled: async (brokerId) => {
        await willDelay.adopt(brokerId)
        sessions?.sweep()
      },
      listeners: () => listeners.map(l => ({ name: l.name, host: l.host, port: l.port })),
      version,
      log: log.child({ component: 'cluster' })
    })
  const sessionTracking = trackSessions(aedes, store, { expiryMs: config.sessions.expiryMs }, log.child({ component: 'sessions' }))
  const willDelay = delayWills(broker, store, log.child({ component: 'will-delay' }), { sharedStore: store.sharedQueues !== undefined })
  const offlineQos0 = queueOfflineQos0(broker, store, { enabled: config.sessions.queueQos0 }, log.child({ component: 'sessions' }))
  const shared = createSharedSubscriptions({
    broker, store, config: config.sharedSubscriptions, overflowPolicy: config.sessions.overflowPolicy, log: log.child({ component: 'shared' }),
    onDeadLetter: deadLetter.onShared
  })
  // cluster mode: each shared group is run by one node for members on every node
  if (cluster !== undefined) shared.useCluster(local => cluster.shareGroups(local))
  const retransmit = createRetransmission({ intervalMs: config.mqtt.retryIntervalMs, log: log.child({ component: 'retransmit' }) })
  const lag = createDeliveryLag()

  aedes.preConnect = chainPreConnect([
    // first: the protocol version decides how the steps after it read the CONNECT and how everything is encoded
    protocol.acceptV5,
    // then, before anything can wait: the session of a connecting client is not expired under it
    sessionTracking.noteConnecting,
    willDelay.watchClose,
    protocol.routeClientDeliveries,
    protocol.noteEmptyClientId,
    limits.recordConnect,
    limits.watchOutbound,
    retransmit.watchConnection,
    lag.watchConnection
  ])
  aedes.authenticate = chainAuthenticate([
    protocol.restoreV5Version,
    // an MQTT 5 enhanced authentication method's exchange; the login step then takes the client as the method says
    protocol.authenticateWithMethod,
    protocol.refuseEmptyPersistentId,
    limits.checkConnect,
    deadLetter.watchWills(auth.authenticate, () => auth.counters.willRefused),
    // last: only a client let in may end the session its id had (MQTT 5 Clean Start 1)
    sessionTracking.startNewSession
  ], protocol.noteLoginRefusal)
  aedes.authorizePublish = chainAuthorizePublish({
    checks: [
      // first: a SUBSCRIBE read after a retained PUBLISH waits for it to be routed
      protocol.noteRetainedArrival,
      deadLetter.noteWill,
      limits.throttlePublish,
      protocol.refuseReservedTopics,
      protocol.notePublisherOfRetained,
      deadLetter.recordDrops(limits.checkPublishSize),
      deadLetter.recordDrops(auth.authorizePublish),
      deadLetter.recordDrops(protocol.checkPayloadFormat),
      deadLetter.recordDrops(deadLetter.validatePayload),
      deadLetter.detectNoSubscribers
    ],
    onDrop: (client, packet, refusal) => {
      const clientLog = client === null ? log : clientLogger(log, client)
      clientLog.warn({ topic: packet.topic, qos: packet.qos, reason: refusal.drop, detail: refusal.detail }, 'publish dropped')
      protocol.noteRefusedPublish(client, packet, refusal)
      protocol.noteRetainedRefused(packet)
      if (config.deadLetter.onRejectedPublish === 'disconnect') protocol.tellPublishRefused(client, packet, refusal)
    },
    disconnectOnDrop: config.deadLetter.onRejectedPublish === 'disconnect',
    commit: protocol.gate.commit,
    settle: protocol.gate.settle,
    onError: protocol.closeAfterPublishError
  })
  aedes.authorizeSubscribe = chainAuthorizeSubscribe([
    protocol.refuseSessionMarker,
    shared.checkShareName,
    limits.checkFilter,
    auth.authorizeSubscribe,
    limits.countSubscriptions,
    offlineQos0.noteConnection,
    shared.noteSubscriber,
    // granted once the retained messages stored before it are routed: such a message comes once, retained
    protocol.afterRetainedInFlight,
    // last: only a granted filter takes its MQTT 5 Subscription Identifier
    protocol.noteSubscriptionIds
  ], protocol.recordGranted, protocol.noteRefusedSubscription)
  aedes.authorizeForward = chainAuthorizeForward([
    auth.authorizeForward
  ])

  const usernameOf = (client: Client): string | undefined => identityOf(client)?.username
  logClientEvents(aedes, log, usernameOf)
  // Fed from aedes' events and by observing each connection stream, never from inside a hook.
  const metrics = createMetrics({ aedes, store, version })
  registerStoreMetrics(store, metrics)
  metrics.countersFrom('culex_auth_events_total', 'What authentication and the ACL refused, by event.', 'event', () => auth.counters)
  metrics.countersFrom('culex_limit_events_total', 'What the connection and message limits refused or slowed, by event.', 'event', () => limits.counters)
  metrics.counter({
    name: 'culex_listener_accept_errors_total',
    help: 'Connections a listener could not accept, by error code; EMFILE: the process is out of file descriptors (ulimit -n).',
    labelNames: ['listener', 'code'],
    collect () {
      this.reset()
      for (const [listener, byCode] of limits.guard.acceptErrors) for (const [code, n] of byCode) this.inc({ listener, code }, n)
    }
  })
  deadLetter.registerMetrics(metrics)
  shared.registerMetrics(metrics)
  retransmit.registerMetrics(metrics)
  lag.registerMetrics(metrics)
  protocol.registerMetrics(metrics)
  cluster?.registerMetrics(metrics)
  // Admin API routes of other features (shared subscriptions, dead letters) join the routes table here.
  const featureRoutes: AdminRoute[] = [...shared.routes, ...lag.routes, ...deadLetter.routes, ...(cluster?.routes ?? [])]

  let admin: AdminServer | undefined
  let sys: SysTopics | undefined
  let sessions: { close: () => void, sweep: () => void } | undefined
  let delayedWills: { close: () => void } | undefined
  let ready = false
  /**
   * One order for a stop and for a failed start (docs/architecture.md, "Life cycle"): nothing is left running that
   * could write to a closed store. `beforeListeners` runs while the clients are still connected.
   */
  const stop = async (beforeListeners?: () => void): Promise<void> => {
    sys?.stop()
    sessions?.close()
    delayedWills?.close()
    shared.close()
    retransmit.close()
    deadLetter.close()
    beforeListeners?.()
    await closeListeners(listeners)
    await closeAedes(aedes)
    await cluster?.close()
    await store.close()
    await admin?.close()
    auth.close()
  }
  try {
    await aedes.listen()
    await shared.start()
    deadLetter.start()
    sessions = await sessionTracking.start()
    delayedWills = await willDelay.start()
    await cluster?.start()
    listeners = await startListeners(config.listeners, metrics.tapConnections(protocol.handle(aedes.handle)), log, { ...limits.guard, farewell: protocol.sayFrameViolation })
    if (config.admin.enabled) {
      const deps = {
        aedes, store, metrics, version, usernameOf, log: log.child({ component: 'admin' }),
        tellKicked: protocol.tellKicked,
        ...(cluster === undefined ? {} : { kickElsewhere: cluster.kick }),
        listeners: () => listenerInfo(listeners, config.listeners),
        authRequired: config.admin.authToken !== '',
        sysIntervalMs: config.admin.sysIntervalMs
      }
      admin = await startAdminServer(config.admin, adminRoutes(deps, { ready: () => ready, problem: () => cluster?.problem() }, featureRoutes), deps.log)
      log.info({ listener: 'admin', host: admin.host, port: admin.port }, 'listening')
    }
  } catch (err) {
    await stop()
    throw err
  }
  if (config.admin.sysIntervalMs > 0) {
    sys = startSysTopics({ aedes, snapshot: metrics.snapshot, intervalMs: config.admin.sysIntervalMs, version, log: log.child({ component: 'sys' }) })
  }
  ready = true
  log.info({ brokerId: aedes.id, version }, 'broker started')

  let closing: Promise<void> | undefined
  return {
    aedes,
    store,
    listeners,
    admin,
    metrics,
    cluster,
    security: { reload: auth.reload, auth: auth.counters, limits: limits.counters, authMethods: auth.methods },
    close: async () => {
      closing ??= (async () => {
        ready = false
        await stop(() => { protocol.sayShuttingDown() })
        log.info('broker stopped')
      })()
      await closing
    }
  }
}

async function closeAedes (aedes: Aedes): Promise<void> {
  await new Promise<void>(resolve => aedes.close(() => resolve()))
}
