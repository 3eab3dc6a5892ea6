import { Writable } from 'node:stream'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { WireTap, feedChunk, type WirePacket } from '../../src/metrics/wire-tap.js'
import { LoadAverage } from '../../src/sys-topics/load-average.js'

const packets: Packet[] = [
  { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'c1', keepalive: 30 },
  { cmd: 'connack', returnCode: 0, sessionPresent: false },
  { cmd: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false },
  { cmd: 'publish', topic: 'sensors/ü/temp', payload: Buffer.alloc(300, 7), qos: 1, messageId: 513, retain: true, dup: false },
  { cmd: 'publish', topic: 'x', payload: Buffer.alloc(0), qos: 2, messageId: 65535, retain: false, dup: true },
  { cmd: 'publish', topic: 'big', payload: Buffer.alloc(20_000, 1), qos: 1, messageId: 7, retain: false, dup: false },
  { cmd: 'puback', messageId: 513 },
  { cmd: 'pubrec', messageId: 65535 },
  { cmd: 'pubrel', messageId: 65535 },
  { cmd: 'pubcomp', messageId: 65535 },
  { cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'a/#', qos: 1 }] },
  { cmd: 'pingreq' },
  { cmd: 'disconnect' }
]

const expected: Array<Partial<WirePacket>> = [
  { type: 'connect' },
  { type: 'connack', bytes: 4 },
  { type: 'publish', qos: 0, payloadBytes: 5, messageId: -1, bytes: 2 + 2 + 3 + 5 },
  { type: 'publish', qos: 1, payloadBytes: 300, messageId: 513 },
  { type: 'publish', qos: 2, payloadBytes: 0, messageId: 65535 },
  { type: 'publish', qos: 1, payloadBytes: 20_000, messageId: 7 },
  { type: 'puback', messageId: 513, bytes: 4 },
  { type: 'pubrec', messageId: 65535 },
  { type: 'pubrel', messageId: 65535 },
  { type: 'pubcomp', messageId: 65535 },
  { type: 'subscribe', messageId: -1 },
  { type: 'pingreq', bytes: 2 },
  { type: 'disconnect', bytes: 2 }
]

function tapAll (chunks: Uint8Array[]): WirePacket[] {
  const seen: WirePacket[] = []
  const tap = new WireTap(p => seen.push({ ...p }))
  for (const c of chunks) tap.feed(c)
  return seen
}

describe('WireTap', () => {
  const whole = Buffer.concat(packets.map(p => mqttPacket.generate(p)))

  it('frames every packet with its size, QoS, payload size and packet id', () => {
    const seen = tapAll([whole])
    expect(seen).toHaveLength(packets.length)
    seen.forEach((p, i) => expect(p).toMatchObject(expected[i]))
    expect(seen.reduce((n, p) => n + p.bytes, 0)).toBe(whole.length)
    packets.forEach((p, i) => expect(seen[i].bytes).toBe(mqttPacket.generate(p).length))
  })

  it('gives the same answer however the bytes are split, down to one byte at a time', () => {
    const reference = tapAll([whole])
    expect(tapAll([...whole].map(b => Uint8Array.of(b)))).toEqual(reference)
    let seed = 42
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    for (let round = 0; round < 50; round++) {
      const chunks: Uint8Array[] = []
      for (let i = 0; i < whole.length;) {
        const n = 1 + Math.floor(random() * 40)
        chunks.push(whole.subarray(i, i + n))
        i += n
      }
      expect(tapAll(chunks)).toEqual(reference)
    }
  })

  it('sees the packets mqtt-packet writes to a stream in pieces, strings included, without copying strings', () => {
    const chunks: unknown[] = []
    const sink = new Writable({ write (_chunk: Buffer, _enc, cb) { cb() } })
    const write = sink.write.bind(sink)
    sink.write = ((chunk: unknown, ...rest: unknown[]) => {
      chunks.push(chunk instanceof Uint8Array ? Uint8Array.from(chunk) : chunk)
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest)
    }) as typeof sink.write
    for (const p of packets) mqttPacket.writeToStream(p, sink)
    expect(chunks.some(c => typeof c === 'string')).toBe(true)
    const seen: WirePacket[] = []
    const tap = new WireTap(p => seen.push({ ...p }))
    for (const c of chunks) feedChunk(tap, c)
    expect(seen).toEqual(tapAll([whole]))
    // A string that holds header fields (a hand-made topic-length + topic) is still read right.
    const odd: WirePacket[] = []
    const tap2 = new WireTap(p => odd.push({ ...p }))
    tap2.feed(Uint8Array.of(0x32, 2 + 1 + 2 + 3))
    tap2.feedText('\u0000\u0001a\u0001\u0002xyz', 'latin1')
    expect(odd).toEqual([{ type: 'publish', code: 3, bytes: 10, qos: 1, payloadBytes: 3, messageId: 258 }])
  })

  it('stops at a remaining length longer than four bytes', () => {
    const seen: WirePacket[] = []
    const tap = new WireTap(p => seen.push({ ...p }))
    tap.feed(Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0xff, 0x01))
    expect(tap.broken).toBe(true)
    expect(seen).toEqual([])
  })
})

describe('LoadAverage (Mosquitto $SYS load)', () => {
  it('moves toward a steady per-minute rate with the 1, 5 and 15 minute time constants', () => {
    const load = new LoadAverage(0, 0)
    // 10 events every 10 s = 60 per minute.
    let values: number[] = []
    for (let i = 1; i <= 6; i++) values = load.update(i * 10, i * 10_000)
    expect(values[0]).toBeCloseTo(60 * (1 - Math.exp(-1)), 6)
    expect(values[1]).toBeCloseTo(60 * (1 - Math.exp(-60 / 300)), 6)
    expect(values[2]).toBeCloseTo(60 * (1 - Math.exp(-60 / 900)), 6)
    expect(load.update(60, 60_000)).toEqual(values)
  })
})
