import { describe, expect, it } from 'vitest'
import { decodeHead, decodeQueuedHead, decodeRecord, encodeJsonRecord, encodeQueuedCopy, encodeRecord, UndecodableValueError } from '../../src/store/codec.js'
import { encodeQueuedPublish, encodeRetainedPublish } from '../../src/store/publish-codec.js'
import { packetRecord, plainCopy } from '../../src/store/packets.js'
import { createRequire } from 'node:module'
import { decodeClientId, encodeClientId, outgoingKey, parseNumberedKey, prefixRange, splitClientKey } from '../../src/store/layout.js'

/** aedes' own packet class (a dependency of aedes), as aedes hands packets to the store. */
const Packet = createRequire(createRequire(import.meta.url).resolve('aedes'))('aedes-packet') as new (p: object, broker: object) => Record<string, unknown>

describe('value codec', () => {
  it('round-trips payload bytes exactly, string payloads as strings, and undefined keys', () => {
    const payload = Buffer.from([0, 1, 2, 253, 254, 255])
    const decoded = decodeRecord(encodeRecord({ topic: 't', payload, qos: 1, messageId: undefined }, { t: 5 }))
    expect(decoded.meta).toEqual({ t: 5 })
    expect(Buffer.compare(decoded.fields.payload as Buffer, payload)).toBe(0)
    expect(Object.keys(decoded.fields).sort()).toEqual(['messageId', 'payload', 'qos', 'topic'])
    expect(decodeRecord(encodeRecord({ payload: 'wörld' })).fields.payload).toBe('wörld')
    expect(decodeRecord(encodeRecord({ topic: 'no payload' })).fields).toEqual({ topic: 'no payload' })
  })

  it('keeps nested buffers (MQTT 5 correlation data)', () => {
    const properties = { correlationData: Buffer.from([1, 2, 3]), userProperties: { a: 'b' } }
    const fields = decodeRecord(encodeRecord({ topic: 't', payload: Buffer.alloc(0), properties })).fields
    expect(fields.properties).toEqual(properties)
  })

  it('reads the header without the payload', () => {
    const head = decodeHead(encodeRecord({ topic: 't', payload: Buffer.alloc(1000) }, { t: 1 }))
    expect(head.payloadBytes).toBe(1000)
    expect(head.fields.payload).toBeUndefined()
  })

  it('writes a plain publish in the binary form and reads back exactly what the JSON form would give', () => {
    const shapes: Array<[Record<string, unknown>, Record<string, unknown> | undefined]> = [
      [{ cmd: 'publish', brokerId: 'b1', brokerCounter: 2 ** 40, topic: 'a/ü/c', payload: Buffer.from([0, 255]), qos: 1, retain: false, dup: false, messageId: undefined }, { t: 1700000000123 }],
      [{ clientId: 'pub-1', cmd: 'publish', brokerId: undefined, brokerCounter: undefined, topic: '', payload: 'wörld', qos: 2, retain: true, dup: true, messageId: 65535 }, undefined],
      [{ cmd: 'publish', brokerId: 'b', brokerCounter: 7, topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false, messageId: 1 }, { t: 0 }]
    ]
    for (const [record, meta] of shapes) {
      const binary = encodeRecord(record, meta)
      expect(binary[0], 'codec version byte').toBe(2)
      const json = encodeJsonRecord(record, meta)
      expect(binary.length).toBeLessThan(json.length)
      expect(decodeRecord(binary)).toEqual(decodeRecord(json))
      expect(Object.keys(decodeRecord(binary).fields)).toEqual(Object.keys(record))
      const head = decodeHead(binary)
      expect(head.payloadBytes).toBe(Buffer.byteLength(record.payload as string | Buffer))
      expect({ ...head.fields, payload: record.payload }).toEqual(record)
    }
  })

  it('stores a copy as aedes delivers it (no-local set, undefined under MQTT 3.1.1) in the binary form', () => {
    const delivered = { clientId: 'pub-1', nl: undefined, cmd: 'publish', brokerId: 'b', brokerCounter: 3, topic: 't', payload: Buffer.from('x'), qos: 2, retain: false, dup: false, messageId: undefined }
    const record = packetRecord(delivered, { qos: 2, messageId: 9 })
    expect(encodeRecord(record, { t: 1 })[0], 'codec version byte').toBe(2)
    expect(decodeRecord(encodeRecord(record, { t: 1 })).fields).toMatchObject({ clientId: 'pub-1', topic: 't', qos: 2, messageId: 9 })
    expect(packetRecord({ ...delivered, nl: true }, {}).nl).toBe(true)
  })

  it('writes a PUBREL record in 12 bytes', () => {
    for (const meta of [{ t: 1700000000123 }, undefined]) {
      const value = encodeRecord({ cmd: 'pubrel', messageId: 65535 }, meta)
      expect(value.length).toBe(12)
      expect(decodeRecord(value)).toEqual({ fields: { cmd: 'pubrel', messageId: 65535 }, meta })
    }
  })

  it('keeps the JSON form for any other shape', () => {
    const others: Array<Record<string, unknown>> = [
      { cmd: 'publish', brokerId: 'b', brokerCounter: 1, topic: 't', payload: Buffer.alloc(1), qos: 1, retain: false, dup: false, messageId: undefined, properties: { contentType: 'x' } },
      { cmd: 'pubrel', messageId: 3, extra: 1 },
      { topic: 't', payload: Buffer.alloc(1), qos: 1 }
    ]
    for (const record of others) {
      const value = encodeRecord(record, { t: 1 })
      expect(value[0]).toBe(1)
      expect(decodeRecord(value).fields).toEqual(record)
    }
    expect(encodeRecord({ cmd: 'publish', brokerId: 'b', brokerCounter: 1, topic: 't', payload: Buffer.alloc(1), qos: 1, retain: false, dup: false, messageId: undefined }, { t: 1, other: 2 })[0]).toBe(1)
  })

  it('gives the queue index the same ids, QoS, time and size from every form, without decoding topic or payload', () => {
    const records: Array<[Record<string, unknown>, Record<string, unknown> | undefined]> = [
      [{ cmd: 'publish', brokerId: 'b1', brokerCounter: 2 ** 40, topic: 'a/ü/c', payload: Buffer.alloc(300), qos: 1, retain: false, dup: false, messageId: undefined }, { t: 1700000000123 }],
      [{ clientId: 'pub-1', cmd: 'publish', brokerId: undefined, brokerCounter: undefined, topic: '', payload: 'wörld', qos: 2, retain: true, dup: true, messageId: 65535 }, undefined],
      [{ cmd: 'publish', brokerId: 'b', brokerCounter: 7, topic: 't', payload: Buffer.alloc(5), qos: 1, retain: false, dup: false, messageId: 9, properties: { messageExpiryInterval: 5 } }, { t: 3 }],
      [{ cmd: 'pubrel', messageId: 42 }, { t: 11 }]
    ]
    for (const [record, meta] of records) {
      const value = encodeRecord(record, meta)
      const { fields, meta: m, payloadBytes } = decodeHead(value)
      expect(decodeQueuedHead(value)).toEqual({
        cmd: fields.cmd,
        brokerId: fields.brokerId,
        brokerCounter: fields.brokerCounter,
        messageId: fields.messageId,
        qos: fields.qos ?? 1,
        enqueuedAt: m?.t ?? 0,
        payloadBytes
      })
    }
    const publish = encodeRecord(records[0][0], records[0][1])
    expect(() => decodeQueuedHead(publish.subarray(0, 30))).toThrow(UndecodableValueError)
  })

  it('writes a queued copy straight from the packet with the bytes its record gives, and leaves other shapes to the record', () => {
    const payload = Buffer.from([0, 1, 2, 0xff])
    const base = { cmd: 'publish', topic: 'a/b', payload, qos: 1, retain: true, dup: false, brokerId: 'broker-1', brokerCounter: 42 }
    const shapes: Array<[Record<string, unknown>, boolean]> = [
      [base, true],
      [{ ...base, clientId: 'publisher' }, true],
      [{ ...base, nl: undefined }, true],
      [{ ...base, payload: 'text', dup: undefined, cmd: undefined }, true],
      [{ ...base, payload: new Uint8Array([7, 8]) }, true],
      [{ ...base, brokerId: undefined, brokerCounter: undefined, topic: 'ü/é' }, true],
      [{ ...base, nl: true }, false],
      [{ ...base, properties: { contentType: 'x' } }, false],
      [{ ...base, properties: undefined }, false],
      [{ ...base, messageExpiry: 5 }, false],
      [{ ...base, clientId: undefined }, false],
      [{ ...base, brokerId: null }, false],
      [{ ...base, dup: 1 }, false]
    ]
    for (const [packet, direct] of shapes) {
      for (const [qos, retain] of [[1, false], [2, true], [0, false]] as const) {
        const expected = encodeRecord(packetRecord(packet, { qos, retain, messageId: undefined }), { t: 1234.5 })
        expect(encodeQueuedCopy(packet, qos, retain, 1234.5), JSON.stringify(packet)).toEqual(expected)
        expect(encodeQueuedPublish(packet, qos, retain, 1234.5) !== undefined, JSON.stringify(packet)).toBe(direct)
      }
    }
  })

  it('writes a retained message straight from the packet with the bytes its copy gives, and leaves other shapes to the copy', () => {
    const broker = { id: 'broker-1', counter: 41 }
    const payload = Buffer.from([0, 1, 2, 0xff])
    const published = { cmd: 'publish', topic: 'a/b', payload, qos: 1, retain: true, dup: false, messageId: 7 }
    class Inherited { constructor () { Object.assign(this, packetRecord(published, {})) } }
    (Inherited.prototype as unknown as Record<string, unknown>).extra = 1
    const shapes: Array<[object, boolean]> = [
      // what aedes hands the store: its Packet of a QoS 1 and 2 publish (messageId present, undefined)
      [new Packet(published, broker), true],
      [new Packet({ ...published, qos: 2 }, broker), true],
      [new Packet({ ...published, clientId: 'publisher' }, broker), true],
      [new Packet({ ...published, payload: 'text' }, broker), true],
      [packetRecord(published, {}), true],
      // a QoS 0 Packet has no messageId key, MQTT 5 properties and an expiry are not in the binary form
      [new Packet({ ...published, qos: 0 }, broker), false],
      [new Packet({ ...published, properties: { contentType: 'x' } }, broker), false],
      [new Packet({ ...published, messageExpiry: 5 }, broker), false],
      [{ ...packetRecord(published, {}), extra: 1 }, false],
      [new Inherited(), false]
    ]
    for (const [packet, direct] of shapes) {
      const expected = encodeRecord(plainCopy(packet as Record<string, unknown>), { t: 1234.5 })
      const written = encodeRetainedPublish(packet as Record<string, unknown>, 1234.5)
      expect(written !== undefined, JSON.stringify(packet)).toBe(direct)
      if (written !== undefined) expect(written, JSON.stringify(packet)).toEqual(expected)
      expect(decodeRecord(expected).fields).toEqual({ ...plainCopy(packet as Record<string, unknown>) })
    }
  })

  it('rejects values it did not write', () => {
    for (const bad of [Buffer.alloc(0), Buffer.from('hello world'), Buffer.from([1, 0, 0, 0, 99, 1]), Buffer.from([1, 0, 0, 0, 2, 0x7b, 0x7d]), Buffer.from([2, 0, 1]), Buffer.from([3, 0, 0]), Buffer.concat([Buffer.from([2, 0, 1]), Buffer.alloc(18), Buffer.from([0, 9, 0, 0, 0, 0])])]) {
      expect(() => decodeRecord(bad)).toThrow(UndecodableValueError)
    }
  })
})

describe('key layout', () => {
  it('encodes client ids so they never contain the separator, and decodes them back', () => {
    for (const id of ['plain', 'with!bang', '100%', '%21', 'a%25!b', 'ünï 😀', '']) {
      const enc = encodeClientId(id)
      expect(enc.includes('!')).toBe(false)
      expect(decodeClientId(enc)).toBe(id)
    }
  })

  it('keeps one client range away from ids that extend it', () => {
    const range = prefixRange(`o!${encodeClientId('abc')}!`)
    const inRange = (key: string): boolean => key >= range.gte && key < range.lt
    expect(inRange(outgoingKey('abc', 1))).toBe(true)
    expect(inRange(outgoingKey('abcde', 1))).toBe(false)
    expect(inRange(outgoingKey(encodeClientId('abc!'), 1))).toBe(false)
  })

  it('sorts queue keys by sequence number', () => {
    expect(outgoingKey('c', 9) < outgoingKey('c', 10)).toBe(true)
    expect(parseNumberedKey(outgoingKey('c%21', 42), 16)).toEqual({ clientId: 'c!', n: 42 })
    expect(parseNumberedKey('o!c!12', 16)).toBeUndefined()
    expect(splitClientKey('s!c!a/b!c')).toEqual({ clientId: 'c', rest: 'a/b!c' })
  })

  it('writes a sequence number as 16 zero-padded digits in the key of a queue entry', () => {
    for (const seq of [0, 1, 9, 10, 12345, 2 ** 40, 9_999_999_999_999_999]) {
      expect(outgoingKey(encodeClientId('c!'), seq)).toBe(`o!c%21!${String(seq).padStart(16, '0')}`)
    }
  })
})
