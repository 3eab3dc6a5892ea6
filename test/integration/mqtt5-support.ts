import { afterEach, beforeEach, expect } from 'vitest'
import type { IPublishPacket, Packet } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { endClient, type TestClient } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'

/**
 * A fresh broker for each test of the MQTT 5 files, handed to `started` before the test runs; the clients a test
 * hands to `track` are ended (forcibly) after it. Returns `track`.
 */
export function brokerPerTest (started: (broker: TestBroker) => void): (c: TestClient) => TestClient {
  let t: TestBroker | undefined
  const clients: TestClient[] = []
  beforeEach(async () => {
    t = await startTestBroker()
    started(t)
  })
  afterEach(async () => {
    await Promise.all(clients.splice(0).map(async c => await endClient(c, true)))
    await t?.close()
  })
  return (c) => {
    clients.push(c)
    return c
  }
}

export type RawV5 = RawClient & { publishes: () => IPublishPacket[], payloads: () => string[], sessionPresent: boolean }

/**
 * A byte-level MQTT 5 client that acknowledges nothing on its own (CONNECT `properties` as given), subscribed to
 * `filter` at `qos` when one is given and it has no session.
 */
export async function rawV5 (t: TestBroker, clientId: string, filter?: string, qos: 1 | 2 = 1, properties: Record<string, number> = {}, clean = true): Promise<RawV5> {
  const raw = await openRaw('tcp', t, { version: 5 })
  const connack = await raw.connect({ clientId, protocolVersion: 5, clean, properties })
  expect(connack.reasonCode).toBe(0)
  if (filter !== undefined && !connack.sessionPresent) {
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] })
    await raw.next('suback')
  }
  const publishes = (): IPublishPacket[] => raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish')
  return Object.assign(raw, { publishes, payloads: () => publishes().map(p => p.payload.toString()), sessionPresent: connack.sessionPresent })
}

/**
 * A PINGREQ answered: the broker writes to a connection in order, so every PUBLISH it had written before it read the
 * PINGREQ has arrived.
 */
export async function settled (raw: RawClient): Promise<void> {
  raw.send({ cmd: 'pingreq' } as Packet)
  await raw.next('pingresp')
}
