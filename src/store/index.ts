/**
 * Culex's persistence: the aedes-persistence 11 interface on LevelDB (npm `level`), with group commit, in-memory
 * indexes, queue limits and checked opens. docs/store.md describes the layout and the durability contract.
 *
 * Public API:
 *
 *   openBrokerStore(opts: StoreOptions & { redis? }): Promise<CulexStore>
 *     The broker's store: openRedisStore when opts.redis is given (cluster mode, src/store/redis/), else openStore.
 *
 *   openRedisStore({ redis: { url, sentinels?, sentinelName?, prefix? }, logger, limits, onDrop? }): Promise<RedisStore>
 *     Connects to Redis (waiting for it; ERR_CLUSTER_REDIS when it does not answer within redis.connectTimeoutMs if
 *     given, ERR_CONFIG_INVALID for a bad URL),
 *     checks the key layout version (ERR_STORE_VERSION) and loads the subscription matcher.
 *
 *   openStore(opts: StoreOptions): Promise<LevelStore>
 *     Opens (creating if needed) the LevelDB directory opts.dir, checks its format version, loads every index and
 *     returns a store to pass to aedes as `persistence`. Throws CulexError:
 *       ERR_STORE_OPEN     the directory cannot be created or opened
 *       ERR_STORE_LOCKED   another process holds the directory
 *       ERR_STORE_VERSION  written by a newer culex (format version > 1)
 *       ERR_STORE_CORRUPT  LevelDB corruption, undecodable values, data without a format record, or records
 *                          LevelDB dropped while recovering; with onCorrupt 'moveAside' the directory is moved to
 *                          <dir>.corrupt-<time> instead and an empty store is opened (an error line is logged).
 *
 *   LevelStore: every aedes-persistence 11 method (setup is a native async method), plus
 *     close(): Promise<void>        flushes pending writes and closes the database; safe to call twice
 *     destroy(): Promise<void>      same as close (the abstract suite calls it); the data stays on disk
 *     barrier(): Promise<void>      resolves once every write queued so far is on disk
 *     stats(): StoreStats           { sessions, queuedMessages, queuedBytes, retained, subscriptions, writeBatches, writeFailures, droppedMessages }
 *     sessionInfo(clientId): Promise<SessionInfo | undefined>
 *                                   { clientId, subscriptions: {topic, qos}[], queued, inflight, queuedBytes, oldestQueuedAt? }
 *     listSessions(): Promise<string[]>
 *     purgeSession(clientId): Promise<boolean>
 *     subscriptionsAtQos0(topic, publishQos): TopicSubscription[]
 *                                   with limits.queueQos0: the subscriptions through which a publish goes out at
 *                                   QoS 0, for the broker to queue QoS 0 copies for offline sessions
 *     enqueueOfflineQos0(packet, isOnline): Promise<void> | undefined
 *                                   queues those copies for the sessions `isOnline` does not name (undefined:
 *                                   nothing to queue); in a cluster also not for sessions connected to another node
 *
 *   checkStore(dir): Promise<StoreCheck>      read-only verification for `culex store check`
 *   repairStore(dir): Promise<{ movedTo }>    moves the directory to <dir>.corrupt-<time>, leaves an empty one
 */
import { CulexError } from '../errors.js'
import { repairStore } from './check.js'
import { LevelStore } from './level-store.js'
import { corruptError, ensureFormat, openDb, readMarker, recoveryProblems, writeMarker, CORRUPT_MARKER, type StoreDb } from './open.js'
import type { StoreOptions } from './types.js'
import type { CulexStore } from './contract.js'
import { openRedisStore, type RedisStoreConnect } from './redis/open.js'

export { LevelStore } from './level-store.js'
export type { CulexStore, DeadLetterLog, GroupQueues, MaybePromise, QueuedCopies, SharedQueues } from './contract.js'
export { checkStore, repairStore, type StoreCheck, type StoreCounts } from './check.js'
export { openRedisStore, type OpenRedisOptions, type RedisStoreConnect } from './redis/open.js'
export { redisConnectOptions } from './redis/connect-options.js'
export { connectRedis, redisLocation } from './redis/connection.js'
export { REDIS_FORMAT_VERSION } from './redis/open.js'
export { inspectRedisStore } from './redis/inspect.js'
export { repairRedisStore, type RedisRepair } from './redis/repair.js'
export { RedisStore } from './redis/redis-store.js'
export type {
  StoreOptions, StoreLimits, StoreStats, SessionInfo, DropEvent, DropReason, OverflowPolicy, CorruptPolicy
} from './types.js'

async function openChecked (opts: StoreOptions): Promise<LevelStore> {
  const marker = await readMarker(opts.dir)
  if (marker !== undefined) {
    throw corruptError(opts.dir, `LevelDB dropped damaged records on an earlier open (details in ${CORRUPT_MARKER}; ` +
      'delete that file to keep the data that survived)')
  }
  const db: StoreDb = await openDb(opts.dir, true)
  try {
    const dropped = await recoveryProblems(opts.dir)
    if (dropped.length > 0) {
      await writeMarker(opts.dir, dropped)
      throw corruptError(opts.dir, `LevelDB dropped damaged records while opening it (${dropped[0]}; details in ${CORRUPT_MARKER})`)
    }
    await ensureFormat(db, opts.dir)
    const store = new LevelStore(db, opts)
    await store.load()
    return store
  } catch (err) {
    await db.close().catch(() => undefined)
    throw err
  }
}

/**
 * The store a broker runs on: Redis when `redis` is given (cluster mode), else LevelDB in `opts.dir`. Both
 * implement the same contract (contract.ts).
 */
export async function openBrokerStore (opts: StoreOptions & { redis?: RedisStoreConnect }): Promise<CulexStore> {
  const { redis, dir: _dir, sync: _sync, onCorrupt: _onCorrupt, ...common } = opts
  if (redis !== undefined) return await openRedisStore({ ...common, redis })
  return await openStore(opts)
}

export async function openStore (opts: StoreOptions): Promise<LevelStore> {
  try {
    return await openChecked(opts)
  } catch (err) {
    if (!(err instanceof CulexError) || err.code !== 'ERR_STORE_CORRUPT' || opts.onCorrupt !== 'moveAside') throw err
    const { movedTo } = await repairStore(opts.dir)
    opts.logger.error({ dir: opts.dir, movedTo, problem: err.message }, 'corrupt store moved aside, starting empty')
    return await openChecked(opts)
  }
}
