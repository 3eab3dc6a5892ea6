import { describe, expect, it } from 'vitest'
import type { TestBroker } from '../helpers/broker.js'
import { endClient, waitFor } from '../helpers/clients.js'
import { scrape, value } from '../metrics/prom.js'
import { useCluster } from './support.js'

/** The admin API of any node says whether a persistent session's client is connected, to whichever node it is. */
describe('admin API: persistent sessions across nodes', () => {
  const { node, client } = useCluster()

  async function get (t: TestBroker, path: string): Promise<Record<string, unknown>> {
    const res = await fetch(`${t.adminUrl}${path}`)
    expect(res.status, path).toBe(200)
    return await res.json() as Record<string, unknown>
  }

  it('lists a session whose client is connected to node b as connected on node a too, and not once it has gone', async () => {
    const a = await node('a')
    const b = await node('b')
    const c = await client(b.mqttUrl, { clientId: 'roaming', clean: false })
    await c.subscribeAsync('roam/#', { qos: 1 })
    const seen = async (t: TestBroker): Promise<unknown[]> => [
      ((await get(t, '/api/sessions?prefix=roaming')).items as Array<{ connected: boolean }>)[0].connected,
      (await get(t, '/api/sessions/roaming')).connected,
      ((await get(t, '/api/clients/roaming')).session as { connected: boolean }).connected,
      (await get(t, '/api/clients/roaming')).connected,
      ((await get(t, '/api/subscriptions?prefix=roaming')).items as Array<{ connected: boolean }>).map(s => s.connected)
    ]
    await waitFor(async () => (await get(b, '/api/sessions/roaming')).connected === true, 'the session connected on node b')
    expect(await seen(b)).toEqual([true, true, true, true, [true]])
    expect(await seen(a)).toEqual([true, true, true, true, [true]])
    await endClient(c)
    await waitFor(async () => (await get(a, '/api/sessions/roaming')).connected === false, 'the session disconnected')
    expect(await seen(a)).toEqual([false, false, false, false, [false]])
    expect(await seen(b)).toEqual([false, false, false, false, [false]])
    expect((await fetch(`${a.adminUrl}/api/sessions/roaming`, { method: 'DELETE' })).status).toBe(200)
  })

  it('counts a session whose client is connected to node b as not offline in node a\'s /metrics', async () => {
    const a = await node('a')
    const b = await node('b')
    const here = await client(a.mqttUrl, { clientId: 'on-a', clean: false })
    await here.subscribeAsync('x/#', { qos: 1 })
    const there = await client(b.mqttUrl, { clientId: 'on-b', clean: false })
    await there.subscribeAsync('x/#', { qos: 1 })
    const gone = await client(b.mqttUrl, { clientId: 'gone', clean: false })
    await gone.subscribeAsync('x/#', { qos: 1 })
    await endClient(gone)
    await waitFor(async () => (await get(a, '/api/sessions/gone')).connected === false, 'the session of gone disconnected')
    // the overview is cached for a while (one taken at the node's start may be the one read first): until it is taken again
    for (const t of [a, b]) {
      await waitFor(async () => value(await scrape(t.adminUrl), 'culex_sessions_offline') === 1, `one offline session in the /metrics of node ${t === a ? 'a' : 'b'}`)
    }
  })
})
