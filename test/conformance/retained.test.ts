import { describe, expect, it } from 'vitest'
import type { IPublishPacket, IPubrelPacket } from 'mqtt-packet'
import type { Received } from '../helpers/clients.js'
import {
  messagesOn, mqttClient, rawClient, retainedProbe, subscribe, transports, uid, useBroker, waitFor, waitForMessages, type TestClient,
  type Transport
} from './support.js'

// MQTT 3.1.1 §3.3.1.3 RETAIN, §3.8.4 (retained messages on SUBSCRIBE).
const tb = useBroker()

describe.each(transports)('retained messages over %s', (transport: Transport) => {
  const retainedUnder = async (base: string): Promise<{ read: () => Promise<Received[]> }> => await retainedProbe(tb(), transport, base)

  async function publisher (): Promise<TestClient> {
    return await mqttClient(tb(), transport)
  }

  it('[MQTT-3.3.1-5][MQTT-3.3.1-6] a retained message is stored and sent to a later subscriber, with RETAIN=1 [MQTT-3.3.1-8]', async () => {
    const topic = `${uid('r')}/m`
    const pub = await publisher()
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    const sub = await mqttClient(tb(), transport)
    await subscribe(sub, { [topic]: 1 })
    const [m] = await waitForMessages(sub, topic)
    expect(m).toMatchObject({ payload: 'kept', retain: true, qos: 1 })
  })

  it('[MQTT-3.1.2-7] a retained message outlives the session of the client that published it', async () => {
    const topic = `${uid('r')}/m`
    const pub = await mqttClient(tb(), transport, { clean: true })
    await pub.publishAsync(topic, 'outlives', { qos: 1, retain: true })
    await pub.endAsync()
    const sub = await mqttClient(tb(), transport)
    await subscribe(sub, { [topic]: 1 })
    const [m] = await waitForMessages(sub, topic)
    expect(m).toMatchObject({ payload: 'outlives', retain: true })
  })

  it('[MQTT-3.3.1-9] a copy sent to an established subscription has RETAIN=0', async () => {
    const topic = `${uid('r')}/m`
    const sub = await mqttClient(tb(), transport)
    await subscribe(sub, { [topic]: 1 })
    const pub = await publisher()
    await pub.publishAsync(topic, 'live', { qos: 1, retain: true })
    const [m] = await waitForMessages(sub, topic)
    expect(m).toMatchObject({ payload: 'live', retain: false })
  })

  it('[MQTT-3.3.1-5] a new retained message on a topic replaces the previous one', async () => {
    const base = uid('r')
    const probe = await retainedUnder(base)
    const pub = await publisher()
    await pub.publishAsync(`${base}/m`, 'v1', { qos: 1, retain: true })
    await pub.publishAsync(`${base}/m`, 'v2', { qos: 1, retain: true })
    const got = await probe.read()
    expect(got.map(m => [m.topic, m.payload, m.retain])).toEqual([[`${base}/m`, 'v2', true]])
  })

  it('[MQTT-3.3.1-7] a retained QoS 0 message discards the previously retained message (and SHOULD replace it)', async () => {
    const base = uid('r')
    const probe = await retainedUnder(base)
    const pub = await publisher()
    await pub.publishAsync(`${base}/m`, 'qos1', { qos: 1, retain: true })
    await pub.publishAsync(`${base}/m`, 'qos0', { qos: 0, retain: true })
    const got = await probe.read()
    expect(got.map(m => [m.payload, m.qos])).toEqual([['qos0', 0]])
  })

  it('[MQTT-3.3.1-10][MQTT-3.3.1-11] a retained message with an empty payload clears the topic and is not stored', async () => {
    const base = uid('r')
    const topic = `${base}/m`
    const live = await mqttClient(tb(), transport)
    await subscribe(live, { [topic]: 1 })
    const probe = await retainedUnder(base)
    const pub = await publisher()
    await pub.publishAsync(topic, 'to-clear', { qos: 1, retain: true })
    await pub.publishAsync(topic, '', { qos: 1, retain: true })
    // Processed as normal: current subscribers get the zero-byte message.
    await waitForMessages(live, topic, 2)
    expect(messagesOn(live, topic).map(m => m.payload)).toEqual(['to-clear', ''])
    // Future subscribers get nothing: neither the old message nor an empty one.
    expect(await probe.read()).toEqual([])
  })

  it('[MQTT-3.3.1-12] a PUBLISH with RETAIN=0 neither stores nor replaces the retained message', async () => {
    const base = uid('r')
    const probe = await retainedUnder(base)
    const pub = await publisher()
    await pub.publishAsync(`${base}/m`, 'keep', { qos: 1, retain: true })
    await pub.publishAsync(`${base}/m`, 'transient', { qos: 1, retain: false })
    await pub.publishAsync(`${base}/n`, 'never-retained', { qos: 1, retain: false })
    const got = await probe.read()
    expect(got.map(m => [m.topic, m.payload])).toEqual([[`${base}/m`, 'keep']])
  })

  it.each(([
    { filter: 'exact', retainedQos: 2, granted: 1, expected: 1 },
    { filter: 'exact', retainedQos: 1, granted: 2, expected: 1 },
    { filter: '+', retainedQos: 2, granted: 0, expected: 0 },
    { filter: '+', retainedQos: 2, granted: 1, expected: 1 },
    { filter: '#', retainedQos: 2, granted: 1, expected: 1 },
    { filter: '#', retainedQos: 1, granted: 0, expected: 0 },
    { filter: '#', retainedQos: 2, granted: 2, expected: 2 }
  ] as const).map(c => [`a retained QoS ${c.retainedQos} message is sent to a "${c.filter}" filter granted ${c.granted} at QoS ${c.expected}`, c] as const))('[MQTT-3.8.4-6] %s', async (_title, { filter, retainedQos, granted, expected }) => {
    const base = uid('r')
    const topic = `${base}/lvl/m`
    const pub = await publisher()
    await pub.publishAsync(topic, 'rq', { qos: retainedQos, retain: true })
    const f = filter === 'exact' ? topic : filter === '+' ? `${base}/+/m` : `${base}/#`
    const sub = await mqttClient(tb(), transport)
    expect(await subscribe(sub, { [f]: granted })).toEqual([granted])
    const [m] = await waitForMessages(sub, topic)
    expect(m).toMatchObject({ payload: 'rq', retain: true, qos: expected })
  })

  it('[MQTT-4.3.3-1] a retained QoS 2 message sent to a persistent session on SUBSCRIBE: its PUBREC gets PUBREL, and the connection stays', async () => {
    const topic = `${uid('ret2')}/t`
    const pub = await publisher()
    await pub.publishAsync(topic, 'retained at 2', { qos: 2, retain: true })
    for (const version of [4, 5] as const) {
      const raw = await rawClient(tb(), transport, { version })
      const connect = { clientId: uid('persist'), protocolVersion: version, clean: false }
      expect(await raw.connect(version === 5 ? { ...connect, properties: { sessionExpiryInterval: 60 } } : connect)).toMatchObject({ sessionPresent: false })
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 2, nl: false, rap: false, rh: 0 }] })
      const p = await raw.next<IPublishPacket>('publish')
      expect([p.qos, p.retain, p.payload.toString()]).toEqual([2, true, 'retained at 2'])
      raw.send({ cmd: 'pubrec', messageId: p.messageId as number })
      expect((await raw.next<IPubrelPacket>('pubrel')).messageId, `MQTT ${version}`).toBe(p.messageId)
      raw.send({ cmd: 'pubcomp', messageId: p.messageId as number })
      await pub.publishAsync(topic, 'live at 2', { qos: 2 })
      const live = await raw.next<IPublishPacket>('publish')
      expect([live.payload.toString(), raw.isClosed]).toEqual(['live at 2', false])
      raw.destroy()
    }
  })

  it('[MQTT-3.8.4-3] subscribing again to an existing filter re-sends the retained messages', async () => {
    const base = uid('r')
    const pub = await publisher()
    await pub.publishAsync(`${base}/m`, 'again', { qos: 1, retain: true })
    const sub = await mqttClient(tb(), transport)
    await subscribe(sub, { [`${base}/#`]: 1 })
    await waitForMessages(sub, `${base}/m`, 1)
    await subscribe(sub, { [`${base}/#`]: 1 })
    const got = await waitForMessages(sub, `${base}/m`, 2)
    expect(got.map(m => [m.payload, m.retain])).toEqual([['again', true], ['again', true]])
  })

  it('[MQTT-3.3.1-6] a wildcard subscription gets the retained message of every matching topic, "sport/#" including "sport"', async () => {
    const base = uid('r')
    const pub = await publisher()
    const topics = [base, `${base}/a`, `${base}/a/b`, `${base}/c`]
    for (const t of topics) await pub.publishAsync(t, `at ${t}`, { qos: 1, retain: true })
    await pub.publishAsync(`${base}x/no`, 'sibling prefix', { qos: 1, retain: true })
    const sub = await mqttClient(tb(), transport)
    await subscribe(sub, { [`${base}/#`]: 1 })
    await waitFor(() => topics.every(t => messagesOn(sub, t).length > 0), 'a retained message on every topic')
    expect(sub.received.map(m => m.topic).sort()).toEqual([...topics].sort())
    expect(sub.received.every(m => m.retain)).toBe(true)
  })
})
