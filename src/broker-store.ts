/**
 * The store as the broker uses it: opened as the configuration says, what a restart brought back logged, its write
 * batches measured.
 */
import path from 'node:path'
import type { Config } from './config/schema.js'
import type { Logger } from './log/logger.js'
import type { BrokerMetrics } from './metrics/index.js'
import { openBrokerStore, redisConnectOptions, type CulexStore, type DropEvent } from './store/index.js'

/**
 * The broker's store as the configuration asks for it: LevelDB under dataDir, or Redis in cluster mode, with the
 * session and retained limits. `onDrop` hears what those limits drop.
 */
export async function openConfiguredStore (config: Config, log: Logger, onDrop: (event: DropEvent) => void): Promise<CulexStore> {
  const redis = redisConnectOptions(config.cluster)
  return await openBrokerStore({
    ...(redis === undefined ? {} : { redis }),
    dir: path.resolve(config.dataDir, 'store'),
    sync: config.store.sync,
    onCorrupt: config.store.onCorrupt,
    logger: log.child({ component: 'store' }),
    onDrop,
    limits: {
      maxQueuedMessages: config.sessions.maxQueuedMessages,
      maxQueuedBytes: config.sessions.maxQueuedBytes,
      maxTotalQueuedMessages: config.sessions.maxTotalQueuedMessages,
      maxTotalQueuedBytes: config.sessions.maxTotalQueuedBytes,
      overflowPolicy: config.sessions.overflowPolicy,
      messageExpiryMs: config.sessions.messageExpiryMs,
      queueQos0: config.sessions.queueQos0,
      maxRetainedMessages: config.retained.maxMessages
    }
  })
}

/** One line after the store has loaded: what a restart brought back, and how long loading it took. */
export async function logRecovered (store: CulexStore, openedAt: number, log: Logger): Promise<void> {
  const wills = (await store.streamWill().toArray()).length + (await store.delayedWills()).length
  const s = store.stats()
  log.info({
    sessions: s.sessions,
    queuedMessages: s.queuedMessages,
    queuedBytes: s.queuedBytes,
    retained: s.retained,
    subscriptions: s.subscriptions,
    wills,
    deadLetters: store.deadLetters.count,
    ms: Math.round(performance.now() - openedAt)
  }, 'store recovered')
}

/** How many writes each store batch commits, and how long committing it takes. */
export function registerStoreMetrics (store: CulexStore, metrics: BrokerMetrics): void {
  const batchOps = metrics.histogram({ name: 'culex_store_batch_ops', help: 'Writes committed together in one store batch.', buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] })
  const batchSeconds = metrics.histogram({ name: 'culex_store_batch_seconds', help: 'Time to commit one store batch.', buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5] })
  store.observeWrites((ops, ms) => {
    batchOps.observe(ops)
    batchSeconds.observe(ms / 1000)
  })
}
