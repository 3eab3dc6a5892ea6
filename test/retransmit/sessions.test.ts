import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqttPacket, { type IPublishPacket, type IPubrelPacket, type Packet } from 'mqtt-packet'
import type { Client, PublishPacket } from 'aedes'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { Store } from 'mqtt'
import { connectClient, endClient } from '../helpers/clients.js'
import { fence, isConnected, mqttClient, rawClient, uid, useBroker, waitFor, type TestClient } from '../conformance/support.js'
import {
  QUIET_MS, RETRY_MS, expectQuiet, expectResentUntilPuback, publishesWith, resendLogs, resentPublish, roundTrip, subscribedRaw
} from './support.js'

// mqtt.retryIntervalMs with persistent sessions, the offline queue replayed at reconnect, a real client library,
// a socket that is not taking data, and the setting off.
const tb = useBroker({ 'mqtt.retryIntervalMs': RETRY_MS, 'log.level': 'debug' })

/** A persistent session subscribed to a new topic, and the first delivery to it of one message published at `qos`. */
async function persistentDelivery (qos: 1 | 2, payload: string) {
  const topic = `${uid('r')}/t`
  const clientId = uid('r')
  const before = await subscribedRaw(tb(), 'tcp', topic, qos, { clientId, clean: false })
  const pub = await mqttClient(tb(), 'tcp')
  await pub.publishAsync(topic, payload, { qos })
  const first = await before.next<IPublishPacket>('publish')
  return { topic, clientId, before, pub, first }
}

describe('retransmission and persistent sessions', () => {
  it('resends a live delivery to a persistent session like to a clean one', async () => {
    const topic = `${uid('r')}/t`
    await expectResentUntilPuback(tb(), await subscribedRaw(tb(), 'tcp', topic, 1, { clean: false }), topic, 'durable')
  })

  it('resends what the reconnect replayed: a message sent before and one queued while offline, in order', async () => {
    const { topic, clientId, before, pub, first: sent } = await persistentDelivery(1, 'sent')
    await before.disconnect()
    await waitFor(() => !isConnected(tb(), clientId), 'the session to go offline')
    await pub.publishAsync(topic, 'queued', { qos: 1 })

    const raw = await rawClient(tb(), 'tcp')
    expect(await raw.connect({ clientId, clean: false })).toMatchObject({ returnCode: 0, sessionPresent: true })
    const replayed = await raw.next<IPublishPacket>('publish')
    const queued = await raw.next<IPublishPacket>('publish')
    expect(replayed).toMatchObject({ messageId: sent.messageId, dup: true })
    expect(replayed.payload.toString()).toBe('sent')
    expect(queued.payload.toString()).toBe('queued')

    const resent = [await resentPublish(raw, replayed.messageId), await resentPublish(raw, queued.messageId)]
    expect(resent.map(p => p.payload.toString())).toEqual(['sent', 'queued'])
    expect(raw.received.indexOf(resent[0])).toBeLessThan(raw.received.indexOf(resent[1]))
    for (const p of [replayed, queued]) raw.send({ cmd: 'puback', messageId: p.messageId })
    await roundTrip(raw)
    await expectQuiet(() => raw.received.filter(p => p.cmd === 'publish').length)
  })

  it('resends a PUBREL replayed at reconnect until PUBCOMP', async () => {
    const { clientId, before, first } = await persistentDelivery(2, 'released')
    before.send({ cmd: 'pubrec', messageId: first.messageId })
    await before.next('pubrel')
    before.destroy()
    await waitFor(() => !isConnected(tb(), clientId), 'the session to go offline')

    const raw = await rawClient(tb(), 'tcp')
    expect(await raw.connect({ clientId, clean: false })).toMatchObject({ returnCode: 0, sessionPresent: true })
    const isPubrel = (p: Packet): boolean => p.cmd === 'pubrel' && p.messageId === first.messageId
    await raw.next<IPubrelPacket>(isPubrel)
    await raw.next<IPubrelPacket>(isPubrel, RETRY_MS * 15)
    expect(raw.received.some(p => p.cmd === 'publish')).toBe(false)
    raw.send({ cmd: 'pubcomp', messageId: first.messageId })
    await roundTrip(raw)
    await expectQuiet(() => raw.received.filter(isPubrel).length)
  })
})

describe('retransmission to mqtt.js with acknowledgements held back', () => {
  // mqtt.js reads nothing else while it works on a packet, so what the broker resends meanwhile queues up behind it.
  const HOLD_MS = RETRY_MS * 3

  it('QoS 2, PUBREC and PUBCOMP late: the application gets the message once', async () => {
    const topic = `${uid('r')}/t`
    const clientId = uid('r')
    const publishes: boolean[] = []
    // The first PUBREC goes out once mqtt.js has stored the message, so a slow store holds it back.
    class SlowFirstStore extends Store {
      override put (packet: Packet, cb: (err?: Error) => void): this {
        if (packet.cmd === 'publish') publishes.push(packet.dup)
        if (publishes.length === 1) setTimeout(() => super.put(packet, cb), HOLD_MS)
        else super.put(packet, cb)
        return this
      }
    }
    const sub = await mqttClient(tb(), 'tcp', { clientId, incomingStore: new SlowFirstStore() })
    // The message reaches the application with the first PUBREL, before the PUBCOMP, which waits.
    let released = 0
    sub.handleMessage = (_packet, done) => { setTimeout(done, ++released === 1 ? HOLD_MS : 0) }
    await sub.subscribeAsync(topic, { qos: 2 })
    const pub = await mqttClient(tb(), 'tcp')
    await pub.publishAsync(topic, 'exactly-once', { qos: 2 })
    await waitFor(() => sub.received.length > 0, 'the message')
    await waitFor(() => !hasUnacknowledged(clientId), 'the QoS 2 flow to complete', RETRY_MS * 25)
    await fence(pub, sub, topic, 0)
    expect(publishes[0]).toBe(false)
    expect(publishes.slice(1).length).toBeGreaterThan(0)
    expect(publishes.slice(1).every(dup => dup)).toBe(true)
    expect(resendLogs(tb(), clientId).some(l => l.pubrels === 1)).toBe(true)
    expect(messages(sub)).toEqual(['exactly-once'])
  })

  it('QoS 1, PUBACK late: the resent copy arrives with DUP=1 and the client settles', async () => {
    const topic = `${uid('r')}/t`
    const clientId = uid('r')
    const sub = await mqttClient(tb(), 'tcp', { clientId })
    let handled = 0
    sub.handleMessage = (_packet, done) => { setTimeout(done, ++handled === 1 ? HOLD_MS : 0) }
    await sub.subscribeAsync(topic, { qos: 1 })
    const pub = await mqttClient(tb(), 'tcp')
    await pub.publishAsync(topic, 'at-least-once', { qos: 1 })
    await waitFor(() => sub.received.length >= 2, 'the message and a resent copy', RETRY_MS * 15)
    expect(sub.received[0]).toMatchObject({ payload: 'at-least-once', dup: false })
    expect(sub.received.slice(1).every(m => m.payload === 'at-least-once' && m.dup)).toBe(true)
    await waitFor(() => !hasUnacknowledged(clientId), 'the PUBACK', RETRY_MS * 25)
    await fence(pub, sub, topic, 0)
    await expectQuiet(() => messages(sub).length)
  })
})

/** What reached the application, fences left out. */
function messages (sub: TestClient): string[] {
  return sub.received.map(m => m.payload).filter(p => !p.startsWith('fence-'))
}

function connected (clientId: string): Client | undefined {
  return (tb().broker.aedes as unknown as { clients: Record<string, Client> }).clients[clientId]
}

/** Whether the broker still holds unacknowledged packets for this client, as the wire metrics count them. */
function hasUnacknowledged (clientId: string): boolean {
  const client = connected(clientId)
  return client !== undefined && (tb().broker.metrics.connection(client)?.inflightOut.size ?? 0) > 0
}

describe('retransmission and a socket that is not taking data', () => {
  it('waits for the drain, then resends', async () => {
    const topic = `${uid('r')}/t`
    const clientId = uid('r')
    const socket = net.connect({ host: '127.0.0.1', port: tb().mqttPort })
    const parser = mqttPacket.parser()
    const got: Packet[] = []
    parser.on('packet', (p: Packet) => got.push(p))
    socket.on('data', (chunk: Buffer) => parser.parse(chunk))
    await new Promise(resolve => socket.once('connect', resolve))
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0 }))
    socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] }))
    await waitFor(() => got.some(p => p.cmd === 'suback'), 'SUBACK')
    socket.pause()
    try {
      // More than the kernel buffers hold for a reader that has stopped reading.
      const payload = Buffer.alloc(1_000_000, 7)
      for (let i = 0; i < 16; i++) {
        tb().broker.aedes.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false } as PublishPacket, () => {})
      }
      const conn = connected(clientId)?.conn as net.Socket
      await waitFor(() => conn.writableNeedDrain, 'the socket to back up')
      const resendsWhileFull = resendLogs(tb(), clientId).length
      await new Promise(resolve => setTimeout(resolve, QUIET_MS))
      expect(conn.writableNeedDrain).toBe(true)
      expect(resendLogs(tb(), clientId).length).toBe(resendsWhileFull)

      socket.resume()
      await waitFor(() => got.some(p => p.cmd === 'publish' && p.dup), 'a resent PUBLISH after the drain', 15_000)
      const originals = got.filter((p): p is IPublishPacket => p.cmd === 'publish' && !p.dup).map(p => p.messageId)
      const firstResent = got.find((p): p is IPublishPacket => p.cmd === 'publish' && p.dup)
      expect(firstResent?.messageId).toBe(originals[0])
    } finally {
      socket.destroy()
    }
  })
})

describe('retryIntervalMs 0 (the default)', () => {
  let off: TestBroker
  beforeAll(async () => { off = await startTestBroker({ 'log.level': 'warn' }) })
  afterAll(async () => { await off.close() })

  it('resends nothing on a live connection', async () => {
    const topic = `${uid('r')}/t`
    const raw = await subscribedRaw(off, 'tcp', topic, 1)
    const pub = await connectClient(off.mqttUrl)
    try {
      await pub.publishAsync(topic, 'once', { qos: 1 })
      const first = await raw.next<IPublishPacket>('publish')
      await expectQuiet(() => publishesWith(raw, first.messageId).length)
      expect(publishesWith(raw, first.messageId)).toHaveLength(1)
    } finally {
      await endClient(pub, true)
    }
  })
})
