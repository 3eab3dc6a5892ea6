import { describe, expect, it } from 'vitest'
import type { TestBroker } from '../helpers/broker.js'
import { sleep, waitFor } from '../helpers/clients.js'
import { adminGet, silentMember } from '../shared-subscriptions/support.js'
import { rawV5 } from '../integration/mqtt5-support.js'
import { counts, groupKnown, prng, useCluster } from './support.js'

const numbers = (n: number): string[] => Array.from({ length: n }, (_, i) => String(i))
const sortedKeys = (m: Map<string, number>): string[] => [...m.keys()].sort((x, y) => Number(x) - Number(y))

describe('shared subscriptions across nodes', () => {
  const { node, client } = useCluster()

  it('members on two nodes, a publisher on a third: every message goes to exactly one member, spread over both nodes', async () => {
    const a = await node('a')
    const b = await node('b')
    const c = await node('c')
    const onA = await client(a.mqttUrl, { clientId: 'w-a' })
    await onA.subscribeAsync('$share/work/jobs/#', { qos: 1 })
    const onB = await client(b.mqttUrl, { clientId: 'w-b' })
    await onB.subscribeAsync('$share/work/jobs/#', { qos: 1 })
    await groupKnown(c, [a, b], 'work/jobs/#', 'jobs/1')
    const pub = await client(c.mqttUrl, { clientId: 'pub' })
    const n = 200
    await Promise.all(numbers(n).map(async i => await pub.publishAsync(`jobs/${Number(i) % 7}`, i, { qos: 1 })))
    await waitFor(() => onA.received.length + onB.received.length >= n, `${n} messages over the group`)
    await sleep(300)
    const seen = counts([...onA.received, ...onB.received].map(m => m.payload))
    expect(sortedKeys(seen)).toEqual(numbers(n))
    expect([...seen.values()].every(k => k === 1)).toBe(true)
    expect(onA.received.length).toBeGreaterThan(0)
    expect(onB.received.length).toBeGreaterThan(0)
  })

  it('a member that disconnects with unacknowledged deliveries: they go to the member on the other node (seeded, 6 runs)', async () => {
    for (let run = 0; run < 6; run++) {
      const random = prng(1000 + run)
      const a = await node(`a${run}`, { 'sharedSubscriptions.ackTimeoutMs': 0 })
      const b = await node(`b${run}`, { 'sharedSubscriptions.ackTimeoutMs': 0 })
      const c = await node(`c${run}`, { 'sharedSubscriptions.ackTimeoutMs': 0 })
      const filter = `$share/fo/fo${run}/#`
      // the silent member on the group's first node or on the other one, as the seed says
      const [silentOn, liveOn] = random() < 0.5 ? [a, b] : [b, a]
      const silent = await silentMember(silentOn.mqttUrl, `silent-${run}`, filter)
      const live = await client(liveOn.mqttUrl, { clientId: `live-${run}` })
      await live.subscribeAsync(filter, { qos: 1 })
      await groupKnown(c, [a, b], `fo/fo${run}/#`, `fo${run}/1`)
      const pub = await client(c.mqttUrl, { clientId: `fo-pub-${run}` })
      const n = 20 + Math.floor(random() * 40)
      for (let i = 0; i < n; i++) await pub.publishAsync(`fo${run}/1`, String(i), { qos: 1 })
      await waitFor(() => silent.publishes().length + live.received.length >= n, `${n} messages over the group (run ${run})`)
      const held = silent.publishes().map(p => p.payload.toString())
      expect(held.length).toBeGreaterThan(0)
      silent.destroy()
      await waitFor(() => live.received.length >= n, `the silent member's ${held.length} on the live one (run ${run})`)
      await sleep(200)
      const seen = counts(live.received.map(m => m.payload))
      expect(sortedKeys(seen)).toEqual(numbers(n))
      expect([...seen.values()].every(k => k === 1)).toBe(true)
      expect(live.received.filter(m => held.includes(m.payload)).every(m => m.dup)).toBe(true)
      for (const t of [a, b, c]) await t.close()
    }
  }, 60_000)

  it('a delivery not acknowledged within ackTimeoutMs goes to the member on the other node; after maxDeliveries it is dead-lettered once', async () => {
    const settings = { 'sharedSubscriptions.ackTimeoutMs': 300, 'sharedSubscriptions.maxDeliveries': 3, 'sharedSubscriptions.redeliveryBackoff.initialMs': 0 }
    const a = await node('a', settings)
    const b = await node('b', settings)
    const c = await node('c', settings)
    const dlq = await client(c.mqttUrl, { clientId: 'dlq-watch' })
    await dlq.subscribeAsync('$DLQ/#', { qos: 1 })
    const one = await silentMember(a.mqttUrl, 'stuck-a', '$share/slow/slow/#')
    const two = await silentMember(b.mqttUrl, 'stuck-b', '$share/slow/slow/#')
    await groupKnown(c, [a, b], 'slow/slow/#', 'slow/1')
    const pub = await client(c.mqttUrl, { clientId: 'slow-pub' })
    await pub.publishAsync('slow/1', 'never acked', { qos: 1 })
    await waitFor(() => dlq.received.length === 1, 'the dead letter')
    await sleep(800)
    expect(dlq.received.map(m => m.topic)).toEqual(['$DLQ/max-deliveries/slow/1'])
    const envelope = JSON.parse(dlq.received[0].payload) as { attempts: number, attemptTimes: string[] }
    expect(envelope.attempts).toBe(3)
    // each failed delivery went to the other member than the one before
    const got = [one.publishes().length, two.publishes().length].sort()
    expect(got).toEqual([1, 2])
    expect([...one.publishes(), ...two.publishes()].every(p => p.payload.toString() === 'never acked')).toBe(true)
    one.destroy()
    two.destroy()
  }, 20_000)

  it('a persistent member offline: messages published meanwhile wait for it, and it gets each once when it returns on another node', async () => {
    const a = await node('a')
    const b = await node('b')
    const c = await node('c')
    const first = await client(a.mqttUrl, { clientId: 'keeper', clean: false })
    await first.subscribeAsync('$share/keep/keep/#', { qos: 1 })
    await groupKnown(c, [a], 'keep/keep/#', 'keep/1')
    await first.endAsync()
    const pub = await client(c.mqttUrl, { clientId: 'keep-pub' })
    for (let i = 0; i < 10; i++) await pub.publishAsync('keep/1', String(i), { qos: 1 })
    const back = await client(b.mqttUrl, { clientId: 'keeper', clean: false })
    expect(back.sessionPresent).toBe(true)
    await waitFor(() => back.received.length >= 10, 'the ten queued messages on node b')
    await sleep(500)
    expect(back.received.map(m => m.payload)).toEqual(numbers(10))
  })

  it('an MQTT 5 member on another node than the owner is sent no more than its Receive Maximum: the rest go to the other member, nothing is refused', async () => {
    const a = await node('a')
    const b = await node('b')
    const fast = await client(a.mqttUrl, { clientId: 'rm-fast' })
    await fast.subscribeAsync('$share/rm/rm/#', { qos: 1 })
    const slow = await rawV5(b, 'rm-slow', '$share/rm/rm/#', 1, { receiveMaximum: 2 })
    await groupKnown(b, [a], 'rm/rm/#', 'rm/1')
    const pub = await client(b.mqttUrl, { clientId: 'rm-pub' })
    for (let i = 0; i < 30; i++) await pub.publishAsync('rm/1', String(i), { qos: 1 })
    await waitFor(() => fast.received.length + slow.publishes().length >= 30, 'thirty messages over the group')
    await sleep(300)
    expect(slow.publishes().length).toBe(2)
    expect(fast.received.length).toBe(28)
    const owner = [a, b].find(t => t.broker.cluster?.groupOwner('rm/rm/#') === t.broker.cluster?.nodeId) as TestBroker
    const group = (await adminGet<{ items: Array<{ share: string, rejections: number, redelivered: number }> }>(owner.adminUrl, '/api/shared')).items.find(g => g.share === '$share/rm/rm/#')
    expect(group).toMatchObject({ rejections: 0, redelivered: 0 })
    slow.destroy()
  })
})
