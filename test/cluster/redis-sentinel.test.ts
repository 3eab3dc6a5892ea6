import { afterEach, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import type { TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor, type TestClient } from '../helpers/clients.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import { prng, startNode, waitForRoute } from './support.js'

const servers: TestRedis[] = []
const nodes: TestBroker[] = []
const clients: TestClient[] = []
const admins: Redis[] = []

afterEach(async () => {
  for (const c of clients.splice(0)) await endClient(c, true)
  for (const n of nodes.splice(0)) await n.close()
  for (const r of admins.splice(0)) r.disconnect()
  for (const s of servers.splice(0).reverse()) { s.resume(); await s.close() }
})

const admin = (port: number): Redis => {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 })
  r.on('error', () => {})
  admins.push(r)
  return r
}

/** Seeds of the kill's moment, each a run of its own; CULEX_FAILOVER_SEEDS=5,6,... runs others. */
const SEEDS = (process.env.CULEX_FAILOVER_SEEDS ?? '1,2').split(',').map(Number)
const WINDOW = 8
/** Heartbeats slower than support.ts's, so a node busy reconnecting on this shared machine is not taken for dead. */
const TIMING = { 'cluster.heartbeatIntervalMs': 250, 'cluster.nodeTimeoutMs': 2500 }

/**
 * A master, two replicas and a Sentinel (quorum 1, the master down after 1 s without an answer): the nodes find
 * the master through the Sentinel (cluster.redisSentinels). Two replicas, so that after the failover the new master
 * still has one to confirm cluster.redisWaitReplicas: 1.
 */
async function sentinelSetup (): Promise<{ master: TestRedis, replicas: TestRedis[], sentinel: TestRedis }> {
  const master = await startTestRedis()
  servers.push(master)
  const replicas: TestRedis[] = []
  for (let i = 0; i < 2; i++) {
    const replica = await startTestRedis({ replicaOf: master.port })
    servers.push(replica)
    replicas.push(replica)
  }
  const m = admin(master.port)
  await waitFor(async () => (await m.info('replication')).match(/^slave\d+:.*state=online/gm)?.length === 2, 'both replicas in sync')
  const sentinel = await startTestRedis({ sentinelOf: master.port, sentinelDownAfterMs: 1000, sentinelFailoverTimeoutMs: 5000 })
  servers.push(sentinel)
  const s = admin(sentinel.port)
  await waitFor(async () => (await s.call('SENTINEL', 'REPLICAS', 'mymaster') as unknown[]).length === 2, 'the Sentinel knowing both replicas')
  return { master, replicas, sentinel }
}

/** Every `pollMs`, each node's /readyz status, with the time of the answer. */
function watchReadiness (watched: TestBroker[], pollMs = 50): { seen: Map<TestBroker, Array<{ at: number, status: number }>>, stop: () => Promise<void> } {
  const seen = new Map(watched.map(n => [n, [] as Array<{ at: number, status: number }>]))
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      for (const n of watched) {
        const status = await fetch(`${n.adminUrl}/readyz`).then(r => r.status, () => 0)
        seen.get(n)?.push({ at: Date.now(), status })
      }
      await new Promise(resolve => setTimeout(resolve, pollMs))
    }
  })()
  return { seen, stop: async () => { stopped = true; await loop } }
}

describe('cluster mode through Redis Sentinel', () => {
  it.each(SEEDS)('a kill -9 of the Redis master mid-stream: the nodes follow the failover by themselves, and with redisWaitReplicas 1 every acknowledged QoS 1 message arrives (seed %i)', async (seed) => {
    const random = prng(seed)
    const { master, replicas, sentinel } = await sentinelSetup()
    const settings = {
      ...TIMING,
      'cluster.redisSentinels': `127.0.0.1:${sentinel.port}`,
      'cluster.redisWaitReplicas': 1,
      // long enough for the other replica to follow the new master on a loaded machine: a WAIT that times out
      // closes the publisher's connection (tested in its own case below), which this case is not about
      'cluster.redisWaitTimeoutMs': 20_000
    }
    // with Sentinels the URL gives only the user, password, database and TLS
    const a = await startNode('redis://127.0.0.1', 'a', settings)
    nodes.push(a)
    const b = await startNode('redis://127.0.0.1', 'b', settings)
    nodes.push(b)
    const sub = await connectClient(a.mqttUrl, { clientId: 'sub', clean: false })
    clients.push(sub)
    await sub.subscribeAsync('ha/#', { qos: 1 })
    await waitForRoute(b, a, 'ha/1')
    // the publisher reconnects, as devices do: a node closes a publisher's connection when a publish's writes fail or
    // its WAIT is not confirmed in time (docs/cluster.md), and mqtt.js then sends its unacknowledged messages again
    const pub = await connectClient(b.mqttUrl, { clientId: 'pub', reconnectPeriod: 250 })
    clients.push(pub)
    const closed: string[] = []
    for (const [name, c] of [['sub', sub], ['pub', pub]] as const) c.on('close', () => { closed.push(name) })

    // QoS 1 publishes with up to WINDOW unacknowledged, until stopped; acked: each PUBACK'd number
    const acked: number[] = []
    const failed: string[] = []
    let stopped = false
    const publishing = (async () => {
      const window = new Set<Promise<void>>()
      // a failed publish ends the loop: with the connection gone every publish fails at once, and would forever
      for (let n = 0; !stopped && failed.length === 0; n++) {
        const sent: Promise<void> = new Promise<void>(resolve => {
          pub.publish('ha/1', String(n), { qos: 1 }, err => {
            if (err === undefined || err === null) acked.push(n)
            else failed.push(`${n}: ${err.message}`)
            resolve()
          })
        }).finally(() => window.delete(sent))
        window.add(sent)
        if (window.size >= WINDOW) await Promise.race(window)
      }
      await Promise.all(window)
    })()

    const readiness = watchReadiness([a, b])
    let killAfter = 0
    let ackedAtKill = 0
    let killedAt = 0
    let promoted: TestRedis | undefined
    try {
      killAfter = 100 + Math.floor(random() * 200)
      await waitFor(() => acked.length >= killAfter, `${killAfter} acknowledged before the kill`, 10_000)
      killedAt = Date.now()
      await master.kill()
      ackedAtKill = acked.length

      // Sentinel promotes one of the replicas
      const s = admin(sentinel.port)
      await waitFor(async () => {
        const addr = await s.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster') as [string, string]
        promoted = replicas.find(r => r.port === Number(addr[1]))
        return promoted !== undefined
      }, 'the Sentinel promoting a replica', 15_000)
      // both nodes ready again, and publishes acknowledged again (the other replica confirms the WAIT)
      await waitFor(async () => (await fetch(`${a.adminUrl}/readyz`)).status === 200 && (await fetch(`${b.adminUrl}/readyz`)).status === 200, 'both nodes ready again', 15_000)
      const ackedWhenReady = acked.length
      await waitFor(() => acked.length >= ackedWhenReady + 150, '150 more acknowledged after the failover', 30_000)
    } catch (err) {
      // each node's last warnings and the publisher's own lines (its connection closed once in a CI run, unexplained)
      const warnings = [a, b].flatMap(n => n.logs.filter(l => Number(l.level ?? 0) >= 40 || l.clientId === 'pub').slice(-6).map(l => `${n.broker.cluster?.nodeId ?? ''}: ${String(l.msg)} ${JSON.stringify(l.err ?? l.reason ?? '')}`))
      throw new Error(`${(err as Error).message} (connections closed: ${closed.join() || 'none'}; failed publishes: ${failed.slice(0, 3).join('; ') || 'none'}; warnings: ${warnings.join(' | ') || 'none'})`)
    } finally {
      stopped = true
      // bounded: with acknowledgements stuck the window never empties, and the failure above is what should show
      await Promise.race([publishing, sleep(10_000)])
      await readiness.stop()
    }

    const wanted = new Set(acked.map(String))
    const got = (): Set<string> => new Set(sub.received.map(m => m.payload))
    await waitFor(() => [...wanted].every(p => got().has(p)), 'every acknowledged message at the subscriber', 15_000)
    const missing = [...wanted].filter(p => !got().has(p))
    expect(missing, `kill after ${killAfter} (${ackedAtKill} acknowledged at the kill)`).toEqual([])
    expect(failed).toEqual([])

    // not ready while the master was gone, ready after: on both nodes, and not before the store's own connection
    // (which the enqueues go over) was back too
    for (const [node, seen] of readiness.seen) {
      const id = node.broker.cluster?.nodeId ?? ''
      const after = seen.filter(x => x.at >= killedAt)
      expect(after.some(x => x.status === 503), `${id} not ready during the failover`).toBe(true)
      expect(after.at(-1)?.status).toBe(200)
      const storeBack = Date.parse(String(node.logs.find(l => l.msg === 'redis available again')?.time))
      const readyAgain = after.slice(after.findIndex(x => x.status === 503)).find(x => x.status === 200)?.at ?? 0
      expect(readyAgain, `${id} ready again only with its store connection back`).toBeGreaterThanOrEqual(storeBack)
    }
    // the nodes were not restarted, and every connection of theirs is on the new master: the messaging's commands,
    // pub/sub subscriber and the two stream readers blocked in XREAD, and the store's
    const onPromoted = (await admin((promoted as TestRedis).port).client('LIST') as string).split('\n')
    for (const id of ['a', 'b']) {
      const names = onPromoted.map(line => / name=(\S*)/.exec(line)?.[1] ?? '').filter(n => n.startsWith(`culex:${id}:`)).sort()
      expect(names).toEqual(['commands', 'groups', 'reader', 'subscriber'].map(role => `culex:${id}:${role}`))
    }
    // the subscriber's connection is never closed (a publisher's may be, see above)
    expect(closed.filter(name => name !== 'pub')).toEqual([])
    for (const node of [a, b]) {
      expect(node.logs.filter(l => l.msg === 'redis unavailable: QoS 1/2 publishes wait for it, unacknowledged')).toHaveLength(1)
      expect(node.logs.filter(l => l.msg === 'redis available again')).toHaveLength(1)
    }
    // a subscription made after the failover reaches the other node (the filter announcement over pub/sub)
    await sub.subscribeAsync('after/#', { qos: 1 })
    await waitForRoute(b, a, 'after/1')
    await pub.publishAsync('after/1', 'after', { qos: 1 })
    await waitFor(() => sub.received.some(m => m.payload === 'after'), 'a message on the new subscription')
    // the cluster whole again: each node sees the other alive once both have renewed their registrations on the new master
    await waitFor(async () => {
      const body = await (await fetch(`${a.adminUrl}/api/cluster`)).json() as { items: Array<{ nodeId: string, health: string }> }
      return body.items.filter(n => n.health === 'alive').length === 2
    }, 'both nodes alive in /api/cluster')
  }, 120_000)
})

/**
 * cluster.redisWaitReplicas for a message that reaches another node only live: a connected clean session there,
 * nothing queued for it in the store. A failover to a replica without its stream entry would lose it, so it too is
 * acknowledged only once the replica has the publish's writes.
 */
describe('redisWaitReplicas and the messages between nodes', () => {
  it('a QoS 1 publish only a clean session on another node receives is not acknowledged while the replica is stalled, and is once it answers', async () => {
    const master = await startTestRedis()
    servers.push(master)
    const replica = await startTestRedis({ replicaOf: master.port })
    servers.push(replica)
    const m = admin(master.port)
    await waitFor(async () => /slave0:.*state=online/.test(await m.info('replication')), 'the replica in sync')
    const settings = { 'cluster.redisWaitReplicas': 1, 'cluster.redisWaitTimeoutMs': 30_000 }
    const a = await startNode(master.url, 'a', settings)
    nodes.push(a)
    const b = await startNode(master.url, 'b', settings)
    nodes.push(b)
    const sub = await connectClient(a.mqttUrl, { clientId: 'live' })
    clients.push(sub)
    await sub.subscribeAsync('bus/#', { qos: 1 })
    await waitForRoute(b, a, 'bus/1')
    const pub = await connectClient(b.mqttUrl, { clientId: 'pub' })
    clients.push(pub)
    await pub.publishAsync('bus/1', 'before', { qos: 1 })
    await waitFor(() => sub.received.length === 1, 'the first message')

    replica.pause()
    let acked = false
    const sent = pub.publishAsync('bus/1', 'during', { qos: 1 }).then(() => { acked = true })
    // node A has it (the master holds the stream entry), but the replica does not
    await waitFor(() => sub.received.length === 2, 'the second message on node A')
    await sleep(500)
    expect(acked).toBe(false)

    replica.resume()
    await sent
    expect(acked).toBe(true)
    expect(sub.received.map(r => r.payload)).toEqual(['before', 'during'])
  })
})
