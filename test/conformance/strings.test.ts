import { describe, expect, it } from 'vitest'
import {
  brokerStillServes, fence, id16, mqttClient, packet, rawClient, retainedProbe, str, subscribe, transports, uid, useBroker,
  CLOSE_MS, type RawClient, type Transport
} from './support.js'

// MQTT 3.1.1 §1.5.3 (UTF-8 encoded strings) and §2.3.1 (packet identifiers): a string that is not well-formed
// UTF-8 [MQTT-1.5.3-1] or holds U+0000 [MQTT-1.5.3-2], and a packet identifier 0 where one is required
// [MQTT-2.3.1-1], are protocol errors: the connection is closed and nothing of the packet takes effect.
const tb = useBroker()

/** Byte sequences that are not UTF-8: a stray byte, a lone continuation, an overlong '/', a surrogate, a cut-off sequence. */
const malformed: Array<[string, Buffer]> = [
  ['0xFF', Buffer.from([0xff])],
  ['a lone continuation byte', Buffer.from([0x80])],
  ['an overlong encoding', Buffer.from([0xc0, 0xaf])],
  ['a UTF-16 surrogate (U+D800)', Buffer.from([0xed, 0xa0, 0x80])],
  ['a truncated sequence', Buffer.from([0xe2, 0x82])]
]

const bytesOf = (text: string, bad: Buffer): Buffer => Buffer.concat([Buffer.from(text), bad])

/** CONNECT (MQTT 3.1.1, clean, keepalive 0) with strings given as bytes. */
function connectWith (o: { clientId: Buffer, will?: { topic: Buffer }, username?: Buffer }): Buffer {
  const flags = 0x02 | (o.will !== undefined ? 0x04 : 0) | (o.username !== undefined ? 0x80 : 0)
  const parts = [str('MQTT'), Buffer.from([4, flags]), id16(0), str(o.clientId)]
  if (o.will !== undefined) parts.push(str(o.will.topic), str('w'))
  if (o.username !== undefined) parts.push(str(o.username))
  return packet(0x10, ...parts)
}

describe.each(transports)('UTF-8 strings and packet identifiers over %s', (transport: Transport) => {
  async function connected (): Promise<RawClient> {
    const raw = await rawClient(tb(), transport)
    expect((await raw.connect({ clientId: uid('bad') })).returnCode).toBe(0)
    return raw
  }

  async function closedWithout (raw: RawClient, answer: string): Promise<void> {
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.filter(p => p.cmd === answer)).toEqual([])
  }

  describe('[MQTT-1.5.3-1] a string that is not well-formed UTF-8 closes the connection', () => {
    it.each(malformed)('a retained QoS 1 PUBLISH whose topic holds %s is neither acknowledged, delivered nor retained', async (_name, bad) => {
      const p = uid('u')
      const probe = await retainedProbe(tb(), transport, p)
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${p}/#`]: 1 })
      const raw = await connected()
      raw.sendRaw(packet(0x33, str(bytesOf(`${p}/m`, bad)), id16(1), Buffer.from('bad')))
      await closedWithout(raw, 'puback')
      await fence(sub, sub, `${p}/fence`)
      expect(sub.received.filter(m => m.payload === 'bad')).toEqual([])
      expect(await probe.read()).toEqual([])
      await brokerStillServes(tb(), transport)
    })

    it.each([0, 2] as const)('a QoS %i PUBLISH with a malformed topic is not delivered', async (qos) => {
      const p = uid('u')
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${p}/#`]: 2 })
      const raw = await connected()
      raw.sendRaw(packet(0x30 | (qos << 1), str(bytesOf(`${p}/`, Buffer.from([0xff]))), ...(qos > 0 ? [id16(1)] : []), Buffer.from('bad')))
      await closedWithout(raw, 'pubrec')
      await fence(sub, sub, `${p}/fence`)
      expect(sub.received.filter(m => m.payload === 'bad')).toEqual([])
      await brokerStillServes(tb(), transport)
    })

    it('a topic with a real U+FFFD (well-formed UTF-8) is accepted and delivered', async () => {
      const p = uid('u')
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${p}/#`]: 1 })
      const raw = await connected()
      raw.sendRaw(packet(0x32, str(`${p}/\uFFFD`), id16(1), Buffer.from('fine')))
      expect((await raw.next('puback')).cmd).toBe('puback')
      await fence(sub, sub, `${p}/fence`)
      expect(sub.received.filter(m => m.payload === 'fine').map(m => m.topic)).toEqual([`${p}/\uFFFD`])
    })

    it('a SUBSCRIBE whose filter is malformed gets no SUBACK and subscribes nothing', async () => {
      const p = uid('u')
      const raw = await connected()
      raw.sendRaw(packet(0x82, id16(1), str(bytesOf(`${p}/`, Buffer.from([0xc3]))), Buffer.from([1])))
      await closedWithout(raw, 'suback')
      await brokerStillServes(tb(), transport)
    })

    it('an UNSUBSCRIBE whose filter is malformed gets no UNSUBACK', async () => {
      const raw = await connected()
      raw.sendRaw(packet(0xa2, id16(1), str(bytesOf(`${uid('u')}/`, Buffer.from([0xed, 0xbf, 0xbf])))))
      await closedWithout(raw, 'unsuback')
      await brokerStillServes(tb(), transport)
    })

    it.each([
      ['client identifier', { clientId: bytesOf('c-', Buffer.from([0xfe])) }],
      ['will topic', { clientId: Buffer.from(uid('c')), will: { topic: bytesOf('w/', Buffer.from([0x80])) } }],
      ['user name', { clientId: Buffer.from(uid('c')), username: bytesOf('u', Buffer.from([0xc0, 0x80])) }]
    ])('a CONNECT whose %s is malformed is closed without CONNACK', async (_name, fields) => {
      const raw = await rawClient(tb(), transport)
      raw.sendRaw(connectWith(fields))
      await closedWithout(raw, 'connack')
      await brokerStillServes(tb(), transport)
    })
  })

  describe('[MQTT-1.5.3-2] U+0000 in a string closes the connection', () => {
    it.each([
      ['client identifier', { clientId: Buffer.from('c-\u0000x') }],
      ['user name', { clientId: Buffer.from(uid('c')), username: Buffer.from('u\u0000') }],
      ['will topic', { clientId: Buffer.from(uid('c')), will: { topic: Buffer.from('w/\u0000') } }]
    ])('a CONNECT whose %s holds U+0000 is closed without CONNACK', async (_name, fields) => {
      const raw = await rawClient(tb(), transport)
      raw.sendRaw(connectWith(fields))
      await closedWithout(raw, 'connack')
      await brokerStillServes(tb(), transport)
    })
  })

  describe('[MQTT-2.3.1-1] packet identifier 0 closes the connection', () => {
    it.each([1, 2] as const)('a retained QoS %i PUBLISH with packet identifier 0 is neither acknowledged, delivered nor retained', async (qos) => {
      const p = uid('id0')
      const probe = await retainedProbe(tb(), transport, p)
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${p}/#`]: 2 })
      const raw = await connected()
      raw.sendRaw(packet(0x31 | (qos << 1), str(`${p}/m`), id16(0), Buffer.from('zero')))
      await closedWithout(raw, qos === 1 ? 'puback' : 'pubrec')
      await fence(sub, sub, `${p}/fence`)
      expect(sub.received.filter(m => m.payload === 'zero')).toEqual([])
      expect(await probe.read()).toEqual([])
      await brokerStillServes(tb(), transport)
    })

    it('a SUBSCRIBE with packet identifier 0 gets no SUBACK', async () => {
      const raw = await connected()
      raw.sendRaw(packet(0x82, id16(0), str(`${uid('id0')}/t`), Buffer.from([1])))
      await closedWithout(raw, 'suback')
      await brokerStillServes(tb(), transport)
    })

    it('an UNSUBSCRIBE with packet identifier 0 gets no UNSUBACK', async () => {
      const raw = await connected()
      raw.sendRaw(packet(0xa2, id16(0), str(`${uid('id0')}/t`)))
      await closedWithout(raw, 'unsuback')
      await brokerStillServes(tb(), transport)
    })

    it.each([['PUBACK', 0x40], ['PUBREC', 0x50], ['PUBREL', 0x62], ['PUBCOMP', 0x70]] as const)('a %s with packet identifier 0 closes the connection', async (_name, first) => {
      const raw = await connected()
      raw.sendRaw(Buffer.from([first, 2, 0, 0]))
      await closedWithout(raw, 'pubcomp')
      await brokerStillServes(tb(), transport)
    })
  })
})
