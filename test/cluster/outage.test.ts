import { afterEach, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import type { TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor, sleep, type TestClient } from '../helpers/clients.js'
import { startNode, waitForRoute } from './support.js'

let redis: TestRedis | undefined
const nodes: TestBroker[] = []
const clients: TestClient[] = []

afterEach(async () => {
  for (const c of clients.splice(0)) await endClient(c, true)
  for (const n of nodes.splice(0)) await n.close()
  await redis?.close()
  redis = undefined
})

async function twoNodes (r: TestRedis): Promise<{ a: TestBroker, b: TestBroker, sub: TestClient, pub: TestClient }> {
  const a = await startNode(r.url, 'a')
  nodes.push(a)
  const b = await startNode(r.url, 'b')
  nodes.push(b)
  const sub = await connectClient(a.mqttUrl, { clientId: 'sub' })
  clients.push(sub)
  await sub.subscribeAsync('live/#', { qos: 2 })
  await waitForRoute(b, a, 'live/1')
  const pub = await connectClient(b.mqttUrl, { clientId: 'pub' })
  clients.push(pub)
  return { a, b, sub, pub }
}

/** Publishes `count` QoS 1 messages from `pub`, one every `everyMs`, each acknowledged before the next. */
async function publishRun (pub: TestClient, count: number, everyMs: number, qos: 1 | 2 = 1): Promise<void> {
  for (let i = 0; i < count; i++) {
    await pub.publishAsync('live/1', String(i), { qos })
    if (everyMs > 0) await sleep(everyMs)
  }
}

async function connectionsOf (admin: Redis, nodeId: string): Promise<string[]> {
  const list = await admin.client('LIST') as string
  return list.split('\n').filter(line => line.includes(` name=culex:${nodeId}:`)).map(line => /id=(\d+)/.exec(line)?.[1] ?? '')
}

const expected = (n: number): string[] => Array.from({ length: n }, (_, i) => String(i))

describe('cluster bus across Redis outages', () => {
  it.each([
    ["node A's (the subscriber's: its stream reader among them), QoS 1", 'a', 1],
    ["node B's (the publisher's: writes in flight are resent), QoS 2", 'b', 2]
  ] as const)('loses and doubles no live message while %s Redis connections are killed and restored', async (_, killed, qos) => {
    redis = await startTestRedis()
    const { a, b, sub, pub } = await twoNodes(redis)
    const admin = new Redis(redis.url)
    try {
      const run = publishRun(pub, 300, 2, qos)
      // kill the node's connections three times while B publishes
      for (let k = 0; k < 3; k++) {
        await waitFor(() => sub.received.length > 50 * (k + 1), `${50 * (k + 1)} messages`)
        let ids: string[] = []
        // its four connections (commands, subscriber, stream reader, shared groups' inbox reader), back from the previous kill
        await waitFor(async () => (ids = await connectionsOf(admin, killed)).length === 4, `node ${killed}'s connections`)
        for (const id of ids) await admin.client('KILL', 'ID', id)
      }
      await run
      await waitFor(() => sub.received.length >= 300, 'every message', 10_000)
      await sleep(200)
      expect(sub.received.map(m => m.payload)).toEqual(expected(300))
      const node = killed === 'a' ? a : b
      expect(await (await fetch(`${node.adminUrl}/metrics`)).text()).toMatch(/^culex_cluster_bus_reconnects_total\{connection="reader"\} [3-9]$/m)
    } finally {
      admin.disconnect()
    }
  })

  it('a Redis restart (AOF) holds QoS 1 publishers until it is back, and the subscriber on the other node gets every message once', async () => {
    redis = await startTestRedis({ appendfsync: 'always' })
    const { a, sub, pub } = await twoNodes(redis)
    await publishRun(pub, 20, 0)
    await waitFor(() => sub.received.length === 20, 'the first 20')
    await redis.stop()
    let acknowledged = 0
    const run = (async () => {
      for (let i = 20; i < 40; i++) {
        await pub.publishAsync('live/1', String(i), { qos: 1 })
        acknowledged++
      }
    })()
    await sleep(1500)
    // nothing can be acknowledged before Redis holds the copy for node A
    expect(acknowledged).toBe(0)
    const readyz = await fetch(`${a.adminUrl}/readyz`)
    expect(readyz.status).toBe(503)
    expect(((await readyz.json()) as { reason?: string }).reason).toMatch(/^cluster Redis unreachable \(/)
    await redis.start()
    await run
    await waitFor(() => sub.received.length >= 40, 'every message', 10_000)
    await sleep(300)
    expect(sub.received.map(m => m.payload)).toEqual(expected(40))
    await waitFor(async () => (await fetch(`${a.adminUrl}/readyz`)).status === 200, 'node A ready again')
    // the outage is logged once per connection, not per retry
    const lostLines = a.logs.filter(l => l.msg === 'cluster Redis connection lost; retrying')
    expect(lostLines.map(l => l.connection).sort()).toEqual(['commands', 'groups', 'reader', 'subscriber'])
    // and the cluster is whole again: both nodes alive in /api/cluster
    await waitFor(async () => {
      const body = await (await fetch(`${a.adminUrl}/api/cluster`)).json() as { items: Array<{ nodeId: string, health: string }> }
      return body.items.filter(n => n.health === 'alive').length === 2
    }, 'two live nodes', 5000)
  })
  it('a hung Redis (SIGSTOP, connections open) makes both nodes not ready within a bounded time, then ready again by themselves, nothing lost', async () => {
    redis = await startTestRedis()
    const settings = { 'cluster.redisPingTimeoutMs': 300 }
    const a = await startNode(redis.url, 'a', settings)
    nodes.push(a)
    const b = await startNode(redis.url, 'b', settings)
    nodes.push(b)
    const sub = await connectClient(a.mqttUrl, { clientId: 'sub', clean: false })
    clients.push(sub)
    await sub.subscribeAsync('live/#', { qos: 1 })
    await waitForRoute(b, a, 'live/1')
    const pub = await connectClient(b.mqttUrl, { clientId: 'pub' })
    clients.push(pub)
    await publishRun(pub, 10, 0)
    await waitFor(() => sub.received.length === 10, 'the first 10')

    redis.pause()
    const pausedAt = Date.now()
    let acknowledged = 0
    const waiting = Array.from({ length: 20 }, async (_, i) => {
      await pub.publishAsync('live/1', String(10 + i), { qos: 1 })
      acknowledged++
    })
    const reasons = new Map<TestBroker, string>()
    await waitFor(async () => {
      for (const node of [a, b]) {
        const readyz = await fetch(`${node.adminUrl}/readyz`)
        if (readyz.status !== 503) return false
        reasons.set(node, String(((await readyz.json()) as { reason?: string }).reason))
      }
      return true
    }, 'both nodes not ready', 5000)
    // bounded: a probe every heartbeat (100 ms), 300 ms for its answer
    expect(Date.now() - pausedAt).toBeLessThan(3000)
    for (const reason of reasons.values()) expect(reason).toMatch(/^cluster Redis unreachable \(.*commands: no answer to PING within 300 ms/)
    expect(await (await fetch(`${a.adminUrl}/metrics`)).text()).toMatch(/^culex_cluster_redis_connections_down [1-9]$/m)
    // more probes go unanswered meanwhile: still one line per connection
    await sleep(1000)
    expect(acknowledged).toBe(0)
    const hungLines = a.logs.filter(l => l.msg === 'cluster Redis not answering; waiting for it')
    expect(hungLines.length).toBeGreaterThan(0)
    expect(new Set(hungLines.map(l => l.connection)).size).toBe(hungLines.length)

    redis.resume()
    await Promise.all(waiting)
    await waitFor(() => sub.received.length >= 30, 'every message', 10_000)
    await waitFor(async () => (await fetch(`${a.adminUrl}/readyz`)).status === 200 && (await fetch(`${b.adminUrl}/readyz`)).status === 200, 'both nodes ready again')
    await sleep(300)
    expect(sub.received.map(m => m.payload)).toEqual(expected(30))
    expect(a.logs.filter(l => l.msg === 'cluster Redis connection back').length).toBeGreaterThan(0)
    expect(await (await fetch(`${a.adminUrl}/metrics`)).text()).toMatch(/^culex_cluster_redis_connections_down 0$/m)
    // neither node took the other for dead because the stall outlasted cluster.nodeTimeoutMs
    expect([...a.logs, ...b.logs].filter(l => l.msg === 'cluster node dead; removed')).toEqual([])
    const body = await (await fetch(`${a.adminUrl}/api/cluster`)).json() as { items: Array<{ health: string }> }
    expect(body.items.map(n => n.health)).toEqual(['alive', 'alive'])
  })

  it('a node started before Redis waits for it, and joins once it answers', async () => {
    redis = await startTestRedis()
    await redis.stop()
    const starting = startNode(redis.url, 'early')
    await sleep(500)
    await redis.start()
    const early = await starting
    nodes.push(early)
    const b = await startNode(redis.url, 'b')
    nodes.push(b)
    await waitFor(() => early.broker.cluster?.nodes().length === 2, 'both nodes seen from the early one')
  })
})
