import { describe, expect, it } from 'vitest'
import type { IPublishPacket, ISubscribePacket, Packet } from 'mqtt-packet'
import type { TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { connectClient, connectV5 as v5, endClient, transports, waitFor, type Transport } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'

type Sub = ISubscribePacket['subscriptions'][number]

/**
 * MQTT 5 subscription options and identifiers (docs/protocol.md, "MQTT 5"): Retain Handling, Retain As Published,
 * No Local for retained messages, Subscription Identifiers on every kind of delivery and kept by a persistent session.
 */
describe('MQTT 5 subscription options and identifiers', () => {
  let t: TestBroker
  const track = brokerPerTest(started => { t = started })
  let nextId = 1

  const raw5 = async (clientId: string, transport: Transport = 'tcp'): Promise<RawClient> => {
    const raw = await openRaw(transport, t, { version: 5 })
    expect((await raw.connect({ clientId, protocolVersion: 5 })).reasonCode).toBe(0)
    return raw
  }

  /**
   * The retained messages one SUBSCRIBE brings, in order: its filters then `marker/#`, whose one retained message
   * comes last (aedes reads them filter by filter), so what came before the marker is all the others brought.
   */
  const retainedOf = async (raw: RawClient, subs: Sub[], properties?: ISubscribePacket['properties']): Promise<IPublishPacket[]> => {
    const messageId = nextId++
    const from = raw.received.length
    raw.send({ cmd: 'subscribe', messageId, subscriptions: [...subs, { topic: 'marker/#', qos: 0, rh: 0 }], properties })
    await raw.next(p => p.cmd === 'suback' && p.messageId === messageId)
    const marker = await raw.next<IPublishPacket>(p => p.cmd === 'publish' && p.topic === 'marker/end')
    const at = raw.received.indexOf(marker as Packet)
    return raw.received.slice(from, at).filter((p): p is IPublishPacket => p.cmd === 'publish')
  }

  const retain = async (topic: string, payload: string, clientId = 'retainer'): Promise<void> => {
    const pub = await v5(t.mqttUrl, { clientId })
    await pub.publishAsync(topic, payload, { qos: 1, retain: true })
    await endClient(pub)
  }

  it.each(transports)('Retain Handling: 0 sends the retained messages on every SUBSCRIBE, 1 only for a new subscription, 2 never; they come with RETAIN 1 (%s)', async (transport) => {
    await retain('rh/a', 'A')
    await retain('rh/b', 'B')
    await retain('marker/end', 'end')
    const raw = await raw5('rh', transport)
    // in no particular order (MQTT sets none; the Redis store reads a hash)
    const topics = (ps: IPublishPacket[]): Array<[string, boolean]> => ps.map((p): [string, boolean] => [p.topic, p.retain]).sort()
    expect(topics(await retainedOf(raw, [{ topic: 'rh/#', qos: 0, rh: 0 }]))).toEqual([['rh/a', true], ['rh/b', true]])
    expect(topics(await retainedOf(raw, [{ topic: 'rh/#', qos: 0, rh: 0 }]))).toEqual([['rh/a', true], ['rh/b', true]])
    expect(topics(await retainedOf(raw, [{ topic: 'rh/+', qos: 1, rh: 1 }]))).toEqual([['rh/a', true], ['rh/b', true]])
    expect(topics(await retainedOf(raw, [{ topic: 'rh/+', qos: 1, rh: 1 }]))).toEqual([])
    expect(topics(await retainedOf(raw, [{ topic: 'rh/a', qos: 0, rh: 2 }]))).toEqual([])
    // in one SUBSCRIBE, each filter by its own option
    expect(topics(await retainedOf(raw, [{ topic: 'rh/b', qos: 0, rh: 2 }, { topic: 'rh/a', qos: 0, rh: 1 }]))).toEqual([])
    expect(topics(await retainedOf(raw, [{ topic: 'rh/b', qos: 0, rh: 0 }, { topic: 'rh/a', qos: 0, rh: 2 }]))).toEqual([['rh/b', true]])
    // a retained copy sent on SUBSCRIBE is RETAIN 1 whatever Retain As Published says; so is it for MQTT 3.1.1
    const old = track(await connectClient(t.mqttUrl, { clientId: 'rh311' }))
    await old.subscribeAsync('rh/a', { qos: 1 })
    await waitFor(() => old.received.length >= 1, 'the retained message at the 3.1.1 client')
    expect(old.received.map(m => [m.topic, m.retain])).toEqual([['rh/a', true]])
    raw.destroy()
  })

  it('Retain Handling 1 counts a persistent session\'s restored subscription as existing', async () => {
    await retain('rhp/a', 'A')
    await retain('marker/end', 'end')
    const connect = async (): Promise<RawClient> => {
      const raw = await openRaw('tcp', t, { version: 5 })
      expect((await raw.connect({ clientId: 'rh-durable', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } })).reasonCode).toBe(0)
      return raw
    }
    const first = await connect()
    expect((await retainedOf(first, [{ topic: 'rhp/#', qos: 1, rh: 1 }])).map(p => p.topic)).toEqual(['rhp/a'])
    first.destroy()
    await waitFor(() => first.isClosed, 'the first connection closed')
    const again = await connect()
    expect(again.received[0]).toMatchObject({ cmd: 'connack', sessionPresent: true })
    expect((await retainedOf(again, [{ topic: 'rhp/#', qos: 1, rh: 1 }])).map(p => p.topic)).toEqual([])
    again.destroy()
  })

  it('No Local: a retained message the client itself published is not sent to it on SUBSCRIBE, whichever version it published with', async () => {
    await retain('nlr/own', 'mine', 'self')
    await retain('nlr/other', 'theirs', 'someone')
    await retain('marker/end', 'end')
    const old = await connectClient(t.mqttUrl, { clientId: 'self311' })
    await old.publishAsync('nlr/own311', 'mine too', { qos: 1, retain: true })
    await endClient(old)
    for (const clientId of ['self', 'self311']) {
      const raw = await raw5(clientId)
      const payloads = (ps: IPublishPacket[]): string[] => ps.map(p => p.payload.toString()).sort()
      expect(payloads(await retainedOf(raw, [{ topic: 'nlr/#', qos: 0, nl: true }]))).toEqual(clientId === 'self' ? ['mine too', 'theirs'] : ['mine', 'theirs'])
      // without No Local, or another matching filter without it in the same SUBSCRIBE: sent
      expect(payloads(await retainedOf(raw, [{ topic: 'nlr/+', qos: 0 }]))).toEqual(['mine', 'mine too', 'theirs'])
      expect(payloads(await retainedOf(raw, [{ topic: 'nlr/#', qos: 0, nl: true }, { topic: 'nlr/+', qos: 0 }]))).toEqual(['mine', 'mine too', 'theirs'])
      raw.destroy()
    }
  })

  it('sends every matching Subscription Identifier on live, retained and shared deliveries, none to an MQTT 3.1.1 client', async () => {
    const sub = track(await v5(t.mqttUrl, { clientId: 'ids' }))
    await sub.subscribeAsync('sid/#', { qos: 1, properties: { subscriptionIdentifier: 7 } })
    await sub.subscribeAsync('sid/+/x', { qos: 1, properties: { subscriptionIdentifier: 9 } })
    await sub.subscribeAsync('sid/plain', { qos: 1 })
    await sub.subscribeAsync('$share/g/sidq/#', { qos: 1, properties: { subscriptionIdentifier: 11 } })
    const old = track(await connectClient(t.mqttUrl, { clientId: 'ids311' }))
    await old.subscribeAsync('sid/#', { qos: 1 })
    const pub = track(await v5(t.mqttUrl, { clientId: 'ids-pub' }))
    await pub.publishAsync('sid/a/x', 'two', { qos: 1 })
    await pub.publishAsync('sid/b', 'one', { qos: 0 })
    await pub.publishAsync('sid/plain', 'plain', { qos: 1, retain: true })
    await pub.publishAsync('sidq/job', 'shared', { qos: 1 })
    await waitFor(() => sub.received.length >= 4 && old.received.length >= 3, 'the four messages')
    const idsOf = (payload: string): unknown => sub.received.find(m => m.payload === payload)?.properties?.subscriptionIdentifier
    expect(idsOf('two')).toEqual([7, 9])
    expect(idsOf('one')).toBe(7)
    expect(idsOf('plain')).toBe(7)
    expect(idsOf('shared')).toBe(11)
    expect(old.received.every(m => m.properties === undefined)).toBe(true)

    // a retained message sent on SUBSCRIBE carries the identifier of that SUBSCRIBE
    await sub.subscribeAsync('sid/plain', { qos: 1, resubscribe: true, properties: { subscriptionIdentifier: 21 } } as never)
    await waitFor(() => sub.received.filter(m => m.payload === 'plain').length >= 2, 'the retained message')
    expect(sub.received.filter(m => m.payload === 'plain').map(m => [m.retain, m.properties?.subscriptionIdentifier])).toEqual([[false, 7], [true, 21]])

    // subscribing again without an identifier removes it; unsubscribing removes the filter's
    await sub.subscribeAsync('sid/#', { qos: 1, resubscribe: true } as never)
    await sub.unsubscribeAsync('sid/+/x')
    await pub.publishAsync('sid/a/x', 'none', { qos: 1 })
    await waitFor(() => sub.received.some(m => m.payload === 'none'), 'the message with no identifier')
    expect(sub.received.find(m => m.payload === 'none')?.properties?.subscriptionIdentifier).toBeUndefined()
  })

  it('keeps a persistent session\'s Subscription Identifiers: queued messages and a restart', async () => {
    const session = { clientId: 'ids-durable', clean: false, properties: { sessionExpiryInterval: 3600 } }
    const sub = await v5(t.mqttUrl, session)
    await sub.subscribeAsync('dsid/#', { qos: 1, properties: { subscriptionIdentifier: 5 } })
    await sub.subscribeAsync('dsid/+/x', { qos: 2, properties: { subscriptionIdentifier: 268_435_455 } })
    await endClient(sub)
    const pub = await v5(t.mqttUrl, { clientId: 'dsid-pub' })
    await pub.publishAsync('dsid/a/x', 'queued', { qos: 1 })
    await endClient(pub)
    const restarted = await t.restart()
    try {
      const again = await v5(restarted.mqttUrl, session)
      expect(again.sessionPresent).toBe(true)
      const pub2 = await v5(restarted.mqttUrl, { clientId: 'dsid-pub' })
      await pub2.publishAsync('dsid/b', 'live', { qos: 1 })
      await waitFor(() => again.received.length >= 2, 'the queued and the live message')
      // their order is not significant (MQTT 5 §3.3.4)
      const ids = (id: unknown): unknown => Array.isArray(id) ? [...id as number[]].sort((a, b) => a - b) : id
      expect(again.received.map(m => [m.payload, ids(m.properties?.subscriptionIdentifier)])).toEqual([['queued', [5, 268_435_455]], ['live', 5]])
      await Promise.all([again, pub2].map(async c => await endClient(c, true)))
    } finally {
      await restarted.close()
    }
  })

  it('closes the connection of a SUBSCRIBE with a Subscription Identifier of 0 (DISCONNECT 0x82)', async () => {
    const raw = await raw5('sid-zero')
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'zero/#', qos: 0 }], properties: { subscriptionIdentifier: 0 } })
    expect(await raw.waitClosed(5000)).toBe(true)
    expect(raw.received.map(p => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual([['connack', 0], ['disconnect', 0x82]])
  })
})
