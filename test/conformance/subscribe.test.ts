import { describe, expect, it } from 'vitest'
import type { IPublishPacket, ISubackPacket, IUnsubackPacket } from 'mqtt-packet'
import { endClient } from '../helpers/clients.js'
import {
  fence, isConnected, messagesOn, mqttClient, rawClient, serverPublish, subscribe, transports, uid, useBroker, waitFor,
  waitForMessages, type RawClient, type Transport
} from './support.js'

// MQTT 3.1.1 §3.8 SUBSCRIBE, §3.9 SUBACK, §3.10 UNSUBSCRIBE, §3.11 UNSUBACK.
const tb = useBroker()

describe.each(transports)('SUBSCRIBE / UNSUBSCRIBE over %s', (transport: Transport) => {
  async function rawConnected (clientId = uid('s'), clean = true): Promise<RawClient> {
    const raw = await rawClient(tb(), transport)
    expect((await raw.connect({ clientId, clean })).returnCode).toBe(0)
    return raw
  }

  describe('SUBACK', () => {
    it('[MQTT-3.8.4-1] SUBSCRIBE is answered with a SUBACK carrying its packet identifier [MQTT-2.3.1-7]', async () => {
      const raw = await rawConnected()
      raw.send({ cmd: 'subscribe', messageId: 4242, subscriptions: [{ topic: `${uid('s')}/t`, qos: 1 }] })
      const suback = await raw.next<ISubackPacket>('suback')
      expect(suback.messageId).toBe(4242)
      expect(suback.granted).toEqual([1])
    })

    it('[MQTT-3.8.4-5][MQTT-3.9.3-1] a multi-topic SUBSCRIBE gets one return code per filter, in order', async () => {
      const p = uid('s')
      const raw = await rawConnected()
      raw.send({
        cmd: 'subscribe',
        messageId: 3,
        subscriptions: [{ topic: `${p}/two`, qos: 2 }, { topic: `${p}/zero`, qos: 0 }, { topic: `${p}/+`, qos: 1 }, { topic: `${p}/#`, qos: 2 }]
      })
      const suback = await raw.next<ISubackPacket>('suback')
      expect(suback.granted).toEqual([2, 0, 1, 2])
    })

    it('[MQTT-3.8.4-4] a refused filter in a multi-topic SUBSCRIBE gets 0x80 alone; the other filters are granted and work', async () => {
      const p = uid('s')
      const raw = await rawConnected()
      raw.send({
        cmd: 'subscribe',
        messageId: 8,
        // An empty share name is refused (src/shared-subscriptions).
        subscriptions: [{ topic: `${p}/a`, qos: 0 }, { topic: `$share//${p}/x`, qos: 1 }, { topic: `${p}/b`, qos: 2 }]
      })
      const suback = await raw.next<ISubackPacket>('suback')
      expect(suback.granted).toEqual([0, 0x80, 2])
      expect(raw.isClosed).toBe(false)
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(`${p}/a`, 'a', { qos: 1 })
      await pub.publishAsync(`${p}/b`, 'b', { qos: 2 })
      const a = await raw.next('publish')
      const b = await raw.next('publish')
      expect([a, b].map(x => x.cmd === 'publish' ? [x.topic, x.qos] : [])).toEqual([[`${p}/a`, 0], [`${p}/b`, 2]])
    })

    it('[MQTT-3.8.4-4] a filter refused for a persistent session is never stored: nothing arrives on it, live or after reconnect', async () => {
      const id = uid('s')
      const refused = `$share//${id}/x` // an empty share name is refused
      const first = await rawConnected(id, false)
      first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${id}/ok`, qos: 1 }, { topic: refused, qos: 1 }] })
      expect((await first.next<ISubackPacket>('suback')).granted).toEqual([1, 0x80])
      // Live: a message on the literal refused filter does not arrive.
      await serverPublish(tb(), { topic: refused, payload: 'live-refused', qos: 1 })
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(`${id}/ok`, 'live-ok', { qos: 1 })
      const live = await first.next<IPublishPacket>('publish')
      expect([live.topic, live.payload.toString()]).toEqual([`${id}/ok`, 'live-ok'])
      first.send({ cmd: 'puback', messageId: live.messageId })
      await first.disconnect()
      await waitFor(() => !isConnected(tb(), id), 'the session to go offline')

      // Offline: nothing is queued for the refused filter.
      await serverPublish(tb(), { topic: refused, payload: 'queued-refused', qos: 1 })
      await pub.publishAsync(`${id}/ok`, 'queued-ok', { qos: 1 })
      const back = await mqttClient(tb(), transport, { clientId: id, clean: false })
      expect(back.sessionPresent).toBe(true)
      await waitForMessages(back, `${id}/ok`)
      // Restored session: a new message on the refused filter does not arrive either.
      await serverPublish(tb(), { topic: refused, payload: 'restored-refused', qos: 1 })
      await fence(pub, back, `${id}/ok`)
      expect(messagesOn(back, refused)).toEqual([])
      expect(messagesOn(back, `${id}/ok`).map(m => m.payload)).toContain('queued-ok')
    })

    it.each([
      ['[MQTT-4.7.1-2]', '"#" not last', 'a/#/b'],
      ['[MQTT-4.7.1-2]', '"#" not a whole level', 'a/b#'],
      ['[MQTT-4.7.1-3]', '"+" not a whole level', 'a/b+/c'],
      ['[MQTT-4.7.3-1]', 'empty', '']
    ])('%s an invalid filter (%s) is a protocol violation: the connection is closed without SUBACK [MQTT-4.8.0-1]', async (_statement, _rule, filter) => {
      const p = uid('s')
      const raw = await rawConnected()
      raw.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: `${p}/ok`, qos: 1 }, { topic: filter === '' ? '' : `${p}/${filter}`, qos: 1 }] })
      expect(await raw.waitClosed()).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'suback')).toEqual([])
      // The broker keeps serving everyone else.
      const other = await mqttClient(tb(), transport)
      await subscribe(other, { [`${p}/ok`]: 1 })
      await fence(other, other, `${p}/ok`)
    })

    it('[MQTT-3.8.4-3] subscribing again to the same filter replaces the subscription: new QoS, a single copy', async () => {
      const p = uid('s')
      const sub = await mqttClient(tb(), transport)
      expect(await subscribe(sub, { [`${p}/t`]: 0 })).toEqual([0])
      expect(await subscribe(sub, { [`${p}/t`]: 2 })).toEqual([2])
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(`${p}/t`, 'after-replace', { qos: 2 })
      await subscribe(sub, { [`${p}/fence`]: 2 })
      await fence(pub, sub, `${p}/fence`)
      expect(messagesOn(sub, `${p}/t`).map(m => [m.payload, m.qos])).toEqual([['after-replace', 2]])
    })
  })

  describe('UNSUBSCRIBE', () => {
    it('[MQTT-3.10.4-4] UNSUBSCRIBE is answered with an UNSUBACK carrying its packet identifier [MQTT-2.3.1-7]', async () => {
      const p = uid('s')
      const raw = await rawConnected()
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${p}/t`, qos: 1 }] })
      await raw.next('suback')
      raw.send({ cmd: 'unsubscribe', messageId: 777, unsubscriptions: [`${p}/t`] })
      const unsuback = await raw.next<IUnsubackPacket>('unsuback')
      expect(unsuback.messageId).toBe(777)
    })

    it('[MQTT-3.10.4-5] UNSUBACK is sent even when no subscription matched the filter', async () => {
      const raw = await rawConnected()
      raw.send({ cmd: 'unsubscribe', messageId: 31, unsubscriptions: [`${uid('s')}/never-subscribed`, `${uid('s')}/#`] })
      const unsuback = await raw.next<IUnsubackPacket>('unsuback')
      expect(unsuback.messageId).toBe(31)
      expect(raw.isClosed).toBe(false)
    })

    it('[MQTT-3.10.4-2] after UNSUBACK no new message is delivered on the removed subscription', async () => {
      const p = uid('s')
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${p}/t`]: 1, [`${p}/fence`]: 1 })
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(`${p}/t`, 'before', { qos: 1 })
      await waitForMessages(sub, `${p}/t`)
      await sub.unsubscribeAsync(`${p}/t`)
      await pub.publishAsync(`${p}/t`, 'after', { qos: 1 })
      await fence(pub, sub, `${p}/fence`)
      expect(messagesOn(sub, `${p}/t`).map(m => m.payload)).toEqual(['before'])
    })

    it('[MQTT-3.10.4-1] filters are compared character by character: only the identical filter is removed', async () => {
      const p = uid('s')
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${p}/+`]: 1, [`${p}/#`]: 1 })
      // Neither the topic itself nor a different wildcard removes "+" or "#".
      await sub.unsubscribeAsync([`${p}/t`, `${p}/+/#`])
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(`${p}/t`, 'both-still-there', { qos: 1 })
      await waitForMessages(sub, `${p}/t`)
      // Removing "+" leaves "#".
      await sub.unsubscribeAsync(`${p}/+`)
      await pub.publishAsync(`${p}/t`, 'hash-only', { qos: 1 })
      await pub.publishAsync(`${p}/t/deep`, 'deep', { qos: 1 })
      await waitForMessages(sub, `${p}/t/deep`)
      expect(messagesOn(sub, `${p}/t`).map(m => m.payload)).toEqual(['both-still-there', 'hash-only'])
    })

    it('[MQTT-3.10.4-6] a multi-filter UNSUBSCRIBE removes every listed filter and gets one UNSUBACK', async () => {
      const p = uid('s')
      const raw = await rawConnected()
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${p}/a`, qos: 1 }, { topic: `${p}/b`, qos: 1 }, { topic: `${p}/c`, qos: 1 }] })
      await raw.next('suback')
      raw.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [`${p}/a`, `${p}/b`] })
      await raw.next('unsuback')
      const pub = await mqttClient(tb(), transport)
      for (const t of ['a', 'b', 'c']) await pub.publishAsync(`${p}/${t}`, t, { qos: 1 })
      const m = await raw.next('publish')
      expect(m.cmd === 'publish' ? m.topic : '').toBe(`${p}/c`)
      expect(raw.received.filter(x => x.cmd === 'unsuback')).toHaveLength(1)
      expect(raw.received.filter(x => x.cmd === 'publish')).toHaveLength(1)
    })

    it('[MQTT-3.10.4-2] an UNSUBSCRIBE of a persistent session lasts: nothing on that filter is queued or delivered after reconnect', async () => {
      const id = uid('s')
      const first = await mqttClient(tb(), transport, { clientId: id, clean: false })
      await subscribe(first, { [`${id}/gone`]: 1, [`${id}/kept`]: 1 })
      await first.unsubscribeAsync(`${id}/gone`)
      await endClient(first)
      await waitFor(() => !isConnected(tb(), id), 'the session to go offline')
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(`${id}/gone`, 'offline-gone', { qos: 1 })
      await pub.publishAsync(`${id}/kept`, 'offline-kept', { qos: 1 })
      const back = await mqttClient(tb(), transport, { clientId: id, clean: false })
      await waitForMessages(back, `${id}/kept`)
      await pub.publishAsync(`${id}/gone`, 'live-gone', { qos: 1 })
      await fence(pub, back, `${id}/kept`)
      expect(messagesOn(back, `${id}/gone`)).toEqual([])
    })
  })
})
