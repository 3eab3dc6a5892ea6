import { beforeAll, describe, expect, it } from 'vitest'
import type { TestBroker } from '../helpers/broker.js'
import { ensureBuilt, runCli } from '../helpers/cli.js'
import { waitFor } from '../helpers/clients.js'
import { groupKnown, useCluster, waitForRoute } from './support.js'

interface Listed { total: number, items: Array<{ id: string, topic: string, reason: string }> }

async function listed (node: TestBroker): Promise<Listed> {
  return await (await fetch(`${node.adminUrl}/api/dead-letters`)).json() as Listed
}

async function topics (node: TestBroker): Promise<string[]> {
  return (await listed(node)).items.map(i => i.topic).sort()
}

describe('dead letters across nodes', () => {
  const cluster = useCluster()
  beforeAll(async () => { await ensureBuilt() }, 200_000)

  it('every node lists, shows, purges and replays the dead letters of the whole cluster as Redis has them now', async () => {
    const settings = { 'deadLetter.noSubscribers': true }
    const a = await cluster.node('a', settings)
    const b = await cluster.node('b', settings)
    const pub = await cluster.client(a.mqttUrl, { clientId: 'till' })
    for (const i of [1, 2, 3]) await pub.publishAsync(`orphan/${i}`, `m${i}`, { qos: 1 })
    await waitFor(async () => (await listed(a)).total === 3, 'three dead letters on node a')
    const later = await cluster.client(b.mqttUrl, { clientId: 'late' })
    await later.publishAsync('orphan/4', 'm4', { qos: 1 })
    await waitFor(async () => (await listed(b)).total === 4, 'the fourth on node b')

    // each node lists what the other wrote after both started
    expect(await topics(a)).toEqual(['orphan/1', 'orphan/2', 'orphan/3', 'orphan/4'])
    expect(await topics(b)).toEqual(['orphan/1', 'orphan/2', 'orphan/3', 'orphan/4'])
    const id = async (topic: string): Promise<string> => (await listed(a)).items.find(i => i.topic === topic)?.id ?? ''
    const show = await fetch(`${b.adminUrl}/api/dead-letters/${await id('orphan/1')}`)
    expect(show.status).toBe(200)
    expect(await show.json()).toMatchObject({ topic: 'orphan/1', reason: 'no-subscribers', clientId: 'till', payload: Buffer.from('m1').toString('base64') })

    // a purge on one node is gone on the other
    const purge = await fetch(`${b.adminUrl}/api/dead-letters/${await id('orphan/1')}`, { method: 'DELETE' })
    expect(await purge.json()).toEqual({ removed: 1 })
    expect(await topics(a)).toEqual(['orphan/2', 'orphan/3', 'orphan/4'])

    // and so is one made with culex dlq --redis-url, without any node
    const cli = await runCli(['dlq', 'purge', await id('orphan/2'), '--json', '--redis-url', cluster.redis().url])
    expect(JSON.parse(cli.stdout)).toEqual({ removed: 1 })
    expect(await topics(a)).toEqual(['orphan/3', 'orphan/4'])
    expect(await topics(b)).toEqual(['orphan/3', 'orphan/4'])
    expect((await fetch(`${a.adminUrl}/api/dead-letters/${await id('orphan/2')}`)).status).toBe(404)

    // node b replays what node a wrote; it leaves the log of both
    const sub = await cluster.client(b.mqttUrl, { clientId: 'sub' })
    await sub.subscribeAsync('orphan/#', { qos: 1 })
    const replay = await fetch(`${b.adminUrl}/api/dead-letters/${await id('orphan/3')}/replay`, { method: 'POST' })
    expect(await replay.json()).toMatchObject({ outcome: 'published' })
    await waitFor(() => sub.received.some(m => m.topic === 'orphan/3' && m.payload === 'm3'), 'the replayed message')
    expect(await topics(a)).toEqual(['orphan/4'])
    const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text()
    expect(metrics).toMatch(/^culex_dead_letters_stored 1$/m)
  })

  it('deadLetter.noSubscribers counts the subscribers and shared groups on the other nodes', async () => {
    const settings = { 'deadLetter.noSubscribers': true }
    const a = await cluster.node('a', settings)
    const b = await cluster.node('b', settings)
    // the log of the test before, in the same Redis
    await fetch(`${a.adminUrl}/api/dead-letters?all=true`, { method: 'DELETE' })
    const sub = await cluster.client(a.mqttUrl, { clientId: 'sub' })
    await sub.subscribeAsync('live/#', { qos: 1 })
    const worker = await cluster.client(a.mqttUrl, { clientId: 'worker' })
    await worker.subscribeAsync('$share/g/jobs/#', { qos: 1 })
    await waitForRoute(b, a, 'live/1')
    await groupKnown(b, [a], 'g/jobs/#', 'jobs/1')
    const pub = await cluster.client(b.mqttUrl, { clientId: 'pub' })
    await pub.publishAsync('live/1', 'to a', { qos: 1 })
    await pub.publishAsync('jobs/1', 'to the group', { qos: 1 })
    await pub.publishAsync('nobody/1', 'to nobody', { qos: 1 })
    await waitFor(async () => (await listed(b)).total > 0, 'the dead letter of nobody/1')
    expect(await topics(b)).toEqual(['nobody/1'])
    await waitFor(() => sub.received.length === 1 && worker.received.length === 1, 'both delivered on node a')
  })

  it('deadLetter.noSubscribers counts an offline persistent session that subscribed on another node', async () => {
    const settings = { 'deadLetter.noSubscribers': true }
    const a = await cluster.node('a', settings)
    const b = await cluster.node('b', settings)
    await fetch(`${a.adminUrl}/api/dead-letters?all=true`, { method: 'DELETE' })
    const away = await cluster.client(b.mqttUrl, { clientId: 'away', clean: false })
    await away.subscribeAsync('parked/#', { qos: 1 })
    await away.endAsync()
    const pub = await cluster.client(a.mqttUrl, { clientId: 'pub' })
    await pub.publishAsync('parked/1', 'kept', { qos: 1 })
    await pub.publishAsync('nobody/2', 'to nobody', { qos: 1 })
    await waitFor(async () => (await listed(a)).total > 0, 'the dead letter of nobody/2')
    expect(await topics(a)).toEqual(['nobody/2'])
    const back = await cluster.client(b.mqttUrl, { clientId: 'away', clean: false })
    await waitFor(() => back.received.some(m => m.payload === 'kept'), 'the queued message')
  })
})
