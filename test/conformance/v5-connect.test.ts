import { describe, expect, it } from 'vitest'
import mqttPacket, { type IConnackPacket, type IDisconnectPacket, type IPublishPacket } from 'mqtt-packet'
import { connectBytes } from '../helpers/raw-client.js'
import {
  brokerStillServes, CLOSE_MS, fence, isConnected, mqttClient, rawClient, rawV5, subscribe, transports, uid, useBroker,
  v5Client, waitFor, waitForMessages
} from './support.js'

// MQTT 5.0 §3.1 CONNECT, §3.2 CONNACK, §3.1.4 (connection set-up) and §4.12 (an authentication method not offered).
const tb = useBroker()

/** mqtt.maxInflightInboundMessages and the frame guard's limit with the default settings (docs/protocol.md). */
const RECEIVE_MAXIMUM = 1000

describe.each(transports)('MQTT 5 CONNECT / CONNACK over %s', (transport) => {
  it('[MQTT-3.1.4-5] a valid CONNECT gets CONNACK 0x00, sent first [MQTT-3.2.0-1], its flag bits 7-1 zero [MQTT-3.2.2-1]', async () => {
    const raw = await rawClient(tb(), transport, { version: 5 })
    const connack = await raw.connect({ clientId: uid('c'), protocolVersion: 5 })
    expect(raw.received[0].cmd).toBe('connack')
    expect(connack.reasonCode).toBe(0)
    expect(connack.sessionPresent).toBe(false)
    // mqtt-packet refuses a CONNACK whose reserved flag bits are set: nothing failed to parse
    expect(raw.parseErrors).toEqual([])
    expect(raw.isClosed).toBe(false)
  })

  it('[MQTT-3.2.0-2] one CONNACK per connection: a second CONNECT is a protocol error: DISCONNECT 0x82, closed [MQTT-3.1.0-2]', async () => {
    const clientId = uid('c')
    const raw = await rawV5(tb(), transport, { clientId })
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: true, keepalive: 0 })
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.filter(p => p.cmd === 'connack')).toHaveLength(1)
    expect(raw.received.map(p => [p.cmd, (p as IDisconnectPacket).reasonCode])).toEqual([['connack', 0], ['disconnect', 0x82]])
    await brokerStillServes(tb(), transport)
  })

  it('[MQTT-3.1.0-1] a PUBLISH before CONNECT closes the connection, unanswered and undelivered', async () => {
    const topic = `${uid('pre')}/t`
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [topic]: 1, [`${topic}/fence`]: 1 })
    const raw = await rawClient(tb(), transport, { version: 5 })
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('before connect'), qos: 1, messageId: 1, retain: false, dup: false })
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received).toEqual([])
    await fence(sub, sub, `${topic}/fence`)
    expect(sub.received.filter(m => m.topic === topic)).toEqual([])
  })

  it('[MQTT-3.1.2-3][MQTT-3.1.4-1] a CONNECT with the reserved flag set is closed without CONNACK', async () => {
    const raw = await rawClient(tb(), transport, { version: 5 })
    raw.sendRaw(connectBytes({ protocolLevel: 5, flags: 0x03, clientId: uid('c') }))
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received).toEqual([])
  })

  it('[MQTT-3.1.2-11][MQTT-3.1.2-13] Will QoS or Will Retain set without the Will Flag: closed without CONNACK', async () => {
    for (const flags of [0x02 | 0x08, 0x02 | 0x20]) {
      const raw = await rawClient(tb(), transport, { version: 5 })
      raw.sendRaw(connectBytes({ protocolLevel: 5, flags, clientId: uid('c') }))
      expect(await raw.waitClosed(CLOSE_MS), `flags 0x${flags.toString(16)}`).toBe(true)
      expect(raw.received).toEqual([])
    }
  })

  it('[MQTT-3.1.2-12] Will QoS 3: closed without CONNACK', async () => {
    const raw = await rawClient(tb(), transport, { version: 5 })
    raw.sendRaw(connectBytes({ protocolLevel: 5, clientId: uid('c'), will: { topic: 'w/t', payload: 'x', qos: 3, retain: false } }))
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received).toEqual([])
  })

  it('[MQTT-3.1.3-5] a 23-character client id of 0-9, a-z and A-Z is accepted', async () => {
    const clientId = `Az09${uid('').slice(1)}`.padEnd(23, 'Q').slice(0, 23)
    const raw = await rawV5(tb(), transport, { clientId })
    expect(isConnected(tb(), clientId)).toBe(true)
    expect(raw.isClosed).toBe(false)
  })

  it('[MQTT-3.1.3-6][MQTT-3.1.3-7][MQTT-3.2.2-16] an empty client id gets a unique Assigned Client Identifier in CONNACK, and is that client', async () => {
    const a = await v5Client(tb(), transport, { clientId: '' })
    const b = await v5Client(tb(), transport, { clientId: '' })
    const ids = [a.connack.properties?.assignedClientIdentifier, b.connack.properties?.assignedClientIdentifier]
    expect(ids.every(id => typeof id === 'string' && id.length > 0)).toBe(true)
    expect(ids[0]).not.toBe(ids[1])
    for (const id of ids) expect(isConnected(tb(), id as string)).toBe(true)
    // both stay connected (one id would have taken the other over) and work
    const topic = `${uid('assigned')}/t`
    await subscribe(a, { [topic]: 1 })
    await subscribe(b, { [topic]: 1 })
    await a.publishAsync(topic, 'to both', { qos: 1 })
    await waitForMessages(a, topic)
    await waitForMessages(b, topic)
    expect([a.connected, b.connected]).toEqual([true, true])
  })

  it('[MQTT-3.1.3-6] an empty client id with Clean Start 0 and a Session Expiry Interval is assigned one [MQTT-3.1.3-7], told in CONNACK, Session Present 0', async () => {
    const raw = await rawClient(tb(), transport, { version: 5 })
    // mqtt-packet refuses to encode an empty id with Clean Start 0; property 0x11 is the Session Expiry Interval
    raw.sendRaw(connectBytes({ protocolLevel: 5, clientId: '', cleanSession: false, properties: Buffer.from([0x11, 0, 0, 0x0e, 0x10]) }))
    const connack = await raw.next<IConnackPacket>('connack')
    expect(connack.reasonCode).toBe(0)
    expect(connack.sessionPresent).toBe(false)
    expect(connack.properties?.assignedClientIdentifier).toMatch(/\S+/)
    raw.destroy()
  })

  it('[MQTT-4.12.0-1] an Authentication Method the server does not support gets CONNACK 0x8C and is closed [MQTT-3.2.2-7]; what follows the CONNECT is not processed [MQTT-3.1.4-6]; no DISCONNECT [MQTT-3.14.0-1]', async () => {
    const topic = `${uid('auth')}/t`
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [topic]: 1, [`${topic}/fence`]: 1 })
    const raw = await rawClient(tb(), transport, { version: 5 })
    raw.sendRaw(Buffer.concat([
      mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uid('c'), clean: true, keepalive: 0, properties: { authenticationMethod: 'SCRAM-SHA-256' } }),
      mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('after a refused CONNECT'), qos: 1, messageId: 1, retain: false, dup: false, properties: {} }, { protocolVersion: 5 })
    ]))
    expect(await raw.waitClosed(CLOSE_MS * 3)).toBe(true)
    expect(raw.received.map(p => [p.cmd, (p as IConnackPacket).reasonCode, (p as IConnackPacket).sessionPresent])).toEqual([['connack', 0x8C, false]])
    await fence(sub, sub, `${topic}/fence`)
    expect(sub.received.filter(m => m.topic === topic)).toEqual([])
  })

  it('§3.2.2.3 the CONNACK properties tell the truth: no Maximum QoS, QoS 2 works [MQTT-3.2.2-9]; retained, wildcard and shared subscriptions available; Receive Maximum and Maximum Packet Size announced', async () => {
    const c = await v5Client(tb(), transport)
    const props = c.connack.properties ?? {}
    expect(props.maximumQoS).toBeUndefined()
    expect(props.retainAvailable).not.toBe(false)
    expect(props.wildcardSubscriptionAvailable).not.toBe(false)
    expect(props.sharedSubscriptionAvailable).not.toBe(false)
    expect(props.receiveMaximum).toBe(RECEIVE_MAXIMUM)
    expect(props.maximumPacketSize).toBeGreaterThan(1_048_576)
    const base = uid('caps')
    expect(await subscribe(c, { [`${base}/+`]: 2, [`$share/g/${base}/shared`]: 2 })).toEqual([2, 2])
    await c.publishAsync(`${base}/kept`, 'retained at QoS 2', { qos: 2, retain: true })
    await c.publishAsync(`${base}/shared`, 'shared at QoS 2', { qos: 2 })
    await waitFor(() => c.received.length >= 3, 'the three copies')
    expect(c.received.map(m => [m.topic, m.qos]).sort()).toEqual([[`${base}/kept`, 2], [`${base}/shared`, 2], [`${base}/shared`, 2]])
    const later = await v5Client(tb(), transport)
    await subscribe(later, { [`${base}/kept`]: 2 })
    const kept = await waitForMessages(later, `${base}/kept`)
    expect(kept.map(m => [m.payload, m.qos, m.retain])).toEqual([['retained at QoS 2', 2, true]])
  })

  it('[MQTT-3.1.2-28] no Response Information in CONNACK when the client did not ask for it', async () => {
    const asked0 = await v5Client(tb(), transport, { properties: { requestResponseInformation: false } })
    const unset = await v5Client(tb(), transport)
    expect(asked0.connack.properties?.responseInformation).toBeUndefined()
    expect(unset.connack.properties?.responseInformation).toBeUndefined()
  })

  it('[MQTT-3.1.4-3] a CONNECT with the id of a connected client: that client gets DISCONNECT 0x8E [MQTT-3.14.2-1], with no Session Expiry Interval [MQTT-3.14.2-2], as its last packet [MQTT-3.14.4-1], and is closed [MQTT-3.14.4-2]', async () => {
    const clientId = uid('taken')
    const first = await rawV5(tb(), transport, { clientId })
    const second = await rawV5(tb(), transport, { clientId })
    expect(await first.waitClosed(CLOSE_MS * 3)).toBe(true)
    const last = first.received[first.received.length - 1] as IDisconnectPacket
    expect([last.cmd, last.reasonCode]).toEqual(['disconnect', 0x8E])
    expect(last.properties?.sessionExpiryInterval).toBeUndefined()
    second.send({ cmd: 'pingreq' })
    await second.next('pingresp')
    expect(isConnected(tb(), clientId)).toBe(true)
  })

  // Over WebSocket the message is refused by the WebSocket layer (its maxPayload, close code 1009) before any MQTT
  // byte is read, so without a DISCONNECT (a MAY, §4.13.1).
  it('§3.2.2.3.6 a packet over the Maximum Packet Size the server announced closes the connection (over TCP after DISCONNECT 0x95), and is not delivered', async () => {
    const topic = `${uid('big')}/t`
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [topic]: 1, [`${topic}/fence`]: 1 })
    const raw = await rawClient(tb(), transport, { version: 5 })
    const connack = await raw.connect({ clientId: uid('c'), protocolVersion: 5 })
    const limit = connack.properties?.maximumPacketSize as number
    const payload = Buffer.alloc(limit, 0x61)
    raw.send({ cmd: 'publish', topic, payload, qos: 1, messageId: 1, retain: false, dup: false })
    expect(await raw.waitClosed(CLOSE_MS * 5)).toBe(true)
    expect(raw.received.filter(p => p.cmd === 'puback')).toEqual([])
    expect(raw.received.filter(p => p.cmd === 'disconnect').map(p => (p as IDisconnectPacket).reasonCode)).toEqual(transport === 'tcp' ? [0x95] : [])
    await fence(sub, sub, `${topic}/fence`)
    expect(sub.received.filter(m => m.topic === topic)).toEqual([])
  })

  it('[MQTT-3.1.2-24][MQTT-3.1.2-25] no packet over the client\'s Maximum Packet Size is sent to it: the message is discarded for it as if sent', async () => {
    const topic = `${uid('small')}/t`
    const sub = await v5Client(tb(), transport, { properties: { maximumPacketSize: 200 } })
    await subscribe(sub, { [topic]: 1 })
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'small 1', { qos: 1 })
    await pub.publishAsync(topic, 'x'.repeat(300), { qos: 1 })
    await pub.publishAsync(topic, 'y'.repeat(150), { qos: 0, properties: { userProperties: { padding: 'z'.repeat(60) } } })
    await pub.publishAsync(topic, 'small 2', { qos: 1 })
    await waitForMessages(sub, topic, 2)
    await fence(pub, sub, topic)
    expect(sub.received.filter(m => !m.payload.startsWith('fence')).map(m => m.payload)).toEqual(['small 1', 'small 2'])
    expect(sub.connected).toBe(true)
  })

  it('[MQTT-3.1.2-27] a client that gave no Topic Alias Maximum is sent no Topic Alias', async () => {
    const topic = `${uid('alias')}/t`
    const raw = await rawV5(tb(), transport, { clientId: uid('c') })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1, nl: false, rap: false, rh: 0 }] })
    await raw.next('suback')
    const pub = await v5Client(tb(), transport)
    for (let i = 0; i < 3; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })
    const got: IPublishPacket[] = []
    for (let i = 0; i < 3; i++) got.push(await raw.next<IPublishPacket>('publish'))
    expect(got.map(p => [p.topic, p.properties?.topicAlias])).toEqual([[topic, undefined], [topic, undefined], [topic, undefined]])
  })

  it('§3.2.2.3 an MQTT 3.1.1 client and an MQTT 5 client with the same id take each other over', async () => {
    const clientId = uid('mixed')
    const old = await mqttClient(tb(), transport, { clientId })
    const told: Array<number | undefined> = []
    const v5 = await v5Client(tb(), transport, { clientId })
    v5.on('disconnect', p => told.push(p.reasonCode))
    await waitFor(() => !old.connected, 'the 3.1.1 client closed')
    const back = await mqttClient(tb(), transport, { clientId })
    await waitFor(() => told.length > 0, 'DISCONNECT at the v5 client')
    expect(told).toEqual([0x8E])
    expect(back.connected).toBe(true)
  })
})
