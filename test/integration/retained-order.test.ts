import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor, type TestClient } from '../helpers/clients.js'

/**
 * A retained PUBLISH and, from another connection, a SUBSCRIBE sent right after it, before its PUBACK: the message is
 * written before it is routed, and the SUBSCRIBE used to be granted meanwhile. The subscriber then got it twice (from
 * the retained store, and live), and a shared subscription got it live though it was published before the group
 * existed. A marker published after the SUBACK says when everything published before it has arrived. Which of the
 * two packets the broker reads first is up to the two sockets: both orders occur over the rounds.
 */
describe('a retained message published just before a SUBSCRIBE from another client', () => {
  let t: TestBroker | undefined
  const clients: TestClient[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) await endClient(c, true)
    await t?.close()
  })

  const setUp = async (): Promise<{ pub: TestClient, sub: TestClient }> => {
    t = await startTestBroker()
    const pub = await connectClient(t.mqttUrl, { clientId: 'order-pub' })
    const sub = await connectClient(t.mqttUrl, { clientId: 'order-sub' })
    clients.push(pub, sub)
    return { pub, sub }
  }

  for (const qos of [0, 1] as const) {
    it(`QoS ${qos}: a plain subscription gets it once: from the retained store, or live if the broker read the SUBSCRIBE first (20 rounds)`, async () => {
      const { pub, sub } = await setUp()
      for (let i = 0; i < 20; i++) {
        const topic = `order/q${qos}/${i}`
        const sent = pub.publishAsync(topic, `retained-${i}`, { qos, retain: true })
        await sub.subscribeAsync(topic, { qos: 1 })
        await sent
        await pub.publishAsync(topic, `marker-${i}`, { qos: 1 })
        // the retained copy is read from the store after the SUBACK; the marker may come first
        await waitFor(() => sub.received.some(m => m.topic === topic && m.payload === `marker-${i}`) && sub.received.some(m => m.topic === topic && m.payload === `retained-${i}`), `the retained message and the marker of round ${i}`)
        const copies = sub.received.filter(m => m.topic === topic && m.payload === `retained-${i}`)
        expect(copies.length, `round ${i}: copies with RETAIN ${copies.map(m => String(m.retain)).join(', ')}`).toBe(1)
      }
    })

    it(`QoS ${qos}: a shared subscription does not get it (20 rounds)`, async () => {
      const { pub, sub } = await setUp()
      for (let i = 0; i < 20; i++) {
        const topic = `order/s${qos}/${i}`
        const sent = pub.publishAsync(topic, `retained-${i}`, { qos, retain: true })
        await sub.subscribeAsync(`$share/g/${topic}`, { qos: 1 })
        await sent
        await pub.publishAsync(topic, `marker-${i}`, { qos: 1 })
        await waitFor(() => sub.received.some(m => m.topic === topic && m.payload === `marker-${i}`), `the marker of round ${i}`)
        expect(sub.received.filter(m => m.topic === topic && m.payload === `retained-${i}`), `round ${i}`).toEqual([])
      }
    })
  }

  it('a retained message published after the SUBACK arrives live, once, with RETAIN 0', async () => {
    const { pub, sub } = await setUp()
    await sub.subscribeAsync('order/later/#', { qos: 1 })
    await pub.publishAsync('order/later/a', 'after', { qos: 1, retain: true })
    await waitFor(() => sub.received.some(m => m.payload === 'after'), 'the retained message published after the SUBSCRIBE')
    expect(sub.received.filter(m => m.payload === 'after').map(m => m.retain)).toEqual([false])
  })
})
