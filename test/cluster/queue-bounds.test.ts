import { describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/clients.js'
import { useCluster, waitForRoute } from './support.js'

/**
 * sessions.maxTotalQueuedMessages in cluster mode: the bound counts every node's session queues in Redis, and a
 * session over it gives up its own oldest messages (dead-lettered as broker-queue-full) whichever node enqueues.
 */
describe('broker-wide queue bounds across the cluster', () => {
  const { node, client } = useCluster()

  it('counts the queues of sessions made on either node; the sessions keep their newest messages', async () => {
    const settings = { 'sessions.maxTotalQueuedMessages': 10, 'sessions.overflowPolicy': 'dropOldest' }
    const a = await node('a', settings)
    const b = await node('b', settings)
    for (const [n, id] of [[a, 'fleet-a'], [b, 'fleet-b']] as const) {
      const sub = await client(n.mqttUrl, { clientId: id, clean: false })
      await sub.subscribeAsync('fleet/#', { qos: 1 })
      await sub.endAsync()
    }
    const watcher = await client(b.mqttUrl, { clientId: 'dlq-watcher' })
    await watcher.subscribeAsync('$DLQ/#', { qos: 1 })
    await waitForRoute(a, b, '$DLQ/broker-queue-full/fleet/1')
    // 8 messages for 2 offline sessions: 16 copies for a bound of 10 over the whole cluster
    const pub = await client(a.mqttUrl, { clientId: 'fleet-pub' })
    for (let i = 1; i <= 8; i++) await pub.publishAsync(`fleet/${i}`, `m${i}`, { qos: 1 })
    const [infoA, infoB] = [await b.broker.store.sessionInfo('fleet-a'), await a.broker.store.sessionInfo('fleet-b')]
    expect((infoA?.queued ?? 0) + (infoB?.queued ?? 0)).toBe(10)
    await waitFor(() => watcher.received.length >= 6, 'six broker-queue-full dead letters')
    expect(watcher.received.every(m => m.topic.startsWith('$DLQ/broker-queue-full/fleet/'))).toBe(true)

    // each session keeps its own newest five (the bound was reached after five messages), resumed on either node
    const backA = await client(b.mqttUrl, { clientId: 'fleet-a', clean: false })
    const backB = await client(a.mqttUrl, { clientId: 'fleet-b', clean: false })
    await waitFor(() => backA.received.length + backB.received.length >= 10, 'the ten kept messages')
    for (const back of [backA, backB]) expect(back.received.map(m => m.payload)).toEqual(['m4', 'm5', 'm6', 'm7', 'm8'])
    expect(watcher.received).toHaveLength(6)
  })
})
