import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import mqttPacket from 'mqtt-packet'
import WebSocket from 'ws'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, transports, waitFor, type Transport } from '../helpers/clients.js'

type Client = Awaited<ReturnType<typeof connectClient>>

const TOTAL = 400
// 400 × 64 KiB is far more than the loopback socket buffers take, so the paused subscriber's connection backs up
const PAYLOAD_BYTES = 64 * 1024

/**
 * A clean QoS 1 subscriber on a bare socket that acknowledges what it reads and can stop reading: the slow reader
 * of limits.maxInflightMessages / maxInflightBytes (docs/security.md).
 */
interface SlowReader {
  /** Indices (the payload's first four bytes) of the messages read, in order. */
  received: number[]
  closed: () => boolean
  pause: () => void
  resume: () => void
  destroy: () => void
}

async function slowReader (b: TestBroker, transport: Transport, clientId: string, filter: string): Promise<SlowReader> {
  const link = transport === 'tcp' ? await tcpLink(b.mqttPort) : await wsLink(b.wsUrl)
  const received: number[] = []
  const parser = mqttPacket.parser()
  const suback = new Promise<void>(resolve => {
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (p.cmd === 'suback') resolve()
      if (p.cmd !== 'publish') return
      received.push((p.payload as Buffer).readUInt32BE(0))
      if (p.qos > 0) link.send(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId as number }))
    })
  })
  link.onData(chunk => { parser.parse(chunk) })
  link.send(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0 }))
  link.send(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] }))
  await suback
  return { received, closed: link.closed, pause: link.pause, resume: link.resume, destroy: link.destroy }
}

/** The bytes of one connection, over a bare socket or a WebSocket, with reading paused and resumed at will. */
interface Link {
  send: (bytes: Buffer) => void
  onData: (f: (chunk: Buffer) => void) => void
  closed: () => boolean
  pause: () => void
  resume: () => void
  destroy: () => void
}

async function tcpLink (port: number): Promise<Link> {
  const s = net.connect(port, '127.0.0.1')
  s.on('error', () => {})
  let closed = false
  s.on('close', () => { closed = true })
  await new Promise(resolve => s.once('connect', resolve))
  return {
    send: bytes => { if (!s.destroyed) s.write(bytes) },
    onData: f => { s.on('data', f) },
    closed: () => closed,
    pause: () => { s.pause() },
    resume: () => { s.resume() },
    destroy: () => { s.destroy() }
  }
}

async function wsLink (url: string): Promise<Link> {
  const ws = new WebSocket(url, 'mqtt')
  ws.on('error', () => {})
  let closed = false
  ws.on('close', () => { closed = true })
  await new Promise(resolve => ws.once('open', resolve))
  return {
    send: bytes => { if (ws.readyState === WebSocket.OPEN) ws.send(bytes) },
    onData: f => { ws.on('message', (data: Buffer) => { f(data) }) },
    closed: () => closed,
    pause: () => { ws.pause() },
    resume: () => { ws.resume() },
    destroy: () => { ws.terminate() }
  }
}

describe.each(transports)('a slow reader (limits.maxInflightMessages, maxInflightBytes) over %s', (transport: Transport) => {
  let t: TestBroker | undefined
  const clients: Client[] = []
  const readers: SlowReader[] = []
  afterEach(async () => {
    for (const r of readers.splice(0)) r.destroy()
    await Promise.all(clients.splice(0).map(async c => await endClient(c, true)))
    await t?.close()
    t = undefined
  })

  /** Publishes TOTAL QoS 1 messages on `topic` while `reader` is paused; resolves once every one is acknowledged. */
  async function publishWhilePaused (b: TestBroker, reader: SlowReader, topic: string): Promise<void> {
    const pub = await connectClient(b.mqttUrl, { clientId: 'pub' })
    clients.push(pub)
    reader.pause()
    let acked = 0
    for (let i = 0; i < TOTAL; i++) {
      const payload = Buffer.alloc(PAYLOAD_BYTES)
      payload.writeUInt32BE(i)
      pub.publish(topic, payload, { qos: 1 }, () => { acked++ })
    }
    // the publisher is held by the paused reader for the stall grace (a second) at most, then acknowledged
    await waitFor(() => acked === TOTAL, 'every PUBACK while the subscriber does not read', 20_000)
  }

  it('queues for a clean QoS 1 subscriber that stops reading for a while: all 400 arrive once it reads again', async () => {
    const b = t = await startTestBroker({ 'log.level': 'warn' })
    const reader = await slowReader(b, transport, 'slow', 'slow/#')
    readers.push(reader)
    await publishWhilePaused(b, reader, 'slow/t')
    reader.resume()
    await waitFor(() => new Set(reader.received).size === TOTAL, 'all 400 messages at the subscriber', 20_000)
    expect(reader.closed()).toBe(false)
    expect(b.broker.security.limits.slowConsumersDisconnected).toBe(0)
    expect(b.broker.store.deadLetters.list(e => e.reason === 'slow-consumer')).toEqual([])
  })

  it('disconnects one past the limit and dead-letters what it had not taken: every message is received or dead-lettered', async () => {
    const b = t = await startTestBroker({ 'log.level': 'warn', 'limits.maxInflightMessages': 50, 'deadLetter.ratePerSecond': 0 })
    const reader = await slowReader(b, transport, 'too-slow', 'slow/#')
    readers.push(reader)
    await publishWhilePaused(b, reader, 'slow/t')
    await waitFor(() => b.logs.some(l => l.msg === 'disconnecting a client that is not reading' && l.clientId === 'too-slow' && l.limit === 'limits.maxInflightMessages'), 'the slow consumer disconnected')
    // what reached its socket before the disconnect is still read; the rest is in the dead-letter log
    reader.resume()
    await waitFor(() => reader.closed(), 'the subscriber\'s connection closed')
    // the dead letters are recorded as the copies are refused, before the publisher's last PUBACK
    const letters = b.broker.store.deadLetters.list(e => e.reason === 'slow-consumer')
    const payloads = await Promise.all(letters.map(async e => await b.broker.store.deadLetters.payload(e.id)))
    const deadLettered = payloads.map(p => (p as Buffer).readUInt32BE(0))
    expect(deadLettered.length).toBeGreaterThan(0)
    // nothing that was routed to it is silently gone: what it read and what was dead-lettered leave no gap (the
    // messages published after it was disconnected were never for it)
    const accounted = new Set([...reader.received, ...deadLettered])
    const upTo = Math.max(...accounted)
    expect(accounted.size).toBe(upTo + 1)
    expect(upTo).toBeGreaterThan(50)
    expect(new Set(reader.received).size).toBeLessThan(TOTAL)
    expect(letters.every(e => e.target === 'too-slow' && e.topic === 'slow/t' && e.qos === 1)).toBe(true)
    expect(b.broker.security.limits.slowConsumersDisconnected).toBe(1)
  })
})
