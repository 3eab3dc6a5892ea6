import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, sleep, waitFor } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'
import type { ISubackPacket } from 'mqtt-packet'
import { adminGet, endAll, members, payloads, publishMany, waitTotal } from './support.js'

describe('shared subscriptions: dispatch', () => {
  let t: TestBroker

  beforeAll(async () => {
    t = await startTestBroker()
  })
  afterAll(async () => {
    await t?.close()
  })

  it('gives 4 members 20k QoS 1 messages exactly once, round-robin within 1%, and an ordinary subscriber all of them', async () => {
    const group = await members(t.mqttUrl, 4, '$share/g/jobs/#', 1, 'rr')
    const plain = await connectClient(t.mqttUrl, { clientId: 'plain' })
    await plain.subscribeAsync('jobs/#', { qos: 1 })
    const pub = await connectClient(t.mqttUrl, { clientId: 'rr-pub' })
    const n = 20_000
    await publishMany(pub, 'jobs/work', n, 1, 500)
    await waitTotal(group, n, 'group', 30_000)
    await waitFor(() => plain.received.length >= n, 'the ordinary subscriber', 30_000)
    await sleep(200)
    const got = payloads(group)
    expect(got.length).toBe(n)
    expect(new Set(got).size).toBe(n)
    const counts = group.map(c => c.received.length)
    const mean = n / 4
    for (const count of counts) expect(Math.abs(count - mean) / mean).toBeLessThanOrEqual(0.01)
    expect(group.every(c => c.received.every(r => r.qos === 1 && !r.retain))).toBe(true)
    expect(plain.received.length).toBe(n)
    expect(new Set(plain.received.map(r => r.payload)).size).toBe(n)
    const api = await adminGet<{ items: Array<{ share: string, delivered: number, acknowledged: number, members: unknown[] }> }>(t.adminUrl, '/api/shared')
    expect(api.items.find(g => g.share === '$share/g/jobs/#')).toMatchObject({ delivered: n, acknowledged: n })
    await endAll([...group, plain, pub])
  }, 60_000)

  it('delivers at min(publish QoS, the member\'s granted QoS)', async () => {
    const q0 = await connectClient(t.mqttUrl, { clientId: 'q0' })
    await q0.subscribeAsync('$share/q/qos/#', { qos: 0 })
    const q1 = await connectClient(t.mqttUrl, { clientId: 'q1' })
    await q1.subscribeAsync('$share/q/qos/#', { qos: 1 })
    const pub = await connectClient(t.mqttUrl, { clientId: 'q-pub' })
    await publishMany(pub, 'qos/one', 20, 1)
    await publishMany(pub, 'qos/two', 20, 2)
    await waitTotal([q0, q1], 40, 'both members')
    // round-robin: each member got half of each
    expect(q0.received.length).toBe(20)
    expect(q1.received.length).toBe(20)
    expect(q0.received.every(r => r.qos === 0)).toBe(true)
    expect(q1.received.every(r => r.qos === 1)).toBe(true)
    await endAll([q0, q1, pub])
  })

  it('sends no retained message on a shared subscribe, and clears RETAIN on live ones', async () => {
    const pub = await connectClient(t.mqttUrl, { clientId: 'ret-pub' })
    await pub.publishAsync('ret/a', 'kept', { qos: 1, retain: true })
    const member = await connectClient(t.mqttUrl, { clientId: 'ret-member' })
    await member.subscribeAsync('$share/r/ret/#', { qos: 1 })
    const control = await connectClient(t.mqttUrl, { clientId: 'ret-control' })
    await control.subscribeAsync('ret/#', { qos: 1 })
    await waitFor(() => control.received.length === 1, 'the retained message for the ordinary subscriber')
    await sleep(200)
    expect(member.received).toEqual([])
    await pub.publishAsync('ret/b', 'live', { qos: 1, retain: true })
    await waitFor(() => member.received.length === 1, 'the live message')
    expect(member.received[0]).toMatchObject({ topic: 'ret/b', payload: 'live', retain: false })
    await pub.publishAsync('ret/a', '', { qos: 1, retain: true })
    await pub.publishAsync('ret/b', '', { qos: 1, retain: true })
    await endAll([pub, member, control])
  })

  it('refuses share names with wildcards, an empty share name or an empty filter with 0x80, alone in the SUBACK', async () => {
    const raw = await openRaw('tcp', t)
    await raw.connect({ clientId: 'names' })
    const filters = ['$share/ok/a/#', '$share/+/a', '$share/#', '$share//a', '$share/g/', '$share/g', '$share/ok2/+/b']
    raw.send({ cmd: 'subscribe', messageId: 7, subscriptions: filters.map(topic => ({ topic, qos: 1 })) })
    const suback = await raw.next<ISubackPacket>('suback')
    expect(suback.granted).toEqual([1, 128, 128, 128, 128, 128, 1])
    expect(t.logs.some(l => l.msg === 'subscription refused' && l.topic === '$share//a' && l.reason === 'empty share name' && l.component === 'shared' && typeof l.clientId === 'string')).toBe(true)
    const groups = await adminGet<{ items: Array<{ share: string }> }>(t.adminUrl, '/api/shared')
    expect(groups.items.map(g => g.share)).toEqual(expect.arrayContaining(['$share/ok/a/#', '$share/ok2/+/b']))
    expect(groups.items.map(g => g.share).filter(s => s.includes('/g'))).toEqual([])
    await raw.disconnect()
  })

  it('keeps $ topics from a group whose filter starts with a wildcard, not from one that names them', async () => {
    const wild = await connectClient(t.mqttUrl, { clientId: 'wild' })
    await wild.subscribeAsync('$share/d/#', { qos: 1 })
    const named = await connectClient(t.mqttUrl, { clientId: 'named' })
    await named.subscribeAsync('$share/d/$DLQ/#', { qos: 1 })
    await new Promise<void>((resolve, reject) => t.broker.aedes.publish({ cmd: 'publish', topic: '$DLQ/x', payload: Buffer.from('dl'), qos: 1, retain: false, dup: false }, err => err ? reject(err) : resolve()))
    const pub = await connectClient(t.mqttUrl, { clientId: 'd-pub' })
    await pub.publishAsync('plain/d', 'p', { qos: 1 })
    await waitFor(() => named.received.length === 1 && wild.received.length === 1, 'one message each')
    await sleep(200)
    expect(wild.received.map(r => r.topic)).toEqual(['plain/d'])
    expect(named.received.map(r => r.topic)).toEqual(['$DLQ/x'])
    await endAll([wild, named, pub])
  })

  it('gives a client with a shared and an ordinary subscription on the same topic both copies', async () => {
    const both = await connectClient(t.mqttUrl, { clientId: 'both' })
    await both.subscribeAsync({ '$share/b/both/#': { qos: 1 }, 'both/#': { qos: 0 } })
    const pub = await connectClient(t.mqttUrl, { clientId: 'b-pub' })
    await publishMany(pub, 'both/x', 10, 1)
    await waitFor(() => both.received.length >= 20, '20 copies')
    await sleep(200)
    expect(both.received.length).toBe(20)
    expect(both.received.filter(r => r.qos === 1).length).toBe(10)
    expect(both.received.filter(r => r.qos === 0).length).toBe(10)
    await endAll([both, pub])
  })

  it('removes a member on UNSUBSCRIBE and keeps one that only changes its QoS', async () => {
    const [a, b] = await members(t.mqttUrl, 2, '$share/u/unsub/#', 1, 'unsub')
    await b.subscribeAsync('$share/u/unsub/#', { qos: 0 })
    const pub = await connectClient(t.mqttUrl, { clientId: 'u-pub' })
    await publishMany(pub, 'unsub/x', 10, 1)
    await waitTotal([a, b], 10, 'both members')
    expect(a.received.length).toBe(5)
    expect(b.received.map(r => r.qos)).toEqual([0, 0, 0, 0, 0])
    await a.unsubscribeAsync('$share/u/unsub/#')
    await publishMany(pub, 'unsub/y', 10, 1)
    await waitTotal([a, b], 20, 'b alone')
    expect(a.received.length).toBe(5)
    expect(b.received.length).toBe(15)
    await endAll([a, b, pub])
  })
})
