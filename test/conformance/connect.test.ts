import { describe, expect, it } from 'vitest'
import mqttPacket, { type IConnackPacket } from 'mqtt-packet'
import { connectBytes } from '../helpers/raw-client.js'
import {
  fence, mqttClient, rawClient, subscribe, transports, uid, useBroker, waitForMessages
} from './support.js'

// MQTT 3.1.1 §3.1 CONNECT, §3.2 CONNACK, §3.1.0 and §3.1.4 (connection set-up).
const tb = useBroker()

describe.each(transports)('CONNECT / CONNACK over %s', (transport) => {
  it('[MQTT-3.1.4-4] a valid CONNECT is answered with CONNACK return code 0 [MQTT-3.2.0-1]', async () => {
    const raw = await rawClient(tb(), transport)
    const connack = await raw.connect({ clientId: uid('c') })
    expect(raw.received[0].cmd).toBe('connack')
    expect(connack.returnCode).toBe(0)
    expect(connack.sessionPresent).toBe(false)
    expect(raw.isClosed).toBe(false)
  })

  it('an MQTT 5 CONNECT (protocol level 5) is accepted: the CONNACK is an MQTT 5 one with reason code 0x00', async () => {
    const raw = await rawClient(tb(), transport, { version: 5 })
    raw.sendRaw(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uid('c'), clean: true, keepalive: 0 }))
    const connack = await raw.next<IConnackPacket>('connack')
    expect(connack.reasonCode).toBe(0)
    expect(connack.sessionPresent).toBe(false)
    expect(connack.properties?.subscriptionIdentifiersAvailable).toBe(true)
    expect(raw.parseErrors).toEqual([])
    expect(raw.isClosed).toBe(false)
  })

  it('[MQTT-3.1.2-2] an unknown protocol level (6) gets CONNACK 0x01 and is closed', async () => {
    const raw = await rawClient(tb(), transport)
    raw.sendRaw(connectBytes({ protocolLevel: 6, clientId: uid('c') }))
    expect(await raw.waitClosed()).toBe(true)
    expect(raw.received.map(p => p.cmd)).toEqual(['connack'])
    expect((raw.received[0] as IConnackPacket).returnCode).toBe(1)
  })

  it('[MQTT-3.1.3-8] a zero-length client id with CleanSession=0 gets CONNACK 0x02 (identifier rejected) and is closed [MQTT-3.2.2-4][MQTT-3.2.2-5]', async () => {
    const raw = await rawClient(tb(), transport)
    raw.sendRaw(connectBytes({ clientId: '', cleanSession: false }))
    const connack = await raw.next<IConnackPacket>('connack')
    expect(connack.returnCode).toBe(2)
    expect(connack.sessionPresent).toBe(false)
    expect(await raw.waitClosed()).toBe(true)
  })

  it('[MQTT-3.1.3-6] a zero-length client id with CleanSession=1 is accepted and gets its own unique id', async () => {
    const a = await rawClient(tb(), transport)
    const b = await rawClient(tb(), transport)
    expect((await a.connect({ clientId: '', clean: true })).returnCode).toBe(0)
    expect((await b.connect({ clientId: '', clean: true })).returnCode).toBe(0)
    // Had both got the same id, b's CONNECT would have taken a's session over and closed a [MQTT-3.1.4-2].
    a.send({ cmd: 'pingreq' })
    b.send({ cmd: 'pingreq' })
    await a.next('pingresp')
    await b.next('pingresp')
    expect(a.isClosed).toBe(false)
    expect(b.isClosed).toBe(false)
    // And each one works as a client of its own: it subscribes and receives.
    const topic = `${uid('z')}/t`
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] })
    b.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] })
    await a.next('suback')
    await b.next('suback')
    const pub = await mqttClient(tb(), transport)
    await pub.publishAsync(topic, 'both', { qos: 0 })
    expect((await a.next('publish')).cmd).toBe('publish')
    expect((await b.next('publish')).cmd).toBe('publish')
  })

  it('[MQTT-3.1.0-2] a second CONNECT on the same connection is a protocol violation: the connection is closed', async () => {
    const raw = await rawClient(tb(), transport)
    const clientId = uid('c')
    await raw.connect({ clientId })
    raw.sendRaw(connectBytes({ clientId }))
    expect(await raw.waitClosed()).toBe(true)
    expect(raw.received.map(p => p.cmd)).toEqual(['connack'])
  })

  it('[MQTT-3.1.0-1] a PINGREQ before CONNECT closes the connection without a response', async () => {
    const raw = await rawClient(tb(), transport)
    raw.send({ cmd: 'pingreq' })
    expect(await raw.waitClosed()).toBe(true)
    expect(raw.received).toEqual([])
  })

  it('[MQTT-3.1.0-1] a PUBLISH before CONNECT closes the connection and is not delivered', async () => {
    const topic = `${uid('pre')}/t`
    const sub = await mqttClient(tb(), transport)
    await subscribe(sub, { [topic]: 0, [`${topic}/fence`]: 0 })
    const raw = await rawClient(tb(), transport)
    raw.send({ cmd: 'publish', topic, payload: 'before-connect', qos: 0, retain: false, dup: false })
    expect(await raw.waitClosed()).toBe(true)
    await fence(sub, sub, `${topic}/fence`, 0)
    expect(sub.received.filter(m => m.topic === topic)).toEqual([])
  })

  it('[MQTT-3.1.0-1] a SUBSCRIBE before CONNECT closes the connection without a SUBACK', async () => {
    const raw = await rawClient(tb(), transport)
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'x', qos: 0 }] })
    expect(await raw.waitClosed()).toBe(true)
    expect(raw.received).toEqual([])
  })

  it('[MQTT-3.1.2-2] MQTT 3.1 (protocol name "MQIsdp", level 3) is accepted: CONNACK 0', async () => {
    const raw = await rawClient(tb(), transport, { version: 3 })
    const connack = await raw.connect({ clientId: uid('v31'), protocolId: 'MQIsdp', protocolVersion: 3 })
    expect(connack.returnCode).toBe(0)
    expect(raw.isClosed).toBe(false)
  })

  it('[MQTT-3.1.2-2] an MQTT 3.1 client subscribes, publishes and receives', async () => {
    const topic = `${uid('v31')}/t`
    const v31 = await mqttClient(tb(), transport, { protocolVersion: 3, protocolId: 'MQIsdp', clientId: uid('v31') })
    const v311 = await mqttClient(tb(), transport)
    expect(await subscribe(v31, { [topic]: 1 })).toEqual([1])
    await v311.publishAsync(topic, 'to-3.1', { qos: 1 })
    await subscribe(v311, { [`${topic}/back`]: 1 })
    await v31.publishAsync(`${topic}/back`, 'from-3.1', { qos: 1 })
    const got = await waitForMessages(v31, topic)
    expect(got.map(m => [m.payload, m.qos])).toEqual([['to-3.1', 1]])
    const back = await waitForMessages(v311, `${topic}/back`)
    expect(back.map(m => m.payload)).toEqual(['from-3.1'])
  })
})
