import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
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

  it('names to the origin of a message the node holding the session, the newer of two connections made at once, only while its run is alive', async () => {
    const prefix = `nodes-${++prefixes}:`
    const alivePrefix = `${prefix}cluster:alive:`
    const [origin, b, d] = [await node(prefix), await node(prefix), await node(prefix)]
    await origin.setup({ id: 'run-o', counter: 0 })
    const holderOn = (store: CulexStore, nodeId: string, generation: number): void => {
      store.sharedQueues?.setHere(() => true, { nodeId, brokerId: `run-${nodeId}`, alivePrefix, generationOf: async () => generation })
    }
    origin.sharedQueues?.setHere(() => false, { nodeId: 'o', brokerId: 'run-o', alivePrefix, generationOf: async () => 0 })
    // connection 7 on d and the older connection 6 on b resume the session at once; b's claim reaches Redis last
    holderOn(d, 'd', 7)
    holderOn(b, 'b', 6)
    const viaD = { id: 'twice', clean: false }
    const viaB = { id: 'twice', clean: false }
    await origin.addSubscriptions({ id: 'twice' }, [{ topic: 'race/#', qos: 1 }])
    await drain(d.outgoingStream(viaD))
    await drain(b.outgoingStream(viaB))
    const admin = new Redis(redis.url)
    let counter = 0
    const holdersOf = async (): Promise<readonly string[] | undefined> => {
      const packet = publish('race/1', 'm', { brokerId: 'run-o', brokerCounter: ++counter })
      await origin.outgoingEnqueueCombi(await origin.subscriptionsByTopic('race/1'), packet)
      return origin.sharedQueues?.holdersOf(packet)
    }
    try {
      // no node alive yet: nobody named
      expect(await holdersOf()).toBeUndefined()
      await admin.set(`${alivePrefix}d`, 'run-d')
      await admin.set(`${alivePrefix}b`, 'run-b')
      expect(await holdersOf()).toEqual(['d'])
      // the loser's connection ends: the holder stays
      b.sharedQueues?.release(viaB)
      await b.sessionInfo('twice') // after the release, on the same connection
      expect(await holdersOf()).toEqual(['d'])
      // d's run is gone (killed, restarted as another run): not named
      await admin.set(`${alivePrefix}d`, 'run-d2')
      expect(await holdersOf()).toBeUndefined()
      await admin.set(`${alivePrefix}d`, 'run-d')
      // the holder's connection ends: nobody is named
      d.sharedQueues?.release(viaD)
      await d.sessionInfo('twice')
      expect(await holdersOf()).toBeUndefined()
    } finally {
      admin.disconnect()
      await Promise.all([origin.close(), b.close(), d.close()])
    }
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
