import { describe, expect, it } from 'vitest'
import mqttPacket, { type Packet } from 'mqtt-packet'
import type { Client } from 'aedes'
import { parseFast } from '../../src/protocol/fast-parser.js'
import { guardPackets } from '../../src/protocol/packet-guard.js'

/** What a parser emits for these reads, fed one after the other: packets (payloads as bytes) and errors, in order. */
function feed (reads: Buffer[], fast: boolean): unknown[] {
  const parser = mqttPacket.parser()
  if (fast) parseFast({ _parser: parser } as unknown as Client)
  const out: unknown[] = []
  parser.on('packet', (p: Packet) => {
    const payload = (p as { payload?: unknown }).payload
    out.push({ ...p, payload: Buffer.isBuffer(payload) ? [...payload] : payload, keys: Object.keys(p).join() })
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
