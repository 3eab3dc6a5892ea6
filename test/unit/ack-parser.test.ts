import { describe, expect, it } from 'vitest'
import mqttPacket, { type Packet } from 'mqtt-packet'
import type { Client } from 'aedes'
import { parseAcksFast } from '../../src/protocol/ack-parser.js'

/** What a parser emits for these reads, fed one after the other: packets and errors, in order. */
function feed (reads: Buffer[], fast: boolean): Array<Packet | string> {
  const parser = mqttPacket.parser()
  if (fast) parseAcksFast({ _parser: parser } as unknown as Client)
  const out: Array<Packet | string> = []
  parser.on('packet', (p: Packet) => out.push({ ...p }))
  parser.on('error', (err: Error) => out.push(`error: ${err.message}`))
  for (const r of reads) parser.parse(r)
  return out
}

const ack = (first: number, id: number): number[] => [first, 2, id >> 8, id & 0xff]

// The fast path must be indistinguishable from mqtt-packet: same packets, same fields, same order, same errors.
describe('acknowledgement fast path', () => {
  const cases: Array<[string, number[][]]> = [
    ['one PUBACK', [ack(0x40, 1)]],
    ['PUBACK, PUBREC, PUBREL and PUBCOMP in one read', [[...ack(0x40, 7), ...ack(0x50, 65535), ...ack(0x62, 256), ...ack(0x70, 3)]]],
    ['a PUBACK split across two reads, then whole ones', [[0x40, 2, 0], [9, ...ack(0x40, 10)], ack(0x40, 11)]],
    ['acknowledgements behind a PINGREQ', [[0xc0, 0, ...ack(0x40, 5)], ack(0x40, 6)]],
    ['a PUBLISH then acknowledgements', [[0x30, 5, 0, 1, 0x61, 0x68, 0x69, ...ack(0x40, 8)], ack(0x40, 9)]],
    ['a PUBREL without its required flags is an error', [ack(0x60, 4)]],
    ['a PUBACK with flags set is an error', [ack(0x42, 4)]],
    ['an acknowledgement with a longer remaining length', [[0x40, 3, 0, 1, 0]]],
    ['a read of acknowledgements after an error', [ack(0x42, 4), ack(0x40, 5)]]
  ]
  it.each(cases)('%s', (_name, reads) => {
    const bufs = reads.map(r => Buffer.from(r))
    const expected = feed(bufs, false)
    expect(expected.length).toBeGreaterThan(0)
    expect(feed(bufs, true)).toEqual(expected)
  })

  it('parses a long run of acknowledgements in one read into one packet each, in order', () => {
    const ids = Array.from({ length: 500 }, (_, i) => i + 1)
    const got = feed([Buffer.from(ids.flatMap(id => ack(0x40, id)))], true)
    expect(got).toEqual(ids.map(messageId => ({ cmd: 'puback', retain: false, qos: 0, dup: false, length: 2, topic: null, payload: null, messageId })))
  })
})
