import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { waitFor } from '../helpers/clients.js'

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
