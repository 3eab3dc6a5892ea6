import { afterAll, beforeAll } from 'vitest'
import { startArgs, startCli, type RunningCli } from '../../helpers/cli.js'
import { startTestRedis, type TestRedis } from '../../helpers/redis-server.js'
import { useCliNodes } from '../../cluster/support.js'

/**
 * For a describe block of cluster tests with the built command: one private redis-server, and `node(id)` starting a
 * node on it (`culex start` with its own data directory and `CULEX_CLUSTER_*`), everything gone after the block.
 */
export function useClusterCli () {
  let redis: TestRedis | undefined
  beforeAll(async () => { redis = await startTestRedis() })
  afterAll(async () => { await redis?.close() })
  // registered after the Redis: its nodes are killed before the Redis closes
  const { newDir } = useCliNodes()
  const server = (): TestRedis => redis as TestRedis
  return {
    redis: server,
    /** A fresh directory, removed after the block. */
    dir: newDir,
    /** A node named `id`; `extra` are more flags and environment variables. */
    node: async (id: string, extra: { args?: string[], env?: Record<string, string>, dataDir?: string } = {}): Promise<RunningCli> => {
      const dir = extra.dataDir ?? await newDir()
      return await startCli([...startArgs(dir), ...(extra.args ?? [])], { CULEX_CLUSTER_REDIS_URL: server().url, CULEX_CLUSTER_NODE_ID: id, ...extra.env })
    }
  }
}
