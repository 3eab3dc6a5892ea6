import { describe, expect, it } from 'vitest'
import type { IPublishPacket, IPubrelPacket } from 'mqtt-packet'
import { endClient } from '../helpers/clients.js'
import {
  fence, isConnected, messagesOn, mqttClient, rawClient, subscribe, transports, uid, useBroker, waitFor, waitForMessages,
  type RawClient, type Transport
} from './support.js'

// MQTT 3.1.1 §3.1.2.4 Clean Session, §3.2.2.2 Session Present, §4.4 message delivery retry, §4.6 ordering.
const tb = useBroker()

describe.each(transports)('sessions over %s', (transport) => {
  const persistent = { clean: false }

  /** Connects, subscribes when asked, and disconnects with DISCONNECT; returns the CONNACK's session-present flag. */
  async function visit (clientId: string, clean: boolean, filters?: Record<string, 0 | 1 | 2>): Promise<boolean> {
    const c = await mqttClient(tb(), transport, { clientId, clean })
    if (filters !== undefined) await subscribe(c, filters)
    await endClient(c)
    await waitFor(() => !isConnected(tb(), clientId), `${clientId} gone`)
    return c.sessionPresent
  }

  it('[MQTT-3.2.2-3] the first connect with CleanSession=0 has Session Present 0', async () => {
    expect(await visit(uid('s'), false)).toBe(false)
  })

  it('[MQTT-3.2.2-2] a later connect with CleanSession=0 has Session Present 1 (session with a subscription)', async () => {
    const id = uid('s')
    expect(await visit(id, false, { [`${id}/t`]: 1 })).toBe(false)
    expect(await visit(id, false)).toBe(true)
  })

  it('[MQTT-3.2.2-2] a later connect with CleanSession=0 has Session Present 1 (session with no subscriptions)', async () => {
    // §3.1.2.4: the session state includes "the existence of a Session, even if the rest of the Session state is empty".
    const id = uid('s')
    expect(await visit(id, false)).toBe(false)
    expect(await visit(id, false)).toBe(true)
  })

  it('[MQTT-3.2.2-1] a connect with CleanSession=1 has Session Present 0, even when a persistent session exists', async () => {
    const id = uid('s')
    await visit(id, false, { [`${id}/t`]: 1 })
    expect(await visit(id, true)).toBe(false)
  })

  it('[MQTT-3.1.2-6] a connect with CleanSession=1 discards the previous session: a later CleanSession=0 connect finds none [MQTT-3.2.2-3]', async () => {
    const id = uid('s')
    const topic = `${id}/t`
    await visit(id, false, { [topic]: 1 })
    expect(await visit(id, true)).toBe(false)
    const back = await mqttClient(tb(), transport, { clientId: id, ...persistent })
    expect(back.sessionPresent).toBe(false)
    // The old subscription is gone too.
    await subscribe(back, { [`${id}/fence`]: 1 })
    const pub = await mqttClient(tb(), transport)
    await pub.publishAsync(topic, 'after-wipe', { qos: 1 })
    await fence(pub, back, `${id}/fence`)
    expect(messagesOn(back, topic)).toEqual([])
  })

  it('[MQTT-3.1.2-4][MQTT-3.1.2-5] CleanSession=0: subscriptions and QoS 1 and 2 messages published while offline are kept and delivered on reconnect', async () => {
    const id = uid('s')
    const t1 = `${id}/q1`
    const t2 = `${id}/q2`
    await visit(id, false, { [t1]: 1, [t2]: 2 })

    const pub = await mqttClient(tb(), transport)
    await pub.publishAsync(t1, 'one', { qos: 1 })
    await pub.publishAsync(t2, 'two', { qos: 2 })
    await pub.publishAsync(t1, 'three', { qos: 1 })

    const back = await mqttClient(tb(), transport, { clientId: id, ...persistent })
    expect(back.sessionPresent).toBe(true)
    await waitForMessages(back, t2, 1)
    await waitForMessages(back, t1, 2)
    expect(messagesOn(back, t1).map(m => [m.payload, m.qos])).toEqual([['one', 1], ['three', 1]])
    expect(messagesOn(back, t2).map(m => [m.payload, m.qos])).toEqual([['two', 2]])

    // The subscriptions are live again without a new SUBSCRIBE.
    await pub.publishAsync(t1, 'live', { qos: 1 })
    await waitForMessages(back, t1, 3)
    expect(messagesOn(back, t1).map(m => m.payload)).toEqual(['one', 'three', 'live'])
    expect(messagesOn(back, t2)).toHaveLength(1)
  })

  it('[MQTT-3.1.2-6] CleanSession=1: neither subscriptions nor messages published while offline survive a disconnect', async () => {
    const id = uid('s')
    const topic = `${id}/t`
    await visit(id, true, { [topic]: 1 })
    const pub = await mqttClient(tb(), transport)
    await pub.publishAsync(topic, 'while-away', { qos: 1 })

    const back = await mqttClient(tb(), transport, { clientId: id, clean: true })
    expect(back.sessionPresent).toBe(false)
    await subscribe(back, { [`${id}/fence`]: 1 })
    await pub.publishAsync(topic, 'live', { qos: 1 })
    await fence(pub, back, `${id}/fence`)
    expect(messagesOn(back, topic)).toEqual([])
  })

  it('[MQTT-3.1.2-6] state of a CleanSession=1 session is not reused by a later CleanSession=0 session', async () => {
    const id = uid('s')
    const topic = `${id}/t`
    await visit(id, true, { [topic]: 1 })
    const pub = await mqttClient(tb(), transport)
    await pub.publishAsync(topic, 'while-away', { qos: 1 })

    const back = await mqttClient(tb(), transport, { clientId: id, ...persistent })
    expect(back.sessionPresent).toBe(false)
    await subscribe(back, { [`${id}/fence`]: 1 })
    await pub.publishAsync(topic, 'live', { qos: 1 })
    await fence(pub, back, `${id}/fence`)
    expect(messagesOn(back, topic)).toEqual([])
  })

  it('[MQTT-3.1.2-6] a CleanSession=1 connect discards the messages queued for the previous persistent session', async () => {
    const id = uid('s')
    const topic = `${id}/t`
    await visit(id, false, { [topic]: 1 })
    const pub = await mqttClient(tb(), transport)
    await pub.publishAsync(topic, 'queued', { qos: 1 })

    const clean = await mqttClient(tb(), transport, { clientId: id, clean: true })
    await subscribe(clean, { [`${id}/fence`]: 1 })
    await fence(pub, clean, `${id}/fence`)
    expect(messagesOn(clean, topic)).toEqual([])
  })

  it('[MQTT-4.6.0-6] messages queued for an offline session are delivered in the order they were published', async () => {
    const id = uid('s')
    const topic = `${id}/t`
    await visit(id, false, { [topic]: 1 })
    const pub = await mqttClient(tb(), transport)
    const sent = Array.from({ length: 20 }, (_, i) => `m${i}`)
    await Promise.all(sent.map(async p => await pub.publishAsync(topic, p, { qos: 1 })))

    const back = await mqttClient(tb(), transport, { clientId: id, ...persistent })
    const got = await waitForMessages(back, topic, sent.length)
    expect(got.map(m => m.payload)).toEqual(sent)
  })

  describe('redelivery of unacknowledged packets (raw subscriber)', () => {
    async function persistentRaw (clientId: string, t: Transport = transport): Promise<RawClient> {
      await waitFor(() => !isConnected(tb(), clientId), `${clientId} gone`)
      const raw = await rawClient(tb(), t)
      const connack = await raw.connect({ clientId, clean: false })
      expect(connack.returnCode).toBe(0)
      return raw
    }

    async function receiveUnacked (clientId: string, topic: string, qos: 1 | 2): Promise<{ raw: RawClient, first: IPublishPacket }> {
      const raw = await persistentRaw(clientId)
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] })
      await raw.next('suback')
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(topic, 'unacked', { qos })
      const first = await raw.next<IPublishPacket>('publish')
      expect(first.qos).toBe(qos)
      expect(first.payload.toString()).toBe('unacked')
      return { raw, first }
    }

    it('[MQTT-4.4.0-1] an unacknowledged QoS 1 PUBLISH is re-sent on reconnect with its original packet identifier', async () => {
      const id = uid('r')
      const topic = `${id}/t`
      const { raw, first } = await receiveUnacked(id, topic, 1)
      raw.destroy()

      const again = await persistentRaw(id)
      const resent = await again.next<IPublishPacket>('publish')
      expect(resent.topic).toBe(topic)
      expect(resent.payload.toString()).toBe('unacked')
      expect(resent.qos).toBe(1)
      expect(resent.messageId).toBe(first.messageId)

      // Once acknowledged it is not sent again.
      again.send({ cmd: 'puback', messageId: resent.messageId })
      await again.disconnect()
      const third = await persistentRaw(id)
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(topic, 'next', { qos: 1 })
      const p = await third.next<IPublishPacket>('publish')
      expect(p.payload.toString()).toBe('next')
    })

    it('[MQTT-3.3.1-1] a re-delivered PUBLISH has DUP=1', async () => {
      const id = uid('r')
      const { raw, first } = await receiveUnacked(id, `${id}/t`, 1)
      expect(first.dup).toBe(false)
      raw.destroy()
      const again = await persistentRaw(id)
      const resent = await again.next<IPublishPacket>('publish')
      expect(resent.messageId).toBe(first.messageId)
      expect(resent.dup).toBe(true)
    })

    it('[MQTT-4.4.0-1] an unacknowledged PUBREL is re-sent on reconnect with its packet identifier, and the PUBLISH is not', async () => {
      const id = uid('r')
      const topic = `${id}/t`
      const { raw, first } = await receiveUnacked(id, topic, 2)
      raw.send({ cmd: 'pubrec', messageId: first.messageId })
      const pubrel = await raw.next<IPubrelPacket>('pubrel')
      expect(pubrel.messageId).toBe(first.messageId)
      raw.destroy()

      const again = await persistentRaw(id)
      const first2 = await again.next()
      expect(first2.cmd).toBe('pubrel')
      expect(first2.messageId).toBe(first.messageId)
      again.send({ cmd: 'pubcomp', messageId: first.messageId })
      // After PUBCOMP the flow is over: a new message is the next thing delivered; the old PUBLISH never comes back.
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(topic, 'next', { qos: 2 })
      const p = await again.next<IPublishPacket>('publish')
      expect(p.payload.toString()).toBe('next')
      expect(again.received.filter(x => x.cmd === 'publish')).toHaveLength(1)
    })
  })
})
