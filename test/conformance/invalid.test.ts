import { describe, expect, it } from 'vitest'
import { connectBytes } from '../helpers/raw-client.js'
import {
  brokerStillServes as stillServes, fence, id16, messagesOn, mqttClient, packet, rawClient, str, subscribe, transports, uid, useBroker,
  CLOSE_MS, type RawClient, type Transport
} from './support.js'

// MQTT 3.1.1 §4.8 [MQTT-4.8.0-1]: on a protocol violation the server closes the connection. Each case also checks
// that nothing of the bad packet took effect and that the broker goes on serving other clients.
const tb = useBroker()

describe.each(transports)('invalid packets over %s', (transport: Transport) => {
  async function connected (): Promise<RawClient> {
    const raw = await rawClient(tb(), transport)
    expect((await raw.connect({ clientId: uid('bad') })).returnCode).toBe(0)
    return raw
  }

  const brokerStillServes = async (): Promise<void> => { await stillServes(tb(), transport) }

  describe('PUBLISH', () => {
    it.each(['+', '#', 'a/+/b', 'a/#'])('[MQTT-3.3.2-2] a PUBLISH whose topic name contains a wildcard ("%s") closes the connection and is not delivered', async (wild) => {
      const p = uid('w')
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${p}/#`]: 1 })
      const raw = await connected()
      raw.send({ cmd: 'publish', topic: `${p}/${wild}`, payload: Buffer.from('wild'), qos: 1, messageId: 1, retain: false, dup: false })
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'puback')).toEqual([])
      await fence(sub, sub, `${p}/fence`)
      expect(sub.received.filter(m => m.payload === 'wild')).toEqual([])
      await brokerStillServes()
    })

    it('[MQTT-4.7.3-1] a PUBLISH with an empty topic name closes the connection', async () => {
      const raw = await connected()
      raw.sendRaw(packet(0x32, str(''), id16(1), Buffer.from('x')))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'puback')).toEqual([])
      await brokerStillServes()
    })

    it('[MQTT-4.7.3-2][MQTT-1.5.3-2] a PUBLISH whose topic name contains U+0000 closes the connection and is not delivered', async () => {
      const p = uid('nul')
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${p}/#`]: 1 })
      const raw = await connected()
      raw.sendRaw(packet(0x32, str(`${p}/a\u0000b`), id16(1), Buffer.from('nul')))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      await fence(sub, sub, `${p}/fence`)
      expect(sub.received.filter(m => m.payload === 'nul')).toEqual([])
      await brokerStillServes()
    })

    it('[MQTT-3.3.1-4] a PUBLISH with both QoS bits set (QoS 3) closes the connection', async () => {
      const p = uid('q3')
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${p}/#`]: 1 })
      const raw = await connected()
      raw.sendRaw(packet(0x36, str(`${p}/t`), id16(1), Buffer.from('q3')))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      await fence(sub, sub, `${p}/fence`)
      expect(messagesOn(sub, `${p}/t`)).toEqual([])
      await brokerStillServes()
    })
    it('[MQTT-3.3.1-2] a QoS 0 PUBLISH with DUP 1 closes the connection and is not delivered', async () => {
      const p = uid('dup0')
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${p}/#`]: 1 })
      const raw = await connected()
      raw.sendRaw(packet(0x38, str(`${p}/t`), Buffer.from('dup0')))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      await fence(sub, sub, `${p}/fence`)
      expect(messagesOn(sub, `${p}/t`)).toEqual([])
      await brokerStillServes()
    })
  })

  describe('framing and fixed header', () => {
    it('[2.2.3] a Remaining Length longer than 4 bytes is malformed: the connection is closed', async () => {
      const raw = await connected()
      raw.sendRaw(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      await brokerStillServes()
    })

    it('[MQTT-3.8.1-1][MQTT-2.2.2-2] a SUBSCRIBE whose reserved fixed-header bits are not 0010 closes the connection', async () => {
      const raw = await connected()
      raw.sendRaw(packet(0x80, id16(1), str(`${uid('f')}/t`), Buffer.from([1])))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'suback')).toEqual([])
      await brokerStillServes()
    })

    it('[MQTT-3.10.1-1][MQTT-2.2.2-2] an UNSUBSCRIBE whose reserved fixed-header bits are not 0010 closes the connection', async () => {
      const raw = await connected()
      raw.sendRaw(packet(0xa0, id16(1), str(`${uid('f')}/t`)))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'unsuback')).toEqual([])
      await brokerStillServes()
    })

    it('[MQTT-3.6.1-1][MQTT-2.2.2-2] a PUBREL whose reserved fixed-header bits are not 0010 closes the connection', async () => {
      const raw = await connected()
      raw.sendRaw(packet(0x60, id16(1)))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'pubcomp')).toEqual([])
      await brokerStillServes()
    })
  })

  describe('SUBSCRIBE / UNSUBSCRIBE payloads', () => {
    it('[MQTT-3.8.3-3] a SUBSCRIBE with no topic filter closes the connection', async () => {
      const raw = await connected()
      raw.sendRaw(packet(0x82, id16(1)))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'suback')).toEqual([])
      await brokerStillServes()
    })

    it('[MQTT-3-8.3-4] a SUBSCRIBE requesting QoS 3 closes the connection', async () => {
      const raw = await connected()
      raw.sendRaw(packet(0x82, id16(1), str(`${uid('f')}/t`), Buffer.from([3])))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'suback')).toEqual([])
      await brokerStillServes()
    })

    it('[MQTT-3.10.3-2] an UNSUBSCRIBE with no topic filter closes the connection', async () => {
      const raw = await connected()
      raw.sendRaw(packet(0xa2, id16(1)))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'unsuback')).toEqual([])
      await brokerStillServes()
    })
  })

  describe('CONNECT', () => {
    it('[MQTT-3.1.2-3] a CONNECT whose reserved flag is 1 is closed without CONNACK [MQTT-3.1.4-1]', async () => {
      const raw = await rawClient(tb(), transport)
      raw.sendRaw(connectBytes({ clientId: uid('bad'), flags: 0x03 }))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received).toEqual([])
      await brokerStillServes()
    })

    it('[MQTT-3.1.2-13][MQTT-3.1.2-15] a CONNECT without the Will flag but with Will QoS or Will Retain set is closed without CONNACK', async () => {
      for (const flags of [0x02 | 0x08, 0x02 | 0x20]) {
        const raw = await rawClient(tb(), transport)
        raw.sendRaw(connectBytes({ clientId: uid('bad'), flags }))
        expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
        expect(raw.received).toEqual([])
      }
      await brokerStillServes()
    })

    it('[MQTT-3.1.2-14] a CONNECT with Will QoS 3 is closed without CONNACK [MQTT-3.1.4-1]', async () => {
      const raw = await rawClient(tb(), transport)
      raw.sendRaw(connectBytes({ clientId: uid('bad'), will: { topic: `${uid('w')}/will`, payload: 'w', qos: 3, retain: false } }))
      expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
      expect(raw.received.filter(x => x.cmd === 'connack' && x.returnCode === 0)).toEqual([])
      await brokerStillServes()
    })
  })
})
