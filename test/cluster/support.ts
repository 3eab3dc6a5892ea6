import { afterAll, afterEach, beforeAll } from 'vitest'
import type { IClientOptions } from 'mqtt'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, connectV5, endClient, waitFor, type TestClient } from '../helpers/clients.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir, type RunningCli } from '../helpers/cli.js'

/** Fast heartbeats, so a dead node is found within a second or two. */
export const FAST = { 'cluster.heartbeatIntervalMs': 100, 'cluster.nodeTimeoutMs': 600 }
/**
 * Timings for tests that stop a node on purpose: with FAST, a node starved of CPU on a loaded machine (the whole
 * suite running) can miss its heartbeats and be taken for dead too, which is not what such a test is about.
 */
export const STEADY = { 'cluster.heartbeatIntervalMs': 250, 'cluster.nodeTimeoutMs': 2500 }
export const STEADY_ENV = { CULEX_CLUSTER_HEARTBEAT_INTERVAL_MS: '250', CULEX_CLUSTER_NODE_TIMEOUT_MS: '2500' }

/** A node of a cluster on `redisUrl`: a real broker in this process with its own data dir. */
export async function startNode (redisUrl: string, nodeId: string, settings: Record<string, unknown> = {}): Promise<TestBroker> {
  return await startTestBroker({ 'cluster.redisUrl': redisUrl, 'cluster.nodeId': nodeId, ...FAST, ...settings })
}

/** A node as its own culex process (so it can be killed with SIGKILL), on `dataDir`; `env`: more CULEX_* settings. */
export async function cliNode (redisUrl: string, nodeId: string, dataDir: string, env: Record<string, string> = {}): Promise<RunningCli> {
  return await startCli(startArgs(dataDir), {
    CULEX_CLUSTER_REDIS_URL: redisUrl,
    CULEX_CLUSTER_NODE_ID: nodeId,
    CULEX_CLUSTER_HEARTBEAT_INTERVAL_MS: String(FAST['cluster.heartbeatIntervalMs']),
    CULEX_CLUSTER_NODE_TIMEOUT_MS: String(FAST['cluster.nodeTimeoutMs']),
    ...env
  })
}

/**
 * For a file that runs nodes as their own culex processes (cliNode): the build made first; every process it started
 * killed and every data directory `newDir()` gave removed after the file.
 */
export function useCliNodes () {
  const dirs: string[] = []
  beforeAll(async () => { await ensureBuilt() }, 200_000)
  afterAll(async () => {
    await killAllChildren()
    for (const dir of dirs) await removeDir(dir)
  })
  return {
    newDir: async (): Promise<string> => {
      const dir = await tempDataDir()
      dirs.push(dir)
      return dir
    }
  }
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

/** How many times each message (its payload) arrived, over all the clients. */
export function counts (received: string[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const p of received) out.set(p, (out.get(p) ?? 0) + 1)
  return out
}

/** A seeded PRNG (mulberry32): a failing run can be run again with its seed. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Until the publishing node sends the group's messages where the group gets them: its inbox, known to every node
 * (with the per-node groups of before, a route to each node with members).
 */
export async function groupKnown (from: TestBroker, members: TestBroker[], key: string, topic: string): Promise<void> {
  const cluster = from.broker.cluster as NonNullable<TestBroker['broker']['cluster']> & { routesToGroup?: (key: string) => boolean }
  if (typeof cluster.routesToGroup === 'function') {
    await waitFor(() => cluster.routesToGroup?.(key) === true, `${cluster.nodeId} knowing the group ${key}`)
    return
  }
  for (const to of members) if (to !== from) await waitForRoute(from, to, topic)
}

/**
 * Until the group's owner has both of its members on nodes `a` and `b`, seen from `b` (with the per-node groups of
 * before, until `b` routes the topic to `a`).
 */
export async function ownerHasMembers (b: TestBroker, aNode: string, key: string, topic: string, count: number): Promise<void> {
  const cluster = b.broker.cluster as NonNullable<TestBroker['broker']['cluster']> & { groupOwner?: (key: string) => string | undefined }
  if (typeof cluster.groupOwner !== 'function') {
    await waitFor(() => cluster.routesTo(aNode, topic), `a route from ${cluster.nodeId} to ${aNode} for ${topic}`)
    return
  }
  await waitFor(async () => {
    const owner = cluster.groupOwner?.(key)
    if (owner === undefined) return false
    const items = owner === cluster.nodeId
      ? (await (await fetch(`${b.adminUrl}/api/shared`)).json() as { items: Array<{ share: string, members: unknown[] }> }).items
      : []
    return owner !== cluster.nodeId || items.some(g => g.share === `$share/${key}` && g.members.length === count)
  }, `the owner of ${key} with ${count} members`)
}
