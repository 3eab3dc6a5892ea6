import { describe, expect, it, vi } from 'vitest'
import mqttPacket, { type Packet } from 'mqtt-packet'
import type { Client } from 'aedes'
import { parseFast } from '../../src/protocol/fast-parser.js'
import { guardPackets } from '../../src/protocol/packet-guard.js'
import { forwardableBytes } from '../../src/protocol/v5/publish-properties.js'

/** What a parser emits for these reads, fed one after the other: packets (payloads as bytes) and errors, in order. */
function feed (reads: Buffer[], fast: boolean, protocolVersion = 4): unknown[] {
  const parser = mqttPacket.parser({ protocolVersion })
  if (fast) parseFast({ _parser: parser } as unknown as Client)
  const out: unknown[] = []
  parser.on('packet', (p: Packet) => {
    const payload = (p as { payload?: unknown }).payload
    const properties = (p as { properties?: Record<string, unknown> }).properties
    // properties compared as plain data, with their keys in order (user properties included)
    const props = properties === undefined ? {} : { properties: JSON.parse(JSON.stringify(properties)), propertyKeys: Object.keys(properties).join(), userKeys: Object.keys(properties.userProperties ?? {}).join() }
    out.push({ ...p, ...props, payload: Buffer.isBuffer(payload) ? [...payload] : payload, keys: Object.keys(p).join() })
  })
  parser.on('error', (err: Error) => out.push(`error: ${err.message}`))
  for (const r of reads) parser.parse(r)
  return out
}

const gen = (p: Record<string, unknown>): Buffer => mqttPacket.generate(p as unknown as Packet)
const publish = (topic: string, qos: 0 | 1 | 2, payload: Buffer, messageId = 1, retain = false, dup = false): Buffer =>
  gen({ cmd: 'publish', topic, qos, payload, messageId, retain, dup })
const ack = (first: number, id: number): Buffer => Buffer.from([first, 2, id >> 8, id & 0xff])

/** A QoS 0 PUBLISH whose topic is these bytes, UTF-8 or not. */
const rawTopicPublish = (topic: Buffer): Buffer => Buffer.concat([Buffer.from([0x30, 2 + topic.length + 1, 0, topic.length]), topic, Buffer.from('x')])

/** Splits bytes into reads at the given offsets. */
const splitAt = (bytes: Buffer, cuts: number[]): Buffer[] => {
  const reads: Buffer[] = []
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    reads.push(bytes.subarray(from, cut))
    from = cut
  }
  return reads.filter(r => r.length > 0)
}

// The fast path must be indistinguishable from mqtt-packet: same packets, same fields and key order, same payload
// bytes, same order, same errors, however the bytes are cut into reads.
describe('packet fast path', () => {
  const cases: Array<[string, Buffer[]]> = [
    ['PUBLISH at QoS 0, 1 and 2 with flags', [Buffer.concat([publish('a/b', 0, Buffer.from('x')), publish('a/b', 1, Buffer.from('yy'), 7, true), publish('c', 2, Buffer.alloc(0), 65535, false, true)])]],
    ['a UTF-8 topic and an empty one', [Buffer.concat([publish('température/温度', 1, Buffer.from('v')), publish('', 0, Buffer.from('e'))])]],
    ['acknowledgements and PINGREQ', [Buffer.concat([ack(0x40, 1), ack(0x50, 2), ack(0x62, 3), ack(0x70, 4), Buffer.from([0xc0, 0])])]],
    ['a PUBLISH split inside its length, topic and payload', splitAt(publish('s/p', 1, Buffer.alloc(300, 9)), [1, 2, 5, 100])],
    ['a PUBLISH larger than the fast path holds, over several reads', splitAt(publish('big', 1, Buffer.alloc(200_000, 3)), [50_000, 100_000, 150_000])],
    ['a SUBSCRIBE between PUBLISHes', [Buffer.concat([publish('a', 1, Buffer.from('1')), gen({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'x/#', qos: 1 }] }), publish('b', 1, Buffer.from('2'))])]],
    ['a CONNECT, then publishes', [Buffer.concat([gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 0 }), publish('a', 0, Buffer.from('1'))])]],
    ['a PUBLISH with QoS 3 is an error', [Buffer.concat([publish('a', 1, Buffer.from('1')), Buffer.from([0x36, 5, 0, 1, 0x61, 0, 1])])]],
    ['a PUBREL without its required flags is an error', [ack(0x60, 4)]],
    ['a PUBACK with flags set is an error', [ack(0x42, 4)]],
    ['a topic longer than the packet', [Buffer.from([0x30, 4, 0, 9, 0x61, 0x62]), publish('ok', 0, Buffer.from('1'))]],
    ['a QoS 1 PUBLISH without room for its packet id', [Buffer.from([0x32, 3, 0, 1, 0x61]), publish('ok', 0, Buffer.from('1'))]],
    ['an acknowledgement with a longer remaining length', [Buffer.from([0x40, 3, 0, 1, 0])]],
    ['a five-byte remaining length', [Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0])]],
    ['reads after an error', [ack(0x42, 4), publish('a', 1, Buffer.from('1')), ack(0x40, 5)]],
    // a topic whose bytes are not UTF-8 is left to mqtt-packet, where src/protocol/packet-guard.ts checks the bytes
    ['a topic that is not UTF-8, then one with a real U+FFFD', [Buffer.concat([rawTopicPublish(Buffer.from([0x75, 0x2f, 0xff, 0x28])), publish('u/\uFFFD', 1, Buffer.from('2')), publish('ok', 0, Buffer.from('3'))])]],
    // packet identifier 0 is parsed alike on both paths; the guard refuses it
    ['packet identifier 0', [Buffer.concat([publish('a', 1, Buffer.from('1'), 0), ack(0x40, 0), ack(0x62, 0)])]]
  ]
  it.each(cases)('%s', (_name, reads) => {
    const expected = feed(reads, false)
    expect(expected.length).toBeGreaterThan(0)
    expect(feed(reads, true)).toEqual(expected)
  })

  it('any stream of these packets, cut into reads anywhere, parses as mqtt-packet parses it', () => {
    let seed = 42
    const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
    for (let round = 0; round < 200; round++) {
      const packets: Buffer[] = []
      for (let k = 0; k < 30; k++) {
        const kind = random(10)
        if (kind < 6) packets.push(publish(`t/${random(1000)}`, random(3) as 0 | 1 | 2, Buffer.alloc(random(400), random(256)), 1 + random(65535), random(2) === 1, random(2) === 1))
        else if (kind < 9) packets.push(ack([0x40, 0x50, 0x62, 0x70][random(4)], random(65536)))
        else packets.push(Buffer.from([0xc0, 0]))
      }
      const bytes = Buffer.concat(packets)
      const cuts = Array.from({ length: random(12) }, () => random(bytes.length)).sort((a, b) => a - b)
      const reads = splitAt(bytes, cuts)
      expect(feed(reads, true)).toEqual(feed(reads, false))
    }
  })

  it('with the packet guard, a malformed topic or packet identifier 0 is refused whichever path parsed it', () => {
    const refused: string[] = []
    const parser = mqttPacket.parser()
    const client = { _parser: parser } as unknown as Client
    parseFast(client)
    guardPackets(client, (_c, reason) => { refused.push(reason) })
    const handled: string[] = []
    parser.on('packet', (p: Packet) => { handled.push(p.cmd) })
    const reads = [
      Buffer.concat([publish('ok', 1, Buffer.from('1')), rawTopicPublish(Buffer.from([0x61, 0xc3])), publish('u/\uFFFD', 0, Buffer.from('2'))]),
      // after a SUBSCRIBE mqtt-packet parses the rest of the read
      Buffer.concat([gen({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'x/#', qos: 1 }] }), rawTopicPublish(Buffer.from([0xed, 0xa0, 0x80])), publish('a', 2, Buffer.from('3'), 0)])
    ]
    for (const r of reads) parser.parse(r)
    expect(handled).toEqual(['publish', 'protocol-violation', 'publish', 'subscribe', 'protocol-violation', 'protocol-violation'])
    expect(refused).toEqual(['a string that is not well-formed UTF-8', 'a string that is not well-formed UTF-8', 'packet identifier 0'])
  })
})

const gen5 = (p: Record<string, unknown>): Buffer => mqttPacket.generate(p as unknown as Packet, { protocolVersion: 5 })
const publish5 = (topic: string, qos: 0 | 1 | 2, payload: Buffer, properties?: Record<string, unknown>, messageId = 1): Buffer =>
  gen5({ cmd: 'publish', topic, qos, payload, messageId, properties })
/** A QoS 1 MQTT 5 PUBLISH to "t", packet id 1, payload "p", with these bytes as its property block. */
const rawBlockPublish = (block: number[], propertyLength = block.length): Buffer =>
  Buffer.from([0x32, 2 + 1 + 2 + 1 + block.length + 1, 0, 1, 0x74, 0, 1, propertyLength, ...block, 0x70])
const ack5 = (first: number, id: number, ...rest: number[]): Buffer => Buffer.from([first, 2 + rest.length, id >> 8, id & 0xff, ...rest])
const str = (s: string): number[] => [Buffer.byteLength(s) >> 8, Buffer.byteLength(s) & 0xff, ...Buffer.from(s)]

const ALL_FORWARDED = { payloadFormatIndicator: true, contentType: 'text/plain', responseTopic: 'r/1', correlationData: Buffer.from([0, 1, 2]), userProperties: { a: '1', b: ['2', '3'] } }

describe('packet fast path, MQTT 5', () => {
  const cases: Array<[string, Buffer[]]> = [
    ['PUBLISH at QoS 0, 1 and 2 without properties', [Buffer.concat([publish5('a/b', 0, Buffer.from('x')), publish5('a/b', 1, Buffer.from('yy')), publish5('c', 2, Buffer.alloc(0), undefined, 65535)])]],
    ['PUBLISH with every property a client may send', [Buffer.concat([publish5('a', 1, Buffer.from('1'), ALL_FORWARDED), publish5('a', 0, Buffer.from('2'), { messageExpiryInterval: 60, topicAlias: 3, contentType: 'é' })])]],
    ['user properties with a repeated name between others', [rawBlockPublish([0x26, ...str('k'), ...str('1'), 0x26, ...str('j'), ...str('2'), 0x26, ...str('k'), ...str('3')])]],
    ['properties in any order', [rawBlockPublish([0x08, ...str('resp'), 0x01, 1, 0x03, ...str('ct')])]],
    ['acknowledgements with and without a reason code', [Buffer.concat([ack5(0x40, 1), ack5(0x40, 2, 0x10), ack5(0x50, 3, 0x87, 0), ack5(0x62, 4, 0x92), ack5(0x70, 5, 0x00, 0), Buffer.from([0xc0, 0])])]],
    ['an acknowledgement with a reason string', [Buffer.concat([gen5({ cmd: 'puback', messageId: 9, reasonCode: 0x80, properties: { reasonString: 'no' } }), ack5(0x40, 10)])]],
    ['an acknowledgement with a reason code it may not carry', [ack5(0x62, 4, 0x10), ack5(0x40, 5)]],
    ['an acknowledgement with a property length but no properties', [ack5(0x40, 4, 0x00, 3)]],
    ['a property block longer than the packet', [rawBlockPublish([0x01, 1], 40), publish5('ok', 0, Buffer.from('1'))]],
    ['an unknown property', [rawBlockPublish([0x7f, 1]), publish5('ok', 0, Buffer.from('1'))]],
    ['a CONNECT property in a PUBLISH', [rawBlockPublish([0x11, 0, 0, 0, 5])]],
    ['a Subscription Identifier in a PUBLISH', [rawBlockPublish([0x0b, 5])]],
    ['a property given twice', [rawBlockPublish([0x03, ...str('a'), 0x03, ...str('b')]), rawBlockPublish([0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2])]],
    ['a string running past the block', [rawBlockPublish([0x03, 0, 9, 0x61])]],
    ['a user property cut after its name', [rawBlockPublish([0x26, ...str('k')])]],
    ['correlation data running past the block', [rawBlockPublish([0x09, 0, 5, 1, 2])]],
    ['an integer property cut short', [rawBlockPublish([0x02, 0, 0])]],
    ['a five-byte property length', [Buffer.from([0x30, 9, 0, 1, 0x74, 0x80, 0x80, 0x80, 0x80, 0x01, 0x70])]],
    ['a content type that is not UTF-8', [rawBlockPublish([0x03, 0, 2, 0xc3, 0x28]), publish5('ok', 0, Buffer.from('1'))]],
    ['a PUBLISH with properties split across reads', splitAt(publish5('s/p', 1, Buffer.alloc(300, 9), ALL_FORWARDED), [1, 2, 9, 20, 100])]
  ]
  it.each(cases)('%s', (_name, reads) => {
    const expected = feed(reads, false, 5)
    expect(expected.length).toBeGreaterThan(0)
    expect(feed(reads, true, 5)).toEqual(expected)
  })

  it('any stream of these packets, cut into reads anywhere, parses as mqtt-packet parses it', () => {
    let seed = 7
    const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
    const someProperties = (): Record<string, unknown> | undefined => {
      const all: Record<string, unknown> = { ...ALL_FORWARDED, messageExpiryInterval: 1 + random(1000), topicAlias: 1 + random(10) }
      const picked = Object.entries(all).filter(() => random(3) === 0)
      return picked.length === 0 ? undefined : Object.fromEntries(picked)
    }
    for (let round = 0; round < 200; round++) {
      const packets: Buffer[] = []
      for (let k = 0; k < 30; k++) {
        const kind = random(10)
        if (kind < 6) packets.push(publish5(`t/${random(1000)}`, random(3) as 0 | 1 | 2, Buffer.alloc(random(400), random(256)), someProperties(), 1 + random(65535)))
        else if (kind < 9) packets.push(random(2) === 0 ? ack5([0x40, 0x50, 0x62, 0x70][random(4)], random(65536)) : ack5([0x40, 0x50][random(2)], random(65536), [0x00, 0x10, 0x80, 0x97][random(4)]))
        else packets.push(Buffer.from([0xc0, 0]))
      }
      const bytes = Buffer.concat(packets)
      const cuts = Array.from({ length: random(12) }, () => random(bytes.length)).sort((a, b) => a - b)
      const reads = splitAt(bytes, cuts)
      expect(feed(reads, true, 5)).toEqual(feed(reads, false, 5))
    }
  })

  it('with the packet guard, a property string that is not UTF-8 is refused as before', () => {
    const refused: string[] = []
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    const client = { _parser: parser } as unknown as Client
    parseFast(client)
    guardPackets(client, (_c, reason) => { refused.push(reason) })
    const handled: string[] = []
    parser.on('packet', (p: Packet) => { handled.push(p.cmd) })
    parser.parse(Buffer.concat([publish5('ok', 1, Buffer.from('1'), ALL_FORWARDED), rawBlockPublish([0x26, ...str('k'), 0, 1, 0xff])]))
    expect(handled).toEqual(['publish', 'protocol-violation'])
    expect(refused).toEqual(['a string that is not well-formed UTF-8'])
  })
})

describe('MQTT 5 PUBLISH properties on the fast path', () => {
  /** The packets the fast path emits for these bytes, and how many reads mqtt-packet's own parse was given. */
  function parsed (bytes: Buffer): { packets: Array<Packet & { properties?: Record<string, unknown> }>, slowReads: number } {
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    let slowReads = 0
    const parse = parser.parse.bind(parser)
    parser.parse = (b: Buffer) => { slowReads++; return parse(b) }
    parseFast({ _parser: parser } as unknown as Client)
    const packets: Array<Packet & { properties?: Record<string, unknown> }> = []
    parser.on('packet', (p: Packet) => packets.push(p))
    parser.parse(bytes)
    return { packets, slowReads }
  }

  it('parses PUBLISH and acknowledgements of an MQTT 5 connection without mqtt-packet', () => {
    const { packets, slowReads } = parsed(Buffer.concat([publish5('a', 1, Buffer.from('1')), publish5('a', 1, Buffer.from('2'), ALL_FORWARDED), ack5(0x40, 3), ack5(0x50, 4, 0x10)]))
    expect(packets.map(p => p.cmd)).toEqual(['publish', 'publish', 'puback', 'pubrec'])
    expect(slowReads).toBe(0)
  })

  it('keeps the property block as it came until it is changed', () => {
    const bytes = publish5('a', 1, Buffer.from('1'), ALL_FORWARDED)
    const { packets } = parsed(bytes)
    const properties = packets[0].properties
    const block = forwardableBytes(properties)
    // the block: after the fixed header (2), the topic (3), the packet id (2) and the Property Length (1)
    expect(block).toEqual(bytes.subarray(8, bytes.length - 1))
    expect(properties?.topicAlias).toBeUndefined()
    expect('messageExpiryInterval' in (properties ?? {})).toBe(false)
    expect(properties?.contentType).toBe('text/plain')
    expect(forwardableBytes(properties)).toBe(block)
    delete properties?.responseTopic
    expect(forwardableBytes(properties)).toBeUndefined()
    expect(properties).toEqual({ payloadFormatIndicator: true, contentType: 'text/plain', correlationData: Buffer.from([0, 1, 2]), userProperties: { a: '1', b: ['2', '3'] } })
  })

  it('does not send a Message Expiry Interval or a Topic Alias as it came', () => {
    const { packets } = parsed(Buffer.concat([publish5('a', 1, Buffer.from('1'), { contentType: 'c', messageExpiryInterval: 10 }), publish5('a', 0, Buffer.from('1'), { topicAlias: 2 })]))
    expect(packets.map(p => forwardableBytes(p.properties))).toEqual([undefined, undefined])
    expect(packets[0].properties).toEqual({ contentType: 'c', messageExpiryInterval: 10 })
    expect({ ...packets[1].properties }).toEqual({ topicAlias: 2 })
  })

  it('answers the Payload Format Indicator from the check, without decoding the block', () => {
    const { packets } = parsed(Buffer.concat([
      publish5('a', 1, Buffer.from('1'), { payloadFormatIndicator: true, contentType: 'c' }),
      gen5({ cmd: 'publish', topic: 'a', qos: 0, payload: Buffer.from('2'), properties: { payloadFormatIndicator: false, responseTopic: 'r' } }),
      publish5('a', 1, Buffer.from('3'), { contentType: 'c' })
    ]))
    const decodes = vi.spyOn(mqttPacket, 'parser')
    try {
      expect(packets.map(p => p.properties?.payloadFormatIndicator)).toEqual([true, false, undefined])
      expect(decodes).not.toHaveBeenCalled()
      expect(packets.map(p => forwardableBytes(p.properties) !== undefined)).toEqual([true, true, true])
      // the decoded object says the same
      expect(packets.map(p => ({ ...p.properties } as Record<string, unknown>).payloadFormatIndicator)).toEqual([true, false, undefined])
      expect(decodes).toHaveBeenCalled()
    } finally {
      decodes.mockRestore()
    }
  })
})
