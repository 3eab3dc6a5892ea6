import { describe, expect, it } from 'vitest'
import type { IPubackPacket, IPubcompPacket, IPublishPacket, IPubrecPacket, IPubrelPacket, QoS } from 'mqtt-packet'
import { endClient } from '../helpers/clients.js'
import {
  fence, isConnected, messagesOn, mqttClient, rawClient, subscribe, transports, uid, useBroker, waitFor, waitForMessages,
  type RawClient, type Transport
} from './support.js'

// MQTT 3.1.1 §4.3 QoS flows, §2.3.1 packet identifiers, §3.3.1.1 DUP, §3.3.5 / §3.8.4 delivered QoS, §4.6 ordering.
const tb = useBroker()

describe.each(transports)('QoS over %s', (transport: Transport) => {
  async function rawConnected (clientId = uid('q')): Promise<RawClient> {
    const raw = await rawClient(tb(), transport)
    expect((await raw.connect({ clientId })).returnCode).toBe(0)
    return raw
  }

  function publish (topic: string, payload: string, qos: QoS, messageId?: number, dup = false): IPublishPacket {
    return { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup, ...(qos > 0 ? { messageId } : {}) }
  }

  describe('inbound flows (broker as receiver)', () => {
    it('[MQTT-4.3.2-2] a QoS 1 PUBLISH is acknowledged with a PUBACK carrying its packet identifier [MQTT-2.3.1-6]', async () => {
      const topic = `${uid('q')}/t`
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [topic]: 1 })
      const raw = await rawConnected()
      raw.send(publish(topic, 'q1', 1, 4321))
      const ack = await raw.next<IPubackPacket>('puback')
      expect(ack.messageId).toBe(4321)
      const [m] = await waitForMessages(sub, topic)
      expect(m).toMatchObject({ payload: 'q1', qos: 1 })
    })

    it('[MQTT-4.3.3-2] a QoS 2 PUBLISH gets PUBREC, and PUBREL gets PUBCOMP, with its packet identifier [MQTT-2.3.1-6]', async () => {
      const topic = `${uid('q')}/t`
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [topic]: 2 })
      const raw = await rawConnected()
      raw.send(publish(topic, 'q2', 2, 77))
      const rec = await raw.next<IPubrecPacket>('pubrec')
      expect(rec.messageId).toBe(77)
      raw.send({ cmd: 'pubrel', messageId: 77 })
      const comp = await raw.next<IPubcompPacket>('pubcomp')
      expect(comp.messageId).toBe(77)
      const [m] = await waitForMessages(sub, topic)
      expect(m).toMatchObject({ payload: 'q2', qos: 2 })
    })

    it('[MQTT-4.3.3-2] a QoS 2 PUBLISH re-sent with DUP=1 before PUBREL is acknowledged again and delivered once', async () => {
      const topic = `${uid('q')}/t`
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [topic]: 2, [`${topic}/fence`]: 2 })
      const raw = await rawConnected()
      raw.send(publish(topic, 'once', 2, 9))
      expect((await raw.next<IPubrecPacket>('pubrec')).messageId).toBe(9)
      raw.send(publish(topic, 'once', 2, 9, true))
      expect((await raw.next<IPubrecPacket>('pubrec')).messageId).toBe(9)
      raw.send({ cmd: 'pubrel', messageId: 9 })
      expect((await raw.next<IPubcompPacket>('pubcomp')).messageId).toBe(9)
      await fence(sub, sub, `${topic}/fence`, 2)
      expect(messagesOn(sub, topic).map(m => m.payload)).toEqual(['once'])
    })

    it('[MQTT-4.3.3-2] a QoS 2 PUBLISH re-sent before its first PUBREC has gone out is still delivered once', async () => {
      const topic = `${uid('q')}/t`
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [topic]: 2, [`${topic}/fence`]: 2 })
      const raw = await rawConnected()
      raw.send(publish(topic, 'once', 2, 10))
      raw.send(publish(topic, 'once', 2, 10, true))
      await raw.next<IPubrecPacket>('pubrec')
      await raw.next<IPubrecPacket>('pubrec')
      raw.send({ cmd: 'pubrel', messageId: 10 })
      await raw.next<IPubcompPacket>('pubcomp')
      await fence(sub, sub, `${topic}/fence`, 2)
      expect(messagesOn(sub, topic).map(m => m.payload)).toEqual(['once'])
    })

    it('[MQTT-4.3.3-2] after PUBCOMP, a PUBLISH that reuses the packet identifier is a new message', async () => {
      const topic = `${uid('q')}/t`
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [topic]: 2 })
      const raw = await rawConnected()
      for (const payload of ['first', 'second']) {
        raw.send(publish(topic, payload, 2, 5))
        await raw.next('pubrec')
        raw.send({ cmd: 'pubrel', messageId: 5 })
        await raw.next('pubcomp')
      }
      const got = await waitForMessages(sub, topic, 2)
      expect(got.map(m => m.payload)).toEqual(['first', 'second'])
    })

    it('[MQTT-3.3.1-3] the DUP flag of an incoming PUBLISH is not propagated to subscribers', async () => {
      const topic = `${uid('q')}/t`
      const sub = await rawConnected()
      sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
      await sub.next('suback')
      const raw = await rawConnected()
      raw.send(publish(topic, 'resent-by-publisher', 1, 3, true))
      await raw.next('puback')
      const p = await sub.next<IPublishPacket>('publish')
      expect(p.payload.toString()).toBe('resent-by-publisher')
      expect(p.dup).toBe(false)
    })

    it('[MQTT-3.3.1-2] a message delivered at QoS 0 has DUP=0, even when it arrived with DUP=1', async () => {
      const topic = `${uid('q')}/t`
      const sub = await rawConnected()
      sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] })
      await sub.next('suback')
      const raw = await rawConnected()
      raw.send(publish(topic, 'qos0-now', 1, 3, true))
      await raw.next('puback')
      const p = await sub.next<IPublishPacket>('publish')
      expect(p.qos).toBe(0)
      expect(p.dup).toBe(false)
    })
  })

  describe('outbound flows (broker as sender, raw subscriber)', () => {
    it('[MQTT-4.3.2-1] QoS 1 deliveries carry distinct non-zero packet identifiers and DUP=0 [MQTT-2.3.1-1][MQTT-2.3.1-2]', async () => {
      const topic = `${uid('q')}/t`
      const sub = await rawConnected()
      sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
      await sub.next('suback')
      const pub = await mqttClient(tb(), transport)
      for (let i = 0; i < 5; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })
      const got: IPublishPacket[] = []
      for (let i = 0; i < 5; i++) got.push(await sub.next<IPublishPacket>('publish'))
      // None acknowledged: all five are in flight at once, so their identifiers must differ.
      const ids = got.map(p => p.messageId)
      expect(ids.every(id => typeof id === 'number' && id > 0)).toBe(true)
      expect(new Set(ids).size).toBe(5)
      expect(got.map(p => [p.payload.toString(), p.qos, p.dup])).toEqual([0, 1, 2, 3, 4].map(i => [`m${i}`, 1, false]))
    })

    it('[MQTT-4.3.3-1] QoS 2 delivery: PUBLISH, then PUBREL with the same packet identifier after PUBREC', async () => {
      const topic = `${uid('q')}/t`
      const sub = await rawConnected()
      sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 2 }] })
      await sub.next('suback')
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(topic, 'exactly-once', { qos: 2 })
      const p = await sub.next<IPublishPacket>('publish')
      expect(p.qos).toBe(2)
      expect(p.messageId).toBeGreaterThan(0)
      sub.send({ cmd: 'pubrec', messageId: p.messageId })
      const rel = await sub.next<IPubrelPacket>('pubrel')
      expect(rel.messageId).toBe(p.messageId)
      sub.send({ cmd: 'pubcomp', messageId: p.messageId })
      // The flow is complete: the next message is a new PUBLISH, and the first is never sent again.
      await pub.publishAsync(topic, 'next', { qos: 2 })
      const n = await sub.next<IPublishPacket>('publish')
      expect(n.payload.toString()).toBe('next')
      expect(sub.received.filter(x => x.cmd === 'publish')).toHaveLength(2)
    })
  })

  describe('acknowledgements read together', () => {
    // A subscriber's acknowledgements often reach the broker several in one read, or one split over two reads;
    // every one of them must complete its flow, or the message comes back on the next connection.
    it('[MQTT-4.3.2-1][MQTT-4.3.3-1] PUBACKs, PUBRECs and PUBCOMPs written together or split across writes each complete their flow', async () => {
      const base = uid('q')
      const id = uid('q')
      const sub = await rawClient(tb(), transport)
      expect((await sub.connect({ clientId: id, clean: false })).returnCode).toBe(0)
      sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/one`, qos: 1 }, { topic: `${base}/two`, qos: 2 }] })
      await sub.next('suback')
      const pub = await mqttClient(tb(), transport)
      for (let i = 0; i < 4; i++) await pub.publishAsync(`${base}/one`, `q1-${i}`, { qos: 1 })
      for (let i = 0; i < 2; i++) await pub.publishAsync(`${base}/two`, `q2-${i}`, { qos: 2 })
      const got: IPublishPacket[] = []
      for (let i = 0; i < 6; i++) got.push(await sub.next<IPublishPacket>('publish'))
      const ack = (first: number, messageId: number | undefined): Buffer => Buffer.from([first, 2, (messageId ?? 0) >> 8, (messageId ?? 0) & 0xff])
      const acks = Buffer.concat(got.map(p => ack(p.qos === 1 ? 0x40 : 0x50, p.messageId)))
      // three whole PUBACKs; the fourth split over two writes, the second also carrying both PUBRECs
      sub.sendRaw(acks.subarray(0, 12))
      sub.sendRaw(acks.subarray(12, 14))
      sub.sendRaw(acks.subarray(14))
      const rels = [await sub.next<IPubrelPacket>('pubrel'), await sub.next<IPubrelPacket>('pubrel')]
      expect(rels.map(r => r.messageId).sort()).toEqual(got.filter(p => p.qos === 2).map(p => p.messageId).sort())
      sub.sendRaw(Buffer.concat(rels.map(r => ack(0x70, r.messageId))))
      await sub.disconnect()

      // Nothing is resent to the returning session: the next packet is the fence, a new message.
      const back = await rawClient(tb(), transport)
      expect((await back.connect({ clientId: id, clean: false })).sessionPresent).toBe(true)
      await pub.publishAsync(`${base}/one`, 'fence', { qos: 1 })
      const next = await back.next<IPublishPacket>(p => p.cmd === 'publish' || p.cmd === 'pubrel')
      expect([next.cmd, next.payload?.toString()]).toEqual(['publish', 'fence'])
      expect(back.received.filter(p => p.cmd === 'publish' || p.cmd === 'pubrel')).toHaveLength(1)
    })
  })

  describe('delivered QoS', () => {
    it.each(['exact', '+', '#'] as const)('[MQTT-3.8.4-6] delivered QoS = min(publish QoS, granted QoS) for a %s filter', async (kind) => {
      const base = uid('q')
      const topic = `${base}/lvl/t`
      const filter = kind === 'exact' ? topic : kind === '+' ? `${base}/+/t` : `${base}/#`
      const subs = await Promise.all(([0, 1, 2] as const).map(async granted => {
        const s = await mqttClient(tb(), transport)
        expect(await subscribe(s, { [filter]: granted })).toEqual([granted])
        return s
      }))
      const pub = await mqttClient(tb(), transport)
      for (const qos of [0, 1, 2] as const) await pub.publishAsync(topic, `p${qos}`, { qos })
      for (const [granted, s] of subs.entries()) {
        const got = await waitForMessages(s, topic, 3)
        expect(got.map(m => [m.payload, m.qos]).sort()).toEqual([0, 1, 2].map(q => [`p${q}`, Math.min(q, granted)]))
      }
    })

    it('[MQTT-3.8.4-6] a message queued while the session was offline is delivered at min(publish QoS, granted QoS)', async () => {
      const id = uid('q')
      const topic = `${id}/t`
      const first = await mqttClient(tb(), transport, { clientId: id, clean: false })
      expect(await subscribe(first, { [topic]: 1 })).toEqual([1])
      await endClient(first)
      await waitFor(() => !isConnected(tb(), id), 'the session to go offline')
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(topic, 'sent-at-2', { qos: 2 })
      const back = await mqttClient(tb(), transport, { clientId: id, clean: false })
      const [m] = await waitForMessages(back, topic)
      expect(m).toMatchObject({ payload: 'sent-at-2', qos: 1 })
    })

    it('[MQTT-3.3.5-1] overlapping wildcard subscriptions: one copy, at the highest QoS granted among the matching ones', async () => {
      const base = uid('q')
      const topic = `${base}/b/c`
      const sub = await mqttClient(tb(), transport)
      expect(await subscribe(sub, { [`${base}/+/c`]: 0, [`${base}/#`]: 2, [`${base}/b/+`]: 1, [`${base}/fence`]: 2 })).toEqual([0, 2, 1, 2])
      const pub = await mqttClient(tb(), transport)
      for (const qos of [2, 1, 0] as const) await pub.publishAsync(topic, `p${qos}`, { qos })
      await fence(pub, sub, `${base}/fence`, 2)
      expect(messagesOn(sub, topic).map(m => [m.payload, m.qos]).sort()).toEqual([['p0', 0], ['p1', 1], ['p2', 2]])
    })

    it('[MQTT-3.3.5-1] overlapping exact and wildcard subscriptions: the exact filter\'s lower QoS does not cap the delivery', async () => {
      const base = uid('q')
      const topic = `${base}/b`
      const sub = await mqttClient(tb(), transport)
      expect(await subscribe(sub, { [topic]: 0, [`${base}/#`]: 2, [`${base}/fence`]: 2 })).toEqual([0, 2, 2])
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(topic, 'p2', { qos: 2 })
      await pub.publishAsync(topic, 'p1', { qos: 1 })
      await fence(pub, sub, `${base}/fence`, 2)
      expect(messagesOn(sub, topic).map(m => [m.payload, m.qos])).toEqual([['p2', 2], ['p1', 1]])
    })

    it('[MQTT-3.3.5-1] overlapping subscriptions of an offline session: one queued copy, at the highest QoS granted', async () => {
      const id = uid('q')
      const topic = `${id}/b/c`
      const first = await mqttClient(tb(), transport, { clientId: id, clean: false })
      expect(await subscribe(first, { [`${id}/+/c`]: 1, [`${id}/#`]: 2, [`${id}/fence`]: 1 })).toEqual([1, 2, 1])
      await endClient(first)
      await waitFor(() => !isConnected(tb(), id), 'the session to go offline')
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(topic, 'queued', { qos: 2 })
      await pub.publishAsync(`${id}/fence`, 'queued-fence', { qos: 1 })
      const back = await mqttClient(tb(), transport, { clientId: id, clean: false })
      await waitForMessages(back, `${id}/fence`)
      await fence(pub, back, `${id}/fence`)
      expect(messagesOn(back, topic).map(m => [m.payload, m.qos])).toEqual([['queued', 2]])
    })
  })

  it.each([1, 2] as const)('[MQTT-4.6.0-6] QoS %i messages from one publisher on one topic arrive in the order they were sent', async (qos) => {
    const topic = `${uid('q')}/t`
    const sub = await mqttClient(tb(), transport)
    await subscribe(sub, { [topic]: qos })
    const pub = await mqttClient(tb(), transport)
    const sent = Array.from({ length: 30 }, (_, i) => `m${i}`)
    await Promise.all(sent.map(async p => await pub.publishAsync(topic, p, { qos })))
    const got = await waitForMessages(sub, topic, sent.length)
    expect(got.map(m => m.payload)).toEqual(sent)
  })
})
