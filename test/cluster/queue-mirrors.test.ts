import { describe, expect, it } from 'vitest'
import { endClient, waitFor } from '../helpers/clients.js'
import { useCluster } from './support.js'

/** A node mirrors the queues of the persistent sessions connected to it, and no others (docs/cluster.md). */
describe('queue mirrors across nodes', () => {
  const { node, client } = useCluster()

  it('a session whose client left node a for node b is not counted in node a\'s queued messages', async () => {
    const a = await node('a')
    const b = await node('b')
    await waitFor(() => a.broker.cluster?.nodes().length === 2 && b.broker.cluster?.nodes().length === 2, 'both nodes registered')
    const pub = await client(a.mqttUrl, { clientId: 'pub' })
    const first = await client(a.mqttUrl, { clientId: 'mover', clean: false })
    await first.subscribeAsync('mv/#', { qos: 1 })
    await pub.publishAsync('mv/1', 'on a', { qos: 1 })
    await waitFor(() => first.received.length === 1, 'the message on a')
    await endClient(first)
    const moved = await client(b.mqttUrl, { clientId: 'mover', clean: false })
    for (let i = 0; i < 20; i++) await pub.publishAsync('mv/1', `m${i}`, { qos: 1 })
    await waitFor(() => moved.received.length === 20, 'twenty messages on b')
    await waitFor(async () => (await a.broker.store.sessionInfo('mover'))?.queued === 0, 'an empty queue in Redis')
    await a.broker.store.barrier()
    expect(a.broker.store.stats().queuedMessages).toBe(0)
  })
})
