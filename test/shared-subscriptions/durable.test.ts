import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'
import type { IPubrelPacket, IPublishPacket } from 'mqtt-packet'
import { openRaw } from '../helpers/raw-client.js'
import { adminGet, endAll, publishMany, silentMember } from './support.js'

interface GroupRow { share: string, durable: boolean, queued: number, members: Array<{ clientId: string, online: boolean, persistent: boolean }> }

const groupsOf = async (t: TestBroker): Promise<GroupRow[]> => (await adminGet<{ items: GroupRow[] }>(t.adminUrl, '/api/shared')).items

describe('shared subscriptions: persistent members and the durable group queue', () => {
  let t: TestBroker | undefined

  afterEach(async () => {
    await t?.close()
    t = undefined
  })

  it('sends nothing to an offline persistent member while another is online, queues while all are offline, survives a restart', async () => {
    t = await startTestBroker()
    const p = await connectClient(t.mqttUrl, { clientId: 'worker-p', clean: false })
    await p.subscribeAsync('$share/d/dur/#', { qos: 1 })
    const c = await connectClient(t.mqttUrl, { clientId: 'worker-c' })
    await c.subscribeAsync('$share/d/dur/#', { qos: 1 })
    await endClient(p)
    const pub = await connectClient(t.mqttUrl, { clientId: 'd-pub' })
    await publishMany(pub, 'dur/a', 10, 1)
    await waitFor(() => c.received.length === 10, 'all ten at the online member')

    // Back online: the session is present, but the other member took everything.
    const p2 = await connectClient(t.mqttUrl, { clientId: 'worker-p', clean: false })
    expect(p2.sessionPresent).toBe(true)
    await sleep(200)
    expect(p2.received).toEqual([])
    await endClient(p2)
    await endClient(c)
    expect((await groupsOf(t)).find(g => g.share === '$share/d/dur/#')?.members).toEqual([
      expect.objectContaining({ clientId: 'worker-p', online: false, persistent: true })
    ])

    // Every member offline: the messages wait in the group queue, across a restart.
    await publishMany(pub, 'dur/b', 7, 1)
    await endClient(pub)
    expect((await groupsOf(t)).find(g => g.share === '$share/d/dur/#')).toMatchObject({ durable: true, queued: 7 })
    const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text()
    expect(metrics).toContain('culex_shared_queued_messages{share="$share/d/dur/#"} 7')
    expect(metrics).toContain('culex_shared_members_online{share="$share/d/dur/#"} 0')
    expect(metrics).toContain('culex_shared_messages_total{event="delivered"} 10')
    t = await t.restart()
    expect((await groupsOf(t)).find(g => g.share === '$share/d/dur/#')).toMatchObject({ queued: 7, members: [expect.objectContaining({ clientId: 'worker-p', online: false })] })
    expect(t.logs.some(l => l.msg === 'shared queue restored' && l.messages === 7)).toBe(true)
    const back = await connectClient(t.mqttUrl, { clientId: 'worker-p', clean: false })
    await waitFor(() => back.received.length === 7, 'the seven queued messages')
    expect(back.received.map(r => r.payload)).toEqual(['0', '1', '2', '3', '4', '5', '6'])
    await sleep(200)
    expect((await groupsOf(t)).find(g => g.share === '$share/d/dur/#')).toMatchObject({ queued: 0 })
    expect(t.broker.store.groupQueues.count).toBe(0)
    await endAll([back])
  })

  it('resends a persistent member\'s PUBREL after a restart until PUBCOMP, and never the QoS 2 message itself', async () => {
    t = await startTestBroker()
    const member = await silentMember(t.mqttUrl, 'q2-member', '$share/q/q2/#', 2, false)
    const pub = await connectClient(t.mqttUrl, { clientId: 'q2-pub' })
    await pub.publishAsync('q2/a', 'once', { qos: 2 })
    const publish = await member.next<IPublishPacket>('publish')
    member.send({ cmd: 'pubrec', messageId: publish.messageId })
    expect((await member.next<IPubrelPacket>('pubrel')).messageId).toBe(publish.messageId)
    // The member got the PUBREL but goes away without PUBCOMP; then the broker restarts.
    member.destroy()
    await endClient(pub)
    t = await t.restart()

    const back = await openRaw('tcp', { mqttUrl: t.mqttUrl, wsUrl: '' })
    expect((await back.connect({ clientId: 'q2-member', clean: false })).sessionPresent).toBe(true)
    expect((await back.next<IPubrelPacket>('pubrel')).messageId).toBe(publish.messageId)
    back.send({ cmd: 'pubcomp', messageId: publish.messageId })
    await sleep(300)
    expect(back.received.filter(p => p.cmd === 'publish'), 'the message itself is not sent again').toEqual([])
    await back.disconnect()
    const again = await openRaw('tcp', { mqttUrl: t.mqttUrl, wsUrl: '' })
    await again.connect({ clientId: 'q2-member', clean: false })
    await sleep(300)
    expect(again.received.filter(p => p.cmd === 'pubrel' || p.cmd === 'publish'), 'nothing after PUBCOMP').toEqual([])
    expect((await t.broker.store.sessionInfo('q2-member'))?.queued).toBe(0)
    await again.disconnect()
  })

  it('redelivers a persistent member\'s unacknowledged messages to it when it is the only member and comes back', async () => {
    t = await startTestBroker({ 'sharedSubscriptions.ackTimeoutMs': 0 })
    const p = await silentMember(t.mqttUrl, 'solo', '$share/s/solo', 1, false)
    const pub = await connectClient(t.mqttUrl, { clientId: 's-pub' })
    await publishMany(pub, 'solo', 5, 1)
    await waitFor(() => p.publishes().length === 5, 'five unacknowledged')
    p.destroy()
    await sleep(200)
    expect((await groupsOf(t)).find(g => g.share === '$share/s/solo')).toMatchObject({ queued: 5 })
    const again = await connectClient(t.mqttUrl, { clientId: 'solo', clean: false })
    await waitFor(() => again.received.length === 5, 'the five again')
    expect(again.received.map(r => [r.payload, r.dup])).toEqual([['0', true], ['1', true], ['2', true], ['3', true], ['4', true]])
    await endAll([again, pub])
  })

  it('drops an expired session\'s membership, and a group that loses its last member gives its queue up', async () => {
    t = await startTestBroker({ 'sessions.expiryMs': 500 })
    const p = await connectClient(t.mqttUrl, { clientId: 'expires', clean: false })
    await p.subscribeAsync('$share/e/exp', { qos: 1 })
    await endClient(p)
    const pub = await connectClient(t.mqttUrl, { clientId: 'e-pub' })
    await publishMany(pub, 'exp', 3, 1)
    expect((await groupsOf(t)).find(g => g.share === '$share/e/exp')).toMatchObject({ queued: 3 })
    await waitFor(() => t?.logs.some(l => l.msg === 'session expired' && l.clientId === 'expires') === true, 'the expiry', 5000)
    await sleep(100)
    expect((await groupsOf(t)).find(g => g.share === '$share/e/exp')).toBeUndefined()
    const dead = t.logs.filter(l => l.msg === 'shared message dead-lettered')
    expect(dead.map(l => l.reason)).toEqual(['no-members', 'no-members', 'no-members'])
    await sleep(100)
    expect(t.broker.store.groupQueues.count).toBe(0)
    await endAll([pub])
  })

  it('removes a clean member when it disconnects and a persistent one on UNSUBSCRIBE or a clean reconnect', async () => {
    t = await startTestBroker()
    const c = await connectClient(t.mqttUrl, { clientId: 'gone-clean' })
    await c.subscribeAsync('$share/r/rm', { qos: 1 })
    const p = await connectClient(t.mqttUrl, { clientId: 'gone-p', clean: false })
    await p.subscribeAsync('$share/r/rm', { qos: 1 })
    await p.subscribeAsync('$share/r2/rm', { qos: 1 })
    await endClient(c)
    await sleep(50)
    expect((await groupsOf(t)).find(g => g.share === '$share/r/rm')?.members.map(m => m.clientId)).toEqual(['gone-p'])
    await p.unsubscribeAsync('$share/r/rm')
    await sleep(50)
    expect((await groupsOf(t)).find(g => g.share === '$share/r/rm')).toBeUndefined()
    await endClient(p)
    expect((await groupsOf(t)).find(g => g.share === '$share/r2/rm')?.members).toEqual([expect.objectContaining({ clientId: 'gone-p', online: false })])
    const fresh = await connectClient(t.mqttUrl, { clientId: 'gone-p', clean: true })
    await sleep(50)
    expect((await groupsOf(t)).find(g => g.share === '$share/r2/rm')).toBeUndefined()
    await endAll([fresh])
  })
})
