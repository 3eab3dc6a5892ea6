import { describe, expect, it } from 'vitest'
import type { TestBroker } from '../helpers/broker.js'
import { sleep, waitFor, type TestClient } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'
import { useCluster } from './support.js'

/** MQTT 5 Will Delay Interval across nodes: a delayed will is timed by the node its client was last connected to. */
describe('delayed wills across nodes', () => {
  const { node, client } = useCluster()

  async function connectWithWill (t: TestBroker, clientId: string, payload: string): Promise<RawClient> {
    const raw = await openRaw('tcp', t, { version: 5 })
    const connack = await raw.connect({
      clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 },
      will: { topic: `wd/${clientId}`, payload: Buffer.from(payload), qos: 1, retain: false, properties: { willDelayInterval: 1 } }
    })
    expect(connack.reasonCode).toBe(0)
    return raw
  }

  /** Nodes a and b, each knowing the other, and a client on node b watching the wills. */
  async function watched (watcherId: string): Promise<{ a: TestBroker, b: TestBroker, watcher: TestClient }> {
    const a = await node('a')
    const b = await node('b')
    await waitFor(() => a.broker.cluster?.nodes().length === 2 && b.broker.cluster?.nodes().length === 2, 'both nodes registered')
    const watcher = await client(b.mqttUrl, { clientId: watcherId })
    await watcher.subscribeAsync('wd/#', { qos: 1 })
    return { a, b, watcher }
  }

  async function drop (raw: RawClient): Promise<void> {
    raw.destroy()
    await raw.closed
  }

  it('a client that left node a, came back on node b and left again within the delay has its will published once', async () => {
    const { a, b, watcher } = await watched('wd-watcher')
    await drop(await connectWithWill(a, 'roamer', 'left a'))
    await drop(await connectWithWill(b, 'roamer', 'left b'))
    await waitFor(() => watcher.received.length > 0, 'the delayed will', 5000)
    // node a's timer of its own connection's will came due a moment before node b's, and was put off to the same time
    await sleep(1500)
    expect(watcher.received.map(m => m.payload)).toEqual(['left b'])
  })

  it('a client taken over by node b is not given up for gone by node a: its will is not published, its will on b stays not due', async () => {
    const { a, b, watcher } = await watched('wd-watcher-2')
    const first = await connectWithWill(a, 'mover', 'left a')
    const moved = await connectWithWill(b, 'mover', 'left b')
    await first.closed
    // well past the 1 s delay a timer on node a would have waited
    await sleep(2000)
    expect(watcher.received).toEqual([])
    // the will node b has is not marked due: the node that settles node b's run once it died or restarted would have
    // published it at once instead of its delay after
    expect((await b.broker.store.getWill({ id: 'mover' }))?.publishAt).toBeUndefined()
    await drop(moved)
    await waitFor(() => watcher.received.length > 0, 'the will once the client left node b', 5000)
    expect(watcher.received.map(m => m.payload)).toEqual(['left b'])
  })
})
