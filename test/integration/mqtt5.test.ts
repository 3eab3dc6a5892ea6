import { describe, expect, it } from 'vitest'
import type { IClientOptions } from 'mqtt'
import type { TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { connectClient, connectV5 as v5, endClient, sleep, waitFor, type TestClient } from '../helpers/clients.js'

/**
 * MQTT 5 clients exchanging messages (docs/protocol.md, "MQTT 5"): mqtt.js at protocol level 5 subscribes and
 * publishes at every QoS over TCP and WebSocket, with the application properties, beside MQTT 3.1.1 clients on the
 * same topics; persistent sessions, retained and shared messages, and the will on DISCONNECT.
 */

/** The application properties a publisher sets and a v5 subscriber must get back unchanged. */
const appProperties = {
  payloadFormatIndicator: true,
  contentType: 'application/json',
  responseTopic: 'reply/to/me',
  correlationData: Buffer.from([0, 1, 2, 0xff]),
  userProperties: { site: 'north', tag: ['a', 'b'] }
}

describe('MQTT 5 clients exchanging messages', () => {
  let t: TestBroker
  const track = brokerPerTest(started => { t = started })

  it('publishes and receives at QoS 0, 1 and 2, each at min(publish, granted), with the application properties', async () => {
    const sub = track(await v5(t.mqttUrl, { clientId: 'sub' }))
    const suback = await sub.subscribeAsync({ 'v5/two/#': { qos: 2 }, 'v5/one/#': { qos: 1 } })
    expect(suback.map(g => g.qos)).toEqual([2, 1])
    const pub = track(await v5(t.mqttUrl, { clientId: 'pub' }))
    for (const qos of [0, 1, 2] as const) {
      await pub.publishAsync(`v5/two/q${qos}`, `two ${qos}`, { qos, properties: { ...appProperties, messageExpiryInterval: 60 } })
      await pub.publishAsync(`v5/one/q${qos}`, `one ${qos}`, { qos })
    }
    await waitFor(() => sub.received.length >= 6, 'six messages')
    const byTopic = Object.fromEntries(sub.received.map(m => [m.topic, m]))
    expect(Object.keys(byTopic).sort()).toEqual(['v5/one/q0', 'v5/one/q1', 'v5/one/q2', 'v5/two/q0', 'v5/two/q1', 'v5/two/q2'])
    expect([0, 1, 2].map(q => byTopic[`v5/two/q${q}`].qos)).toEqual([0, 1, 2])
    expect([0, 1, 2].map(q => byTopic[`v5/one/q${q}`].qos)).toEqual([0, 1, 1])
    for (const q of [0, 1, 2]) {
      expect(byTopic[`v5/two/q${q}`].payload).toBe(`two ${q}`)
      // a live delivery forwards the expiry interval as published (docs/protocol.md)
      expect(byTopic[`v5/two/q${q}`].properties).toEqual({ ...appProperties, messageExpiryInterval: 60 })
      expect(byTopic[`v5/one/q${q}`].properties).toBeUndefined()
    }
  })

  it('works over WebSocket as over TCP', async () => {
    const sub = track(await v5(t.wsUrl, { clientId: 'ws-sub' }))
    expect(sub.connack.reasonCode).toBe(0)
    await sub.subscribeAsync('ws/#', { qos: 2 })
    const pub = track(await v5(t.wsUrl, { clientId: 'ws-pub' }))
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(`ws/q${qos}`, `ws ${qos}`, { qos, properties: appProperties })
    await waitFor(() => sub.received.length >= 3, 'three messages over WebSocket')
    expect(sub.received.map(m => [m.topic, m.payload, m.qos, JSON.stringify(m.properties)])).toEqual(
      [0, 1, 2].map(q => [`ws/q${q}`, `ws ${q}`, q, JSON.stringify(appProperties)]))
  })

  it('answers a refused filter in SUBACK with its reason code (0x8F) beside the granted ones', async () => {
    const sub = track(await v5(t.mqttUrl, { clientId: 'refused' }))
    // a share name with a wildcard is refused by the shared-subscription engine
    const suback = await sub.subscribeAsync({ 'ok/topic': { qos: 1 }, '$share/+/bad': { qos: 1 } })
      .then(() => undefined, (err: { packet?: { granted: number[] } }) => err.packet)
    expect(suback?.granted).toEqual([1, 0x8F])
  })

  it('answers UNSUBSCRIBE with a reason code per filter (0x11 where there was no subscription), and stops delivering', async () => {
    const sub = track(await v5(t.mqttUrl, { clientId: 'unsub' }))
    await sub.subscribeAsync({ 'u/a': { qos: 1 }, 'u/b': { qos: 1 }, '$share/g/u/s': { qos: 1 } })
    const unsuback = await sub.unsubscribeAsync(['u/a', 'u/never', 'u/b', '$share/g/u/s']) as { granted?: number[], reasonCode?: number[] }
    expect(unsuback.granted ?? unsuback.reasonCode).toEqual([0, 0x11, 0, 0])
    const pub = track(await v5(t.mqttUrl, { clientId: 'unsub-pub' }))
    await pub.publishAsync('u/a', 'gone', { qos: 1 })
    await sub.subscribeAsync('u/c', { qos: 1 })
    await pub.publishAsync('u/c', 'marker', { qos: 1 })
    await waitFor(() => sub.received.length >= 1, 'the marker')
    expect(sub.received.map(m => m.payload)).toEqual(['marker'])
  })

  it('exchanges messages with an MQTT 3.1.1 client on the same topics; the 3.1.1 client gets no properties', async () => {
    const sub5 = track(await v5(t.mqttUrl, { clientId: 'sub5' }))
    const sub4 = track(await connectClient(t.mqttUrl, { clientId: 'sub4' }))
    await sub5.subscribeAsync('mix/#', { qos: 2 })
    await sub4.subscribeAsync('mix/#', { qos: 2 })
    const pub5 = track(await v5(t.mqttUrl, { clientId: 'pub5' }))
    const pub4 = track(await connectClient(t.mqttUrl, { clientId: 'pub4' }))
    for (const qos of [0, 1, 2] as const) {
      await pub5.publishAsync(`mix/from5/q${qos}`, Buffer.from(`five ${qos}`), { qos, properties: appProperties })
      await pub4.publishAsync(`mix/from4/q${qos}`, Buffer.from(`four ${qos}`), { qos })
    }
    await waitFor(() => sub5.received.length >= 6 && sub4.received.length >= 6, 'six messages at each subscriber')
    const summary = (c: TestClient): string[] => c.received.map(m => `${m.topic} ${m.payload} q${m.qos}`).sort()
    const expected = [0, 1, 2].flatMap(q => [`mix/from4/q${q} four ${q} q${q}`, `mix/from5/q${q} five ${q} q${q}`]).sort()
    expect(summary(sub5)).toEqual(expected)
    expect(summary(sub4)).toEqual(expected)
    expect(sub4.received.every(m => m.properties === undefined)).toBe(true)
    expect(sub5.received.filter(m => m.topic.startsWith('mix/from5/')).every(m => JSON.stringify(m.properties) === JSON.stringify(appProperties))).toBe(true)
  })

  it('resumes a persistent session (Clean Start 0, Session Expiry Interval > 0) with what was queued, properties included', async () => {
    const session = { clientId: 'durable5', clean: false, properties: { sessionExpiryInterval: 3600 } }
    const first = await v5(t.mqttUrl, session)
    expect(first.sessionPresent).toBe(false)
    // within sessions.expiryMs (7 days by default): the client's interval stands, and the CONNACK does not repeat it
    expect(first.connack.properties?.sessionExpiryInterval).toBeUndefined()
    await first.subscribeAsync('durable/#', { qos: 1 })
    await endClient(first)
    const pub = track(await v5(t.mqttUrl, { clientId: 'durable-pub' }))
    for (let i = 0; i < 3; i++) await pub.publishAsync(`durable/${i}`, `queued ${i}`, { qos: 1, properties: { userProperties: { n: String(i) } } })
    const again = track(await v5(t.mqttUrl, session))
    expect(again.sessionPresent).toBe(true)
    await waitFor(() => again.received.length >= 3, 'three queued messages')
    expect(again.received.map(m => [m.payload, m.qos, m.properties?.userProperties])).toEqual([
      ['queued 0', 1, { n: '0' }], ['queued 1', 1, { n: '1' }], ['queued 2', 1, { n: '2' }]
    ])
  })

  it('Retain As Published: a persistent subscriber gets a live retained message once, with RETAIN 1, and not again; others RETAIN 0', async () => {
    const session = { clientId: 'rap', clean: false, properties: { sessionExpiryInterval: 3600 } }
    const sub = await v5(t.mqttUrl, session)
    await sub.subscribeAsync('rap/#', { qos: 1, rap: true })
    const plain = track(await v5(t.mqttUrl, { clientId: 'no-rap' }))
    await plain.subscribeAsync('rap/#', { qos: 1 })
    const pub = track(await v5(t.mqttUrl, { clientId: 'rap-pub' }))
    for (let i = 0; i < 5; i++) await pub.publishAsync(`rap/${i}`, `r${i}`, { qos: 1, retain: true })
    await pub.publishAsync('rap/fence', 'fence', { qos: 1 })
    await waitFor(() => sub.received.some(m => m.payload === 'fence') && plain.received.some(m => m.payload === 'fence'), 'the fence')
    expect(sub.received.map(m => [m.payload, m.retain])).toEqual([['r0', true], ['r1', true], ['r2', true], ['r3', true], ['r4', true], ['fence', false]])
    expect(plain.received.map(m => [m.payload, m.retain])).toEqual([['r0', false], ['r1', false], ['r2', false], ['r3', false], ['r4', false], ['fence', false]])
    await endClient(sub)
    const again = track(await v5(t.mqttUrl, session))
    expect(again.sessionPresent).toBe(true)
    await pub.publishAsync('rap/fence', 'second fence', { qos: 1 })
    await waitFor(() => again.received.some(m => m.payload === 'second fence'), 'the second fence')
    expect(again.received.map(m => m.payload)).toEqual(['second fence'])
    // queued while offline: kept RETAIN 1 as published
    await endClient(again)
    await pub.publishAsync('rap/queued', 'queued', { qos: 1, retain: true })
    const third = track(await v5(t.mqttUrl, session))
    await waitFor(() => third.received.length >= 1, 'the queued retained message')
    expect(third.received.map(m => [m.payload, m.retain])).toEqual([['queued', true]])
  })

  it('keeps no session for Clean Start 1 with a Session Expiry Interval of 0', async () => {
    const opts = { clientId: 'clean5', clean: true, properties: { sessionExpiryInterval: 0 } }
    const first = await v5(t.mqttUrl, opts)
    expect(first.connack.properties?.sessionExpiryInterval).toBeUndefined()
    await first.subscribeAsync('clean/#', { qos: 1 })
    await endClient(first)
    const again = track(await v5(t.mqttUrl, { ...opts, clean: false }))
    expect(again.sessionPresent).toBe(false)
  })

  it('publishes the will on DISCONNECT with reason 0x04 (or any reason but 0x00), and not on DISCONNECT 0x00', async () => {
    const watcher = track(await v5(t.mqttUrl, { clientId: 'watcher' }))
    await watcher.subscribeAsync('wills/#', { qos: 1 })
    const will = (name: string): IClientOptions['will'] => ({ topic: `wills/${name}`, payload: Buffer.from(`${name} gone`), qos: 1, retain: false, properties: { contentType: 'text/plain', willDelayInterval: 0 } })
    const normal = await v5(t.mqttUrl, { clientId: 'normal', will: will('normal') })
    const withWill = await v5(t.mqttUrl, { clientId: 'with-will', will: will('with-will') })
    const failing = await v5(t.mqttUrl, { clientId: 'failing', will: will('failing') })
    await new Promise<void>(resolve => normal.end(false, { reasonCode: 0 }, () => resolve()))
    await new Promise<void>(resolve => withWill.end(false, { reasonCode: 0x04 }, () => resolve()))
    await waitFor(() => watcher.received.length >= 1, 'the first will')
    await new Promise<void>(resolve => failing.end(false, { reasonCode: 0x80 }, () => resolve()))
    await waitFor(() => watcher.received.length >= 2, 'the second will')
    // the normal disconnect came first: a will from it would have arrived by now
    await sleep(200)
    expect(watcher.received.map(m => [m.topic, m.payload, m.properties])).toEqual([
      ['wills/with-will', 'with-will gone', { contentType: 'text/plain' }],
      ['wills/failing', 'failing gone', { contentType: 'text/plain' }]
    ])
  })

  it('delivers retained messages and shared-subscription messages to v5 subscribers', async () => {
    const pub = track(await v5(t.mqttUrl, { clientId: 'ret-pub' }))
    await pub.publishAsync('ret/a', 'kept', { qos: 1, retain: true, properties: { contentType: 'text/plain' } })
    const sub = track(await v5(t.mqttUrl, { clientId: 'ret-sub' }))
    await sub.subscribeAsync('ret/#', { qos: 1 })
    await waitFor(() => sub.received.length >= 1, 'the retained message')
    expect(sub.received[0]).toMatchObject({ topic: 'ret/a', payload: 'kept', retain: true, qos: 1, properties: { contentType: 'text/plain' } })

    const members = [track(await v5(t.mqttUrl, { clientId: 'm1' })), track(await v5(t.mqttUrl, { clientId: 'm2' }))]
    for (const m of members) expect((await m.subscribeAsync('$share/g/jobs/#', { qos: 1 })).map(g => g.qos)).toEqual([1])
    for (let i = 0; i < 10; i++) await pub.publishAsync(`jobs/${i}`, String(i), { qos: 1 })
    await waitFor(() => members[0].received.length + members[1].received.length >= 10, 'ten jobs')
    const got = members.flatMap(m => m.received.map(r => Number(r.payload))).sort((a, b) => a - b)
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })
})
