import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import type { IPublishPacket } from 'mqtt-packet'
import { REPLAY_WINDOW } from '../../src/protocol/queue-replay.js'
import { connectClient, endClient, publishInBursts, sleep, waitFor } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'

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

  it('never expires a session while its client is connecting: Session Present matches the session, and QoS 1 keeps arriving', async () => {
    const expiryMs = 250
    // Each session expires expiryMs after its disconnect; each below is reconnected just before that moment.
    t = await startTestBroker({ 'sessions.expiryMs': expiryMs })
    const broker = t
    const pub = await connectClient(broker.mqttUrl, { clientId: 'race-pub' })
    let seed = 1313
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    const expiredAt = (clientId: string): number | undefined => {
      const line = broker.logs.find(l => l.msg === 'session expired' && l.clientId === clientId)
      return line === undefined ? undefined : Date.parse(String(line.time))
    }
    const disconnectedAt = (clientId: string): number | undefined => {
      const line = broker.logs.filter(l => l.msg === 'client disconnected' && l.clientId === clientId).at(-1)
      return line === undefined ? undefined : Date.parse(String(line.time))
    }
    const outcomes = { present: 0, absent: 0 }
    for (let i = 0; i < 30; i++) {
      const clientId = `racer${i}`
      const topic = `race/${i}`
      const first = await openRaw('tcp', { mqttUrl: broker.mqttUrl, wsUrl: '' })
      await first.connect({ clientId, clean: false })
      first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
      await first.next('suback')
      await first.disconnect()
      let idleFrom: number | undefined
      await waitFor(() => (idleFrom = disconnectedAt(clientId)) !== undefined, `${clientId} disconnected`)
      // A CONNECT 0-9 ms before the session is due to expire.
      const dueAt = (idleFrom as number) + expiryMs + 1
      await sleep(Math.max(0, dueAt - Date.now() - Math.floor(random() * 10)))
      const again = await openRaw('tcp', { mqttUrl: broker.mqttUrl, wsUrl: '' })
      const connack = await again.connect({
        clientId, clean: false, will: { topic: `race/will/${i}`, payload: Buffer.from('w'), qos: 1, retain: false }
      })
      const info = await broker.broker.store.sessionInfo(clientId)
      if (connack.sessionPresent) {
        outcomes.present++
        expect(info?.subscriptions, `${clientId}: Session Present 1, so its subscription is still there`).toEqual([{ topic, qos: 1 }])
      } else {
        outcomes.absent++
        expect(info?.subscriptions ?? [], `${clientId}: Session Present 0, so its session was gone`).toEqual([])
        again.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
        await again.next('suback')
      }
      await pub.publishAsync(topic, `m${i}`, { qos: 1 })
      const got = await again.next<IPublishPacket>('publish', 3000)
      expect(got.payload.toString()).toBe(`m${i}`)
      again.send({ cmd: 'puback', messageId: got.messageId })
      await again.disconnect()
      await waitFor(() => expiredAt(clientId) !== undefined, `${clientId} to expire`, 3000)
    }
    // Both answers came up: the reconnects did land on both sides of the sweep.
    expect(outcomes.present).toBeGreaterThan(0)
    expect(outcomes.absent).toBeGreaterThan(0)
    await endClient(pub)
  }, 60_000)

  it('reconnecting while QoS 0 messages flow to a QoS 0 subscription: CONNACK first, then the messages in publish order, each once (seeded)', async () => {
    t = await startTestBroker()
    const sub = await connectClient(t.mqttUrl, { clientId: 'flow0', clean: false })
    await sub.subscribeAsync('flow/#', { qos: 0 })
    await endClient(sub)
    const pub = await connectClient(t.mqttUrl, { clientId: 'flow0-pub' })
    let seed = 4321
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    const publisher = publishInBursts(pub, 'flow/a', random)
    try {
      for (let round = 0; round < 15; round++) {
        const raw = await openRaw('tcp', t)
        await raw.connect({ clientId: 'flow0', clean: false })
        const got = (): number[] => raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish').map(p => Number(p.payload.toString()))
        const mark = publisher.next
        await waitFor(() => got().some(n => n >= mark), 'a message published after the CONNACK')
        await raw.disconnect()
        expect(raw.received[0]?.cmd, `round ${round}: the first packet`).toBe('connack')
        expect(got(), `round ${round}: in publish order, each once`).toEqual([...got()].sort((a, b) => a - b).filter((n, i, all) => i === 0 || n !== all[i - 1]))
        await sleep(Math.floor(random() * 30))
      }
    } finally {
      await publisher.stop()
    }
    await endClient(pub)
  })

  it('replays a queue longer than REPLAY_WINDOW in order, never more than REPLAY_WINDOW unacknowledged', async () => {
    t = await startTestBroker()
    const total = REPLAY_WINDOW + 900
    const sub = await connectClient(t.mqttUrl, { clientId: 'long', clean: false })
    await sub.subscribeAsync('long/#', { qos: 1 })
    await endClient(sub)
    const pub = await connectClient(t.mqttUrl, { clientId: 'long-pub' })
    await Promise.all(Array.from({ length: total }, async (_, i) => await pub.publishAsync('long/q', String(i), { qos: 1 })))
    await endClient(pub)

    const raw = await openRaw('tcp', t)
    expect((await raw.connect({ clientId: 'long', clean: false })).sessionPresent).toBe(true)
    const publishes = (): IPublishPacket[] => raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish')
    await waitFor(() => publishes().length >= REPLAY_WINDOW, `${REPLAY_WINDOW} messages`, 10_000)
    await sleep(300)
    const first = publishes()
    expect(first.length, 'nothing past the window before an acknowledgement').toBe(REPLAY_WINDOW)
    expect(new Set(first.map(p => p.messageId)).size, 'distinct packet ids in flight').toBe(REPLAY_WINDOW)
    for (const p of first) raw.send({ cmd: 'puback', messageId: p.messageId })
    await waitFor(() => publishes().length >= total, `all ${total} messages`, 10_000)
    expect(publishes().map(p => p.payload.toString())).toEqual(Array.from({ length: total }, (_, i) => String(i)))
    for (const p of publishes().slice(REPLAY_WINDOW)) raw.send({ cmd: 'puback', messageId: p.messageId })
    const queued = async (): Promise<number | undefined> => (await t?.broker.store.sessionInfo('long'))?.queued
    for (let i = 0; i < 50 && await queued() !== 0; i++) await sleep(100)
    expect(await queued(), 'every acknowledged message left the queue').toBe(0)
    await raw.disconnect()
  })

  it('reconnecting while messages flow: CONNACK first, then every message in publish order, each once per connection', async () => {
    t = await startTestBroker()
    const sub = await connectClient(t.mqttUrl, { clientId: 'flow', clean: false })
    await sub.subscribeAsync('flow/#', { qos: 1 })
    await endClient(sub)
    const pub = await connectClient(t.mqttUrl, { clientId: 'flow-pub' })
    let next = 0
    let publishing = true
    const publisher = (async () => {
      while (publishing) await Promise.all(Array.from({ length: 20 }, async () => await pub.publishAsync('flow/a', String(next++), { qos: 1 })))
    })()
    const seen = new Set<number>()
    const connection = async (ackAll: boolean): Promise<void> => {
      const raw = await openRaw('tcp', t as TestBroker)
      await raw.connect({ clientId: 'flow', clean: false })
      await sleep(60)
      // the last connection takes everything that is left: until nothing more arrives for 300 ms
      for (let count = -1; ackAll && count !== raw.received.length;) {
        count = raw.received.length
        await sleep(300)
      }
      expect(raw.received[0]?.cmd, 'the first packet').toBe('connack')
      const got = raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish').map(p => Number(p.payload.toString()))
      expect(got, 'in publish order, each once').toEqual([...got].sort((a, b) => a - b).filter((n, i, all) => i === 0 || n !== all[i - 1]))
      for (const n of got) seen.add(n)
      // acknowledges part of what arrived, so the next connection also gets resends (DUP) first
      const publishes = raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish')
      for (const p of ackAll ? publishes : publishes.slice(0, Math.floor(publishes.length / 2))) raw.send({ cmd: 'puback', messageId: p.messageId })
      await sleep(20)
      await raw.disconnect()
    }
    for (let round = 0; round < 15; round++) await connection(false)
    publishing = false
    await publisher
    await connection(true)
    expect(seen.size, 'every acknowledged publish arrived').toBe(next)
    await endClient(pub)
  })
})
