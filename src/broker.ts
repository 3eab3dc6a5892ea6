import path from 'node:path'
import { Aedes } from 'aedes'
import type { Config } from './config/schema.js'
import type { Logger } from './log/logger.js'
import { logClientEvents, clientLogger } from './log/client-log.js'
import { startListeners, closeListeners, type Listener } from './listeners/index.js'
import { startAdminServer, type AdminServer } from './admin/server.js'
import { openStore, type LevelStore } from './store/index.js'
import { createProtocolHooks } from './protocol/hooks.js'
import { version } from './version.js'
import type { BrokerInternals } from './protocol/aedes-internals.js'
import {
  chainAuthenticate, chainAuthorizePublish, chainAuthorizeSubscribe, chainPreConnect
} from './hook-chain.js'

export interface Culex {
  readonly aedes: Aedes
  readonly store: LevelStore
  readonly listeners: readonly Listener[]
  readonly admin: AdminServer | undefined
  /** Stops accepting, disconnects every client, flushes and closes the store. */
  close: () => Promise<void>
}

/**
 * The composition root: the one place that creates aedes, chains every feature's steps into its hooks in a named
 * order, and starts and stops the parts in order.
 */
export async function startBroker (config: Config, log: Logger): Promise<Culex> {
  const store = await openStore({
    dir: path.resolve(config.dataDir, 'store'),
    sync: config.store.sync,
    onCorrupt: config.store.onCorrupt,
    logger: log.child({ component: 'store' }),
    limits: {
      maxQueuedMessages: config.sessions.maxQueuedMessages,
      maxQueuedBytes: config.sessions.maxQueuedBytes,
      overflowPolicy: config.sessions.overflowPolicy,
      messageExpiryMs: config.sessions.messageExpiryMs,
      queueQos0: false,
      maxRetainedMessages: config.retained.maxMessages
    }
  })

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

  const protocol = createProtocolHooks(broker, store)

  aedes.preConnect = chainPreConnect([
    protocol.routeClientDeliveries
  ])
  aedes.authenticate = chainAuthenticate([])
  aedes.authorizePublish = chainAuthorizePublish({
    checks: [
      protocol.refuseReservedTopics
    ],
    onDrop: (client, packet, { drop, detail }) => {
      const clientLog = client === null ? log : clientLogger(log, client)
      clientLog.warn({ topic: packet.topic, qos: packet.qos, reason: drop, detail }, 'publish dropped')
    },
    commit: protocol.gate.commit,
    settle: protocol.gate.settle
  })
  aedes.authorizeSubscribe = chainAuthorizeSubscribe([
    protocol.refuseSharedFilters
  ], protocol.recordGranted)

  logClientEvents(aedes, log)

  let listeners: Listener[] = []
  let admin: AdminServer | undefined
  let ready = false
  try {
    await aedes.listen()
    listeners = await startListeners(config.listeners, aedes.handle, log)
    if (config.admin.enabled) {
      admin = await startAdminServer(config.admin, { ready: () => ready })
      log.info({ listener: 'admin', host: admin.host, port: admin.port }, 'listening')
    }
  } catch (err) {
    await closeListeners(listeners)
    await closeAedes(aedes)
    await store.close()
    throw err
  }
  ready = true
  log.info({ brokerId: aedes.id, version }, 'broker started')

  let closing: Promise<void> | undefined
  return {
    aedes,
    store,
    listeners,
    admin,
    close: async () => {
      closing ??= (async () => {
        ready = false
        await closeListeners(listeners)
        await closeAedes(aedes)
        await store.close()
        await admin?.close()
        log.info('broker stopped')
      })()
      await closing
    }
  }
}

async function closeAedes (aedes: Aedes): Promise<void> {
  await new Promise<void>(resolve => aedes.close(() => resolve()))
}
