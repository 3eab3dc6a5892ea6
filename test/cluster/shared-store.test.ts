import { describe, expect, it } from 'vitest'
import { sleep, waitFor } from '../helpers/clients.js'
import { startTestRedis } from '../helpers/redis-server.js'
import { useCluster, waitForRoute } from './support.js'

/**
 * The nodes share one store (Redis): the origin node queues a message for every persistent subscriber, and the
 * subscriber's node delivers it as that queue entry, so its acknowledgement empties the queue in Redis.
 */
describe('cluster on the shared store', () => {
  const { node, client, redis } = useCluster()

  for (const qos of [1, 2] as const) {
    it(`a persistent QoS ${qos} subscriber on node A gets each message published on node B once, and its queue in Redis is empty once it acknowledged`, async () => {
      const a = await node('a')
      const b = await node('b')
      const sub = await client(a.mqttUrl, { clientId: `keep-${qos}`, clean: false })
      await sub.subscribeAsync('jobs/#', { qos })
      await waitForRoute(b, a, 'jobs/1')
      const pub = await client(b.mqttUrl, { clientId: `pub-${qos}` })
      for (let i = 0; i < 20; i++) await pub.publishAsync('jobs/1', `j${i}`, { qos })
      await waitFor(() => sub.received.length >= 20, 'twenty jobs')
      expect(sub.received.map(m => m.payload).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `j${i}`).sort())
      expect(sub.received.every(m => m.qos === qos)).toBe(true)
      // the subscriber's connection stayed up: a delivery the store could not record would have closed it
      expect(sub.connected).toBe(true)
      // PUBACK / PUBCOMP deleted each entry in Redis, as seen from either node
      await waitFor(async () => (await b.broker.store.sessionInfo(`keep-${qos}`))?.queued === 0, 'an empty queue in Redis')
      expect((await a.broker.store.sessionInfo(`keep-${qos}`))?.queued).toBe(0)
    })
  }

  it('a subscriber offline while node B takes messages resumes its session on node C with all of them (session present)', async () => {
    const a = await node('a')
    const b = await node('b')
    const c = await node('c')
    const sub = await client(a.mqttUrl, { clientId: 'roamer', clean: false })
    await sub.subscribeAsync('away/#', { qos: 1 })
    await sub.endAsync()
    const pub = await client(b.mqttUrl, { clientId: 'pub-away' })
    for (let i = 0; i < 10; i++) await pub.publishAsync('away/1', `m${i}`, { qos: (1 + (i % 2)) as 1 | 2 })
    expect((await c.broker.store.sessionInfo('roamer'))?.queued).toBe(10)
    const back = await client(c.mqttUrl, { clientId: 'roamer', clean: false })
    expect(back.sessionPresent).toBe(true)
    await waitFor(() => back.received.length >= 10, 'ten queued messages')
    expect(back.received.map(m => m.payload)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`))
    await waitFor(async () => (await a.broker.store.sessionInfo('roamer'))?.queued === 0, 'an empty queue in Redis')
  })

  it('a retained message published on node A is seen by a subscriber on node B', async () => {
    const a = await node('a')
    const b = await node('b')
    const pub = await client(a.mqttUrl, { clientId: 'pub-retained' })
    await pub.publishAsync('status/door', 'open', { qos: 1, retain: true })
    const sub = await client(b.mqttUrl, { clientId: 'reader' })
    await sub.subscribeAsync('status/#', { qos: 1 })
    await waitFor(() => sub.received.length >= 1, 'the retained message')
    expect(sub.received[0]).toMatchObject({ topic: 'status/door', payload: 'open', retain: true })
  })

  it('two clusters with different cluster.redisKeyPrefix share one Redis without seeing each other', async () => {
    const one = await node('n1', { 'cluster.redisKeyPrefix': 'one:' })
    const two = await node('n2', { 'cluster.redisKeyPrefix': 'two:' })
    const twoPeer = await node('n3', { 'cluster.redisKeyPrefix': 'two:' })
    await waitFor(() => twoPeer.broker.cluster?.nodes().length === 2 && two.broker.cluster?.nodes().length === 2, 'the two nodes of cluster two')
    expect(one.broker.cluster?.nodes().map(n => n.nodeId)).toEqual(['n1'])
    expect(two.broker.cluster?.nodes().map(n => n.nodeId).sort()).toEqual(['n2', 'n3'])
    const onOne = await client(one.mqttUrl, { clientId: 'same-id', clean: false })
    await onOne.subscribeAsync('shared/#', { qos: 1 })
    const onTwo = await client(two.mqttUrl, { clientId: 'other' })
    await onTwo.subscribeAsync('shared/#', { qos: 1 })
    await waitForRoute(twoPeer, two, 'shared/1')
    const pub = await client(twoPeer.mqttUrl, { clientId: 'pub-two' })
    await pub.publishAsync('shared/1', 'for two', { qos: 1 })
    await waitFor(() => onTwo.received.length === 1, 'the message in cluster two')
    // the same client id in the other cluster is another client: no take-over, no session of its own there
    const sameInTwo = await client(two.mqttUrl, { clientId: 'same-id', clean: false })
    expect(sameInTwo.sessionPresent).toBe(false)
    await sleep(300)
    expect(onOne.connected).toBe(true)
    expect(onOne.received).toEqual([])
  })

  it('a session taken over by another node is not expired by the node that lost the connection, nor by a node that starts', async () => {
    const a = await node('a')
    const b = await node('b')
    await waitFor(() => a.broker.cluster?.nodes().length === 2 && b.broker.cluster?.nodes().length === 2, 'both nodes registered')
    const opts = { clientId: 'mover', clean: false, properties: { sessionExpiryInterval: 1 } }
    const first = await client(a.mqttUrl, opts, true)
    await first.subscribeAsync('mover/#', { qos: 1 })
    const moved = await client(b.mqttUrl, opts, true)
    expect(moved.sessionPresent).toBe(true)
    await waitFor(() => !first.connected, 'the older connection on node a closed')
    await node('c')
    // well past the 1 s expiry a disconnect on node a, or node c's start, would have started
    await sleep(2500)
    expect(moved.connected).toBe(true)
    expect((await b.broker.store.sessionInfo('mover'))?.subscriptions).toEqual([{ topic: 'mover/#', qos: 1 }])
    expect(a.logs.some(l => l.msg === 'session expired')).toBe(false)
  })

  it('a node that starts does not publish the delayed will of a client connected to another node', async () => {
    const a = await node('a')
    const watcher = await client(a.mqttUrl, { clientId: 'will-watcher' })
    await watcher.subscribeAsync('wd/#', { qos: 1 })
    const live = await client(a.mqttUrl, {
      clientId: 'alive-on-a',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      will: { topic: 'wd/alive-on-a', payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 1 } }
    }, true)
    await node('b')
    await sleep(2000)
    expect(live.connected).toBe(true)
    expect(watcher.received).toEqual([])
  })

  it('nodes that find Redis through a Sentinel use it for the store and the messaging alike', async () => {
    const sentinel = await startTestRedis({ sentinelOf: redis().port })
    try {
      // nothing answers at the URL itself: only the user, password and database would be taken from it
      const viaSentinel = { 'cluster.redisUrl': 'redis://127.0.0.1:1', 'cluster.redisSentinels': `127.0.0.1:${sentinel.port}` }
      const a = await node('sa', viaSentinel)
      const b = await node('sb', viaSentinel)
      const sub = await client(a.mqttUrl, { clientId: 'sentinel-sub', clean: false })
      await sub.subscribeAsync('via/#', { qos: 1 })
      await waitForRoute(b, a, 'via/1')
      const pub = await client(b.mqttUrl, { clientId: 'sentinel-pub' })
      await pub.publishAsync('via/1', 'found', { qos: 1 })
      await waitFor(() => sub.received.length === 1, 'the message through the Sentinel-found Redis')
      expect(sub.received[0].payload).toBe('found')
    } finally {
      await sentinel.close()
    }
  })

  it('a session subscribed on node A whose client moved to node B gets there what is published on A', async () => {
    const a = await node('a')
    const b = await node('b')
    await waitFor(() => a.broker.cluster?.nodes().length === 2 && b.broker.cluster?.nodes().length === 2, 'both nodes registered')
    const pub = await client(a.mqttUrl, { clientId: 'pub-moving' })
    const first = await client(a.mqttUrl, { clientId: 'moving', clean: false })
    await first.subscribeAsync('moving/#', { qos: 1 })
    await pub.publishAsync('moving/1', 'on a', { qos: 1 })
    await waitFor(() => first.received.length === 1, 'the message on a')
    const moved = await client(b.mqttUrl, { clientId: 'moving', clean: false })
    await waitFor(() => !first.connected, 'the older connection on node a closed')
    await waitForRoute(a, b, 'moving/1')
    for (let i = 0; i < 20; i++) await pub.publishAsync('moving/1', `m${i}`, { qos: 1 })
    await waitFor(() => moved.received.length === 20, 'twenty messages on b')
    expect(moved.received.map(m => m.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`))
    await waitFor(async () => (await a.broker.store.sessionInfo('moving'))?.queued === 0, 'an empty queue in Redis')
  })
})
