import { afterAll, afterEach, beforeAll } from 'vitest'
import type { IClientOptions } from 'mqtt'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, connectV5, endClient, waitFor, type TestClient } from '../helpers/clients.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'

/** Fast heartbeats, so a dead node is found within a second or two. */
export const FAST = { 'cluster.heartbeatIntervalMs': 100, 'cluster.nodeTimeoutMs': 600 }

/** A node of a cluster on `redisUrl`: a real broker in this process with its own data dir. */
export async function startNode (redisUrl: string, nodeId: string, settings: Record<string, unknown> = {}): Promise<TestBroker> {
  return await startTestBroker({ 'cluster.redisUrl': redisUrl, 'cluster.nodeId': nodeId, ...FAST, ...settings })
}

/** Until `from` routes messages on `topic` to the node `to` (it has read to's filter from Redis). */
export async function waitForRoute (from: TestBroker, to: TestBroker, topic: string): Promise<void> {
  const target = to.broker.cluster?.nodeId ?? ''
  await waitFor(() => from.broker.cluster?.routesTo(target, topic) === true, `a route from ${from.broker.cluster?.nodeId ?? ''} to ${target} for ${topic}`)
}

/**
 * One Redis for the file, and the nodes and clients a test starts, closed after it: `node(id)` starts a node,
 * `client(url)` connects an MQTT 3.1.1 client (`v5` for MQTT 5).
 */
export function useCluster () {
  let redis: TestRedis | undefined
  const nodes: TestBroker[] = []
  const clients: TestClient[] = []
  beforeAll(async () => { redis = await startTestRedis() })
  afterAll(async () => { await redis?.close() })
  afterEach(async () => {
    for (const c of clients.splice(0)) await endClient(c, true)
    for (const n of nodes.splice(0)) await n.close()
  })
  return {
    redis: (): TestRedis => redis as TestRedis,
    node: async (id: string, settings: Record<string, unknown> = {}): Promise<TestBroker> => {
      const n = await startNode((redis as TestRedis).url, id, settings)
      nodes.push(n)
      return n
    },
    client: async (url: string, opts: IClientOptions = {}, v5 = false): Promise<TestClient> => {
      const c = v5 ? await connectV5(url, opts) : await connectClient(url, opts)
      clients.push(c)
      return c
    }
  }
}
