import { describe, expect, it } from 'vitest'
import type { IDisconnectPacket, IPubackPacket, IPubcompPacket, IPublishPacket, IPubrecPacket } from 'mqtt-packet'
import {
  brokerStillServes, CLOSE_MS, fence, id16, messagesOn, mqttClient, packet, rawV5, retainedProbe, str, subscribe, transports, uid,
  useBroker, v5Client, waitFor, waitForMessages, type RawClient, type Transport
} from './support.js'

// MQTT 5.0 §3.3 PUBLISH (flags, properties, actions), §3.4-3.7 the acknowledgements, §4.3 QoS flows, §4.6 ordering.
const tb = useBroker()

/** The application properties a publisher sets and a v5 subscriber must get back unaltered. */
const APP_PROPERTIES = {
  payloadFormatIndicator: true,
  contentType: 'application/json; charset=utf-8',
  responseTopic: 'reply/here',
  correlationData: Buffer.from([0, 1, 0xfe, 0xff]),
  userProperties: { first: '1', repeated: ['a', 'b', 'c'], last: 'z' }
}

/** An MQTT 5 PUBLISH with no properties, encoded by hand (mqtt-packet refuses to generate the invalid ones). */
function publishBytes (topic: string | Buffer, qos: number, id: number | undefined, payload: string): Buffer {
  return packet(0x30 | (qos << 1), str(topic), id === undefined ? Buffer.alloc(0) : id16(id), Buffer.from([0]), Buffer.from(payload))
}

describe.each(transports)('MQTT 5 PUBLISH over %s', (transport: Transport) => {
  const publisher = async (): Promise<RawClient> => await rawV5(tb(), transport, { clientId: uid('pub') })

  it('[MQTT-3.3.4-1][MQTT-4.3.2-4] QoS 1: PUBACK with the packet identifier [MQTT-2.2.1-5] and reason code 0x00 [MQTT-3.4.2-1]; the same id after it is a new message [MQTT-4.3.2-5]', async () => {
    const topic = `${uid('q1')}/t`
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [topic]: 1 })
    const raw = await publisher()
    for (const payload of ['first', 'second']) {
      raw.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, messageId: 7, retain: false, dup: false })
      const ack = await raw.next<IPubackPacket>('puback')
      expect([ack.messageId, ack.reasonCode ?? 0]).toEqual([7, 0])
    }
    const got = await waitForMessages(sub, topic, 2)
    expect(got.map(m => m.payload)).toEqual(['first', 'second'])
  })

  it('[MQTT-4.3.3-8][MQTT-4.3.3-11] QoS 2: PUBREC 0x00 [MQTT-3.5.2-1] and PUBCOMP 0x00 [MQTT-3.7.2-1] with the id; a resend before PUBREL gets PUBREC and is delivered once [MQTT-4.3.3-10]; after PUBCOMP the id is a new message [MQTT-4.3.3-12]', async () => {
    const topic = `${uid('q2')}/t`
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [topic]: 2 })
    const raw = await publisher()
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('once'), qos: 2, messageId: 9, retain: false, dup: false })
    const rec = await raw.next<IPubrecPacket>('pubrec')
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('once'), qos: 2, messageId: 9, retain: false, dup: true })
    const rec2 = await raw.next<IPubrecPacket>('pubrec')
    expect([rec.messageId, rec.reasonCode ?? 0, rec2.messageId, rec2.reasonCode ?? 0]).toEqual([9, 0, 9, 0])
    raw.send({ cmd: 'pubrel', messageId: 9, reasonCode: 0 })
    const comp = await raw.next<IPubcompPacket>('pubcomp')
    expect([comp.messageId, comp.reasonCode ?? 0]).toEqual([9, 0])
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('again'), qos: 2, messageId: 9, retain: false, dup: false })
    await raw.next('pubrec')
    raw.send({ cmd: 'pubrel', messageId: 9, reasonCode: 0 })
    await raw.next('pubcomp')
    await waitForMessages(sub, topic, 2)
    await fence(sub, sub, topic)
    expect(messagesOn(sub, topic).filter(m => !m.payload.startsWith('fence')).map(m => m.payload)).toEqual(['once', 'again'])
  })

  it('[MQTT-3.3.2-4][MQTT-3.3.2-15][MQTT-3.3.2-16][MQTT-3.3.2-17][MQTT-3.3.2-20] Payload Format Indicator, Response Topic, Correlation Data, User Properties and Content Type reach every v5 subscriber unaltered, at QoS 0, 1 and 2', async () => {
    const base = uid('props')
    const subs = [await v5Client(tb(), transport), await v5Client(tb(), transport)]
    for (const s of subs) await subscribe(s, { [`${base}/#`]: 2 })
    const pub = await v5Client(tb(), transport)
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(`${base}/q${qos}`, `at ${qos}`, { qos, properties: APP_PROPERTIES })
    for (const s of subs) {
      await waitFor(() => s.received.length >= 3, 'three copies')
      expect(s.received.map(m => [m.topic, m.qos, m.properties])).toEqual([0, 1, 2].map(q => [`${base}/q${q}`, q, APP_PROPERTIES]))
    }
  })

  it('[MQTT-3.3.2-18] the order of User Properties is kept: the keys in order, the values of a repeated key in order', async () => {
    const topic = `${uid('order')}/t`
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [topic]: 1 })
    const pub = await v5Client(tb(), transport)
    const userProperties = { z: '1', a: '2', m: ['3', '1', '2'], b: '' }
    await pub.publishAsync(topic, 'ordered', { qos: 1, properties: { userProperties } })
    const [m] = await waitForMessages(sub, topic)
    const got = m.properties?.userProperties as Record<string, unknown>
    expect(Object.keys(got)).toEqual(['z', 'a', 'm', 'b'])
    expect(got).toEqual(userProperties)
  })

  it('[MQTT-3.3.2-6] a message delivered at once carries its Message Expiry Interval (nothing waited in the server)', async () => {
    const topic = `${uid('exp')}/t`
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [topic]: 1 })
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'expiring', { qos: 1, properties: { messageExpiryInterval: 120 } })
    const [m] = await waitForMessages(sub, topic)
    expect(m.properties?.messageExpiryInterval).toBeGreaterThanOrEqual(119)
    expect(m.properties?.messageExpiryInterval).toBeLessThanOrEqual(120)
  })

  it('properties are dropped for an MQTT 3.1.1 subscriber, which gets the message; a 3.1.1 publisher\'s message reaches a v5 subscriber without properties', async () => {
    const base = uid('mix')
    const v311 = await mqttClient(tb(), transport)
    const v5 = await v5Client(tb(), transport)
    await subscribe(v311, { [`${base}/#`]: 1 })
    await subscribe(v5, { [`${base}/#`]: 1 })
    const pub5 = await v5Client(tb(), transport)
    await pub5.publishAsync(`${base}/from5`, 'from v5', { qos: 1, properties: APP_PROPERTIES })
    await v311.publishAsync(`${base}/from311`, 'from 3.1.1', { qos: 1 })
    await waitFor(() => v311.received.length >= 2 && v5.received.length >= 2, 'both messages at both')
    expect(v311.received.map(m => [m.topic, m.payload, m.properties])).toEqual([[`${base}/from5`, 'from v5', undefined], [`${base}/from311`, 'from 3.1.1', undefined]])
    expect(v5.received.map(m => [m.topic, m.properties])).toEqual([[`${base}/from5`, APP_PROPERTIES], [`${base}/from311`, undefined]])
  })

  it('[MQTT-3.3.1-5][MQTT-3.3.1-9] a retained message is stored with its properties and sent, RETAIN 1, to a new subscription (Retain Handling 0); the live copy has RETAIN 0 (Retain As Published 0) [MQTT-3.3.1-12]', async () => {
    const topic = `${uid('ret')}/t`
    const live = await v5Client(tb(), transport)
    await subscribe(live, { [topic]: 1 })
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true, properties: APP_PROPERTIES })
    const [copy] = await waitForMessages(live, topic)
    expect([copy.payload, copy.retain, copy.properties]).toEqual(['kept', false, APP_PROPERTIES])
    const later = await v5Client(tb(), transport)
    await later.subscribeAsync(topic, { qos: 1, rh: 0 })
    const [stored] = await waitForMessages(later, topic)
    expect([stored.payload, stored.retain, stored.qos, stored.properties]).toEqual(['kept', true, 1, APP_PROPERTIES])
  })

  it('[MQTT-3.3.2-5][MQTT-3.3.2-6] a retained message past its Message Expiry Interval is not sent to a new subscription; one within it is sent with the interval counted down', async () => {
    const base = uid('ret-exp')
    const pub = await v5Client(tb(), transport)
    const publishedAt = Date.now()
    await pub.publishAsync(`${base}/short`, 'lives 1 s', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync(`${base}/long`, 'lives 60 s', { qos: 1, retain: true, properties: { messageExpiryInterval: 60, contentType: 'text/plain' } })
    await pub.publishAsync(`${base}/forever`, 'no expiry', { qos: 1, retain: true })
    // past the 1 s interval, and a second more for the count in whole seconds
    await waitFor(() => Date.now() >= publishedAt + 2100, 'the short interval to run out', 3000)
    const probe = await retainedProbe(tb(), transport, base)
    const got = await probe.read()
    expect(got.map(m => m.payload).sort()).toEqual(['lives 60 s', 'no expiry'])
    const long = got.find(m => m.payload === 'lives 60 s')
    // the probe reads at MQTT 3.1.1: the interval is seen by a v5 subscriber
    const v5 = await v5Client(tb(), transport)
    await v5.subscribeAsync(`${base}/long`, { qos: 1 })
    const [m] = await waitForMessages(v5, `${base}/long`)
    expect(long?.retain).toBe(true)
    expect(m.properties?.contentType).toBe('text/plain')
    expect(m.properties?.messageExpiryInterval).toBeGreaterThanOrEqual(55)
    expect(m.properties?.messageExpiryInterval).toBeLessThanOrEqual(58)
  })

  it('[MQTT-3.3.1-5][MQTT-3.3.1-6][MQTT-3.3.1-7][MQTT-3.3.1-8] a retained message is replaced by the next, cleared by an empty one (which is not stored), and left alone by RETAIN 0', async () => {
    const base = uid('ret')
    const pub = await v5Client(tb(), transport)
    const first = await retainedProbe(tb(), transport, base)
    await pub.publishAsync(`${base}/m1`, 'one', { qos: 1, retain: true })
    await pub.publishAsync(`${base}/m1`, 'two', { qos: 1, retain: true })
    await pub.publishAsync(`${base}/m1`, 'not retained', { qos: 1 })
    await pub.publishAsync(`${base}/m2`, 'kept at QoS 0', { qos: 0, retain: true })
    expect((await first.read()).map(m => [m.topic, m.payload, m.retain]).sort()).toEqual([[`${base}/m1`, 'two', true], [`${base}/m2`, 'kept at QoS 0', true]])
    const second = await retainedProbe(tb(), transport, base)
    await pub.publishAsync(`${base}/m2`, '', { qos: 1, retain: true })
    expect((await second.read()).map(m => [m.topic, m.payload])).toEqual([[`${base}/m1`, 'two']])
  })

  it('[MQTT-3.3.1-3] the DUP flag of an incoming PUBLISH is not forwarded; a QoS 0 copy has DUP 0 [MQTT-3.3.1-2]', async () => {
    const topic = `${uid('dup')}/t`
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [topic]: 1 })
    const raw = await publisher()
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('dup at 1'), qos: 1, messageId: 3, retain: false, dup: true })
    await raw.next('puback')
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('dup at 2'), qos: 2, messageId: 4, retain: false, dup: true })
    await raw.next('pubrec')
    raw.send({ cmd: 'pubrel', messageId: 4 })
    await raw.next('pubcomp')
    const got = await waitForMessages(sub, topic, 2)
    expect(got.map(m => [m.payload, m.dup])).toEqual([['dup at 1', false], ['dup at 2', false]])
    const q0 = await v5Client(tb(), transport)
    await subscribe(q0, { [topic]: 0 })
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('to qos 0'), qos: 1, messageId: 5, retain: false, dup: true })
    const [m] = await waitForMessages(q0, topic)
    expect([m.qos, m.dup]).toEqual([0, false])
  })

  it('[MQTT-3.3.4-2] overlapping subscriptions: one copy, at the highest QoS granted [MQTT-3.8.4-8]', async () => {
    const base = uid('over')
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [`${base}/#`]: 1, [`${base}/+/c`]: 2, [`${base}/b/c`]: 0 })
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(`${base}/b/c`, 'once', { qos: 2 })
    await fence(pub, sub, `${base}/fence`)
    expect(messagesOn(sub, `${base}/b/c`).map(m => [m.payload, m.qos])).toEqual([['once', 2]])
  })

  it('[MQTT-4.6.0-6] QoS 1 messages from one publisher arrive in the order sent', async () => {
    const topic = `${uid('ord')}/t`
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [topic]: 1 })
    const pub = await v5Client(tb(), transport)
    const sent = Array.from({ length: 30 }, (_, i) => `m${i}`)
    await Promise.all(sent.map(async p => await pub.publishAsync(topic, p, { qos: 1, properties: { userProperties: { p } } })))
    const got = await waitForMessages(sub, topic, sent.length)
    expect(got.map(m => m.payload)).toEqual(sent)
  })

  it('[MQTT-3.4.2-1] a refused QoS 1 PUBLISH gets a PUBACK reason code: 0x90 for a $ topic, with a Reason String; none when the client asked for no problem information [MQTT-3.1.2-29]; not delivered to # [MQTT-4.7.2-1]', async () => {
    const p = uid('dollar')
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { '#': 1 })
    const raw = await publisher()
    raw.send({ cmd: 'publish', topic: `$${p}/t`, payload: Buffer.from('x'), qos: 1, messageId: 11, retain: false, dup: false })
    const ack = await raw.next<IPubackPacket>('puback')
    expect([ack.messageId, ack.reasonCode]).toEqual([11, 0x90])
    expect(typeof ack.properties?.reasonString).toBe('string')
    const quiet = await rawV5(tb(), transport, { clientId: uid('quiet'), properties: { requestProblemInformation: false } })
    quiet.send({ cmd: 'publish', topic: `$${p}/t`, payload: Buffer.from('x'), qos: 1, messageId: 12, retain: false, dup: false })
    const quietAck = await quiet.next<IPubackPacket>('puback')
    expect([quietAck.reasonCode, quietAck.properties]).toEqual([0x90, undefined])
    await fence(sub, sub, `${p}/fence`)
    expect(sub.received.filter(m => m.topic.includes(p) && !m.topic.endsWith('/fence'))).toEqual([])
  })

  // A DISCONNECT before the close is a MAY (§4.13.1): Culex sends one for what its packet guard refuses, and closes
  // without one where mqtt-packet or aedes refuse the packet (no reason code: null).
  describe('malformed or invalid PUBLISH: closed [MQTT-4.13.1-1], after a DISCONNECT with a reason code where one is given; nothing acknowledged or delivered', () => {
    const cases: Array<[string, (p: string) => Buffer, number | null]> = [
      ['[MQTT-3.3.2-2] a wildcard in the topic name', p => publishBytes(`${p}/+/t`, 1, 1, 'bad'), null],
      ['[MQTT-3.3.1-4] QoS 3', p => publishBytes(`${p}/t`, 3, 1, 'bad'), null],
      ['[MQTT-4.7.3-1] an empty topic name and no Topic Alias', () => publishBytes('', 1, 1, 'bad'), null],
      ['[MQTT-4.7.3-2][MQTT-1.5.4-2] U+0000 in the topic name', p => publishBytes(`${p}/a\u0000b`, 1, 1, 'bad'), 0x81],
      ['[MQTT-1.5.4-1] ill-formed UTF-8 in the topic name', p => publishBytes(Buffer.concat([Buffer.from(`${p}/`), Buffer.from([0xc0, 0xaf])]), 1, 1, 'bad'), 0x81],
      ['[MQTT-2.2.1-3] packet identifier 0 at QoS 1', p => publishBytes(`${p}/t`, 1, 0, 'bad'), 0x82],
      ['[MQTT-3.3.1-2] DUP 1 at QoS 0', p => Buffer.from([0x38, ...publishBytes(`${p}/t`, 0, undefined, 'bad').subarray(1)]), 0x82]
    ]
    it.each(cases)('%s: DISCONNECT reason code %s', async (_, bytes, reasonCode) => {
      const p = uid('bad')
      const sub = await v5Client(tb(), transport)
      await subscribe(sub, { [`${p}/#`]: 2 })
      const raw = await publisher()
      raw.sendRaw(bytes(p))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'puback')).toEqual([])
      expect(raw.received.filter(x => x.cmd === 'disconnect').map(d => (d as IDisconnectPacket).reasonCode)).toEqual(reasonCode === null ? [] : [reasonCode])
      await fence(sub, sub, `${p}/fence`)
      expect(sub.received.filter(m => m.payload === 'bad')).toEqual([])
      await brokerStillServes(tb(), transport)
    })
  })

  it('[MQTT-3.3.2-3] the topic name sent to a subscriber is the published one, matching its filter', async () => {
    const base = uid('name')
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [`${base}/+/x/#`]: 1 })
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(`${base}/A b/x/deep/er`, 'named', { qos: 1 })
    const raw = await rawV5(tb(), transport, { clientId: uid('raw') })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/#`, qos: 1, nl: false, rap: false, rh: 0 }] })
    await raw.next('suback')
    await pub.publishAsync(`${base}/A b/x/deep/er`, 'named', { qos: 1 })
    const [m] = await waitForMessages(sub, `${base}/A b/x/deep/er`)
    expect(m.payload).toBe('named')
    expect((await raw.next<IPublishPacket>('publish')).topic).toBe(`${base}/A b/x/deep/er`)
  })
})
