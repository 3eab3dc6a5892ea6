import { existsSync } from 'node:fs'
import path from 'node:path'
import { CulexError } from '../errors.js'
import { createLogger, type Logger } from '../log/logger.js'
import { openStore, type CulexStore, type StoreLimits } from '../store/index.js'

/** Where a data directory keeps its store. */
export function storeDir (dataDir: string): string {
  return path.resolve(dataDir, 'store')
}

/**
 * Opens a data directory's store for a command that runs while no broker does (LevelDB allows one process). Limits
 * are off: a command only reads, deletes or replays what is there. A directory that holds no store is refused
 * unless `create` is set: a mistyped --data-dir must not answer "nothing there" from a store made on the spot.
 */
export async function openDataDir (dataDir: string, opts: { create?: boolean } = {}): Promise<CulexStore> {
  const dir = storeDir(dataDir)
  // LevelDB writes CURRENT when it creates a database; Culex writes its format record in the same open.
  if (opts.create !== true && !existsSync(path.join(dir, 'CURRENT'))) {
    throw new CulexError('ERR_STORE_OPEN', `no culex store in ${path.resolve(dataDir)} (${dir} does not hold one): check the data directory given; the broker creates its store when it first starts`)
  }
  return await openStore({
    dir,
    sync: true,
    logger: quietLogger(),
    limits: NO_LIMITS
  })
}

/** A command only reads, deletes or replays what is there: no limits. */
export const NO_LIMITS: StoreLimits = { maxQueuedMessages: 0, maxQueuedBytes: 0, maxTotalQueuedMessages: 0, maxTotalQueuedBytes: 0, overflowPolicy: 'dropOldest', messageExpiryMs: 0, queueQos0: false, maxRetainedMessages: 0 }

/** Store errors only, on stderr. */
export function quietLogger (): Logger {
  return createLogger({ level: 'error', format: 'json', destination: process.stderr })
}
