import { describe, expect, it } from 'vitest'
import type { IPublishPacket } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { connectV5 as v5, transports, waitFor, type Transport } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'

/** MQTT 5 Topic Aliases both ways (docs/protocol.md, "MQTT 5"), `mqtt.topicAliasMaximum` per connection each way. */
describe('MQTT 5 Topic Aliases', () => {
  let t: TestBroker
  const track = brokerPerTest(started => { t = started })

  const raw5 = async (broker: TestBroker, clientId: string, properties: Record<string, unknown> = {}, clean = true, transport: Transport = 'tcp'): Promise<RawClient> => {
    const raw = await openRaw(transport, broker, { version: 5 })
    const connack = await raw.connect({ clientId, protocolVersion: 5, clean, properties })
    expect(connack.reasonCode).toBe(0)
    return raw
  }
  const publish = (raw: RawClient, topic: string, payload: string, topicAlias?: number): void => {
    raw.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, dup: false, retain: false, properties: topicAlias === undefined ? {} : { topicAlias } })
  }
  const publishes = (raw: RawClient): Array<[string, string, number | undefined]> => raw.received
    .filter((p): p is IPublishPacket => p.cmd === 'publish')
    .map(p => [p.topic, p.payload.toString(), p.properties?.topicAlias])

  it.each(transports)('takes the aliases a client sets, up to the Topic Alias Maximum it was told, and delivers the topics (%s)', async (transport) => {
    const sub = track(await v5(t.mqttUrl, { clientId: 'ta-sub' }))
    await sub.subscribeAsync('ta/#', { qos: 0 })
    const raw = await raw5(t, 'ta-pub', {}, true, transport)
    expect(raw.received[0].cmd === 'connack' && raw.received[0].properties?.topicAliasMaximum).toBe(10)
    publish(raw, 'ta/one', '1', 1)
    publish(raw, '', '2', 1)
    publish(raw, 'ta/ten', '3', 10)
    publish(raw, '', '4', 10)
    // an alias may be set again to another topic
    publish(raw, 'ta/two', '5', 1)
    publish(raw, '', '6', 1)
    await waitFor(() => sub.received.length >= 6, 'the six messages')
    expect(sub.received.map(m => [m.topic, m.payload, m.properties?.topicAlias])).toEqual([
      ['ta/one', '1', undefined], ['ta/one', '2', undefined], ['ta/ten', '3', undefined], ['ta/ten', '4', undefined], ['ta/two', '5', undefined], ['ta/two', '6', undefined]
    ])
    raw.destroy()
  })

  it('closes the connection with DISCONNECT 0x94 for an alias of 0 or over the maximum, 0x82 for an unknown one', async () => {
    for (const [topic, alias, code] of [['ta/x', 0, 0x94], ['ta/x', 11, 0x94], ['', 3, 0x82]] as const) {
      const raw = await raw5(t, `ta-bad-${alias}`)
      publish(raw, topic, 'x', alias)
      expect(await raw.waitClosed(5000)).toBe(true)
      expect(raw.received.map(p => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual([['connack', 0], ['disconnect', code]])
    }
    // mqtt.topicAliasMaximum 0: none offered (no Topic Alias Maximum in CONNACK), any alias is refused
    const off = await startTestBroker({ 'mqtt.topicAliasMaximum': 0 })
    try {
      const raw = await raw5(off, 'ta-off', { topicAliasMaximum: 5 })
      expect(raw.received[0].cmd === 'connack' && raw.received[0].properties?.topicAliasMaximum).toBeUndefined()
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'off/#', qos: 0 }] })
      await raw.next('suback')
      publish(raw, 'off/x', 'a')
      publish(raw, 'off/x', 'b')
      await waitFor(() => publishes(raw).length >= 2, 'the two messages, without aliases')
      expect(publishes(raw)).toEqual([['off/x', 'a', undefined], ['off/x', 'b', undefined]])
      publish(raw, 'off/x', 'c', 1)
      expect(await raw.waitClosed(5000)).toBe(true)
      expect(raw.received.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x94 })
    } finally {
      await off.close()
    }
  })

  it.each(transports)('sets aliases on what it sends to a client that accepts them: the first topics, within the client\'s maximum (%s)', async (transport) => {
    const raw = await raw5(t, 'tao', { topicAliasMaximum: 2 }, true, transport)
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'tao/#', qos: 0 }] })
    await raw.next('suback')
    const pub = track(await v5(t.mqttUrl, { clientId: 'tao-pub' }))
    for (const topic of ['tao/a', 'tao/b', 'tao/c', 'tao/a', 'tao/b', 'tao/c']) await pub.publishAsync(topic, topic.slice(-1), { qos: 0 })
    await waitFor(() => publishes(raw).length >= 6, 'the six messages')
    expect(publishes(raw)).toEqual([['tao/a', 'a', 1], ['tao/b', 'b', 2], ['tao/c', 'c', undefined], ['', 'a', 1], ['', 'b', 2], ['tao/c', 'c', undefined]])
    raw.destroy()

    // mqtt.js resolves them: what its user sees is the topics
    const sub = track(await v5(t.mqttUrl, { clientId: 'tao-js', properties: { topicAliasMaximum: 5 } }))
    await sub.subscribeAsync('tao/#', { qos: 1 })
    for (const topic of ['tao/a', 'tao/a', 'tao/b']) await pub.publishAsync(topic, 'x', { qos: 1 })
    await waitFor(() => sub.received.length >= 3, 'the three messages')
    expect(sub.received.map(m => m.topic)).toEqual(['tao/a', 'tao/a', 'tao/b'])
  })

  it('starts the aliases afresh on each connection: a persistent session\'s queue and retained messages', async () => {
    const properties = { topicAliasMaximum: 5, sessionExpiryInterval: 3600 }
    const first = await raw5(t, 'taq', properties, false)
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'taq/#', qos: 1 }] })
    await first.next('suback')
    await first.disconnect()
    const pub = track(await v5(t.mqttUrl, { clientId: 'taq-pub' }))
    await pub.publishAsync('taq/r', 'retained', { qos: 1, retain: true })
    for (let i = 0; i < 3; i++) await pub.publishAsync('taq/x', `q${i}`, { qos: 1 })
    const again = await raw5(t, 'taq', properties, false)
    await waitFor(() => publishes(again).length >= 4, 'the queued messages')
    expect(publishes(again)).toEqual([['taq/r', 'retained', 1], ['taq/x', 'q0', 2], ['', 'q1', 2], ['', 'q2', 2]])
    // a retained message sent on SUBSCRIBE takes the connection's alias of its topic
    again.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'taq/r', qos: 0 }] })
    await waitFor(() => publishes(again).length >= 5, 'the retained message')
    expect(publishes(again)[4]).toEqual(['', 'retained', 1])
    again.destroy()
  })
})
