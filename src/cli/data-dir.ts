import path from 'node:path'
import { createLogger } from '../log/logger.js'
import { openStore, type LevelStore } from '../store/index.js'

/** Where a data directory keeps its store. */
export function storeDir (dataDir: string): string {
  return path.resolve(dataDir, 'store')
}

/**
 * Opens a data directory's store for a command that runs while no broker does (LevelDB allows one process). Limits
 * are off: a command only reads, deletes or replays what is there.
 */
export async function openDataDir (dataDir: string): Promise<LevelStore> {
  return await openStore({
    dir: storeDir(dataDir),
    sync: true,
    logger: createLogger({ level: 'error', format: 'json', destination: process.stderr }),
    limits: { maxQueuedMessages: 0, maxQueuedBytes: 0, maxTotalQueuedMessages: 0, maxTotalQueuedBytes: 0, overflowPolicy: 'dropOldest', messageExpiryMs: 0, queueQos0: false, maxRetainedMessages: 0 }
  })
}
