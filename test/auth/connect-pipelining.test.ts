import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import mqttPacket, { type IConnectPacket, type IPublishPacket, type Packet } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, transports, waitFor, type Transport } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'
import { Rng } from '../fuzz/mutator.js'
import { tempDir, writePasswordFile } from './support.js'

/**
 * Packets a client sends right after CONNECT, without waiting for CONNACK: none is handled before the login has
 * succeeded (a refused login handles none of them), and a logged-in client's are all handled, in order, after CONNACK.
 */

// Anonymous clients (and so any client not logged in) may publish to open/#, never to closed/#.
const ACL = `topic write open/#
user alice
topic readwrite #
`

type Credentials = 'wrong password' | 'no user name'
const credentials: Array<{ creds: Credentials, login: Partial<IConnectPacket>, code: number }> = [
  { creds: 'wrong password', login: { username: 'alice', password: Buffer.from('guess') }, code: 4 },
  { creds: 'no user name', login: {}, code: 5 }
]
const sizes = [200, 70_000, 300_000]
const kinds = [{ qos: 0, retain: false }, { qos: 1, retain: false }, { qos: 1, retain: true }] as const
type Framing = 'one write' | 'a write per packet'
const framings: Framing[] = ['one write', 'a write per packet']

const refused = credentials.flatMap(c => sizes.flatMap(size => kinds.flatMap(k => transports.flatMap(transport =>
  framings.map(framing => ({ ...c, size, ...k, transport, framing }))))))

const encode = (p: Packet): Buffer => mqttPacket.generate(p)
const connect = (clientId: string, login: Partial<IConnectPacket>): IConnectPacket =>
  ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId, ...login })
const publish = (topic: string, payload: Buffer, qos: 0 | 1, retain: boolean, messageId?: number): IPublishPacket =>
  ({ cmd: 'publish', topic, payload, qos, retain, dup: false, ...(qos > 0 ? { messageId } : {}) })

/** Sends the packets as one write, or each as its own (a WebSocket message each over WebSocket). */
function sendAll (raw: RawClient, packets: Packet[], framing: Framing): void {
  if (framing === 'one write') raw.sendRaw(Buffer.concat(packets.map(encode)))
  else for (const p of packets) raw.send(p)
}

describe('packets pipelined after CONNECT', () => {
  let t: TestBroker
  let watcher: Awaited<ReturnType<typeof connectClient>>
  const urls = (): { mqttUrl: string, wsUrl: string } => ({ mqttUrl: t.mqttUrl, wsUrl: t.wsUrl })

  beforeAll(async () => {
    const dir = await tempDir()
    const aclFile = path.join(dir, 'acl.conf')
    await writeFile(aclFile, ACL)
    t = await startTestBroker({
      'auth.passwordFile': await writePasswordFile(path.join(dir, 'passwd'), { alice: 'a' }),
      'auth.aclFile': aclFile,
      'auth.watchFiles': false,
      'auth.failedLoginDelayMs': 0,
      'listeners.mqtt.allowAnonymous': false,
      'listeners.ws.allowAnonymous': false
    })
    watcher = await connectClient(t.mqttUrl, { clientId: 'watcher', username: 'alice', password: 'a' })
    await watcher.subscribeAsync('#', { qos: 1 })
  })
  afterAll(async () => {
    await endClient(watcher)
    await t.close()
  })

  /** Publishes a marker through a logged-in client and waits for the watcher to get it: what came before it has too. */
  async function barrier (topic: string): Promise<void> {
    await watcher.publishAsync(topic, 'marker', { qos: 1 })
    await waitFor(() => watcher.received.some(m => m.topic === topic && m.payload === 'marker'), `the marker on ${topic}`)
  }

  it.each(refused)('$creds, $size B, QoS $qos, retain $retain, $transport, $framing: nothing is handled, CONNACK $code', async ({ login, code, size, qos, retain, transport, framing }) => {
    const id = `${login.username ?? 'anon'}-${size}-${qos}-${String(retain)}-${transport}-${framing.replaceAll(' ', '-')}`
    const raw = await openRaw(transport, urls())
    const payload = Buffer.alloc(size, 'x')
    sendAll(raw, [connect(id, login), publish(`open/${id}`, payload, qos, retain, 1), publish(`closed/${id}`, payload, qos, retain, 2)], framing)
    expect(await raw.next('connack')).toMatchObject({ returnCode: code })
    expect(await raw.waitClosed()).toBe(true)
    expect(raw.received.map(p => p.cmd)).toEqual(['connack'])
    await barrier(`open/${id}`)
    expect(watcher.received.filter(m => m.topic.endsWith(id)).map(m => m.payload)).toEqual(['marker'])
    expect(t.broker.store.stats().retained).toBe(0)
    expect(t.broker.store.deadLetters.count).toBe(0)
  })

  it('random pipelines cut into random writes: a refused login handles none, a logged-in one all, in order (seeded)', async () => {
    const seed = Number(process.env.PIPELINE_SEED ?? 1307)
    const r = new Rng(seed)
    for (let round = 0; round < 30; round++) {
      const transport = r.pick(transports)
      const { login, code } = r.pick([...credentials, { login: { username: 'alice', password: Buffer.from('a') }, code: 0 }])
      const id = `seed-${seed}-${round}`
      const topic = `closed/${id}`
      const qos = r.pick([0, 1] as const)
      const payloads = Array.from({ length: 1 + r.int(12) }, (_, i) => Buffer.alloc(r.chance(0.3) ? r.int(200_000) : r.int(300), 97 + i))
      const bytes = Buffer.concat([connect(id, login), ...payloads.map((p, i) => publish(topic, p, qos, false, i + 1))].map(encode))
      const raw = await openRaw(transport, urls())
      for (let at = 0; at < bytes.length;) {
        const end = Math.min(bytes.length, at + 1 + r.int(r.chance(0.5) ? 100 : 100_000))
        raw.sendRaw(bytes.subarray(at, end))
        at = end
        if (r.chance(0.3)) await new Promise(resolve => setImmediate(resolve))
      }
      const what = `round ${round} (seed ${seed}, ${transport}, CONNACK ${code}, QoS ${qos}, ${payloads.length} publishes)`
      if (code !== 0) {
        expect(await raw.next('connack'), what).toMatchObject({ returnCode: code })
        expect(await raw.waitClosed(), what).toBe(true)
        expect(raw.received.map(p => p.cmd), what).toEqual(['connack'])
        await barrier(topic)
        expect(watcher.received.filter(m => m.topic === topic).map(m => m.payload), what).toEqual(['marker'])
        continue
      }
      await waitFor(() => watcher.received.filter(m => m.topic === topic).length === payloads.length, what)
      expect(watcher.received.filter(m => m.topic === topic).map(m => m.payload), what).toEqual(payloads.map(p => p.toString()))
      if (qos === 1) await waitFor(() => raw.received.length === 1 + payloads.length, `the PUBACKs of ${what}`)
      expect(raw.received[0], what).toMatchObject({ cmd: 'connack', returnCode: 0 })
      expect(raw.received.slice(1).map(p => p.cmd === 'puback' ? p.messageId : p.cmd), what).toEqual(qos === 1 ? payloads.map((_, i) => i + 1) : [])
      await raw.disconnect()
    }
    expect(t.broker.store.deadLetters.count).toBe(0)
  })

  it.each(transports)('a logged-in client\'s 1,000 pipelined packets are all handled in order after CONNACK (%s)', async (transport: Transport) => {
    const raw = await openRaw(transport, urls())
    const topic = `closed/many-${transport}`
    const packets: Packet[] = [connect(`many-${transport}`, { username: 'alice', password: Buffer.from('a') })]
    for (let i = 1; i <= 1000; i++) packets.push(publish(topic, Buffer.from(String(i)), 1, false, i))
    raw.sendRaw(Buffer.concat(packets.map(encode)))
    await waitFor(() => raw.received.length === 1001, '1,000 PUBACKs', 10_000)
    expect(raw.received[0]).toMatchObject({ cmd: 'connack', returnCode: 0 })
    expect(raw.received.slice(1).map(p => p.cmd === 'puback' ? p.messageId : p.cmd)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1))
    await waitFor(() => watcher.received.filter(m => m.topic === topic).length === 1000, 'the 1,000 messages')
    expect(watcher.received.filter(m => m.topic === topic).map(m => m.payload)).toEqual(Array.from({ length: 1000 }, (_, i) => String(i + 1)))
    await raw.disconnect()
  })

  it.each(transports)('a logged-in client\'s large pipelined publishes arrive whole and in order after CONNACK (%s)', async (transport: Transport) => {
    const raw = await openRaw(transport, urls())
    const topic = `closed/large-${transport}`
    const payloads = [300_000, 70_000, 200, 300_000].map((size, i) => Buffer.alloc(size, String.fromCharCode(97 + i)))
    sendAll(raw, [
      connect(`large-${transport}`, { username: 'alice', password: Buffer.from('a') }),
      ...payloads.map((payload, i) => publish(topic, payload, 1, i === 3, i + 1))
    ], 'a write per packet')
    await waitFor(() => raw.received.length === 5, 'CONNACK and four PUBACKs')
    expect(raw.received[0]).toMatchObject({ cmd: 'connack', returnCode: 0 })
    expect(raw.received.slice(1).map(p => p.cmd === 'puback' ? p.messageId : p.cmd)).toEqual([1, 2, 3, 4])
    await waitFor(() => watcher.received.filter(m => m.topic === topic).length === 4, 'the four messages')
    expect(watcher.received.filter(m => m.topic === topic).map(m => m.payload)).toEqual(payloads.map(p => p.toString()))
    expect(t.broker.store.stats().retained).toBe(1)
    await watcher.publishAsync(topic, '', { qos: 1, retain: true })
    await waitFor(() => t.broker.store.stats().retained === 0, 'the retained message cleared')
    await raw.disconnect()
  })
})

describe('the bound on what is held before CONNACK', () => {
  it('closes a connection that sends more than mqtt.maxPendingBeforeConnackBytes with CONNECT, handling none of it', async () => {
    const t = await startTestBroker({ 'mqtt.maxPendingBeforeConnackBytes': 50_000 })
    try {
      const watcher = await connectClient(t.mqttUrl)
      await watcher.subscribeAsync('flood/#', { qos: 1 })
      const raw = await openRaw('ws', t)
      const packets: Packet[] = [connect('flood', {})]
      for (let i = 1; i <= 100; i++) packets.push(publish('flood/x', Buffer.alloc(1000), 1, false, i))
      raw.sendRaw(Buffer.concat(packets.map(encode)))
      expect(await raw.waitClosed()).toBe(true)
      expect(raw.received).toEqual([])
      const line = t.logs.find(l => l.msg === 'too much sent before CONNACK, closing connection')
      expect(line).toMatchObject({ maxBytes: 50_000 })
      expect(line?.heldBytes).toBeGreaterThan(50_000)
      // Just under the bound is held and handled.
      const ok = await openRaw('ws', t)
      ok.sendRaw(Buffer.concat(packets.slice(0, 45).map(encode)))
      await waitFor(() => ok.received.length === 45, 'CONNACK and 44 PUBACKs')
      expect(ok.received[0]).toMatchObject({ cmd: 'connack', returnCode: 0 })
      await waitFor(() => watcher.received.length === 44, 'the 44 messages')
      await ok.disconnect()
      await endClient(watcher)
    } finally {
      await t.close()
    }
  })
})
