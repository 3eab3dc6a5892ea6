import { describe, expect, it, vi } from 'vitest'
import net from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import type { TestBroker } from '../helpers/broker.js'
import { waitFor } from '../helpers/clients.js'
import { brokerPerTest } from './mqtt5-support.js'
import { forwardedProperties } from '../../src/protocol/v5/outgoing.js'

/** A socket that records every byte the broker sends, split into packets, and writes bytes as they are given. */
interface ByteClient {
  /** Each packet received, as its bytes, in order. */
  frames: Buffer[]
  closed: boolean
  write: (bytes: Buffer) => void
  end: () => void
}

async function openBytes (port: number): Promise<ByteClient> {
  const socket = net.connect({ host: '127.0.0.1', port })
  socket.setNoDelay(true)
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const client: ByteClient = { frames: [], closed: false, write: bytes => socket.write(bytes), end: () => socket.destroy() }
  let held = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    held = Buffer.concat([held, chunk])
    for (;;) {
      let length = 0
      let multiplier = 1
      let i = 1
      for (; i < held.length; i++) {
        length += (held[i] & 0x7f) * multiplier
        multiplier *= 0x80
        if ((held[i] & 0x80) === 0) break
      }
      if (i >= held.length || i + 1 + length > held.length) return
      client.frames.push(held.subarray(0, i + 1 + length))
      held = held.subarray(i + 1 + length)
    }
  })
  socket.on('error', () => { /* a reset by the broker is a close */ })
  socket.on('close', () => { client.closed = true })
  return client
}

const v5 = { protocolVersion: 5 } as const
const gen = (p: Record<string, unknown>, protocolVersion: 4 | 5 = 5): Buffer => mqttPacket.generate(p as unknown as Packet, { protocolVersion })
const COMMAND = { connack: 2, publish: 3, suback: 9 } as const
const framesOf = (c: ByteClient, type: number): Buffer[] => c.frames.filter(f => f[0] >> 4 === type)

/** A connected client at `protocolVersion`, subscribed to `filter` at QoS 1 when given one. */
async function connected (t: TestBroker, clientId: string, protocolVersion: 4 | 5, filter?: string): Promise<ByteClient> {
  const c = await openBytes(t.mqttPort)
  c.write(gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clientId, clean: true, keepalive: 0 }, protocolVersion))
  await waitFor(() => framesOf(c, COMMAND.connack).length === 1, `${clientId}'s CONNACK`)
  if (filter !== undefined) {
    c.write(gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] }, protocolVersion))
    await waitFor(() => framesOf(c, COMMAND.suback).length === 1, `${clientId}'s SUBACK`)
  }
  return c
}

/** What the broker parsed from these PUBLISH bytes before the fast path: mqtt-packet's packet. */
function slowParse (bytes: Buffer): { topic: string, payload: Buffer, qos: number, properties?: Record<string, unknown> } {
  const parser = mqttPacket.parser(v5)
  let packet: Packet | undefined
  parser.on('packet', (p: Packet) => { packet = p })
  parser.parse(bytes)
  if (packet?.cmd !== 'publish') throw new Error('not a PUBLISH')
  return packet as unknown as { topic: string, payload: Buffer, qos: number, properties?: Record<string, unknown> }
}

/**
 * The bytes the slow path sends a subscriber for a PUBLISH the broker got as `sent`: mqtt-packet's parse, the forwarded
 * properties only (MQTT 5) or none (3.1.1), mqtt-packet's encoding with the packet identifier the copy went with.
 */
function slowPathBytes (sent: Buffer, received: Buffer, protocolVersion: 4 | 5): Buffer {
  const incoming = slowParse(sent)
  let topicAt = 1
  while ((received[topicAt] & 0x80) !== 0) topicAt++
  const messageId = incoming.qos > 0 ? received.readUInt16BE(topicAt + 3 + Buffer.byteLength(incoming.topic)) : undefined
  const properties = protocolVersion === 5 ? forwardedProperties(incoming.properties) : undefined
  return gen({ cmd: 'publish', topic: incoming.topic, payload: incoming.payload, qos: incoming.qos, retain: false, dup: false, messageId, properties }, protocolVersion)
}

const str = (s: string): number[] => [Buffer.byteLength(s) >> 8, Buffer.byteLength(s) & 0xff, ...Buffer.from(s)]
/** A QoS 1 MQTT 5 PUBLISH to "f/x", packet id 1, payload "p", with these bytes as its property block. */
const blockPublish = (block: number[], propertyLength = block.length): Buffer =>
  Buffer.from([0x32, 2 + 3 + 2 + 1 + block.length + 1, 0, 3, ...Buffer.from('f/x'), 0, 1, propertyLength, ...block, 0x70])

const FORWARDED = { payloadFormatIndicator: true, contentType: 'text/plain', responseTopic: 'reply/1', correlationData: Buffer.from([0, 1, 2, 0xff]), userProperties: { a: '1', b: ['2', '3'], 'é': 'ü' } }

/**
 * The fast path (src/protocol/fast-parser.ts, v5/publish-properties.ts, frames.ts) against the slow path it replaces
 * for MQTT 5 connections, through a real broker: PUBLISH bytes in, the subscribers' bytes out, which must be the
 * bytes mqtt-packet's parse and encode of the same PUBLISH give; what mqtt-packet refused is still refused.
 */
describe('MQTT 5 PUBLISH on the fast path, byte for byte', () => {
  let t: TestBroker
  brokerPerTest(started => { t = started })

  async function deliver (publishes: Buffer[]): Promise<{ v5: Buffer[], v311: Buffer[] }> {
    const sub5 = await connected(t, 'sub5', 5, 'f/#')
    const sub311 = await connected(t, 'sub311', 4, 'f/#')
    const pub = await connected(t, 'pub', 5)
    try {
      pub.write(Buffer.concat(publishes))
      await waitFor(() => framesOf(sub5, COMMAND.publish).length === publishes.length && framesOf(sub311, COMMAND.publish).length === publishes.length, 'every copy')
      return { v5: framesOf(sub5, COMMAND.publish), v311: framesOf(sub311, COMMAND.publish) }
    } finally {
      for (const c of [sub5, sub311, pub]) c.end()
    }
  }

  const cases: Array<[string, Buffer]> = [
    ['QoS 0 without properties', gen({ cmd: 'publish', topic: 'f/0', payload: Buffer.from('zero'), qos: 0 })],
    ['QoS 1 without properties', gen({ cmd: 'publish', topic: 'f/1', payload: Buffer.from('one'), qos: 1, messageId: 7 })],
    ['QoS 1 with every forwarded property', gen({ cmd: 'publish', topic: 'f/2', payload: Buffer.from('all'), qos: 1, messageId: 8, properties: FORWARDED })],
    ['QoS 0 with one user property and an empty payload', gen({ cmd: 'publish', topic: 'f/3', payload: Buffer.alloc(0), qos: 0, properties: { userProperties: { k: 'v' } } })],
    ['a Message Expiry Interval (encoded, not forwarded as it came)', gen({ cmd: 'publish', topic: 'f/4', payload: Buffer.from('exp'), qos: 1, messageId: 9, properties: { contentType: 'c', messageExpiryInterval: 600 } })],
    ['a payload of 20 000 bytes with properties', gen({ cmd: 'publish', topic: 'f/5', payload: Buffer.alloc(20_000, 7), qos: 1, messageId: 10, properties: { correlationData: Buffer.alloc(300, 1) } })]
  ]

  it.each(cases)('%s: the same bytes as the slow path, to MQTT 5 and MQTT 3.1.1 subscribers', async (_name, bytes) => {
    const { v5: got5, v311: got311 } = await deliver([bytes])
    expect([...got5[0]].join()).toEqual([...slowPathBytes(bytes, got5[0], 5)].join())
    expect(got311[0]).toEqual(slowPathBytes(bytes, got311[0], 4))
  })

  it('the same bytes whichever path parsed the PUBLISH (after an UNSUBSCRIBE in the same read, mqtt-packet parses it)', async () => {
    const publish = gen({ cmd: 'publish', topic: 'f/6', payload: Buffer.from('both'), qos: 1, messageId: 11, properties: FORWARDED })
    const unsubscribe = gen({ cmd: 'unsubscribe', messageId: 12, unsubscriptions: ['none/#'] })
    const { v5: fast } = await deliver([publish])
    expect([...fast[0]].join()).toEqual([...slowPathBytes(publish, fast[0], 5)].join())
    const sub5 = await connected(t, 'sub5-slow', 5, 'f/#')
    const pub = await connected(t, 'pub-slow', 5)
    try {
      pub.write(Buffer.concat([unsubscribe, publish]))
      await waitFor(() => framesOf(sub5, COMMAND.publish).length === 1, 'the copy')
      const slow = framesOf(sub5, COMMAND.publish)[0]
      expect([...slow].join()).toEqual([...slowPathBytes(publish, slow, 5)].join())
    } finally {
      sub5.end()
      pub.end()
    }
  })

  it('keeps user properties in the order the publisher sent them, a repeated name between others included', async () => {
    const block = [0x26, ...str('k'), ...str('1'), 0x26, ...str('j'), ...str('2'), 0x26, ...str('k'), ...str('3'), 0x03, ...str('ct')]
    const { v5: got } = await deliver([blockPublish(block)])
    // fixed header (2), topic (5), packet id (2), Property Length (1)
    expect([...got[0].subarray(10, 10 + block.length)]).toEqual(block)
    expect(got[0][9]).toBe(block.length)
  })

  const refused: Array<[string, Buffer]> = [
    ['an unknown property', blockPublish([0x7f, 1])],
    ['property identifier 0', blockPublish([0x00, 1])],
    ['a content type that is not UTF-8', blockPublish([0x03, 0, 2, 0xc3, 0x28])],
    ['a user property value that is not UTF-8', blockPublish([0x26, ...str('k'), 0, 1, 0xff])],
    ['a five-byte Property Length', Buffer.from([0x30, 11, 0, 3, ...Buffer.from('f/x'), 0x80, 0x80, 0x80, 0x80, 0x01, 0x70])]
  ]

  it.each(refused)('%s: the publisher is disconnected and nothing is delivered', async (_name, bytes) => {
    const sub5 = await connected(t, 'sub5', 5, 'f/#')
    const pub = await connected(t, 'pub', 5)
    try {
      pub.write(bytes)
      await waitFor(() => pub.closed, 'the publisher disconnected')
      expect(framesOf(sub5, COMMAND.publish)).toEqual([])
      expect(framesOf(pub, 4)).toEqual([])
    } finally {
      sub5.end()
      pub.end()
    }
  })
})

/**
 * The block every copy of a message shares goes as its bytes only where it may: a subscriber with a Subscription
 * Identifier or one taking Topic Aliases gets properties of its own, encoded in full, and the block stays as it came
 * for the others (a repeated User Property name between others tells the two apart: the block keeps `a, b, a`,
 * mqtt-packet's encoding groups it as `a, a, b`).
 */
describe('MQTT 5 properties of one subscriber own, on a PUBLISH that came through the fast path', () => {
  let t: TestBroker
  brokerPerTest(started => { t = started })

  const block = [0x26, ...str('a'), ...str('1'), 0x26, ...str('b'), ...str('2'), 0x26, ...str('a'), ...str('3'), 0x03, ...str('ct')]
  // as mqtt-packet decodes the block: keys in the order they came
  const PUBLISHED = { userProperties: { a: ['1', '3'], b: '2' }, contentType: 'ct' }

  /** A v5 client with these CONNECT properties, subscribed to f/# at QoS 1 with these SUBSCRIBE properties. */
  async function subscriber (clientId: string, connect: Record<string, unknown>, subscribe: Record<string, unknown>): Promise<ByteClient> {
    const c = await openBytes(t.mqttPort)
    c.write(gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: true, keepalive: 0, properties: connect }))
    await waitFor(() => framesOf(c, COMMAND.connack).length === 1, `${clientId}'s CONNACK`)
    c.write(gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'f/#', qos: 1 }], properties: subscribe }))
    await waitFor(() => framesOf(c, COMMAND.suback).length === 1, `${clientId}'s SUBACK`)
    return c
  }

  /** What mqtt-packet writes for the copy `received` is, with these properties (its packet id read from it). */
  function encoded (received: Buffer, topic: string, properties: Record<string, unknown>): Buffer {
    let topicAt = 1
    while ((received[topicAt] & 0x80) !== 0) topicAt++
    const messageId = received.readUInt16BE(topicAt + 3 + received.readUInt16BE(topicAt + 1))
    return gen({ cmd: 'publish', topic, payload: Buffer.from('p'), qos: 1, retain: false, dup: false, messageId, properties })
  }

  it('a Subscription Identifier and Topic Aliases are encoded into their copies, the block goes as it came to the others', async () => {
    const withId = await subscriber('with-id', {}, { subscriptionIdentifier: 42 })
    const withAliases = await subscriber('with-aliases', { topicAliasMaximum: 5 }, {})
    const plain = await subscriber('plain', {}, {})
    const pub = await connected(t, 'pub', 5)
    const clients = [withId, withAliases, plain, pub]
    try {
      // two publishes to f/x, each its own read (the fast path's), the second after the first was delivered
      for (let n = 1; n <= 2; n++) {
        pub.write(blockPublish(block))
        await waitFor(() => clients.slice(0, 3).every(c => framesOf(c, COMMAND.publish).length === n), `copy ${n}`)
      }
      for (const got of framesOf(withId, COMMAND.publish)) expect([...got].join()).toEqual([...encoded(got, 'f/x', { ...PUBLISHED, subscriptionIdentifier: 42 })].join())
      const [set, used] = framesOf(withAliases, COMMAND.publish)
      expect([...set].join()).toEqual([...encoded(set, 'f/x', { ...PUBLISHED, topicAlias: 1 })].join())
      expect([...used].join()).toEqual([...encoded(used, '', { ...PUBLISHED, topicAlias: 1 })].join())
      for (const got of framesOf(plain, COMMAND.publish)) {
        // fixed header (2), topic (5), packet id (2), Property Length (1), then the publisher's block
        expect(got[9]).toBe(block.length)
        expect([...got.subarray(10, 10 + block.length)]).toEqual(block)
      }
    } finally {
      for (const c of clients) c.end()
    }
  })

  it('nothing on the way decodes the block of a PUBLISH that goes on as it came (the publish steps, the router)', async () => {
    const plain = await subscriber('plain', {}, {})
    const pub = await connected(t, 'pub', 5)
    // every connection's parser is made: a parser made now is the block being decoded
    const decodes = vi.spyOn(mqttPacket, 'parser')
    try {
      pub.write(blockPublish([0x01, 1, ...block]))
      await waitFor(() => framesOf(plain, COMMAND.publish).length === 1 && framesOf(pub, 4).length === 1, 'the copy and the PUBACK')
      expect(decodes).not.toHaveBeenCalled()
      expect([...framesOf(plain, COMMAND.publish)[0].subarray(10, 12 + block.length)]).toEqual([0x01, 1, ...block])
    } finally {
      decodes.mockRestore()
      plain.end()
      pub.end()
    }
  })

  it('a PUBLISH that used a Topic Alias reaches every subscriber with its topic and without the alias', async () => {
    const plain = await subscriber('plain', {}, {})
    const pub = await connected(t, 'pub', 5)
    try {
      const aliased = (topic: string): Buffer => gen({ cmd: 'publish', topic, payload: Buffer.from('p'), qos: 1, messageId: 3, properties: { topicAlias: 2, contentType: 'ct' } })
      pub.write(aliased('f/x'))
      await waitFor(() => framesOf(plain, COMMAND.publish).length === 1, 'the first copy')
      pub.write(aliased(''))
      await waitFor(() => framesOf(plain, COMMAND.publish).length === 2, 'the second copy')
      for (const got of framesOf(plain, COMMAND.publish)) expect([...got].join()).toEqual([...encoded(got, 'f/x', { contentType: 'ct' })].join())
    } finally {
      plain.end()
      pub.end()
    }
  })
})
