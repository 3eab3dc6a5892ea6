import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, sleep } from '../helpers/clients.js'
import { adminGet, endAll, members, publishMany, silentMember, waitTotal } from './support.js'

/** For each key, the set of members that received a message with that key. */
function spreadBy (group: Array<{ received: Array<{ topic: string }> }>, key: (topic: string, member: number) => string): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>()
  group.forEach((c, i) => {
    for (const r of c.received) {
      const k = key(r.topic, i)
      let set = out.get(k)
      if (set === undefined) out.set(k, set = new Set())
      set.add(i)
    }
  })
  return out
}

describe('shared subscriptions: strategies', () => {
  let t: TestBroker

  beforeAll(async () => {
    t = await startTestBroker({
      'sharedSubscriptions.groupStrategies': { ht: 'hash-topic', hc: 'hash-clientid', st: 'sticky', li: 'least-inflight', rnd: 'random' }
    })
  })
  afterAll(async () => {
    await t?.close()
  })

  it('hash-topic keeps each topic on one member and uses them all', async () => {
    const group = await members(t.mqttUrl, 4, '$share/ht/orders/#', 1, 'ht')
    const pub = await connectClient(t.mqttUrl, { clientId: 'ht-pub' })
    await publishMany(pub, i => `orders/${i % 40}`, 800, 1)
    await waitTotal(group, 800, 'the group')
    const byTopic = spreadBy(group, topic => topic)
    expect(byTopic.size).toBe(40)
    for (const [, holders] of byTopic) expect(holders.size).toBe(1)
    expect(group.every(c => c.received.length > 0)).toBe(true)
    // per-topic order is kept
    for (const c of group) {
      const seen = new Map<string, number>()
      for (const r of c.received) {
        const n = Number((r as unknown as { payload: string }).payload)
        expect(n).toBeGreaterThan(seen.get(r.topic) ?? -1)
        seen.set(r.topic, n)
      }
    }
    const api = await adminGet<{ items: Array<{ share: string, strategy: string }> }>(t.adminUrl, '/api/shared')
    expect(api.items.find(g => g.share === '$share/ht/orders/#')?.strategy).toBe('hash-topic')
    await endAll([...group, pub])
  })

  it('hash-clientid keeps each publisher on one member', async () => {
    const group = await members(t.mqttUrl, 3, '$share/hc/hc', 1, 'hc')
    const pubs = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(async i => await connectClient(t.mqttUrl, { clientId: `publisher-${i}` })))
    await Promise.all(pubs.map(async (p, i) => {
      for (let j = 0; j < 30; j++) await p.publishAsync('hc', `publisher-${i}`, { qos: 1 })
    }))
    await waitTotal(group, 240, 'the group')
    const byPublisher = new Map<string, Set<number>>()
    group.forEach((c, i) => {
      for (const r of c.received) {
        const set = byPublisher.get(r.payload) ?? new Set<number>()
        set.add(i)
        byPublisher.set(r.payload, set)
      }
    })
    expect(byPublisher.size).toBe(8)
    for (const [, holders] of byPublisher) expect(holders.size).toBe(1)
    await endAll([...group, ...pubs])
  })

  it('sticky sends everything to one member until it leaves', async () => {
    const group = await members(t.mqttUrl, 3, '$share/st/st', 1, 'st')
    const pub = await connectClient(t.mqttUrl, { clientId: 'st-pub' })
    await publishMany(pub, 'st', 50, 1)
    await waitTotal(group, 50, 'the group')
    const holder = group.findIndex(c => c.received.length === 50)
    expect(holder).toBeGreaterThanOrEqual(0)
    await endAll([group[holder]])
    await sleep(50)
    const rest = group.filter((_, i) => i !== holder)
    await publishMany(pub, 'st', 50, 1)
    await waitTotal(rest, 50, 'the rest')
    expect(rest.map(c => c.received.length).sort()).toEqual([0, 50])
    await endAll([...rest, pub])
  })

  it('least-inflight keeps a member that does not acknowledge from getting more than its share', async () => {
    const slow = await silentMember(t.mqttUrl, 'li-slow', '$share/li/li')
    const [fast] = await members(t.mqttUrl, 1, '$share/li/li', 1, 'li-fast')
    const pub = await connectClient(t.mqttUrl, { clientId: 'li-pub' })
    await publishMany(pub, 'li', 200, 1, 1)
    await waitTotal([fast], 200 - slow.publishes().length, 'the fast member')
    expect(slow.publishes().length).toBeLessThanOrEqual(3)
    expect(fast.received.length + slow.publishes().length).toBe(200)
    slow.destroy()
    await endAll([fast, pub])
  })

  it('random spreads messages over the members, each exactly once', async () => {
    const group = await members(t.mqttUrl, 3, '$share/rnd/rnd', 1, 'rnd')
    const pub = await connectClient(t.mqttUrl, { clientId: 'rnd-pub' })
    await publishMany(pub, 'rnd', 300, 1)
    await waitTotal(group, 300, 'the group')
    await sleep(100)
    const all = group.flatMap(c => c.received.map(r => r.payload))
    expect(all.length).toBe(300)
    expect(new Set(all).size).toBe(300)
    for (const c of group) expect(c.received.length).toBeGreaterThan(50)
    await endAll([...group, pub])
  })
})
