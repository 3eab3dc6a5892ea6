import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, waitFor } from '../helpers/clients.js'
import { adminGet, endAll, publishMany, silentMember } from './support.js'

/** The value of one sample of the /metrics text, undefined when it is not there. */
function sample (text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(`${name}{${labels}} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

describe('delivery lag: time to the final acknowledgement, oldest unacknowledged message', () => {
  let t: TestBroker | undefined

  afterEach(async () => {
    await t?.close()
    t = undefined
  })

  it('counts every acknowledged message by QoS and group, and shows a slow consumer in the histogram, the gauges and /api/lag', async () => {
    t = await startTestBroker()
    const broker = t
    const metrics = async (): Promise<string> => await (await fetch(`${broker.adminUrl}/metrics`)).text()
    const plain = await connectClient(t.mqttUrl, { clientId: 'plain' })
    await plain.subscribeAsync('lag/plain', { qos: 1 })
    await plain.subscribeAsync('lag/two', { qos: 2 })
    const slow = await silentMember(t.mqttUrl, 'slow-1', '$share/slow/lag/jobs')
    const pub = await connectClient(t.mqttUrl, { clientId: 'lag-pub' })

    await publishMany(pub, 'lag/plain', 20, 1)
    await publishMany(pub, 'lag/two', 3, 2)
    await waitFor(async () => sample(await metrics(), 'culex_delivery_ack_seconds_count', 'qos="2",group=""') === 3, 'three QoS 2 messages completed (PUBCOMP)')
    expect(sample(await metrics(), 'culex_delivery_ack_seconds_count', 'qos="1",group=""')).toBe(20)

    // the shared member holds five messages unacknowledged for at least 300 ms
    await publishMany(pub, 'lag/jobs', 5, 1)
    await waitFor(() => slow.publishes().length === 5, 'five messages at the slow member')
    const firstArrival = slow.publishTimes()[0]
    await waitFor(() => Date.now() - firstArrival >= 300, 'the slow member taking 300 ms')
    const { items } = await adminGet<{ items: Array<{ clientId: string, unacked: number, oldestUnackedMs: number }> }>(t.adminUrl, '/api/lag')
    expect(items).toEqual([expect.objectContaining({ clientId: 'slow-1', unacked: 5 })])
    expect(items[0].oldestUnackedMs).toBeGreaterThanOrEqual(300)
    const during = await metrics()
    expect(sample(during, 'culex_session_oldest_unacked_seconds', 'client_id="slow-1"')).toBeGreaterThanOrEqual(0.3)
    expect(sample(during, 'culex_shared_oldest_unacked_seconds', 'group="slow"')).toBeGreaterThanOrEqual(0.3)
    expect(during).not.toContain('client_id="plain"')
    for (const p of slow.publishes()) slow.send({ cmd: 'puback', messageId: p.messageId })

    await waitFor(async () => sample(await metrics(), 'culex_delivery_ack_seconds_count', 'qos="1",group="slow"') === 5, 'the five acknowledgements counted')
    const after = await metrics()
    expect(sample(after, 'culex_delivery_ack_seconds_bucket', 'qos="1",group="slow",le="0.1"')).toBe(0)
    expect(sample(after, 'culex_delivery_ack_seconds_bucket', 'qos="1",group="slow",le="+Inf"')).toBe(5)
    expect(sample(after, 'culex_delivery_ack_seconds_sum', 'qos="1",group="slow"')).toBeGreaterThanOrEqual(5 * 0.3)
    expect(sample(after, 'culex_delivery_ack_seconds_count', 'qos="1",group=""')).toBe(20)
    expect(sample(after, 'culex_session_oldest_unacked_seconds', 'client_id="slow-1"')).toBeUndefined()
    expect(sample(after, 'culex_shared_oldest_unacked_seconds', 'group="slow"')).toBe(0)
    expect((await adminGet<{ items: unknown[] }>(t.adminUrl, '/api/lag')).items).toEqual([])
    slow.destroy()
    await endAll([plain, pub])
  })
})
