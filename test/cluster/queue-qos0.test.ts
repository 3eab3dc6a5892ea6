import { describe, expect, it } from 'vitest'
import { endClient, sleep, waitFor } from '../helpers/clients.js'
import { useCluster, waitForRoute } from './support.js'

const { node, client } = useCluster()

describe('sessions.queueQos0 across nodes', () => {
  it('a persistent session gets QoS 0 messages published on another node live and once while connected, and those sent while it was away when it is back', async () => {
    const settings = { 'sessions.queueQos0': true }
    const a = await node('a', settings)
    const b = await node('b', settings)
    const sub = await client(b.mqttUrl, { clientId: 'q0', clean: false })
    await sub.subscribeAsync('q0/#', { qos: 0 })
    await waitForRoute(a, b, 'q0/1')
    const pub = await client(a.mqttUrl, { clientId: 'q0-pub' })
    for (let i = 0; i < 20; i++) await pub.publishAsync('q0/1', `live ${i}`, { qos: 0 })
    await waitFor(() => sub.received.length === 20, '20 live messages')
    await sleep(300)
    expect((await a.broker.store.sessionInfo('q0'))?.queued ?? 0, 'queued for an online session').toBe(0)
    await endClient(sub)
    const away = Array.from({ length: 10 }, (_, i) => `away ${i}`)
    for (const payload of away) await pub.publishAsync('q0/1', payload, { qos: 0 })
    await waitFor(async () => (await a.broker.store.sessionInfo('q0'))?.queued === 10, '10 queued for the session away')
    // back on the other node than before: what was queued comes, none of the live ones again
    const back = await client(a.mqttUrl, { clientId: 'q0', clean: false })
    await waitForRoute(b, a, 'q0/1')
    await pub.publishAsync('q0/1', 'marker', { qos: 0 })
    await waitFor(() => back.received.some(m => m.payload === 'marker'), 'the marker')
    await sleep(200)
    // each once, the queued ones first: the marker, published the moment after CONNACK, waits for the replay
    expect(back.received.map(m => m.payload)).toEqual([...away, 'marker'])
  })
})
