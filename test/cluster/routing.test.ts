import { describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { encodeMessage } from '../../src/cluster/codec.js'
import type { DeliveryPacket } from '../../src/protocol/aedes-internals.js'
import type { TestBroker } from '../helpers/broker.js'
import { waitFor, sleep } from '../helpers/clients.js'
import { useCluster, waitForRoute } from './support.js'

const { node, client, redis } = useCluster()

describe('cluster routing', () => {
  it('a subscriber on node A gets QoS 0, 1 and 2 messages published on node B exactly once, at the granted QoS', async () => {
    const a = await node('a')
    const b = await node('b')
    const sub = await client(a.mqttUrl, { clientId: 'sub' })
    // overlapping filters: the message must still come once, at the highest granted QoS
    await sub.subscribeAsync({ 'plant/+/temp': { qos: 2 }, 'plant/#': { qos: 1 }, 'plant/7/temp': { qos: 0 } })
    await waitForRoute(b, a, 'plant/7/temp')
    const pub = await client(b.mqttUrl, { clientId: 'pub' })
    for (let i = 0; i < 30; i++) await pub.publishAsync('plant/7/temp', `m${i}`, { qos: (i % 3) as 0 | 1 | 2 })
    await waitFor(() => sub.received.length >= 30, '30 messages on node A')
    await sleep(200)
    // mqtt.js hands a QoS 2 message over at PUBREL, so across QoS levels the order seen is not the order sent
    const got = [...sub.received].sort((x, y) => Number(x.payload.slice(1)) - Number(y.payload.slice(1)))
    expect(got.map(m => m.payload)).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`))
    expect(got.map(m => m.qos)).toEqual(Array.from({ length: 30 }, (_, i) => i % 3))
  })

  it('only the nodes with a matching subscriber receive a message, and each delivers it once to its clients', async () => {
    const a = await node('a')
    const b = await node('b')
    const c = await node('c')
    const onA = await client(a.mqttUrl, { clientId: 'on-a' })
    const onC = await client(c.mqttUrl, { clientId: 'on-c' })
    const local = await client(b.mqttUrl, { clientId: 'on-b' })
    await onA.subscribeAsync('x/#', { qos: 1 })
    await onC.subscribeAsync('y/+', { qos: 1 })
    await local.subscribeAsync('#', { qos: 1 })
    await waitForRoute(b, a, 'x/1')
    await waitForRoute(b, c, 'y/1')
    const pub = await client(b.mqttUrl, { clientId: 'pub' })
    // the other nodes hear of the publisher's connection (take-over): counted from here
    await waitFor(async () => await received(a) > 0 && await received(c) > 0, 'the connection notices')
    const before = { a: await received(a), c: await received(c) }
    await pub.publishAsync('x/1', 'for a', { qos: 1 })
    await pub.publishAsync('y/1', 'for c', { qos: 1 })
    await waitFor(() => onA.received.length === 1 && onC.received.length === 1 && local.received.length === 2, 'every copy')
    await sleep(200)
    expect(onA.received.map(m => m.payload)).toEqual(['for a'])
    expect(onC.received.map(m => m.payload)).toEqual(['for c'])
    expect(local.received.map(m => m.payload)).toEqual(['for a', 'for c'])
    // node A was sent only what its clients needed
    expect(await received(a) - before.a).toBe(1)
    expect(await received(c) - before.c).toBe(1)
    // per node in /metrics
    let metrics = ''
    await waitFor(async () => /^culex_cluster_nodes_alive 3$/m.test(metrics = await (await fetch(`${a.adminUrl}/metrics`)).text()), 'three nodes alive in /metrics')
    expect(metrics).toMatch(/^culex_cluster_bus_messages_total\{event="received"\} [1-9]/m)
    expect(metrics).toMatch(/^culex_cluster_bus_reconnects_total\{connection="reader"\} 0$/m)
    expect(metrics).toMatch(/^culex_cluster_bus_pending_messages 0$/m)
  })

  it('a persistent session on node A gets QoS 1 and 2 messages published on node B live, once each, and not again after a reconnect', async () => {
    const a = await node('a')
    const b = await node('b')
    const sub = await client(a.mqttUrl, { clientId: 'keeper', clean: false })
    await sub.subscribeAsync('orders/#', { qos: 2 })
    await waitForRoute(b, a, 'orders/1')
    const pub = await client(b.mqttUrl, { clientId: 'pub' })
    for (let i = 0; i < 10; i++) await pub.publishAsync('orders/1', `o${i}`, { qos: (1 + (i % 2)) as 1 | 2 })
    await waitFor(() => sub.received.length >= 10, 'ten orders')
    await sleep(200)
    // mqtt.js hands a QoS 2 message over at PUBREL, so across QoS levels the order seen is not the order sent
    expect(sub.received.map(m => m.payload).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `o${i}`))
    await sub.endAsync()
    const back = await client(a.mqttUrl, { clientId: 'keeper', clean: false })
    expect(back.sessionPresent).toBe(true)
    await sleep(300)
    expect(back.received).toEqual([])
  })

  it('a publishing node with a fixed brokerId, restarted, is not taken for a repeat of its previous run', async () => {
    const a = await node('a')
    let b = await node('b', { brokerId: 'fixed' })
    const sub = await client(a.mqttUrl, { clientId: 'sub' })
    await sub.subscribeAsync('r/#', { qos: 1 })
    const publishFive = async (from: typeof b, tag: string): Promise<void> => {
      await waitForRoute(from, a, 'r/1')
      const pub = await client(from.mqttUrl, { clientId: `pub-${tag}` })
      for (let i = 0; i < 5; i++) await pub.publishAsync('r/1', `${tag}${i}`, { qos: 1 })
      await pub.endAsync()
    }
    await publishFive(b, 'before')
    // the broker counter starts again at the restart: the same broker id and counters name new messages
    b = await b.restart()
    await publishFive(b, 'after')
    await waitFor(() => sub.received.length >= 10, 'ten messages', 5000)
    expect(sub.received.map(m => m.payload)).toEqual([...Array.from({ length: 5 }, (_, i) => `before${i}`), ...Array.from({ length: 5 }, (_, i) => `after${i}`)])
    await b.close()
  })

  it('a message in a node stream twice (a write ioredis resent after a lost reply) is delivered once', async () => {
    const a = await node('a')
    const sub = await client(a.mqttUrl, { clientId: 'sub' })
    await sub.subscribeAsync('twice/#', { qos: 1 })
    const packet = { cmd: 'publish', topic: 'twice/1', payload: Buffer.from('once'), qos: 1, retain: false, dup: false, brokerId: 'elsewhere', brokerCounter: 7 } as unknown as DeliveryPacket
    const fields = encodeMessage(packet, 'run-x')
    const admin = new Redis(redis().url)
    try {
      await admin.xadd('culex:cluster:bus:a', '*', ...fields)
      await admin.xadd('culex:cluster:bus:a', '*', ...fields)
      // the same message from another run of its sender is another message
      await admin.xadd('culex:cluster:bus:a', '*', ...encodeMessage(packet, 'run-y'))
    } finally {
      admin.disconnect()
    }
    await waitFor(() => sub.received.length >= 2, 'two messages')
    await sleep(300)
    expect(sub.received.map(m => m.payload)).toEqual(['once', 'once'])
    const body = await (await fetch(`${a.adminUrl}/api/cluster`)).json() as { bus: { duplicates: number } }
    expect(body.bus.duplicates).toBe(1)
  })

  it('refuses to start with a node timeout shorter than two heartbeats (ERR_CLUSTER_CONFIG)', async () => {
    await expect(node('x', { 'cluster.heartbeatIntervalMs': 1000, 'cluster.nodeTimeoutMs': 1500 })).rejects.toMatchObject({ code: 'ERR_CLUSTER_CONFIG' })
  })

  it('stops routing to a node once its last subscriber for a filter leaves', async () => {
    const a = await node('a')
    const b = await node('b')
    const sub = await client(a.mqttUrl, { clientId: 'sub' })
    await sub.subscribeAsync('t/1', { qos: 0 })
    await waitForRoute(b, a, 't/1')
    await sub.unsubscribeAsync('t/1')
    await waitFor(() => b.broker.cluster?.routesTo('a', 't/1') === false, 'the route dropped')
  })

  it('a node that stops leaves nothing of itself in Redis, even with messages still being sent to it', async () => {
    const slow = { 'cluster.heartbeatIntervalMs': 5000, 'cluster.nodeTimeoutMs': 20_000 }
    const a = await node('gone', slow)
    const b = await node('b', slow)
    const sub = await client(a.mqttUrl, { clientId: 'sub' })
    await sub.subscribeAsync('t/#', { qos: 1 })
    await waitForRoute(b, a, 't/1')
    const pub = await client(b.mqttUrl, { clientId: 'pub' })
    await a.broker.close()
    // a clean stop logs no error or warning of the cluster
    expect(a.logs.filter(l => (l.level as number) >= 40 && l.component === 'cluster')).toEqual([])
    // b stops routing to it at once, not after a heartbeat of its own
    await waitFor(() => b.broker.cluster?.routesTo('gone', 't/1') === false, 'the route dropped', 1000)
    for (let i = 0; i < 20; i++) await pub.publishAsync('t/1', String(i), { qos: 1 })
    const admin = new Redis(redis().url)
    try {
      expect((await admin.keys('*')).filter(k => k.includes('gone')).sort()).toEqual([])
      expect(await admin.hkeys('culex:cluster:nodes')).toEqual(['b'])
    } finally {
      admin.disconnect()
    }
  })

  it('carries MQTT 5 properties and binary payloads across nodes', async () => {
    const a = await node('a')
    const b = await node('b')
    const sub = await client(a.mqttUrl, { clientId: 'sub5' }, true)
    await sub.subscribeAsync('v5/t', { qos: 1 })
    await waitForRoute(b, a, 'v5/t')
    const pub = await client(b.mqttUrl, { clientId: 'pub5' }, true)
    await pub.publishAsync('v5/t', 'hello', { qos: 1, properties: { contentType: 'text/plain', correlationData: Buffer.from([0, 1, 2, 255]), userProperties: { k: 'v' } } })
    await waitFor(() => sub.received.length === 1, 'the v5 message')
    const props = sub.received[0].properties ?? {}
    expect(props.contentType).toBe('text/plain')
    expect(Buffer.from(props.correlationData as Buffer)).toEqual(Buffer.from([0, 1, 2, 255]))
    expect(props.userProperties).toEqual({ k: 'v' })
  })
})

/** Stream entries the node has read, as GET /api/cluster reports them. */
async function received (n: TestBroker): Promise<number> {
  const body = await (await fetch(`${n.adminUrl}/api/cluster`)).json() as { bus: { received: number } }
  return body.bus.received
}
