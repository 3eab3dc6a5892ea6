import { describe, expect, it } from 'vitest'
import type { IDisconnectPacket } from 'mqtt'
import type { TestBroker } from '../helpers/broker.js'
import { waitFor, sleep } from '../helpers/clients.js'
import { useCluster, waitForRoute } from './support.js'

const { node, client } = useCluster()

async function pair (): Promise<[TestBroker, TestBroker]> {
  const a = await node('a')
  const b = await node('b')
  // each knows the other before a client connects (the notice goes to the nodes known at that moment)
  await waitFor(() => a.broker.cluster?.nodes().length === 2 && b.broker.cluster?.nodes().length === 2, 'both nodes registered')
  return [a, b]
}

describe('take-over across nodes', () => {
  it('a client id connecting on node B closes its older connection on node A; an MQTT 5 one gets DISCONNECT 0x8E', async () => {
    const [a, b] = await pair()
    const old = await client(a.mqttUrl, { clientId: 'device-1' }, true)
    let disconnect: IDisconnectPacket | undefined
    old.on('disconnect', packet => { disconnect = packet })
    const closed = new Promise<void>(resolve => old.once('close', () => resolve()))
    const fresh = await client(b.mqttUrl, { clientId: 'device-1' }, true)
    await closed
    expect(disconnect?.reasonCode).toBe(0x8E)
    expect(a.broker.aedes.connectedClients).toBe(0)
    // the new connection stays
    await sleep(300)
    expect(fresh.connected).toBe(true)
  })

  it('an MQTT 3.1.1 client is closed on the other node, and the take-over works both ways', async () => {
    const [a, b] = await pair()
    const first = await client(a.mqttUrl, { clientId: 'device-2' })
    const firstClosed = new Promise<void>(resolve => first.once('close', () => resolve()))
    const second = await client(b.mqttUrl, { clientId: 'device-2' })
    await firstClosed
    const secondClosed = new Promise<void>(resolve => second.once('close', () => resolve()))
    const third = await client(a.mqttUrl, { clientId: 'device-2' })
    await secondClosed
    await sleep(300)
    expect(third.connected).toBe(true)
    expect(b.broker.aedes.connectedClients).toBe(0)
  })
  it("publishes the older connection's will once, and keeps the new connection's will for its own end", async () => {
    const [a, b] = await pair()
    const watcher = await client(b.mqttUrl, { clientId: 'will-watcher' })
    await watcher.subscribeAsync('wills/#', { qos: 1 })
    await waitForRoute(a, b, 'wills/x')
    const will = (payload: string) => ({ topic: 'wills/device-3', payload: Buffer.from(payload), qos: 1 as const, retain: false })
    const old = await client(a.mqttUrl, { clientId: 'device-3', clean: false, will: will('gone from a') })
    const closed = new Promise<void>(resolve => old.once('close', () => resolve()))
    const fresh = await client(b.mqttUrl, { clientId: 'device-3', clean: false, will: will('gone from b') })
    await closed
    await waitFor(() => watcher.received.length > 0, 'the older connection\'s will')
    await sleep(300)
    expect(watcher.received.map(m => m.payload)).toEqual(['gone from a'])
    // nothing of a's connection is left for a later end of a to publish again
    await a.close()
    fresh.end(true)
    await waitFor(() => watcher.received.length > 1, 'the new connection\'s will')
    await sleep(300)
    expect(watcher.received.map(m => m.payload)).toEqual(['gone from a', 'gone from b'])
  })

  it('of two connections made at nearly the same time on two nodes, exactly one stays (seeded, 15 rounds)', async () => {
    const [a, b] = await pair()
    let seed = 15
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    for (let round = 0; round < 15; round++) {
      const id = `racer-${round}`
      const delay = Math.floor(random() * 6)
      const [onA, onB] = await Promise.all([
        client(a.mqttUrl, { clientId: id }),
        sleep(delay).then(async () => await client(b.mqttUrl, { clientId: id }))
      ])
      await waitFor(() => !(onA.connected && onB.connected), `round ${round}: one connection closed`)
      await sleep(150)
      expect([onA.connected, onB.connected].filter(Boolean).length, `round ${round}, ${delay} ms apart`).toBe(1)
      onA.end(true)
      onB.end(true)
    }
  })
})
