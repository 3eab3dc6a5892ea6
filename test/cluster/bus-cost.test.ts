import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/clients.js'
import { useCluster, waitForRoute } from './support.js'

/** Calls per command since the last CONFIG RESETSTAT, from INFO commandstats. */
async function commandCalls (url: string): Promise<Map<string, number>> {
  const redis = new Redis(url)
  try {
    const text = await redis.info('commandstats')
    return new Map([...text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map(m => [m[1], Number(m[2])]))
  } finally {
    redis.disconnect()
  }
}

/**
 * What the subscriber's node asks Redis for the messages another node sends it: the queue entries of the persistent
 * sessions connected to it are read for a whole batch of the bus at once, not one round trip per message.
 */
describe('cluster bus cost', () => {
  const { node, client, redis } = useCluster()

  it('a burst of 200 QoS 1 messages from node A to a persistent subscriber on node B arrives once each, the entries read in a few calls', async () => {
    const a = await node('a')
    const b = await node('b')
    const sub = await client(b.mqttUrl, { clientId: 'burst-sub', clean: false })
    await sub.subscribeAsync('burst/#', { qos: 1 })
    await waitForRoute(a, b, 'burst/1')
    const pub = await client(a.mqttUrl, { clientId: 'burst-pub' })
    // node A's matcher catches up with B's subscription on its first enqueue (refused once as stale, matched again)
    await pub.publishAsync('burst/1', 'first', { qos: 1 })
    await waitFor(() => sub.received.length === 1, 'the first message')
    sub.received.length = 0
    const control = new Redis(redis().url)
    await control.config('RESETSTAT')
    control.disconnect()
    // not awaited one by one: the publishes arrive together, as a loaded publisher's do
    await Promise.all(Array.from({ length: 200 }, async (_, i) => await pub.publishAsync('burst/1', `m${i}`, { qos: 1 })))
    await waitFor(() => sub.received.length >= 200, 'two hundred messages')
    expect(new Set(sub.received.map(m => m.payload)).size).toBe(200)
    expect(sub.received.length).toBe(200)
    await waitFor(async () => (await b.broker.store.sessionInfo('burst-sub'))?.queued === 0, 'an empty queue in Redis')
    // each read of B's stream that brought messages is followed by one look at the subscription log (XRANGE) and one
    // script call for the entries; one of each per message (200) before the entries were learned per batch
    const calls = await commandCalls(redis().url)
    expect(calls.get('xrange') ?? 0).toBeLessThanOrEqual(calls.get('xread') ?? 0)
    expect(calls.get('xrange') ?? 0).toBeLessThan(40)
  })

  it('a node behind on subscription changes catches up once, not once per message in flight', async () => {
    const a = await node('a')
    const b = await node('b')
    // ten subscription changes on B that A has not read (A reads the change log when an enqueue finds it stale)
    for (let i = 0; i < 10; i++) {
      const other = await client(b.mqttUrl, { clientId: `other-${i}`, clean: false })
      await other.subscribeAsync(`other/${i}`, { qos: 1 })
    }
    const sub = await client(b.mqttUrl, { clientId: 'storm-sub', clean: false })
    await sub.subscribeAsync('storm/#', { qos: 1 })
    await waitForRoute(a, b, 'storm/1')
    const pub = await client(a.mqttUrl, { clientId: 'storm-pub' })
    const control = new Redis(redis().url)
    await control.config('RESETSTAT')
    control.disconnect()
    await Promise.all(Array.from({ length: 200 }, async (_, i) => await pub.publishAsync('storm/1', `m${i}`, { qos: 1 })))
    await waitFor(() => sub.received.length >= 200, 'two hundred messages')
    expect(new Set(sub.received.map(m => m.payload)).size).toBe(200)
    // every enqueue matched before A caught up is refused and matched again; the eleven changed clients are read once
    // each, not once per refused enqueue (over 2,000 reads before)
    const calls = await commandCalls(redis().url)
    expect(calls.get('hgetall') ?? 0).toBeLessThan(50)
  })

  it("the publishing node keeps nothing of the messages it queued for a session connected to another node", async () => {
    const a = await node('a')
    const b = await node('b')
    const sub = await client(b.mqttUrl, { clientId: 'far-sub', clean: false })
    await sub.subscribeAsync('far/#', { qos: 1 })
    await waitForRoute(a, b, 'far/1')
    const pub = await client(a.mqttUrl, { clientId: 'far-pub' })
    for (let i = 0; i < 100; i++) await pub.publishAsync('far/1', `m${i}`, { qos: 1 })
    await waitFor(() => sub.received.length >= 100, 'a hundred messages')
    await waitFor(async () => (await b.broker.store.sessionInfo('far-sub'))?.queued === 0, 'an empty queue in Redis')
    // node A's count of queued messages (its /metrics and $SYS figure) is its own clients' queues: none here. It
    // kept an entry per message before, never acknowledged on A, growing with the traffic.
    expect(a.broker.store.stats().queuedMessages).toBe(0)
    expect(b.broker.store.stats().queuedMessages).toBe(0)
  })
})
