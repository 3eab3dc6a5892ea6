import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'

describe('persistent sessions', () => {
  let t: TestBroker | undefined
  afterEach(async () => { await t?.close() })

  it('exists without subscriptions, across a restart (Session Present 1)', async () => {
    t = await startTestBroker()
    const first = await connectClient(t.mqttUrl, { clientId: 'bare', clean: false })
    expect(first.sessionPresent).toBe(false)
    await endClient(first)
    t = await t.restart()
    const again = await connectClient(t.mqttUrl, { clientId: 'bare', clean: false })
    expect(again.sessionPresent).toBe(true)
    await endClient(again)
    const clean = await connectClient(t.mqttUrl, { clientId: 'bare', clean: true })
    expect(clean.sessionPresent).toBe(false)
    await endClient(clean)
    const after = await connectClient(t.mqttUrl, { clientId: 'bare', clean: false })
    expect(after.sessionPresent).toBe(false)
    await endClient(after)
  })

  it('is removed with its queue after sessions.expiryMs disconnected, and kept while connected', async () => {
    t = await startTestBroker({ 'sessions.expiryMs': 400 })
    const idle = await connectClient(t.mqttUrl, { clientId: 'idle', clean: false })
    await idle.subscribeAsync('exp/#', { qos: 1 })
    await endClient(idle)
    const online = await connectClient(t.mqttUrl, { clientId: 'online', clean: false })
    await online.subscribeAsync('exp/#', { qos: 1 })
    const pub = await connectClient(t.mqttUrl, { clientId: 'pub' })
    await pub.publishAsync('exp/1', 'queued', { qos: 1 })
    expect((await t.broker.store.sessionInfo('idle'))?.queued).toBe(1)
    await waitFor(() => t?.logs.some(l => l.msg === 'session expired' && l.clientId === 'idle') === true, 'the session to expire', 5000)
    expect(await t.broker.store.sessionInfo('idle')).toBeUndefined()
    expect(t.broker.store.stats().queuedMessages).toBe(0)
    await sleep(600)
    expect(await t.broker.store.sessionInfo('online')).toBeDefined()
    const back = await connectClient(t.mqttUrl, { clientId: 'idle', clean: false })
    expect(back.sessionPresent).toBe(false)
    await sleep(200)
    expect(back.received).toEqual([])
    await Promise.all([back, online, pub].map(async c => await endClient(c)))
  })
})
