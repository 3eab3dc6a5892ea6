import { describe, expect, it } from 'vitest'
import mqtt from 'mqtt-packet'
import { encodeFrames, encodePacket, publishSize, type OutgoingPacket } from '../../src/protocol/frames.js'

const publish = (over: Partial<OutgoingPacket> = {}): OutgoingPacket =>
  ({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 1, retain: false, dup: false, messageId: 42, ...over })

/** What mqtt-packet makes of the same packets, one after the other. */
const reference = (packets: OutgoingPacket[]): Buffer => Buffer.concat(packets.map(p => mqtt.generate(p as mqtt.Packet)))

// The replay's frames must be byte for byte what mqtt-packet generates for MQTT 3.1.1.
describe('replay frames', () => {
  const cases: Array<[string, OutgoingPacket[]]> = [
    ['QoS 0, 1 and 2', [publish({ qos: 0, messageId: undefined }), publish({ qos: 1 }), publish({ qos: 2, messageId: 65535 })]],
    ['DUP and RETAIN flags', [publish({ dup: true }), publish({ retain: true }), publish({ dup: true, retain: true, qos: 2 })]],
    ['an empty and a missing payload', [publish({ payload: Buffer.alloc(0) }), publish({ payload: undefined })]],
    ['a multi-byte UTF-8 topic', [publish({ topic: 'capteurs/température/Zürich/温度' })]],
    ['payloads across every remaining-length size', [120, 121, 122, 123, 124, 16_370, 16_380, 2_097_140, 2_097_150].map(n => publish({ payload: Buffer.alloc(n, 7) }))],
    ['PUBREL', [{ cmd: 'pubrel', messageId: 9 }, { cmd: 'pubrel', messageId: 65535 }]],
    ['packets left to mqtt-packet: a string payload, a buffer topic', [publish({ payload: 'text' }), publish({ topic: Buffer.from('a/b') })]],
    ['a mix, in order', [publish(), { cmd: 'pubrel', messageId: 3 }, publish({ payload: 'x' }), publish({ qos: 0, messageId: undefined })]]
  ]
  it.each(cases)('%s', (_name, packets) => {
    expect(encodeFrames(packets).equals(reference(packets))).toBe(true)
  })

  it.each(cases)('one packet at a time: %s', (_name, packets) => {
    for (const p of packets) expect(encodePacket(p).equals(mqtt.generate(p as mqtt.Packet))).toBe(true)
  })

  it('parses back into the same packets', () => {
    const packets = [publish({ topic: 'x/y', payload: Buffer.from('one') }), { cmd: 'pubrel', messageId: 77 }, publish({ qos: 2, messageId: 8, dup: true })]
    const parsed: mqtt.Packet[] = []
    const parser = mqtt.parser()
    parser.on('packet', (p: mqtt.Packet) => parsed.push(p))
    parser.parse(encodeFrames(packets))
    expect(parsed.map(p => [p.cmd, (p as { topic?: string }).topic, p.messageId, (p as { dup?: boolean }).dup])).toEqual([
      ['publish', 'x/y', 42, false], ['pubrel', null, 77, false], ['publish', 'a/b', 8, true]
    ])
  })

  it('is empty for no packets', () => {
    expect(encodeFrames([]).length).toBe(0)
  })
})

// For an MQTT 5 client: byte for byte what mqtt-packet generates at protocol level 5 (a PUBREL with reason 0x00,
// which may leave out the reason code and properties).
describe('MQTT 5 frames', () => {
  const V5 = { protocolVersion: 5 } as const
  const reference5 = (packets: OutgoingPacket[]): Buffer =>
    Buffer.concat(packets.map(p => mqtt.generate((p.cmd === 'pubrel' ? { ...p, reasonCode: 0 } : p) as mqtt.Packet, V5)))
  const properties = { contentType: 'text/plain', userProperties: { k: ['v1', 'v2'] }, correlationData: Buffer.from([1, 2]) }
  const cases: Array<[string, OutgoingPacket[]]> = [
    ['QoS 0, 1 and 2', [publish({ qos: 0, messageId: undefined }), publish({ qos: 1 }), publish({ qos: 2, messageId: 65535 })]],
    ['DUP and RETAIN flags', [publish({ dup: true }), publish({ retain: true, qos: 0, messageId: undefined })]],
    ['an empty and a missing payload', [publish({ payload: Buffer.alloc(0) }), publish({ payload: undefined })]],
    ['payloads across every remaining-length size', [120, 121, 122, 123, 16_370, 16_380, 2_097_140, 2_097_150].map(n => publish({ payload: Buffer.alloc(n, 7) }))],
    ['PUBREL', [{ cmd: 'pubrel', messageId: 9 }]],
    ['properties', [publish({ properties }), publish({ qos: 0, messageId: undefined, properties })]],
    ['a mix, in order', [publish(), { cmd: 'pubrel', messageId: 3 }, publish({ properties }), publish({ payload: 'x' })]]
  ]
  it.each(cases)('%s', (_name, packets) => {
    expect(encodeFrames(packets, true).equals(reference5(packets))).toBe(true)
  })

  it.each(cases)('one packet at a time: %s', (_name, packets) => {
    for (const p of packets) expect(encodePacket(p, true).equals(reference5([p]))).toBe(true)
  })

  it('parses back at level 5, properties included', () => {
    const parsed: mqtt.Packet[] = []
    const parser = mqtt.parser({ protocolVersion: 5 })
    parser.on('packet', (p: mqtt.Packet) => parsed.push(p))
    parser.parse(encodeFrames([publish({ topic: 'x/y', payload: Buffer.from('one') }), publish({ qos: 0, messageId: undefined, properties })], true))
    expect(parsed.map(p => [(p as { topic?: string }).topic, (p as { payload?: Buffer }).payload?.toString(), (p as { properties?: unknown }).properties])).toEqual([
      ['x/y', 'one', undefined], ['a/b', 'hello', properties]
    ])
  })

  it('sizes a PUBLISH as it is encoded, whatever its packet id, before it has one', () => {
    for (const qos of [0, 1, 2]) {
      for (const p of [publish(), publish({ payload: Buffer.alloc(200) }), publish({ payload: 'text' }), publish({ topic: 'capteurs/température' })]) {
        for (const props of [undefined, properties]) {
          const encoded = encodePacket({ ...p, qos, messageId: qos > 0 ? 65535 : undefined, properties: props }, true)
          expect(publishSize({ ...p, messageId: undefined }, qos, props)).toBe(encoded.length)
        }
      }
    }
  })

  it('leaves the properties out for an MQTT 3.1.1 client', () => {
    const p = publish({ properties })
    const { properties: _dropped, ...plain } = p
    expect(encodePacket(p).equals(mqtt.generate(plain as mqtt.Packet))).toBe(true)
  })
})
