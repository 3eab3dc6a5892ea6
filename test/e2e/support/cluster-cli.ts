import { afterAll, beforeAll } from 'vitest'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir, type RunningCli } from '../../helpers/cli.js'
import { startTestRedis, type TestRedis } from '../../helpers/redis-server.js'

/**
 * For a describe block of cluster tests with the built command: one private redis-server, and `node(id)` starting a
 * node on it (`culex start` with its own data directory and `CULEX_CLUSTER_*`), everything gone after the block.
 */
export function useClusterCli () {
  let redis: TestRedis | undefined
  const dirs: string[] = []
  beforeAll(async () => {
    await ensureBuilt()
    redis = await startTestRedis()
  }, 120_000)
  afterAll(async () => {
    await killAllChildren()
    await redis?.close()
    for (const dir of dirs) await removeDir(dir)
  })
  const server = (): TestRedis => redis as TestRedis
  return {
    redis: server,
    /** A fresh directory, removed after the block. */
    dir: async (): Promise<string> => {
      const dir = await tempDataDir()
      dirs.push(dir)
      return dir
    },
    /** A node named `id`; `extra` are more flags and environment variables. */
    node: async (id: string, extra: { args?: string[], env?: Record<string, string>, dataDir?: string } = {}): Promise<RunningCli> => {
      let dir = extra.dataDir
      if (dir === undefined) {
        dir = await tempDataDir()
        dirs.push(dir)
      }
      return await startCli([...startArgs(dir), ...(extra.args ?? [])], { CULEX_CLUSTER_REDIS_URL: server().url, CULEX_CLUSTER_NODE_ID: id, ...extra.env })
    }
  }
}
