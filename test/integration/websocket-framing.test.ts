/**
 * MQTT over WebSocket as a client sees it message by message: every WebSocket message the broker sends holds whole
 * MQTT packets (one or a batch of them), never a part of one.
 */
import mqttPacket, { type Packet } from 'mqtt-packet'
import WebSocket from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'

interface Message { bytes: number, packets: Packet[], leftover: number }

/** A WebSocket client that records, per message received, the packets it held and any bytes of a packet cut off. */
async function openCounting (url: string): Promise<{ messages: Message[], stream: Packet[], send: (p: Packet) => void, close: () => void }> {
  const ws = new WebSocket(url, 'mqtt')
  ws.binaryType = 'nodebuffer'
  const messages: Message[] = []
  // The packets of the byte stream, however they were cut into messages.
  const stream: Packet[] = []
  const streamParser = mqttPacket.parser({ protocolVersion: 4 })
  streamParser.on('packet', (p: Packet) => stream.push(p))
  ws.on('message', (data: Buffer) => {
    streamParser.parse(data)
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    const packets: Packet[] = []
    parser.on('packet', (p: Packet) => packets.push(p))
    parser.on('error', () => { /* a cut-off packet shows as leftover bytes */ })
    const leftover = parser.parse(data)
    messages.push({ bytes: data.length, packets, leftover })
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  return {
    messages,
    stream,
    send: p => ws.send(mqttPacket.generate(p)),
    close: () => ws.terminate()
  }
}

describe('MQTT over WebSocket framing', () => {
  let t: TestBroker
  beforeAll(async () => { t = await startTestBroker() })
  afterAll(async () => { await t.close() })

  it('CONNACK, SUBACK, PUBACK and PUBLISH (10 KB, QoS 1 and 0) each arrive in whole packets, one WebSocket message per packet or batch', async () => {
    const c = await openCounting(t.wsUrl)
    const all = (): Packet[] => c.messages.flatMap(m => m.packets)
    const got = async (cmd: string, n = 1): Promise<void> => {
      await waitFor(() => c.stream.filter(p => p.cmd === cmd).length >= n, `${n} ${cmd}`)
    }
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'ws-frames', clean: true, keepalive: 0 })
    await got('connack')
    expect(c.messages).toHaveLength(1)
    expect(c.messages[0]).toMatchObject({ bytes: 4, leftover: 0 })

    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'frames/#', qos: 1 }] })
    await got('suback')
    expect(c.messages).toHaveLength(2)
    expect(c.messages[1]).toMatchObject({ bytes: 5, leftover: 0 })

    const payload = Buffer.alloc(10_000, 7)
    c.send({ cmd: 'publish', messageId: 2, topic: 'frames/a', qos: 1, retain: false, dup: false, payload })
    await got('puback')
    await got('publish')
    const delivered = c.stream.find(p => p.cmd === 'publish') as mqttPacket.IPublishPacket
    expect(Buffer.from(delivered.payload).equals(payload)).toBe(true)
    c.send({ cmd: 'puback', messageId: delivered.messageId as number })

    // A publish from another client, at QoS 0: the live delivery path.
    const other = await connectClient(t.mqttUrl, { clientId: 'frames-pub' })
    await other.publishAsync('frames/b', payload, { qos: 0 })
    await got('publish', 2)
    await endClient(other)

    for (const m of c.messages) {
      expect(m.leftover).toBe(0)
      expect(m.packets.length).toBeGreaterThan(0)
    }
    // Every packet arrived whole in one message: as many messages as packets at most (fewer when a turn batched them).
    expect(all().map(p => p.cmd).sort()).toEqual(['connack', 'puback', 'publish', 'publish', 'suback'])
    expect(c.messages.length).toBeLessThanOrEqual(5)
    c.close()
  })
})
