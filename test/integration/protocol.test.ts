import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'

/**
 * Culex's corrections of aedes 1.2 (docs/protocol.md), each checked the way a user would notice the bug:
 * messages that go missing, arrive twice, or arrive at a QoS the subscriber was not granted.
 */
describe('protocol corrections over aedes', () => {
  let t: TestBroker
  beforeEach(async () => { t = await startTestBroker() })
  afterEach(async () => { await t.close() })

  it('loses no QoS 1 message that a later QoS 0 message overtook (aedes dropped it as a duplicate)', async () => {
    // A persistent subscriber makes every QoS 1 publish wait for the store, so QoS 0 publishes overtake them.
    const durable = await connectClient(t.mqttUrl, { clientId: 'durable', clean: false })
    await durable.subscribeAsync('mix/#', { qos: 1 })
    const live = await connectClient(t.mqttUrl, { clientId: 'live' })
    await live.subscribeAsync('mix/#', { qos: 1 })
    const pub = await connectClient(t.mqttUrl, { clientId: 'pub' })
    const n = 2000
    const sent: Array<Promise<unknown>> = []
    for (let i = 0; i < n; i++) sent.push(pub.publishAsync(`mix/${i % 2 === 0 ? 'q1' : 'q0'}`, String(i), { qos: i % 2 === 0 ? 1 : 0 }))
    await Promise.all(sent)
    await waitFor(() => live.received.length >= n, `${n} messages at the live subscriber`, 15_000)
    const q1 = live.received.filter(m => m.topic === 'mix/q1').map(m => Number(m.payload))
    expect(q1.length).toBe(n / 2)
    expect(new Set(q1).size).toBe(n / 2)
    await Promise.all([durable, live, pub].map(async c => await endClient(c)))
  })

  it('delivers one copy at the highest granted QoS for overlapping filters, and leaves no stale copy queued', async () => {
    const sub = await connectClient(t.mqttUrl, { clientId: 'overlap', clean: false })
    await sub.subscribeAsync({ 'o/#': { qos: 0 }, 'o/+': { qos: 1 } })
    const pub = await connectClient(t.mqttUrl, { clientId: 'pub' })
    for (let i = 0; i < 20; i++) await pub.publishAsync('o/x', String(i), { qos: 1 })
    await waitFor(() => sub.received.length >= 20, '20 messages')
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(sub.received.length).toBe(20)
    expect(sub.received.every(m => m.qos === 1)).toBe(true)
    await endClient(sub)
    const again = await connectClient(t.mqttUrl, { clientId: 'overlap', clean: false })
    expect(again.sessionPresent).toBe(true)
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(again.received).toEqual([])
    expect((await t.broker.store.sessionInfo('overlap'))?.queued).toBe(0)
    await Promise.all([again, pub].map(async c => await endClient(c)))
  })

  it('never stores a refused filter of a multi-topic SUBSCRIBE in the session', async () => {
    const sub = await connectClient(t.mqttUrl, { clientId: 'multi', clean: false })
    // mqtt.js reports a SUBACK with a 0x80 code as an error that carries the packet.
    // A share name with a wildcard is refused (src/shared-subscriptions), whatever the rest of the packet.
    const suback = await sub.subscribeAsync({ 'm/ok': { qos: 1 }, '$share/+/m/refused': { qos: 1 } })
      .then(() => undefined, (err: { packet?: { granted: number[] } }) => err.packet)
    expect(suback?.granted).toEqual([1, 128])
    await endClient(sub)
    const info = await t.broker.store.sessionInfo('multi')
    expect(info?.subscriptions.map(s => s.topic)).toEqual(['m/ok'])
  })

  it('acknowledges a client publish to a $ topic, delivers it to nobody, keeps the client connected and logs why', async () => {
    const watcher = await connectClient(t.mqttUrl, { clientId: 'watcher' })
    await watcher.subscribeAsync('$SYS/fake/#', { qos: 1 })
    const pub = await connectClient(t.mqttUrl, { clientId: 'sneaky' })
    await pub.publishAsync('$SYS/fake/uptime', '1', { qos: 1 })
    await pub.publishAsync('normal/after', '2', { qos: 1 })
    expect(pub.connected).toBe(true)
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(watcher.received).toEqual([])
    expect(t.logs.some(l => l.msg === 'publish dropped' && l.reason === 'reserved-topic' && l.clientId === 'sneaky' && l.topic === '$SYS/fake/uptime')).toBe(true)
    await Promise.all([watcher, pub].map(async c => await endClient(c)))
  })

  it('keeps $ topics out of a persistent # subscriber\'s offline queue', async () => {
    const sub = await connectClient(t.mqttUrl, { clientId: 'hash', clean: false })
    await sub.subscribeAsync('#', { qos: 1 })
    await endClient(sub)
    await new Promise<void>((resolve, reject) => t.broker.aedes.publish({ cmd: 'publish', topic: '$DLQ/test/x', payload: Buffer.from('no'), qos: 1, retain: false, dup: false }, err => err ? reject(err) : resolve()))
    const pub = await connectClient(t.mqttUrl, { clientId: 'pub' })
    await pub.publishAsync('plain/x', 'yes', { qos: 1 })
    const again = await connectClient(t.mqttUrl, { clientId: 'hash', clean: false })
    await waitFor(() => again.received.length >= 1, 'the queued plain message')
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(again.received.map(m => m.topic)).toEqual(['plain/x'])
    await Promise.all([again, pub].map(async c => await endClient(c)))
  })
})
