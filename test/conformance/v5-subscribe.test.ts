import { describe, expect, it } from 'vitest'
import type { IPublishPacket, ISubackPacket, IUnsubackPacket } from 'mqtt-packet'
import {
  brokerStillServes, CLOSE_MS, fence, id16, messagesOn, packet, rawV5, str, subscribe, transports, uid, useBroker,
  v5Client, waitFor, waitForMessages, type Transport
} from './support.js'

// MQTT 5.0 §3.8 SUBSCRIBE (options), §3.9 SUBACK, §3.10 UNSUBSCRIBE, §3.11 UNSUBACK, §3.12 PINGREQ, §4.8.2 shared.
const tb = useBroker()

describe.each(transports)('MQTT 5 SUBSCRIBE / UNSUBSCRIBE over %s', (transport: Transport) => {
  it('[MQTT-3.8.4-1][MQTT-3.8.4-2] SUBACK with the SUBSCRIBE\'s packet identifier; one reason code per filter [MQTT-3.8.4-6], in order [MQTT-3.9.3-1], the granted QoS [MQTT-3.8.4-7]', async () => {
    const base = uid('sub')
    const raw = await rawV5(tb(), transport, { clientId: uid('c') })
    raw.send({
      cmd: 'subscribe',
      messageId: 4242,
      subscriptions: [2, 0, 1].map(qos => ({ topic: `${base}/q${qos}`, qos: qos as 0 | 1 | 2, nl: false, rap: false, rh: 0 as const }))
    })
    const suback = await raw.next<ISubackPacket>('suback')
    expect([suback.messageId, suback.granted]).toEqual([4242, [2, 0, 1]])
  })

  it('[MQTT-3.8.4-5] several filters in one SUBSCRIBE work as several SUBSCRIBEs; a refused one gets a failure code [MQTT-3.9.3-2] and the others work', async () => {
    const base = uid('multi')
    const raw = await rawV5(tb(), transport, { clientId: uid('c') })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [[`${base}/a`, 1], ['$share/+/x', 1], [`${base}/b`, 2]].map(([topic, qos]) => ({ topic: topic as string, qos: qos as 1 | 2, nl: false, rap: false, rh: 0 as const })) })
    const granted = (await raw.next<ISubackPacket>('suback')).granted as number[]
    expect([granted[0], granted[1] >= 0x80, granted[2]]).toEqual([1, true, 2])
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(`${base}/a`, 'a', { qos: 1 })
    await pub.publishAsync(`${base}/b`, 'b', { qos: 2 })
    const got = [await raw.next<IPublishPacket>('publish'), await raw.next<IPublishPacket>('publish')]
    expect(got.map(p => [p.topic, p.qos])).toEqual([[`${base}/a`, 1], [`${base}/b`, 2]])
  })

  it('[MQTT-3.8.4-3] a SUBSCRIBE for an existing filter replaces the subscription (new QoS, one copy); Retain Handling 0 sends the retained message again [MQTT-3.8.4-4]', async () => {
    const topic = `${uid('re')}/t`
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'retained', { qos: 2, retain: true })
    const sub = await v5Client(tb(), transport)
    await sub.subscribeAsync(topic, { qos: 0, rh: 0 })
    await waitForMessages(sub, topic, 1)
    await sub.subscribeAsync(topic, { qos: 2, rh: 0 })
    await waitForMessages(sub, topic, 2)
    await pub.publishAsync(topic, 'live', { qos: 2 })
    await waitForMessages(sub, topic, 3)
    await fence(pub, sub, topic)
    expect(messagesOn(sub, topic).filter(m => !m.payload.startsWith('fence')).map(m => [m.payload, m.qos, m.retain]))
      .toEqual([['retained', 0, true], ['retained', 2, true], ['live', 2, false]])
  })

  it('[MQTT-3.8.3-3] No Local: the client\'s own messages are not sent back through a No Local subscription; another client gets them', async () => {
    const topic = `${uid('nl')}/t`
    const self = await v5Client(tb(), transport)
    await self.subscribeAsync(topic, { qos: 1, nl: true })
    const other = await v5Client(tb(), transport)
    await subscribe(other, { [topic]: 1 })
    for (const qos of [0, 1, 2] as const) await self.publishAsync(topic, `own ${qos}`, { qos })
    await other.publishAsync(topic, 'from other', { qos: 1 })
    await waitForMessages(self, topic)
    await waitForMessages(other, topic, 4)
    await fence(other, self, topic)
    expect(messagesOn(self, topic).filter(m => !m.payload.startsWith('fence')).map(m => m.payload)).toEqual(['from other'])
    expect(messagesOn(other, topic).slice(0, 4).map(m => m.payload)).toEqual(['own 0', 'own 1', 'own 2', 'from other'])
  })

  it('[MQTT-3.3.1-10] Retain Handling 1: the retained message is sent for a new subscription, not when the subscription existed', async () => {
    const topic = `${uid('rh1')}/t`
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'retained', { qos: 1, retain: true })
    const sub = await v5Client(tb(), transport)
    await sub.subscribeAsync(topic, { qos: 1, rh: 1 })
    await waitForMessages(sub, topic)
    await sub.subscribeAsync(topic, { qos: 2, rh: 1 })
    await fence(pub, sub, topic)
    expect(messagesOn(sub, topic).filter(m => !m.payload.startsWith('fence')).map(m => [m.payload, m.retain])).toEqual([['retained', true]])
  })

  it('[MQTT-3.3.1-11] Retain Handling 2: no retained message is sent, neither for a new subscription nor for an existing one', async () => {
    const topic = `${uid('rh2')}/t`
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'retained', { qos: 1, retain: true })
    const sub = await v5Client(tb(), transport)
    await sub.subscribeAsync(topic, { qos: 1, rh: 2 })
    await sub.subscribeAsync(topic, { qos: 2, rh: 2 })
    await fence(pub, sub, topic)
    expect(messagesOn(sub, topic).filter(m => !m.payload.startsWith('fence'))).toEqual([])
  })

  it('[MQTT-3.3.1-13] Retain As Published 1: a live message keeps the RETAIN flag it was published with; with 0 it has RETAIN 0 [MQTT-3.3.1-12]', async () => {
    const topic = `${uid('rap')}/t`
    const asPublished = await v5Client(tb(), transport)
    await asPublished.subscribeAsync(topic, { qos: 1, rap: true })
    const plain = await v5Client(tb(), transport)
    await plain.subscribeAsync(topic, { qos: 1, rap: false })
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    await pub.publishAsync(topic, 'live', { qos: 1 })
    const flags = async (c: typeof plain): Promise<Array<[string, boolean]>> => (await waitForMessages(c, topic, 2)).map(m => [m.payload, m.retain])
    expect(await flags(asPublished)).toEqual([['kept', true], ['live', false]])
    expect(await flags(plain)).toEqual([['kept', false], ['live', false]])
    await pub.publishAsync(topic, '', { qos: 1, retain: true })
  })

  it('[MQTT-3.8.3-4] No Local on a shared subscription is a protocol error: DISCONNECT 0x82, closed without SUBACK', async () => {
    const raw = await rawV5(tb(), transport, { clientId: uid('c') })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `$share/g/${uid('s')}`, qos: 1, nl: true, rap: false, rh: 0 }] })
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.map(p => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual([['connack', 0], ['disconnect', 0x82]])
    await brokerStillServes(tb(), transport)
  })

  describe('malformed SUBSCRIBE / UNSUBSCRIBE: closed without an acknowledgement', () => {
    const noProperties = Buffer.from([0])
    const cases: Array<[string, (f: string) => Buffer, string]> = [
      ['[MQTT-3.8.3-5] reserved bits of the subscription options set', f => packet(0x82, id16(1), noProperties, str(f), Buffer.from([0xc1])), 'suback'],
      ['[MQTT-3.8.1-1] wrong reserved bits in the SUBSCRIBE fixed header', f => packet(0x80, id16(1), noProperties, str(f), Buffer.from([1])), 'suback'],
      ['[MQTT-3.8.3-2] a SUBSCRIBE with no filter', () => packet(0x82, id16(1), noProperties), 'suback'],
      ['[MQTT-3.10.1-1] wrong reserved bits in the UNSUBSCRIBE fixed header', f => packet(0xa0, id16(1), noProperties, str(f)), 'unsuback'],
      ['[MQTT-3.10.3-2] an UNSUBSCRIBE with no filter', () => packet(0xa2, id16(1), noProperties), 'unsuback'],
      ['[MQTT-4.7.1-1] a # that is not last in a SUBSCRIBE filter', f => packet(0x82, id16(1), noProperties, str(`${f}/#/x`), Buffer.from([1])), 'suback']
    ]
    it.each(cases)('%s', async (_, bytes, ack) => {
      const raw = await rawV5(tb(), transport, { clientId: uid('c') })
      raw.sendRaw(bytes(uid('f')))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(p => p.cmd === ack)).toEqual([])
      await brokerStillServes(tb(), transport)
    })
  })

  it('[MQTT-3.10.4-4][MQTT-3.10.4-5] UNSUBACK with the UNSUBSCRIBE\'s id, even when nothing was removed; a reason code per filter in order [MQTT-3.11.3-1]: 0x00, or 0x11 where no subscription existed [MQTT-3.11.3-2]', async () => {
    const base = uid('unsub')
    const raw = await rawV5(tb(), transport, { clientId: uid('c') })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [`${base}/a`, `${base}/+`, `$share/g/${base}/s`].map(topic => ({ topic, qos: 1 as const, nl: false, rap: false, rh: 0 as const })) })
    await raw.next('suback')
    raw.send({ cmd: 'unsubscribe', messageId: 77, unsubscriptions: [`${base}/a`, `${base}/never`, `${base}/+`, `$share/g/${base}/s`, `${base}/A`] })
    const unsuback = await raw.next<IUnsubackPacket>('unsuback')
    expect([unsuback.messageId, unsuback.granted]).toEqual([77, [0, 0x11, 0, 0, 0x11]])
    raw.send({ cmd: 'unsubscribe', messageId: 78, unsubscriptions: [`${base}/a`] })
    const again = await raw.next<IUnsubackPacket>('unsuback')
    expect([again.messageId, again.granted]).toEqual([78, [0x11]])
  })

  it('[MQTT-3.10.4-1][MQTT-3.10.4-2][MQTT-3.10.4-6] UNSUBSCRIBE compares filters character by character, removes each named one, and nothing more is delivered through them', async () => {
    const base = uid('unsub')
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [`${base}/+`]: 1, [`${base}/x`]: 1, [`${base}/y`]: 1, [`${base}/fence`]: 1 })
    await sub.unsubscribeAsync([`${base}/+`, `${base}/y`, `${base}/X`])
    const pub = await v5Client(tb(), transport)
    for (const t of ['x', 'y', 'z']) await pub.publishAsync(`${base}/${t}`, t, { qos: 1 })
    await fence(pub, sub, `${base}/fence`)
    expect(sub.received.filter(m => !m.topic.endsWith('/fence')).map(m => m.payload)).toEqual(['x'])
  })

  it('[MQTT-3.12.4-1] PINGREQ gets PINGRESP', async () => {
    const raw = await rawV5(tb(), transport, { clientId: uid('c') })
    raw.send({ cmd: 'pingreq' })
    await raw.next('pingresp')
    expect(raw.isClosed).toBe(false)
  })

  it('[MQTT-4.8.2-1][MQTT-4.8.2-2] a shared subscription filter without a ShareName, or with a wildcard in it, is refused (a failure code); a valid one is granted and each message goes to one member at the granted QoS [MQTT-4.8.2-3]', async () => {
    const base = uid('share')
    const raw = await rawV5(tb(), transport, { clientId: uid('c') })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [`$share//${base}`, `$share/+/${base}`, `$share/g/${base}/+`].map(topic => ({ topic, qos: 1 as const, nl: false, rap: false, rh: 0 as const })) })
    const granted = (await raw.next<ISubackPacket>('suback')).granted as number[]
    expect(granted.map(c => c >= 0x80)).toEqual([true, true, false])
    expect(granted[2]).toBe(1)
    raw.destroy()
    const members = [await v5Client(tb(), transport), await v5Client(tb(), transport)]
    for (const m of members) expect(await subscribe(m, { [`$share/g/${base}/+`]: 1 })).toEqual([1])
    const pub = await v5Client(tb(), transport)
    for (let i = 0; i < 10; i++) await pub.publishAsync(`${base}/${i}`, String(i), { qos: 2 })
    const all = (): Array<{ payload: string, qos: number }> => members.flatMap(m => m.received)
    await waitFor(() => all().length >= 10, 'ten shared messages')
    expect(all().map(m => Number(m.payload)).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(all().every(m => m.qos === 1)).toBe(true)
  })

  it('[MQTT-3.3.1-12] Retain As Published 0: a live copy of a retained message has RETAIN 0 (raw subscriber)', async () => {
    const topic = `${uid('rap')}/t`
    const raw = await rawV5(tb(), transport, { clientId: uid('c') })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1, nl: false, rap: false, rh: 0 }] })
    await raw.next('suback')
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    const live = await raw.next<IPublishPacket>('publish')
    expect([live.payload.toString(), live.retain]).toEqual(['kept', false])
  })
})
