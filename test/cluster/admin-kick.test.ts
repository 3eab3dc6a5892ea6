import { describe, expect, it } from 'vitest'
import type { TestBroker } from '../helpers/broker.js'
import { waitFor } from '../helpers/clients.js'
import { useCluster } from './support.js'

/**
 * The admin API's kick and purge act on the client wherever it is connected: any node's admin API closes a client
 * connected to another node, as it does its own.
 */
describe('admin kick and purge across nodes', () => {
  const { node, client } = useCluster()

  async function call (t: TestBroker, method: string, path: string): Promise<{ status: number, body: Record<string, unknown> }> {
    const res = await fetch(`${t.adminUrl}${path}`, { method })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }

  async function twoNodes (): Promise<[TestBroker, TestBroker]> {
    const a = await node('a')
    const b = await node('b')
    await waitFor(() => a.broker.cluster?.nodes().length === 2 && b.broker.cluster?.nodes().length === 2, 'both nodes registered')
    return [a, b]
  }

  it('DELETE /api/clients/:id on node a closes the client connected to node b (MQTT 5: DISCONNECT 0x98)', async () => {
    const [a, b] = await twoNodes()
    const c = await client(b.mqttUrl, { clientId: 'far away' }, true)
    const told: Array<number | undefined> = []
    c.on('disconnect', packet => told.push(packet.reasonCode))
    const r = await call(a, 'DELETE', `/api/clients/${encodeURIComponent('far away')}`)
    expect(r).toMatchObject({ status: 200, body: { clientId: 'far away', kicked: true } })
    await waitFor(() => !c.connected, 'the client on node b closed')
    expect(told).toEqual([0x98])
    expect(b.logs.some(l => l.msg === 'client kicked' && l.clientId === 'far away')).toBe(true)
    expect((await call(a, 'DELETE', '/api/clients/nobody')).status).toBe(404)
  })

  it('DELETE /api/sessions/:id on node a closes the client connected to node b before its session goes', async () => {
    const [a, b] = await twoNodes()
    const c = await client(b.mqttUrl, { clientId: 'purged', clean: false })
    await c.subscribeAsync('purged/#', { qos: 1 })
    const r = await call(a, 'DELETE', '/api/sessions/purged')
    expect(r).toMatchObject({ status: 200, body: { clientId: 'purged', purged: true, kicked: true } })
    await waitFor(() => !c.connected, 'the client on node b closed')
    expect((await call(a, 'GET', '/api/sessions/purged')).status).toBe(404)
    expect((await call(b, 'GET', '/api/sessions/purged')).status).toBe(404)
    const again = await client(a.mqttUrl, { clientId: 'purged', clean: false })
    expect(again.sessionPresent).toBe(false)
  })
})
