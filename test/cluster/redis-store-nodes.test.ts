import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRedisStore, type CulexStore } from '../../src/store/index.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import { drain, publish, silentLogger, unlimited } from '../store/helpers/store.js'

/** Two stores on one Redis and one key prefix: what two cluster nodes share. */
describe('two nodes on one Redis store', () => {
  let redis: TestRedis
  let prefixes = 0
  beforeAll(async () => { redis = await startTestRedis() })
  afterAll(async () => { await redis.close() })

  const node = async (prefix: string): Promise<CulexStore> =>
    await openRedisStore({ redis: { url: redis.url, prefix }, logger: silentLogger(), limits: unlimited })

  it('queues a message published on one node for a subscription made on the other just before, and not after it is removed', async () => {
    const prefix = `nodes-${++prefixes}:`
    const a = await node(prefix)
    const b = await node(prefix)
    await a.setup({ id: 'node-a', counter: 0 })
    // The publishing node matches with its own matcher, which has not seen the subscription yet.
    await b.addSubscriptions({ id: 'far' }, [{ topic: 'plant/#', qos: 1 }])
    const matched = await a.subscriptionsByTopic('plant/1')
    await a.outgoingEnqueueCombi(matched, publish('plant/1', 'first', { brokerId: 'node-a', brokerCounter: 1 }))
    expect((await drain(b.outgoingStream({ id: 'far' })) as Array<Record<string, unknown>>).map(p => String(p.payload))).toEqual(['first'])
    expect((await a.subscriptionsByTopic('plant/2')).map(s => s.clientId)).toEqual(['far'])

    await b.removeSubscriptions({ id: 'far' }, ['plant/#'])
    const stale = await a.subscriptionsByTopic('plant/2')
    await a.outgoingEnqueueCombi(stale, publish('plant/2', 'second', { brokerId: 'node-a', brokerCounter: 2 }))
    expect((await b.sessionInfo('far'))?.queued).toBe(1)
    await Promise.all([a.close(), b.close()])
  })

  it('matches every publish against the subscriptions as they are when it is stored (60 seeded rounds)', async () => {
    const prefix = `nodes-${++prefixes}:`
    const a = await node(prefix)
    const b = await node(prefix)
    let seed = 4242
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    const clients = ['c0', 'c1', 'c2']
    const subscribed = new Set<string>()
    const expected = new Map<string, string[]>(clients.map(c => [c, []]))
    for (let round = 1; round <= 60; round++) {
      const clientId = clients[Math.floor(random() * clients.length)]
      const writer = random() < 0.5 ? a : b
      const action = random()
      if (action < 0.3) {
        await writer.addSubscriptions({ id: clientId }, [{ topic: 'feed/+', qos: 1 }])
        subscribed.add(clientId)
      } else if (action < 0.5) {
        await writer.removeSubscriptions({ id: clientId }, ['feed/+'])
        subscribed.delete(clientId)
      } else {
        const publisher = random() < 0.5 ? a : b
        const subs = await publisher.subscriptionsByTopic('feed/x')
        await publisher.outgoingEnqueueCombi(subs, publish('feed/x', `m${round}`, { brokerId: 'p', brokerCounter: round }))
        for (const id of subscribed) expected.get(id)?.push(`m${round}`)
      }
    }
    for (const id of clients) {
      const queued = (await drain(a.outgoingStream({ id })) as Array<Record<string, unknown>>).map(p => String(p.payload))
      expect(queued, id).toEqual(expected.get(id))
    }
    await Promise.all([a.close(), b.close()])
  })
})
