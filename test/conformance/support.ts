import { randomBytes } from 'node:crypto'
import { afterAll, afterEach, beforeAll } from 'vitest'
import type { IClientOptions, MqttClient } from 'mqtt'
import type { PublishPacket } from 'aedes'
import type { IConnackPacket, IConnectPacket } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor, type Received, type Transport } from '../helpers/clients.js'
import { openRaw, remainingLength, type RawClient } from '../helpers/raw-client.js'

/**
 * Shared plumbing for the conformance files: one real broker per file (both transports use it), clients that are
 * closed after every test, unique names so tests never see each other's topics or sessions, and fences.
 */

export type TestClient = MqttClient & { received: Received[], sessionPresent: boolean, connack: IConnackPacket }

let broker: TestBroker | undefined
const mqttClients = new Set<TestClient>()
const rawClients = new Set<RawClient>()

/** Starts the file's broker before its tests and stops it after; closes every client after each test. */
export function useBroker (settings: Record<string, unknown> = {}): () => TestBroker {
  beforeAll(async () => { broker = await startTestBroker({ 'log.level': 'warn', ...settings }) })
  afterAll(async () => { await broker?.close() })
  afterEach(async () => {
    for (const c of rawClients) if (!c.isClosed) c.destroy()
    rawClients.clear()
    await Promise.all([...mqttClients].map(async c => await endClient(c, true)))
    mqttClients.clear()
  })
  return () => {
    if (broker === undefined) throw new Error('broker not started')
    return broker
  }
}

export function urlOf (tb: TestBroker, transport: Transport): string {
  return transport === 'tcp' ? tb.mqttUrl : tb.wsUrl
}

/** A name no other test uses: for client ids and topic prefixes. */
export function uid (prefix = 't'): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`
}

/** An mqtt.js client (MQTT 3.1.1, no reconnect), connected, closed after the test. */
export async function mqttClient (tb: TestBroker, transport: Transport, opts: IClientOptions = {}): Promise<TestClient> {
  const c = await connectClient(urlOf(tb, transport), opts)
  mqttClients.add(c)
  return c
}

/** An mqtt.js client at MQTT 5 (protocol level 5, no reconnect), connected, closed after the test. */
export async function v5Client (tb: TestBroker, transport: Transport, opts: IClientOptions = {}): Promise<TestClient> {
  return await mqttClient(tb, transport, { protocolVersion: 5, ...opts })
}

/** A byte-level MQTT 5 client, connected with CONNECT (Clean Start 1 unless `opts` says) and CONNACK 0x00 checked. */
export async function rawV5 (tb: TestBroker, transport: Transport, opts: Partial<IConnectPacket> & { clientId: string }): Promise<RawClient> {
  const raw = await rawClient(tb, transport, { version: 5 })
  const connack = await raw.connect({ protocolVersion: 5, ...opts })
  if (connack.reasonCode !== 0) throw new Error(`CONNACK reason code ${String(connack.reasonCode)} for ${opts.clientId}`)
  return raw
}

/** A byte-level client, TCP connected (not yet MQTT connected), destroyed after the test. */
export async function rawClient (tb: TestBroker, transport: Transport, opts: { version?: 3 | 4 | 5 } = {}): Promise<RawClient> {
  const c = await openRaw(transport, tb, opts)
  rawClients.add(c)
  return c
}

/** Subscribes and returns the granted QoS (or 128) per filter, in order. */
export async function subscribe (client: MqttClient, filters: Record<string, 0 | 1 | 2>): Promise<number[]> {
  const grants = await client.subscribeAsync(Object.fromEntries(Object.entries(filters).map(([t, qos]) => [t, { qos }])))
  return grants.map(g => g.qos)
}

export function messagesOn (client: TestClient, topic: string): Received[] {
  return client.received.filter(m => m.topic === topic)
}

/** Waits until `client` has received `count` messages on `topic`. */
export async function waitForMessages (client: TestClient, topic: string, count = 1, timeoutMs = 5000): Promise<Received[]> {
  await waitFor(() => messagesOn(client, topic).length >= count, `${count} message(s) on ${topic}`, timeoutMs)
  return messagesOn(client, topic)
}

let fences = 0
/**
 * Publishes a marker from `publisher` on `topic` (which `subscriber` must be subscribed to) and waits until it
 * arrives. Anything that was going to be delivered to `subscriber` before it has arrived by then, so a test can
 * assert that something did NOT arrive without sleeping.
 */
export async function fence (publisher: MqttClient, subscriber: TestClient, topic: string, qos: 0 | 1 | 2 = 1): Promise<void> {
  const payload = `fence-${++fences}`
  await publisher.publishAsync(topic, payload, { qos })
  await waitFor(() => subscriber.received.some(m => m.topic === topic && m.payload === payload), `fence ${payload} on ${topic}`)
}

/** Publishes from inside the broker (no client: allowed on `$` topics) and waits until it is routed. */
export async function serverPublish (tb: TestBroker, packet: { topic: string, payload: string, qos?: 0 | 1 | 2, retain?: boolean }): Promise<void> {
  const p = { cmd: 'publish', qos: 0, retain: false, dup: false, ...packet, payload: Buffer.from(packet.payload) } as PublishPacket
  await new Promise<void>((resolve, reject) => tb.broker.aedes.publish(p, err => err == null ? resolve() : reject(err)))
}

/** Whether a client with this id is currently registered (connected) in the broker. */
export function isConnected (tb: TestBroker, clientId: string): boolean {
  return (tb.broker.aedes as unknown as { clients: Record<string, unknown> }).clients[clientId] !== undefined
}

/**
 * What a new subscriber to `<base>/+` is sent, markers excepted. `<base>/a` is retained before the test acts and
 * `<base>/z` after, so a topic `<base>/m…` lies between the two markers both by name and by time: once the new
 * subscriber has both markers, every retained message under `<base>` has arrived, whatever order the store keeps.
 */
export async function retainedProbe (tb: TestBroker, transport: Transport, base: string): Promise<{ read: () => Promise<Received[]> }> {
  const marker = await mqttClient(tb, transport)
  await marker.publishAsync(`${base}/a`, 'marker-a', { qos: 1, retain: true })
  return {
    read: async () => {
      await marker.publishAsync(`${base}/z`, 'marker-z', { qos: 1, retain: true })
      const reader = await mqttClient(tb, transport)
      await subscribe(reader, { [`${base}/+`]: 2 })
      await waitForMessages(reader, `${base}/a`)
      await waitForMessages(reader, `${base}/z`)
      return reader.received.filter(m => m.topic !== `${base}/a` && m.topic !== `${base}/z`)
    }
  }
}

/** Another client can still subscribe, publish and receive. */
export async function brokerStillServes (tb: TestBroker, transport: Transport): Promise<void> {
  const c = await mqttClient(tb, transport)
  const topic = `${uid('ok')}/t`
  await subscribe(c, { [topic]: 1 })
  await fence(c, c, topic)
}

/** A broker closes on a protocol violation within milliseconds; waiting longer only slows down a failing case. */
export const CLOSE_MS = 1000

/** A length-prefixed string of MQTT, from text or from raw bytes (which need not be UTF-8). */
export function str (s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
}

/** A packet from its first byte and body, with the remaining length worked out. */
export function packet (firstByte: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body)
  return Buffer.concat([Buffer.from([firstByte]), remainingLength(b.length), b])
}

export const id16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff])

export { waitFor, sleep } from '../helpers/clients.js'
export { transports, type Transport } from '../helpers/clients.js'
export type { RawClient } from '../helpers/raw-client.js'
