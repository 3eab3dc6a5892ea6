import { describe, expect, it } from 'vitest'
import { endClient, waitFor, sleep } from '../helpers/clients.js'
import { cliNode, useCliNodes, useCluster, FAST, STEADY, STEADY_ENV } from './support.js'

const { node, client, redis } = useCluster()
const { newDir } = useCliNodes()

interface ClusterBody { nodeId: string, items: Array<{ nodeId: string, health: string, clients: number, filters?: number, listeners: Array<{ name: string, port: number }> }> }

async function clusterOf (adminUrl: string): Promise<ClusterBody> {
  return await (await fetch(`${adminUrl}/api/cluster`)).json() as ClusterBody
}

describe('a node killed with kill -9', () => {
  it('is listed by GET /api/cluster with its clients, and dropped by the survivors after cluster.nodeTimeoutMs', async () => {
    const b = await node('b')
    const a = await cliNode(redis().url, 'a', await newDir())
    const device = await client(`mqtt://127.0.0.1:${a.ports.mqtt}`, { clientId: 'dev' })
    await waitFor(async () => (await clusterOf(b.adminUrl)).items.find(n => n.nodeId === 'a')?.clients === 1, 'node a with one client, seen from b')
    const seen = await clusterOf(b.adminUrl)
    expect(seen.nodeId).toBe('b')
    expect(seen.items.map(n => [n.nodeId, n.health])).toEqual([['a', 'alive'], ['b', 'alive']])
    expect(seen.items[0].listeners.find(l => l.name === 'mqtt')?.port).toBe(a.ports.mqtt)
    const fromA = await clusterOf(`http://127.0.0.1:${a.ports.admin}`)
    expect(fromA.nodeId).toBe('a')
    await a.kill9()
    const killedAt = Date.now()
    await waitFor(async () => (await clusterOf(b.adminUrl)).items.every(n => n.nodeId !== 'a'), 'node a dropped', 5000)
    // not before its registration lapsed
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(FAST['cluster.nodeTimeoutMs'] - 100)
    expect(b.logs.some(l => l.msg === 'cluster node dead; removed' && l.nodeId === 'a')).toBe(true)
    device.end(true)
  })

  it.each([['the same node id', 'a'], ['another node id', 'a-next']])('has the wills of its clients published once, by the survivor, after cluster.nodeTimeoutMs, and not again when it runs again with %s', async (_, againId) => {
    const b = await node('b')
    const dir = await newDir()
    const a = await cliNode(redis().url, 'a', dir)
    const watcher = await client(b.mqttUrl, { clientId: 'watcher' })
    await watcher.subscribeAsync('wills/#', { qos: 1 })
    await waitFor(async () => ((await clusterOf(`http://127.0.0.1:${a.ports.admin}`)).items.find(n => n.nodeId === 'b')?.filters ?? 0) > 0, "a routes to b's subscriber")
    await client(`mqtt://127.0.0.1:${a.ports.mqtt}`, { clientId: 'device', will: { topic: 'wills/device', payload: Buffer.from('gone'), qos: 1, retain: false } })
    const killedAt = Date.now()
    await a.kill9()
    await waitFor(() => watcher.received.length > 0, 'the will on node b', 10_000)
    // not before a's registration lapsed: its last heartbeat may have been up to one interval before the kill
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(FAST['cluster.nodeTimeoutMs'] - FAST['cluster.heartbeatIntervalMs'] - 100)
    const again = await cliNode(redis().url, againId, dir)
    await sleep(1000)
    expect(watcher.received.map(m => [m.topic, m.payload])).toEqual([['wills/device', 'gone']])
    expect(b.logs.filter(l => l.msg === 'will of a dead node published').length).toBe(1)
    expect(again.logs.some(l => l.msg === 'will of a dead node published')).toBe(false)
    await again.stop()
  })
  it('has the will of a client that reconnected to the survivor before cluster.nodeTimeoutMs published once, and not the will of its new connection', async () => {
    const b = await node('b')
    const a = await cliNode(redis().url, 'a', await newDir())
    const watcher = await client(b.mqttUrl, { clientId: 'watcher' })
    await watcher.subscribeAsync('wills/#', { qos: 1 })
    await waitFor(async () => ((await clusterOf(`http://127.0.0.1:${a.ports.admin}`)).items.find(n => n.nodeId === 'b')?.filters ?? 0) > 0, "a routes to b's subscriber")
    const will = (payload: string) => ({ topic: 'wills/mover', payload: Buffer.from(payload), qos: 1 as const, retain: false })
    await client(`mqtt://127.0.0.1:${a.ports.mqtt}`, { clientId: 'mover', clean: false, will: will('gone from a') })
    await a.kill9()
    // back on b at once, long before a is taken for dead
    const again = await client(b.mqttUrl, { clientId: 'mover', clean: false, will: will('gone from b') })
    expect(again.sessionPresent).toBe(true)
    await waitFor(() => watcher.received.length > 0, 'the will of the connection on a', 10_000)
    await waitFor(() => b.logs.some(l => l.msg === 'sessions of a dead node disconnected' || l.msg === 'will of a dead node published'), 'a settled')
    await sleep(1000)
    expect(watcher.received.map(m => m.payload)).toEqual(['gone from a'])
    expect(again.connected).toBe(true)
    // the new connection's will stays for its own end
    await endClient(again, true)
    await waitFor(() => watcher.received.length > 1, 'the will of the connection on b')
    expect(watcher.received.map(m => m.payload)).toEqual(['gone from a', 'gone from b'])
  })

  it('has the persistent sessions of its clients expire on the survivors (their expiry counts from its removal)', async () => {
    const b = await node('b')
    const a = await cliNode(redis().url, 'a', await newDir())
    const kept = await client(`mqtt://127.0.0.1:${a.ports.mqtt}`, { clientId: 'short-lived', clean: false, properties: { sessionExpiryInterval: 1 } }, true)
    await kept.subscribeAsync('short/#', { qos: 1 })
    await a.kill9()
    await waitFor(() => b.logs.some(l => l.msg === 'sessions of a dead node disconnected' && l.sessions === 1), 'the session disconnected by b', 5000)
    await waitFor(() => b.logs.some(l => l.msg === 'session expired' && l.clientId === 'short-lived'), 'the session expired on b', 5000)
    expect(await b.broker.store.sessionInfo('short-lived')).toBeUndefined()
    kept.end(true)
  })

  it('has the delayed will of its client published once, by the survivor, its delay after the node is taken for dead', async () => {
    const b = await node('b')
    const a = await cliNode(redis().url, 'a', await newDir())
    const watcher = await client(b.mqttUrl, { clientId: 'delay-watcher' })
    await watcher.subscribeAsync('late/#', { qos: 1 })
    await waitFor(async () => ((await clusterOf(`http://127.0.0.1:${a.ports.admin}`)).items.find(n => n.nodeId === 'b')?.filters ?? 0) > 0, "a routes to b's subscriber")
    await client(`mqtt://127.0.0.1:${a.ports.mqtt}`, {
      clientId: 'late-device',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      will: { topic: 'late/device', payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 1 } }
    }, true)
    const killedAt = Date.now()
    await a.kill9()
    await waitFor(() => watcher.received.length > 0, 'the delayed will on node b', 10_000)
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(FAST['cluster.nodeTimeoutMs'] - FAST['cluster.heartbeatIntervalMs'] - 100 + 1000)
    await sleep(1000)
    expect(watcher.received.map(m => [m.topic, m.payload])).toEqual([['late/device', 'gone']])
  })

  it('a node stopped (SIGSTOP) longer than the timeout is removed, its clients\' wills published once by a survivor, and it comes back whole on SIGCONT: routes again', async () => {
    const b = await node('b', STEADY)
    const a = await cliNode(redis().url, 'a', await newDir(), STEADY_ENV)
    const onA = await client(`mqtt://127.0.0.1:${a.ports.mqtt}`, { clientId: 'on-a', keepalive: 0, will: { topic: 'wills/on-a', payload: Buffer.from('gone'), qos: 1, retain: false } })
    await onA.subscribeAsync('to-a/#', { qos: 1 })
    const watcher = await client(b.mqttUrl, { clientId: 'watcher' })
    await watcher.subscribeAsync('wills/#', { qos: 1 })
    await waitFor(() => b.broker.cluster?.routesTo('a', 'to-a/1') === true && b.broker.cluster.nodes().some(n => n.nodeId === 'a' && n.alive), 'b routes to a')
    a.proc.kill('SIGSTOP')
    try {
      await waitFor(() => b.broker.cluster?.nodes().every(n => n.nodeId !== 'a') === true, 'a removed', 10_000)
      expect(b.broker.cluster?.routesTo('a', 'to-a/1')).toBe(false)
    } finally {
      a.proc.kill('SIGCONT')
    }
    await a.waitForLog(l => l.msg === 'cluster node had been taken for dead; registered again, its sessions caught up' && l.removed === true, 'a registered again', 10_000)
    await waitFor(() => b.broker.cluster?.routesTo('a', 'to-a/1') === true, 'b routes to a again', 5000)
    const pub = await client(b.mqttUrl, { clientId: 'pub' })
    await pub.publishAsync('to-a/1', 'after', { qos: 1 })
    await waitFor(() => onA.received.length === 1, 'the message on a')
    await sleep(1000)
    // taken for dead, as a killed node would be (docs/cluster.md, "Membership and failure")
    expect(watcher.received.map(m => [m.topic, m.payload])).toEqual([['wills/on-a', 'gone']])
    expect(b.logs.filter(l => l.msg === 'will of a dead node published').length).toBe(1)
    expect(a.logs.some(l => l.msg === 'will of a dead node published')).toBe(false)
    await a.stop()
  })

  it('a node stopped (SIGSTOP) longer than the timeout: on SIGCONT its connected persistent subscribers get what other nodes queued for them meanwhile, without reconnecting', async () => {
    const b = await node('b', STEADY)
    const a = await cliNode(redis().url, 'a', await newDir(), STEADY_ENV)
    const keeper = await client(`mqtt://127.0.0.1:${a.ports.mqtt}`, { clientId: 'keeper', clean: false, keepalive: 0, reconnectPeriod: 0 })
    await keeper.subscribeAsync('held/#', { qos: 1 })
    let reconnected = false
    keeper.on('connect', () => { reconnected = true })
    // b must know a alive first: "a removed" below would otherwise hold before b ever read a's registration
    await waitFor(() => b.broker.cluster?.routesTo('a', 'held/1') === true && b.broker.cluster.nodes().some(n => n.nodeId === 'a' && n.alive), 'b routes to a')
    const pub = await client(b.mqttUrl, { clientId: 'held-pub' })
    await pub.publishAsync('held/1', 'before', { qos: 1 })
    await waitFor(() => keeper.received.length === 1, 'the first message on a')
    a.proc.kill('SIGSTOP')
    try {
      await waitFor(() => b.broker.cluster?.nodes().every(n => n.nodeId !== 'a') === true, 'a removed', 10_000)
      // acknowledged: in the session's queue in Redis, and sent to no node (a's stream is gone)
      for (let i = 0; i < 10; i++) await pub.publishAsync('held/1', `meanwhile ${i}`, { qos: 1 })
    } finally {
      a.proc.kill('SIGCONT')
    }
    await a.waitForLog(l => l.msg === 'cluster node had been taken for dead; registered again, its sessions caught up' && l.sessions === 1, 'a registered again', 10_000)
    await pub.publishAsync('held/1', 'after', { qos: 1 })
    const expected = ['before', ...Array.from({ length: 10 }, (_, i) => `meanwhile ${i}`), 'after']
    await waitFor(() => expected.every(p => keeper.received.some(m => m.payload === p)), 'every message on the connection a kept', 5000)
    expect(keeper.received.map(m => m.payload)).toEqual(expected)
    expect(reconnected).toBe(false)
    expect(keeper.connected).toBe(true)
    await endClient(keeper)
    await a.stop()
  })
})
