import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { PublishPacket } from 'aedes'
import type { IPublishPacket } from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, publishInBursts, sleep, waitFor } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'

type Client = Awaited<ReturnType<typeof connectClient>>
type QoS = 0 | 1 | 2

/**
 * sessions.queueQos0 over real sockets: what a persistent subscriber that was away gets when it comes back, what a
 * connected one leaves in the store (nothing), and the limits, expiry, restarts, `$` topics and the ACL on the way.
 */
describe('sessions.queueQos0', () => {
  let t: TestBroker | undefined
  const clients: Client[] = []
  const dirs: string[] = []
  afterEach(async () => {
    await Promise.all(clients.splice(0).map(async c => await endClient(c, true)))
    await t?.close()
    t = undefined
    await Promise.all(dirs.splice(0).map(async dir => await rm(dir, { recursive: true, force: true })))
  })

  const broker = (): TestBroker => {
    if (t === undefined) throw new Error('no broker')
    return t
  }
  const connect = async (opts: Parameters<typeof connectClient>[1] = {}): Promise<Client> => {
    const c = await connectClient(broker().mqttUrl, opts)
    clients.push(c)
    return c
  }
  const isConnected = (id: string): boolean => (broker().broker.aedes as unknown as { clients: Record<string, unknown> }).clients[id] !== undefined
  const queued = async (id: string): Promise<number> => (await broker().broker.store.sessionInfo(id))?.queued ?? 0
  const waitQueued = async (id: string, n: number): Promise<void> => {
    let now = -1
    const deadline = Date.now() + 5000
    while ((now = await queued(id)) !== n) {
      if (Date.now() > deadline) throw new Error(`${id} has ${now} queued messages, expected ${n}`)
      await sleep(10)
    }
  }
  /** Connects a persistent session, subscribes, and leaves; resolves once the broker has seen it go. */
  const subscribeAndLeave = async (id: string, filters: Record<string, QoS>): Promise<void> => {
    const c = await connectClient(broker().mqttUrl, { clientId: id, clean: false })
    for (const [filter, qos] of Object.entries(filters)) await c.subscribeAsync(filter, { qos })
    await endClient(c)
    await waitFor(() => !isConnected(id), `${id} disconnected`)
  }
  /**
   * Publishes one message after another. A QoS 0 publish has no acknowledgement to wait for: with `queuedFor`, each
   * is awaited until that session's queue has grown by one, which also keeps the order of the publishes.
   */
  const publishAll = async (pub: Client, messages: Array<[string, string, QoS]>, queuedFor?: string): Promise<void> => {
    for (const [topic, payload, qos] of messages) {
      const before = queuedFor === undefined ? 0 : await queued(queuedFor)
      await pub.publishAsync(topic, payload, { qos })
      if (queuedFor !== undefined && qos === 0) await waitQueued(queuedFor, before + 1)
    }
  }
  /**
   * Nothing else waits in the queue of the disconnected session `id`: one more message, queued behind whatever is
   * left, must be the first (and only) one it gets when it comes back.
   */
  const nothingLeftBehind = async (pub: Client, id: string, topic: string): Promise<void> => {
    await publishAll(pub, [[topic, 'after', 0]], id)
    const back = await connect({ clientId: id, clean: false })
    await waitFor(() => back.received.length > 0, 'the message published after')
    expect(back.received.map(m => m.payload)).toEqual(['after'])
  }
  const drained = async (c: Client, n: number): Promise<void> => {
    await waitFor(() => c.received.length >= n, `${n} messages`)
    await sleep(150)
  }

  const mixed: Array<[string, string, QoS]> = [
    ['q0/a', 'm1', 0],
    ['q1/a', 'm2', 1],
    ['q1/b', 'm3', 0],
    ['q0/b', 'm4', 1],
    ['q0/c', 'm5', 2],
    ['q1/c', 'm6', 2]
  ]

  it('off (the default): a session that was away gets only what was published at QoS 1/2 to its QoS 1 filter', async () => {
    t = await startTestBroker()
    await subscribeAndLeave('away', { 'q0/#': 0, 'q1/#': 1 })
    const pub = await connect()
    await publishAll(pub, mixed)
    await sleep(100)
    expect(await queued('away')).toBe(2)
    const back = await connect({ clientId: 'away', clean: false })
    await drained(back, 2)
    expect(back.received.map(m => [m.payload, m.qos])).toEqual([['m2', 1], ['m6', 1]])
  })

  it('on: QoS 0 publishes and QoS 1/2 publishes through a QoS 0 filter are queued at QoS 0 and sent once, in order with the QoS 1 ones', async () => {
    t = await startTestBroker({ 'sessions.queueQos0': true })
    await subscribeAndLeave('away', { 'q0/#': 0, 'q1/#': 1 })
    const pub = await connect()
    await publishAll(pub, mixed, 'away')
    expect(await queued('away')).toBe(6)
    const back = await connect({ clientId: 'away', clean: false })
    expect(back.sessionPresent).toBe(true)
    await drained(back, 6)
    expect(back.received.map(m => [m.topic, m.payload, m.qos])).toEqual([
      ['q0/a', 'm1', 0], ['q1/a', 'm2', 1], ['q1/b', 'm3', 0], ['q0/b', 'm4', 0], ['q0/c', 'm5', 0], ['q1/c', 'm6', 1]
    ])
    expect(back.received.every(m => !m.dup && !m.retain)).toBe(true)
    await waitQueued('away', 0)
    await endClient(back)
    await waitFor(() => !isConnected('away'), 'away disconnected')
    await nothingLeftBehind(pub, 'away', 'q0/after')
  })

  it('a connected session gets everything live and keeps no queue entry, whatever the QoS', async () => {
    t = await startTestBroker({ 'sessions.queueQos0': true })
    const sub = await connect({ clientId: 'online', clean: false })
    await sub.subscribeAsync({ 'q0/#': { qos: 0 }, 'q1/#': { qos: 1 } })
    const pub = await connect()
    const messages = Array.from({ length: 30 }, (_, i): [string, string, QoS] => [i % 2 === 0 ? 'q0/x' : 'q1/x', `m${i}`, (i % 3) as QoS])
    await publishAll(pub, messages)
    await drained(sub, 30)
    expect(sub.received.map(m => m.payload).sort()).toEqual(messages.map(([, p]) => p).sort())
    await waitQueued('online', 0)
    expect(broker().broker.store.stats().queuedMessages).toBe(0)
    await endClient(sub)
    await waitFor(() => !isConnected('online'), 'online disconnected')
    await nothingLeftBehind(pub, 'online', 'q0/after')
  })

  it('a session that keeps reconnecting while QoS 0 messages flow gets each one at most once, and every one sent while it was away', async () => {
    t = await startTestBroker({ 'sessions.queueQos0': true })
    await subscribeAndLeave('flaky', { 'flow/#': 0 })
    const pub = await connect()
    let next = 0
    let publishing = true
    const publisher = (async () => {
      while (publishing) {
        await pub.publishAsync('flow/x', String(next++), { qos: 0 })
        await sleep(1)
      }
    })()
    const got: number[] = []
    const away: Array<[number, number]> = []
    // Waits until everything the queue replayed has arrived: once the queue is empty, a message published after
    // that is sent live, behind the replayed ones.
    const caughtUp = async (c: Client): Promise<void> => {
      await waitQueued('flaky', 0)
      const mark = next
      await waitFor(() => c.received.some(m => Number(m.payload) >= mark), 'a live message after the replayed ones')
    }
    let left = 0
    for (let round = 0; round < 8; round++) {
      away.push([left, next])
      const c = await connectClient(broker().mqttUrl, { clientId: 'flaky', clean: false })
      await caughtUp(c)
      await sleep(20)
      await endClient(c)
      await waitFor(() => !isConnected('flaky'), 'flaky disconnected')
      got.push(...c.received.map(m => Number(m.payload)))
      left = next
      await sleep(40)
    }
    away.push([left, next])
    const last = await connect({ clientId: 'flaky', clean: false })
    await caughtUp(last)
    publishing = false
    await publisher
    await sleep(100)
    got.push(...last.received.map(m => Number(m.payload)))
    const dups = got.filter((n, i) => got.indexOf(n) !== i)
    expect(dups, 'messages delivered twice').toEqual([])
    // Published after the broker saw the session go and before it reconnected: only the queue could deliver them.
    const missed = away.flatMap(([from, to]) => Array.from({ length: to - from }, (_, i) => from + i)).filter(n => !got.includes(n))
    expect(missed, 'messages published while the session was away').toEqual([])
  })

  // The live copies that come during the replay at CONNECT wait for it in memory, or past limits.maxInflightMessages
  // in the session's queue, behind what is there
  const heldBehindReplay: Array<[string, Record<string, unknown>]> = [
    ['held in memory', {}],
    ['past limits.maxInflightMessages, in the queue', { 'limits.maxInflightMessages': 2 }]
  ]
  it.each(heldBehindReplay)('reconnecting while QoS 0 messages flow: CONNACK first, then what was queued while it was away ahead of anything newer, in publish order, once each (%s, seeded)', async (_name, settings) => {
    t = await startTestBroker({ 'sessions.queueQos0': true, ...settings })
    await subscribeAndLeave('ordered', { 'flow/#': 0 })
    const pub = await connect()
    let seed = 1207
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    const publisher = publishInBursts(pub, 'flow/x', random)
    const got: number[] = []
    const away: Array<[number, number]> = []
    // a failed round stops the publisher, whose publishes would fail once the client is ended
    try {
      let left = 0
      for (let round = 0; round < 20; round++) {
        await sleep(Math.floor(random() * 40))
        away.push([left, publisher.next])
        const raw = await openRaw('tcp', broker())
        const numbers = (): number[] => raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish').map(p => Number(p.payload.toString()))
        await raw.connect({ clientId: 'ordered', clean: false })
        // A message published after the CONNACK: whatever was queued before it has arrived once it has
        const mark = publisher.next
        await waitFor(() => numbers().some(n => n >= mark), 'a message published after the CONNACK')
        await sleep(Math.floor(random() * 20))
        await raw.disconnect()
        await waitFor(() => !isConnected('ordered'), 'ordered disconnected')
        left = publisher.next
        expect(raw.received[0]?.cmd, `round ${round}: the first packet`).toBe('connack')
        const seen = numbers()
        expect(seen, `round ${round}: in publish order, each once`).toEqual([...seen].sort((a, b) => a - b).filter((n, i, all) => i === 0 || n !== all[i - 1]))
        got.push(...seen)
      }
    } finally {
      await publisher.stop()
    }
    expect(got.filter((n, i) => got.indexOf(n) !== i), 'messages delivered twice').toEqual([])
    const missed = away.flatMap(([from, to]) => Array.from({ length: to - from }, (_, i) => from + i)).filter(n => !got.includes(n))
    expect(missed, 'messages published while the session was away').toEqual([])
  })

  it('deadLetter.noSubscribers: a QoS 1 publish that only an offline session\'s QoS 0 filter matches is queued, not dead-lettered', async () => {
    t = await startTestBroker({ 'sessions.queueQos0': true, 'deadLetter.noSubscribers': true })
    await subscribeAndLeave('quiet', { 'nsub/#': 0 })
    const pub = await connect()
    await pub.publishAsync('nsub/x', 'kept', { qos: 1 })
    await pub.publishAsync('nobody/x', 'lost', { qos: 1 })
    await waitFor(() => broker().broker.store.deadLetters.count === 1, 'the dead letter of nobody/x')
    expect(broker().broker.store.deadLetters.list().map(e => [e.reason, e.topic])).toEqual([['no-subscribers', 'nobody/x']])
    expect(await queued('quiet')).toBe(1)
  })

  it('the queue limits apply to QoS 0 entries: dropOldest keeps the newest and reports the drops', async () => {
    t = await startTestBroker({ 'sessions.queueQos0': true, 'sessions.maxQueuedMessages': 3 })
    await subscribeAndLeave('small', { 'lim/#': 0 })
    const pub = await connect()
    for (let i = 1; i <= 5; i++) await pub.publishAsync('lim/x', `m${i}`, { qos: 0 })
    await waitFor(() => broker().broker.store.stats().droppedMessages === 2, 'two drops')
    expect(await queued('small')).toBe(3)
    expect(broker().logs.some(l => l.msg === 'queue overflow' && l.clientId === 'small')).toBe(true)
    const back = await connect({ clientId: 'small', clean: false })
    await drained(back, 3)
    expect(back.received.map(m => m.payload)).toEqual(['m3', 'm4', 'm5'])
  })

  it('messageExpiryMs discards QoS 0 entries that waited too long; session expiry removes them with the session', async () => {
    t = await startTestBroker({ 'sessions.queueQos0': true, 'sessions.messageExpiryMs': 300, 'sessions.expiryMs': 1500 })
    await subscribeAndLeave('stale', { 'exp/#': 0 })
    await subscribeAndLeave('gone', { 'exp/#': 0 })
    const pub = await connect()
    await publishAll(pub, [['exp/x', 'old', 0]], 'stale')
    await sleep(500)
    await publishAll(pub, [['exp/x', 'fresh', 0]], 'stale')
    const back = await connect({ clientId: 'stale', clean: false })
    await drained(back, 1)
    expect(back.received.map(m => m.payload)).toEqual(['fresh'])
    expect(await queued('gone')).toBe(2)
    await waitFor(() => broker().logs.some(l => l.msg === 'session expired' && l.clientId === 'gone'), 'the session to expire', 5000)
    expect(await broker().broker.store.sessionInfo('gone')).toBeUndefined()
    expect(await queued('stale')).toBe(0)
  })

  it('survives a restart, and a QoS 1 publish through a QoS 0 filter is on disk before its PUBACK', async () => {
    t = await startTestBroker({ 'sessions.queueQos0': true })
    await subscribeAndLeave('durable', { 'dur/#': 0 })
    const pub = await connect()
    await publishAll(pub, [['dur/a', 'q0', 0], ['dur/b', 'q1', 1], ['dur/c', 'q2', 2]], 'durable')
    expect(await queued('durable')).toBe(3)
    await endClient(pub)
    clients.splice(clients.indexOf(pub), 1)
    t = await t.restart()
    expect(await queued('durable')).toBe(3)
    const back = await connect({ clientId: 'durable', clean: false })
    await drained(back, 3)
    expect(back.received.map(m => [m.payload, m.qos])).toEqual([['q0', 0], ['q1', 0], ['q2', 0]])
  })

  it('$ topics: $SYS messages are never queued; another $ topic only for a filter that names it, never for #', async () => {
    t = await startTestBroker({ 'sessions.queueQos0': true, 'admin.sysIntervalMs': 50 })
    await subscribeAndLeave('sys', { '$SYS/#': 0 })
    await subscribeAndLeave('all', { '#': 0 })
    await subscribeAndLeave('dlq', { '$DLQ/#': 0 })
    const inside = { cmd: 'publish', topic: '$DLQ/test/x', payload: Buffer.from('envelope'), qos: 0, retain: false, dup: false } as PublishPacket
    await new Promise<void>((resolve, reject) => broker().broker.aedes.publish(inside, err => err == null ? resolve() : reject(err)))
    await waitQueued('dlq', 1)
    const watcher = await connect()
    await watcher.subscribeAsync('$SYS/broker/uptime', { qos: 0 })
    await waitFor(() => watcher.received.length >= 3, 'three $SYS intervals')
    expect(await queued('sys')).toBe(0)
    expect(await queued('all')).toBe(0)
  })

  it('the ACL at delivery time applies to queued QoS 0 messages, and a connected session without live subscriptions queues none', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'culex-qos0-acl-'))
    dirs.push(dir)
    const aclFile = path.join(dir, 'acl.conf')
    await writeFile(aclFile, 'topic readwrite acl/#\n')
    t = await startTestBroker({ 'sessions.queueQos0': true, 'auth.aclFile': aclFile, 'auth.watchFiles': false })
    await subscribeAndLeave('reader', { 'acl/#': 0 })
    const pub = await connect()
    await publishAll(pub, [['acl/secret/x', 'hidden', 0], ['acl/open/x', 'shown', 0]], 'reader')
    await writeFile(aclFile, 'topic write acl/#\ntopic read acl/open/#\n')
    expect((await broker().broker.security.reload()).aclFile).toBe('reloaded')
    const back = await connect({ clientId: 'reader', clean: false })
    await waitQueued('reader', 0)
    await sleep(150)
    expect(back.received.map(m => m.payload)).toEqual(['shown'])
    // The ACL no longer grants acl/#, so the restore left the connected session with no live subscription; its
    // stored one still matches, but a connected session gets nothing queued.
    await pub.publishAsync('acl/open/y', 'while connected', { qos: 0 })
    await sleep(150)
    expect(await queued('reader')).toBe(0)
  })
})
