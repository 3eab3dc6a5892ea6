import { describe, expect, it } from 'vitest'
import type { IPublishPacket } from 'mqtt-packet'
import {
  messagesOn, mqttClient, rawClient, subscribe, transports, uid, useBroker, waitForMessages, type Transport
} from './support.js'

// MQTT 3.1.1 §3.1.4 [MQTT-3.1.4-2]: a CONNECT with the client id of a connected client takes the session over.
const tb = useBroker()

const other = (t: Transport): Transport => t === 'tcp' ? 'ws' : 'tcp'

describe.each(transports)('session takeover over %s', (transport: Transport) => {
  it('[MQTT-3.1.4-2] a second connection with the same client id closes the first; the second works', async () => {
    const id = uid('take')
    const first = await rawClient(tb(), transport)
    expect((await first.connect({ clientId: id })).returnCode).toBe(0)
    const second = await rawClient(tb(), transport)
    expect((await second.connect({ clientId: id })).returnCode).toBe(0)
    expect(await first.waitClosed()).toBe(true)
    second.send({ cmd: 'pingreq' })
    await second.next('pingresp')
    expect(second.isClosed).toBe(false)
  })

  it(`[MQTT-3.1.4-2] the takeover works across transports (first on ${transport}, second on ${other(transport)})`, async () => {
    const id = uid('take')
    const first = await rawClient(tb(), transport)
    await first.connect({ clientId: id })
    const second = await rawClient(tb(), other(transport))
    expect((await second.connect({ clientId: id })).returnCode).toBe(0)
    expect(await first.waitClosed()).toBe(true)
    expect(second.isClosed).toBe(false)
  })

  it('[MQTT-3.1.2-8] the first connection\'s will is published on takeover: it was closed without DISCONNECT', async () => {
    const id = uid('take')
    const topic = `${id}/will`
    const sub = await mqttClient(tb(), transport)
    await subscribe(sub, { [topic]: 1 })
    const first = await rawClient(tb(), transport)
    await first.connect({ clientId: id, will: { topic, payload: Buffer.from('taken-over'), qos: 1, retain: false } })
    const second = await rawClient(tb(), transport)
    await second.connect({ clientId: id })
    expect(await first.waitClosed()).toBe(true)
    const [will] = await waitForMessages(sub, topic)
    expect(will).toMatchObject({ payload: 'taken-over', qos: 1 })
    expect(messagesOn(sub, topic)).toHaveLength(1)
  })

  it('[MQTT-3.1.4-2][MQTT-3.1.2-4] a persistent takeover resumes the session: Session Present 1, subscriptions live, unacknowledged messages re-sent [MQTT-4.4.0-1]', async () => {
    const id = uid('take')
    const topic = `${id}/t`
    const first = await rawClient(tb(), transport)
    await first.connect({ clientId: id, clean: false })
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
    await first.next('suback')
    const pub = await mqttClient(tb(), transport)
    await pub.publishAsync(topic, 'in-flight', { qos: 1 })
    const inflight = await first.next<IPublishPacket>('publish')
    // No PUBACK: the message is still in flight when the second connection takes over.

    const second = await rawClient(tb(), other(transport))
    const connack = await second.connect({ clientId: id, clean: false })
    expect(connack.sessionPresent).toBe(true)
    expect(await first.waitClosed()).toBe(true)
    const resent = await second.next<IPublishPacket>('publish')
    expect(resent.payload.toString()).toBe('in-flight')
    expect(resent.messageId).toBe(inflight.messageId)
    second.send({ cmd: 'puback', messageId: resent.messageId })

    await pub.publishAsync(topic, 'after-takeover', { qos: 1 })
    const live = await second.next<IPublishPacket>(p => p.cmd === 'publish' && p.payload.toString() === 'after-takeover')
    expect(live.qos).toBe(1)
  })
})
