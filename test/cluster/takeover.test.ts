import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { IDisconnectPacket } from 'mqtt'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import type { TestBroker } from '../helpers/broker.js'
import { connectClient, connectV5, endClient, waitFor, sleep, type TestClient } from '../helpers/clients.js'
import { startNode } from './support.js'

let redis: TestRedis
const nodes: TestBroker[] = []
const clients: TestClient[] = []

beforeAll(async () => { redis = await startTestRedis() })
afterAll(async () => { await redis.close() })
afterEach(async () => {
  for (const c of clients.splice(0)) await endClient(c, true)
  for (const n of nodes.splice(0)) await n.close()
})

async function pair (): Promise<[TestBroker, TestBroker]> {
  const a = await startNode(redis.url, 'a')
  nodes.push(a)
  const b = await startNode(redis.url, 'b')
  nodes.push(b)
  // each knows the other before a client connects (the notice goes to the nodes known at that moment)
  await waitFor(() => a.broker.cluster?.nodes().length === 2 && b.broker.cluster?.nodes().length === 2, 'both nodes registered')
  return [a, b]
}

describe('take-over across nodes', () => {
  it('a client id connecting on node B closes its older connection on node A; an MQTT 5 one gets DISCONNECT 0x8E', async () => {
    const [a, b] = await pair()
    const old = await connectV5(a.mqttUrl, { clientId: 'device-1' })
    clients.push(old)
    let disconnect: IDisconnectPacket | undefined
    old.on('disconnect', packet => { disconnect = packet })
    const closed = new Promise<void>(resolve => old.once('close', () => resolve()))
    const fresh = await connectV5(b.mqttUrl, { clientId: 'device-1' })
    clients.push(fresh)
    await closed
    expect(disconnect?.reasonCode).toBe(0x8E)
    expect(a.broker.aedes.connectedClients).toBe(0)
    // the new connection stays
    await sleep(300)
    expect(fresh.connected).toBe(true)
  })

  it('an MQTT 3.1.1 client is closed on the other node, and the take-over works both ways', async () => {
    const [a, b] = await pair()
    const first = await connectClient(a.mqttUrl, { clientId: 'device-2' })
    clients.push(first)
    const firstClosed = new Promise<void>(resolve => first.once('close', () => resolve()))
    const second = await connectClient(b.mqttUrl, { clientId: 'device-2' })
    clients.push(second)
    await firstClosed
    const secondClosed = new Promise<void>(resolve => second.once('close', () => resolve()))
    const third = await connectClient(a.mqttUrl, { clientId: 'device-2' })
    clients.push(third)
    await secondClosed
    await sleep(300)
    expect(third.connected).toBe(true)
    expect(b.broker.aedes.connectedClients).toBe(0)
  })
})
