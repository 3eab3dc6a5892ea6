import { describe, expect, it } from 'vitest'
import type { IConnackPacket, IConnectPacket, IPingrespPacket } from 'mqtt-packet'
import { connectBytes } from '../helpers/raw-client.js'
import {
  fence, isConnected, messagesOn, mqttClient, rawClient, sleep, subscribe, transports, uid, useBroker, waitFor,
  waitForMessages, type RawClient, type TestClient, type Transport
} from './support.js'

// MQTT 3.1.1 §3.1.2.5-3.1.2.7 (Will flag, QoS, retain), §3.1.2.10 (Keep Alive), §3.12 PINGREQ, §3.14 DISCONNECT.
const tb = useBroker()

type Will = NonNullable<IConnectPacket['will']>

describe.each(transports)('will and keepalive over %s', (transport: Transport) => {
  async function withWill (clientId: string, will: Will, extra: Partial<IConnectPacket> = {}): Promise<RawClient> {
    const raw = await rawClient(tb(), transport)
    const connack = await raw.connect({ clientId, will, ...extra })
    expect(connack.returnCode).toBe(0)
    return raw
  }

  /** A subscriber on `topic` and on `<topic>/fence`, granted `qos`. */
  async function watcher (topic: string, qos: 0 | 1 | 2 = 2): Promise<TestClient> {
    const sub = await mqttClient(tb(), transport)
    expect(await subscribe(sub, { [topic]: qos, [`${topic}/fence`]: qos })).toEqual([qos, qos])
    return sub
  }

  it('[MQTT-3.1.2-8] the will is published when the connection is lost without DISCONNECT', async () => {
    const id = uid('w')
    const topic = `${id}/will`
    const sub = await watcher(topic)
    const raw = await withWill(id, { topic, payload: Buffer.from('gone'), qos: 1, retain: false })
    raw.destroy()
    const [will] = await waitForMessages(sub, topic)
    expect(will).toMatchObject({ payload: 'gone', qos: 1, retain: false })
  })

  it('[MQTT-3.14.4-3] the will is not published when the client sends DISCONNECT', async () => {
    const id = uid('w')
    const topic = `${id}/will`
    const sub = await watcher(topic)
    const raw = await withWill(id, { topic, payload: Buffer.from('must-not-appear'), qos: 1, retain: false })
    await raw.disconnect()
    await waitFor(() => !isConnected(tb(), id), 'the client to be gone')
    await fence(sub, sub, `${topic}/fence`)
    expect(messagesOn(sub, topic)).toEqual([])
  })

  it('[MQTT-3.1.2-10] a will discarded on DISCONNECT is not published by the next connection of the same persistent session', async () => {
    const id = uid('w')
    const topic = `${id}/will`
    const sub = await watcher(topic)
    const first = await withWill(id, { topic, payload: Buffer.from('old-will'), qos: 1, retain: false }, { clean: false })
    await first.disconnect()
    await waitFor(() => !isConnected(tb(), id), 'the client to be gone')
    const second = await rawClient(tb(), transport)
    expect((await second.connect({ clientId: id, clean: false })).returnCode).toBe(0)
    second.destroy()
    await waitFor(() => !isConnected(tb(), id), 'the client to be gone')
    await fence(sub, sub, `${topic}/fence`)
    expect(messagesOn(sub, topic)).toEqual([])
  })

  it('[MQTT-3.1.2-8] the will is published when the server closes the connection for a protocol violation', async () => {
    const id = uid('w')
    const topic = `${id}/will`
    const sub = await watcher(topic)
    const raw = await withWill(id, { topic, payload: Buffer.from('violated'), qos: 0, retain: false })
    raw.sendRaw(connectBytes({ clientId: id })) // a second CONNECT [MQTT-3.1.0-2]
    expect(await raw.waitClosed()).toBe(true)
    const [will] = await waitForMessages(sub, topic)
    expect(will.payload).toBe('violated')
  })

  it('[MQTT-3.1.2-17] Will Retain=1: the will is published as a retained message', async () => {
    const id = uid('w')
    const topic = `${id}/will`
    const live = await watcher(topic)
    const raw = await withWill(id, { topic, payload: Buffer.from('retained-will'), qos: 1, retain: true })
    raw.destroy()
    const [liveCopy] = await waitForMessages(live, topic)
    // A copy sent to an established subscription has RETAIN=0 [MQTT-3.3.1-9].
    expect(liveCopy).toMatchObject({ payload: 'retained-will', retain: false })
    const later = await mqttClient(tb(), transport)
    await subscribe(later, { [topic]: 1 })
    const [stored] = await waitForMessages(later, topic)
    expect(stored).toMatchObject({ payload: 'retained-will', retain: true, qos: 1 })
  })

  it('[MQTT-3.1.2-16] Will Retain=0: the will is published as a non-retained message', async () => {
    const id = uid('w')
    const base = `${id}/x`
    const topic = `${base}/m-will`
    const live = await watcher(topic)
    const raw = await withWill(id, { topic, payload: Buffer.from('plain-will'), qos: 1, retain: false })
    raw.destroy()
    await waitForMessages(live, topic)
    // Retained markers on both sides of the will's topic (in name and in time): once a new subscriber to
    // <base>/+ has both, a retained will would have arrived too.
    const pub = await mqttClient(tb(), transport)
    await pub.publishAsync(`${base}/a`, 'before', { qos: 1, retain: true })
    await pub.publishAsync(`${base}/z`, 'after', { qos: 1, retain: true })
    const later = await mqttClient(tb(), transport)
    await subscribe(later, { [`${base}/+`]: 1 })
    await waitForMessages(later, `${base}/a`)
    await waitForMessages(later, `${base}/z`)
    expect(messagesOn(later, topic)).toEqual([])
  })

  it.each(([
    { willQos: 2, granted: 2, expected: 2 },
    { willQos: 1, granted: 2, expected: 1 },
    { willQos: 2, granted: 1, expected: 1 },
    { willQos: 0, granted: 2, expected: 0 }
  ] as const).map(c => [`a will with QoS ${c.willQos} reaches a subscriber granted ${c.granted} at QoS ${c.expected}`, c] as const))('[3.1.2.6 Will QoS] %s [MQTT-3.8.4-6]', async (_title, { willQos, granted, expected }) => {
    const id = uid('w')
    const topic = `${id}/will`
    const sub = await watcher(topic, granted)
    const raw = await withWill(id, { topic, payload: Buffer.from(`q${willQos}`), qos: willQos, retain: false })
    raw.destroy()
    const [will] = await waitForMessages(sub, topic)
    expect(will).toMatchObject({ payload: `q${willQos}`, qos: expected })
  })

  it('[MQTT-3.1.2-24] keepalive: closes a silent client after 1.5 x keepalive, and publishes its will', async () => {
    const id = uid('k')
    const topic = `${id}/will`
    const sub = await watcher(topic)
    const raw = await withWill(id, { topic, payload: Buffer.from('timed-out'), qos: 1, retain: false }, { keepalive: 1 })
    const start = Date.now()
    expect(await raw.waitClosed(4000)).toBe(true)
    const elapsed = Date.now() - start
    expect(elapsed).toBeGreaterThanOrEqual(1400)
    expect(elapsed).toBeLessThan(3000)
    const [will] = await waitForMessages(sub, topic)
    expect(will).toMatchObject({ payload: 'timed-out', qos: 1 })
  })

  it('[MQTT-3.12.4-1] keepalive: a client sending PINGREQ within the keepalive gets PINGRESP and stays connected', async () => {
    const raw = await rawClient(tb(), transport)
    const connack: IConnackPacket = await raw.connect({ clientId: uid('k'), keepalive: 1 })
    expect(connack.returnCode).toBe(0)
    // 3 pings 600 ms apart: 1.8 s in all, past 1.5 x keepalive.
    for (let i = 0; i < 3; i++) {
      await sleep(600)
      raw.send({ cmd: 'pingreq' })
      const pong = await raw.next<IPingrespPacket>('pingresp', 1000)
      expect(pong.cmd).toBe('pingresp')
    }
    expect(raw.isClosed).toBe(false)
  })
})
