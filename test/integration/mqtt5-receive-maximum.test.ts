import { describe, expect, it } from 'vitest'
import type { IPublishPacket } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, connectV5 as v5, waitFor, type TestClient } from '../helpers/clients.js'
import { Rng } from '../fuzz/mutator.js'
import { brokerPerTest, rawV5, settled, type RawV5 } from './mqtt5-support.js'

const names = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

/** Acknowledges the PUBLISHes one at a time, oldest first; after each, exactly one more may arrive. */
async function acknowledgeOneByOne (sub: RawV5, total: number, receiveMaximum: number): Promise<void> {
  for (let acked = 0; acked < total; acked++) {
    const p = sub.publishes()[acked]
    sub.send({ cmd: 'puback', messageId: p.messageId })
    const expected = Math.min(total, acked + 1 + receiveMaximum)
    await waitFor(() => sub.publishes().length >= expected, `${expected} PUBLISHes after ${acked + 1} acknowledgements`)
    await settled(sub)
    expect(sub.publishes().length, `in flight after ${acked + 1} acknowledgements`).toBe(expected)
  }
}

/**
 * An MQTT 5 client's Receive Maximum (docs/protocol.md, "Receive Maximum"): never more unacknowledged QoS 1/2
 * PUBLISHes than it allows, live, from its session queue and from a shared group, while the publisher is
 * acknowledged at once.
 */
describe('MQTT 5 Receive Maximum', () => {
  let t: TestBroker
  const track = brokerPerTest(started => { t = started })

  it('a clean session: exactly Receive Maximum in flight, the publisher acknowledged meanwhile, each acknowledgement releasing the next in order', async () => {
    const sub = await rawV5(t, 'rm-clean', 'rm/#', 1, { receiveMaximum: 2 })
    const pub = track(await v5(t.mqttUrl, { clientId: 'rm-pub' }))
    // every PUBACK comes while the subscriber has acknowledged nothing
    await Promise.all(names('m', 6).map(async p => await pub.publishAsync('rm/a', p, { qos: 1 })))
    await settled(sub)
    expect(sub.payloads()).toEqual(['m0', 'm1'])
    await acknowledgeOneByOne(sub, 6, 2)
    expect(sub.payloads()).toEqual(names('m', 6))
    expect(new Set(sub.publishes().map(p => p.messageId)).size).toBe(6)
    sub.destroy()
  })

  it('QoS 2: a PUBLISH counts until its PUBCOMP, not its PUBREC', async () => {
    const sub = await rawV5(t, 'rm-q2', 'rm2/#', 2, { receiveMaximum: 1 })
    const pub = track(await v5(t.mqttUrl, { clientId: 'rm2-pub' }))
    await Promise.all(names('q', 3).map(async p => await pub.publishAsync('rm2/a', p, { qos: 2 })))
    await settled(sub)
    expect(sub.payloads()).toEqual(['q0'])
    const first = sub.publishes()[0].messageId
    sub.send({ cmd: 'pubrec', messageId: first })
    await sub.next(p => p.cmd === 'pubrel' && p.messageId === first)
    await settled(sub)
    expect(sub.payloads(), 'received (PUBREC) but not complete').toEqual(['q0'])
    sub.send({ cmd: 'pubcomp', messageId: first })
    await waitFor(() => sub.publishes().length === 2, 'the second message after PUBCOMP')
    await settled(sub)
    expect(sub.payloads()).toEqual(['q0', 'q1'])
    sub.destroy()
  })

  it('a persistent session: its queue replay and the live messages that come meanwhile wait for acknowledgements, in order', async () => {
    const session = { sessionExpiryInterval: 3600, receiveMaximum: 2 }
    const first = await rawV5(t, 'rm-durable', 'rmd/#', 1, session, false)
    await first.disconnect()
    const pub = track(await v5(t.mqttUrl, { clientId: 'rmd-pub' }))
    await Promise.all(names('queued', 5).map(async p => await pub.publishAsync('rmd/a', p, { qos: 1 })))

    const sub = await rawV5(t, 'rm-durable', 'rmd/#', 1, session, false)
    expect(sub.sessionPresent).toBe(true)
    await waitFor(() => sub.publishes().length >= 2, 'the first two queued messages')
    // live messages while the window is full: acknowledged to their publisher, kept in the queue for the subscriber
    await Promise.all(names('live', 3).map(async p => await pub.publishAsync('rmd/a', p, { qos: 1 })))
    await settled(sub)
    expect(sub.payloads()).toEqual(['queued0', 'queued1'])

    await acknowledgeOneByOne(sub, 8, 2)
    expect(sub.payloads()).toEqual([...names('queued', 5), ...names('live', 3)])
    await waitFor(async () => (await t.broker.store.sessionInfo('rm-durable'))?.queued === 0, 'an empty queue')
    sub.destroy()
  })

  it('after a reconnect, resends of unacknowledged messages count too: a smaller Receive Maximum gets fewer at once', async () => {
    const first = await rawV5(t, 'rm-resend', 'rmr/#', 1, { sessionExpiryInterval: 3600, receiveMaximum: 5 }, false)
    const pub = track(await v5(t.mqttUrl, { clientId: 'rmr-pub' }))
    await Promise.all(names('r', 7).map(async p => await pub.publishAsync('rmr/a', p, { qos: 1 })))
    await waitFor(() => first.publishes().length === 5, 'five in flight')
    first.destroy()
    await waitFor(() => (t.broker.aedes as unknown as { clients: Record<string, unknown> }).clients['rm-resend'] === undefined, 'the first connection gone')

    const sub = await rawV5(t, 'rm-resend', 'rmr/#', 1, { sessionExpiryInterval: 3600, receiveMaximum: 2 }, false)
    await waitFor(() => sub.publishes().length >= 2, 'the first two resends')
    await settled(sub)
    expect(sub.payloads()).toEqual(['r0', 'r1'])
    expect(sub.publishes().map(p => p.dup)).toEqual([true, true])
    await acknowledgeOneByOne(sub, 7, 2)
    expect(sub.payloads()).toEqual(names('r', 7))
    sub.destroy()
  })

  it('a shared group member: the group keeps what its Receive Maximum does not allow and sends it as acknowledgements come', async () => {
    const member = await rawV5(t, 'rm-member', '$share/g/rms/#', 1, { receiveMaximum: 2 })
    const pub = track(await connectClient(t.mqttUrl, { clientId: 'rms-pub' }))
    await Promise.all(names('s', 5).map(async p => await pub.publishAsync('rms/a', p, { qos: 1 })))
    await settled(member)
    expect(member.payloads()).toEqual(['s0', 's1'])
    await acknowledgeOneByOne(member, 5, 2)
    expect(member.payloads()).toEqual(names('s', 5))
    member.destroy()
  })

  it('a clean session past limits.maxInflightMessages while its Receive Maximum is reached is a slow consumer: disconnected, its undelivered copies dead-lettered', async () => {
    const limited = await startTestBroker({ 'limits.maxInflightMessages': 3 })
    try {
      const watcher: TestClient = await connectClient(limited.mqttUrl, { clientId: 'dlq-watch' })
      await watcher.subscribeAsync('$DLQ/#', { qos: 1 })
      const sub = await rawV5(limited, 'rm-slow', 'rmx/#', 1, { receiveMaximum: 1 })
      const pub = await connectClient(limited.mqttUrl, { clientId: 'rmx-pub' })
      await Promise.all(names('x', 5).map(async p => await pub.publishAsync('rmx/a', p, { qos: 1 })))
      expect(await sub.waitClosed(5000)).toBe(true)
      expect(sub.payloads()).toEqual(['x0'])
      await waitFor(() => watcher.received.length >= 5, 'five slow-consumer dead letters')
      expect(watcher.received.map(m => m.topic)).toEqual(Array(5).fill('$DLQ/slow-consumer/rmx/a'))
      const envelopes = watcher.received.map(m => JSON.parse(m.payload) as { payload: string, target: string, detail: string })
      expect(envelopes.map(e => Buffer.from(e.payload, 'base64').toString())).toEqual(names('x', 5))
      expect(envelopes.every(e => e.target === 'rm-slow' && /Receive Maximum/.test(e.detail))).toBe(true)
      expect(pub.connected).toBe(true)
      expect(limited.logs.find(l => l.msg === 'disconnecting a client that does not acknowledge')).toMatchObject({ clientId: 'rm-slow', receiveMaximum: 1, held: 3, maxInflightMessages: 3 })
      pub.end(true)
      watcher.end(true)
    } finally {
      await limited.close()
    }
  })

  it('messages published in random bursts, acknowledged at random moments: never more than Receive Maximum in flight, each once and in order (seeded)', async () => {
    const seed = Number(process.env.RECEIVE_MAXIMUM_SEED ?? 2027)
    const r = new Rng(seed)
    const pub = track(await v5(t.mqttUrl, { clientId: 'burst-pub' }))
    // the mixed cases have a persistent session's own messages (its queue, resumed; at QoS 2 each recorded on disk
    // before it is sent) compete with a shared group's (pumped as the window frees) for the same window
    const durable = { sessionExpiryInterval: 3600 }
    const cases: Array<{ name: string, filters: string[], qos: 1 | 2, clean: boolean, properties: Record<string, number> }> = [
      { name: 'clean', filters: ['burst/clean/#'], qos: 1, clean: true, properties: {} },
      { name: 'persistent', filters: ['burst/durable/#'], qos: 1, clean: false, properties: durable },
      { name: 'shared', filters: ['$share/g/burst/shared/#'], qos: 1, clean: true, properties: {} },
      { name: 'mixed', filters: ['burst/mixed/own/#', '$share/g/burst/mixed/shared/#'], qos: 1, clean: false, properties: durable },
      { name: 'mixed-qos2', filters: ['burst/mixed2/own/#', '$share/g/burst/mixed2/shared/#'], qos: 2, clean: false, properties: durable }
    ]
    for (const c of cases) {
      const receiveMaximum = 1 + r.int(4)
      const total = 150 + r.int(100)
      const what = `${c.name} (seed ${seed}, Receive Maximum ${receiveMaximum}, ${total} messages)`
      const sub = await rawV5(t, `burst-${c.name}`, c.filters[0], c.qos, { ...c.properties, receiveMaximum }, c.clean)
      for (const [i, filter] of c.filters.slice(1).entries()) {
        sub.send({ cmd: 'subscribe', messageId: 2 + i, subscriptions: [{ topic: filter, qos: c.qos }] })
        await sub.next('suback')
      }
      const topics = c.filters.map(f => f.replace(/^\$share\/[^/]+\//, '').replace('#', 'x'))
      // completed: PUBACK (QoS 1) or PUBCOMP (QoS 2) sent; a QoS 2 message is in flight until its PUBCOMP
      let completed = 0
      let most = 0
      const acknowledging = (async () => {
        while (completed < total) {
          const p = await sub.next(p => p.cmd === 'publish' || p.cmd === 'pubrel', 10_000)
          if (p.cmd === 'publish') most = Math.max(most, sub.publishes().length - completed)
          if (r.chance(0.3)) await new Promise(resolve => setTimeout(resolve, r.int(3)))
          const id = (p as IPublishPacket).messageId
          if (p.cmd === 'pubrel') sub.send({ cmd: 'pubcomp', messageId: id })
          else sub.send({ cmd: c.qos === 1 ? 'puback' : 'pubrec', messageId: id })
          if (p.cmd === 'pubrel' || c.qos === 1) completed++
        }
      })()
      const sent = topics.map(() => 0)
      for (let n = 0; n < total;) {
        const burst = Math.min(total - n, 1 + r.int(20))
        const batch = Array.from({ length: burst }, () => {
          const k = r.int(topics.length)
          return { topic: topics[k], payload: `${k}:${sent[k]++}` }
        })
        await Promise.all(batch.map(async m => await pub.publishAsync(m.topic, m.payload, { qos: c.qos })))
        n += burst
      }
      await acknowledging
      await settled(sub)
      expect(most, what).toBeLessThanOrEqual(receiveMaximum)
      expect(sub.publishes().length, what).toBe(total)
      // each topic's messages arrive once each, in the order they were published
      for (const k of topics.keys()) {
        expect(sub.payloads().filter(p => p.startsWith(`${k}:`)), `${what}, ${topics[k]}`).toEqual(Array.from({ length: sent[k] }, (_, i) => `${k}:${i}`))
      }
      sub.destroy()
    }
  })
})
