import { describe, expect, it } from 'vitest'
import { decodeEntry, encodeConnected, encodeKick, encodeKicked, encodeMessage } from '../../src/cluster/codec.js'
import type { DeliveryPacket } from '../../src/protocol/aedes-internals.js'

/** What Redis hands back for the fields given to XADD: Buffers. */
const asRead = (fields: Array<string | Buffer>): Buffer[] => fields.map(f => Buffer.isBuffer(f) ? Buffer.from(f) : Buffer.from(f))

const base = { cmd: 'publish', dup: false, messageId: undefined as unknown as number } as const

describe('cluster bus entries', () => {
  it('carry a message whole: topic, payload bytes, QoS, retain, origin, publisher, MQTT 5 properties and expiry', () => {
    const packet = {
      ...base,
      topic: 'plant/é/温度/' + 'x'.repeat(2000),
      payload: Buffer.from([0, 255, 1, 254]),
      qos: 2,
      retain: true,
      brokerId: 'broker-1',
      brokerCounter: 2 ** 40 + 3,
      clientId: 'pub/ü',
      properties: { contentType: 'text/plain', correlationData: Buffer.from([9, 8]), userProperties: { a: ['1', '2'] } },
      messageExpiry: 1_700_000_000_000
    } as unknown as DeliveryPacket
    const entry = decodeEntry(asRead(encodeMessage(packet, 'run-1')))
    expect(entry).toEqual({ kind: 'message', packet, run: 'run-1' })
  })

  it('carry a plain MQTT 3.1.1 message without the optional parts, an empty payload included', () => {
    const packet = { ...base, topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false, brokerId: 'b', brokerCounter: 1 } as unknown as DeliveryPacket
    const entry = decodeEntry(asRead(encodeMessage(packet, 'r')))
    expect(entry).toEqual({ kind: 'message', packet, run: 'r' })
    expect(entry?.kind === 'message' && 'clientId' in entry.packet).toBe(false)
  })

  it('carry a connection notice, and skip entries of a kind they do not know', () => {
    expect(decodeEntry(asRead(encodeConnected('dev 1', 'node-a', 42)))).toEqual({ kind: 'connected', clientId: 'dev 1', nodeId: 'node-a', generation: 42 })
    expect(decodeEntry(asRead(['open', 'node-a']))).toBeUndefined()
  })

  it('carry an administrator\'s kick and its answer', () => {
    expect(decodeEntry(asRead(encodeKick('dev 1', 'node-a', 'r1')))).toEqual({ kind: 'kick', clientId: 'dev 1', from: 'node-a', request: 'r1' })
    expect(decodeEntry(asRead(encodeKicked('r1', true)))).toEqual({ kind: 'kicked', request: 'r1', found: true })
  })
})
