import { describe, expect, it } from 'vitest'
import { decodeHead, decodeRecord, encodeRecord, UndecodableValueError } from '../../src/store/codec.js'
import { decodeClientId, encodeClientId, outgoingKey, parseNumberedKey, prefixRange, splitClientKey } from '../../src/store/layout.js'

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

  it('rejects values it did not write', () => {
    for (const bad of [Buffer.alloc(0), Buffer.from('hello world'), Buffer.from([1, 0, 0, 0, 99, 1]), Buffer.from([1, 0, 0, 0, 2, 0x7b, 0x7d])]) {
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
})
