import { randomBytes } from 'node:crypto'
import { readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { testStore } from '../helpers/broker.js'
import { endClient, sleep, waitFor } from '../helpers/clients.js'
import { silentMember } from '../shared-subscriptions/support.js'
import { expectEnvelope, harness, listedIds, waitForEnvelopes, type Harness } from './support.js'

/**
 * Bytes of the files in `dir` (a LevelDB directory has no subdirectories). A compaction may delete a file between the
 * listing and its stat: that file holds nothing any more.
 */
function dirBytes (dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + (statSync(path.join(dir, name), { throwIfNoEntry: false })?.size ?? 0), 0)
}

/** Bytes a key takes in a Redis' memory (TEST_STORE=redis). */
async function redisKeyBytes (url: string, key: string): Promise<number> {
  const redis = new Redis(url)
  try {
    return Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
  } finally {
    redis.disconnect()
  }
}

/** Messages the store or a shared group gives up (queue-full, expired, retained-limit, max-deliveries), and the log's bounds. */
describe('dead letters of undeliverable messages', () => {
  let h: Harness | undefined
  afterEach(async () => {
    for (const c of h?.clients.splice(0) ?? []) await endClient(c, true)
    await h?.t.close()
    h = undefined
  })

  it('queue-full: an offline session over sessions.maxQueuedMessages; the envelope names the session; listed after restart', async () => {
    h = await harness({ 'sessions.maxQueuedMessages': 1, 'sessions.overflowPolicy': 'dropNewest' })
    const w = await h.watch()
    const sub = await h.connect({ clientId: 'slow-sub', clean: false })
    await sub.subscribeAsync('jobs/#', { qos: 1 })
    await endClient(sub)
    const pub = await h.connect({ clientId: 'job-pub' })
    await pub.publishAsync('jobs/1', 'first', { qos: 1 })
    await pub.publishAsync('jobs/2', 'second', { qos: 1 })
    await waitForEnvelopes(w, 1, 'the queue-full envelope')
    expect(pub.connected).toBe(true)
    expect(w.envelopes()[0].topic).toBe('$DLQ/queue-full/jobs/2')
    expectEnvelope(w.envelopes()[0].envelope, {
      reason: 'queue-full', topic: 'jobs/2', payload: 'second', qos: 1, clientId: null, username: null, target: 'slow-sub',
      brokerId: h.t.broker.aedes.id, detail: /session queue was full/
    })
    await h.restart()
    expect(await listedIds(h, '?reason=queue-full')).toEqual([w.envelopes()[0].envelope.id])
  })

  it('broker-queue-full: 20 offline sessions over sessions.maxTotalQueuedMessages; each keeps its newest, the rest are dead letters', async () => {
    h = await harness({ 'sessions.maxTotalQueuedMessages': 50, 'sessions.overflowPolicy': 'dropOldest' })
    const w = await h.watch()
    for (let i = 0; i < 20; i++) {
      const sub = await h.connect({ clientId: `fleet-${i}`, clean: false })
      await sub.subscribeAsync('fleet/#', { qos: 1 })
      await endClient(sub)
    }
    const pub = await h.connect({ clientId: 'fleet-pub' })
    for (let n = 1; n <= 5; n++) await pub.publishAsync(`fleet/${n}`, `m${n}`, { qos: 1 })
    // 100 copies for a bound of 50: the broker holds 50, and the other 50 are dead letters naming their session.
    await waitForEnvelopes(w, 50, '50 broker-queue-full envelopes')
    // counted per session (on Redis a node's stats count only the queues it mirrors, none of these offline ones)
    let queued = 0
    for (let i = 0; i < 20; i++) queued += (await h.t.broker.store.sessionInfo(`fleet-${i}`))?.queued ?? 0
    expect(queued).toBe(50)
    const envelopes = w.envelopes()
    expect(envelopes).toHaveLength(50)
    expect(new Set(envelopes.map(e => e.topic.split('/').slice(0, 2).join('/')))).toEqual(new Set(['$DLQ/broker-queue-full']))
    const fleet0 = envelopes.filter(e => e.envelope.target === 'fleet-0').map(e => e.envelope)
    expect(fleet0.map(e => e.topic)).toEqual(['fleet/1', 'fleet/2'])
    expectEnvelope(fleet0[0], {
      reason: 'broker-queue-full', topic: 'fleet/1', payload: 'm1', qos: 1, clientId: null, username: null, target: 'fleet-0',
      brokerId: h.t.broker.aedes.id, detail: /maxTotalQueuedMessages/
    })
    // A session keeps its newest messages, and gets them when it is back (the first ten sessions had room for
    // three, the last ten, over the bound one publish earlier, for two).
    const first = await h.connect({ clientId: 'fleet-0', clean: false })
    const last = await h.connect({ clientId: 'fleet-19', clean: false })
    await waitFor(() => first.received.length === 3 && last.received.length === 2, 'the newest messages of fleet-0 and fleet-19')
    expect(first.received.map(m => m.payload)).toEqual(['m3', 'm4', 'm5'])
    expect(last.received.map(m => m.payload)).toEqual(['m4', 'm5'])
  })

  it('expired: a queued message older than sessions.messageExpiryMs; listed after restart', async () => {
    h = await harness({ 'sessions.messageExpiryMs': 100 })
    const w = await h.watch()
    const sub = await h.connect({ clientId: 'late-sub', clean: false })
    await sub.subscribeAsync('news/#', { qos: 1 })
    await endClient(sub)
    const pub = await h.connect({ clientId: 'news-pub' })
    await pub.publishAsync('news/today', 'stale', { qos: 1 })
    await sleep(250)
    const back = await h.connect({ clientId: 'late-sub', clean: false })
    await waitForEnvelopes(w, 1, 'the expired envelope')
    expect(back.received.filter(m => m.topic === 'news/today')).toEqual([])
    expect(w.envelopes()[0].topic).toBe('$DLQ/expired/news/today')
    expectEnvelope(w.envelopes()[0].envelope, {
      reason: 'expired', topic: 'news/today', payload: 'stale', qos: 1, clientId: null, username: null, target: 'late-sub',
      brokerId: h.t.broker.aedes.id, detail: /messageExpiryMs/
    })
    await h.restart()
    expect(await listedIds(h, '?reason=expired')).toEqual([w.envelopes()[0].envelope.id])
  })

  it('retained-limit: a new retained topic over retained.maxMessages; the publisher is acked; listed after restart', async () => {
    h = await harness({ 'retained.maxMessages': 1 })
    const w = await h.watch()
    const pub = await h.connect({ clientId: 'ret-pub' })
    await pub.publishAsync('status/a', 'A', { qos: 1, retain: true })
    await pub.publishAsync('status/b', 'B', { qos: 1, retain: true })
    await waitForEnvelopes(w, 1, 'the retained-limit envelope')
    expect(pub.connected).toBe(true)
    expect(w.envelopes()[0].topic).toBe('$DLQ/retained-limit/status/b')
    expectEnvelope(w.envelopes()[0].envelope, {
      reason: 'retained-limit', topic: 'status/b', payload: 'B', qos: 1, retain: true, clientId: null, username: null, target: null,
      brokerId: h.t.broker.aedes.id, detail: /retained\.maxMessages/
    })
    await h.restart()
    expect(await listedIds(h, '?reason=retained-limit')).toEqual([w.envelopes()[0].envelope.id])
  })

  it('max-deliveries: a shared message nobody acknowledges; target is the group; listed after restart', async () => {
    h = await harness({ 'sharedSubscriptions.ackTimeoutMs': 150, 'sharedSubscriptions.maxDeliveries': 2, 'sharedSubscriptions.redeliveryBackoff.initialMs': 100, 'sharedSubscriptions.redeliveryBackoff.jitter': 0 })
    const w = await h.watch()
    const s1 = await silentMember(h.t.mqttUrl, 'poison-1', '$share/p/poison')
    const pub = await h.connect({ clientId: 'p-pub' })
    await pub.publishAsync('poison', 'bad', { qos: 1 })
    await waitForEnvelopes(w, 1, 'the max-deliveries envelope')
    expect(w.envelopes()[0].topic).toBe('$DLQ/max-deliveries/poison')
    expectEnvelope(w.envelopes()[0].envelope, {
      reason: 'max-deliveries', topic: 'poison', payload: 'bad', qos: 1, clientId: null, username: null, target: '$share/p/poison', attempts: 2,
      brokerId: h.t.broker.aedes.id, detail: /maxDeliveries/
    })
    // every delivery's time: the second one came after the ack timeout (150 ms) and the backoff (100 ms)
    const times = w.envelopes()[0].envelope.attemptTimes.map(t => Date.parse(t))
    expect(times).toHaveLength(2)
    expect(times[1] - times[0]).toBeGreaterThanOrEqual(250)
    s1.destroy()
    await h.restart()
    expect(await listedIds(h, '?reason=max-deliveries')).toEqual([w.envelopes()[0].envelope.id])
  })

  it('no loop: envelopes a full $DLQ/# session drops are not dead-lettered again', async () => {
    h = await harness({ 'sessions.maxQueuedMessages': 1, 'limits.maxPayloadBytes': 4 })
    const ops = await h.connect({ clientId: 'ops', clean: false })
    await ops.subscribeAsync('$DLQ/#', { qos: 1 })
    await endClient(ops)
    const pub = await h.connect({ clientId: 'noisy' })
    for (let i = 0; i < 3; i++) await pub.publishAsync(`n/${i}`, 'too long', { qos: 1 })
    await waitFor(() => h?.t.broker.store.stats().droppedMessages === 2, 'two envelopes dropped from the full queue')
    await sleep(200)
    const { body } = await h.api('GET', '/api/dead-letters')
    expect(body.items.map((r: { reason: string }) => r.reason)).toEqual(['too-large', 'too-large', 'too-large'])
    expect(body.counts).toEqual({ 'too-large': 3 })
    const back = await h.connect({ clientId: 'ops', clean: false })
    await waitFor(() => back.received.length === 1, 'the one queued envelope')
    expect(back.received[0].topic).toBe('$DLQ/too-large/n/2') // dropOldest kept the newest
  })

  it('a burst over deadLetter.ratePerSecond: every dead letter is stored, only the envelopes are rate-limited; counters per reason in /metrics', async () => {
    h = await harness({ 'deadLetter.ratePerSecond': 3, 'limits.maxPayloadBytes': 4 })
    const w = await h.watch()
    const pub = await h.connect({ clientId: 'flood' })
    const started = Date.now()
    for (let i = 0; i < 20; i++) await pub.publishAsync(`flood/${i}`, 'too long', { qos: 1 })
    await waitForEnvelopes(w, 3, 'the envelopes within the rate')
    await sleep(200)
    const published = w.envelopes().length
    // a bucket of 3 refilled at 3 per second over the time the burst took
    expect(published).toBeGreaterThanOrEqual(3)
    expect(published).toBeLessThanOrEqual(3 + Math.ceil(3 * (Date.now() - started) / 1000))
    const { body } = await h.api('GET', '/api/dead-letters')
    expect(body.total).toBe(20)
    expect(body.items.map((r: { topic: string }) => r.topic)).toEqual(Array.from({ length: 20 }, (_, i) => `flood/${19 - i}`))
    expect(body.suppressed).toEqual({ 'too-large': 20 - published })
    const metrics = await (await fetch(`${h.t.adminUrl}/metrics`)).text()
    expect(metrics).toContain('culex_dead_letters_total{reason="too-large"} 20')
    expect(metrics).toContain(`culex_dead_letters_suppressed_total{reason="too-large"} ${20 - published}`)
    expect(metrics).toContain('culex_dead_letters_stored 20')
    await h.restart()
    expect(await listedIds(h)).toHaveLength(20)
  })

  it('deadLetter.maxBytes: refused large publishes keep the log under the byte bound, the newest kept; one larger than the bound alone is not kept', async () => {
    const payload = (i: number): Buffer => Buffer.alloc(120_000, 48 + i)
    h = await harness({ 'limits.maxPayloadBytes': 100_000, 'deadLetter.maxBytes': 300_000 })
    const pub = await h.connect({ clientId: 'big' })
    for (let i = 0; i < 20; i++) await pub.publishAsync(`big/${i}`, payload(i), { qos: 1 })
    const { body } = await h.api('GET', '/api/dead-letters')
    expect(body.items.map((r: { topic: string }) => r.topic)).toEqual(['big/19', 'big/18'])
    const bytes = (body.items as Array<{ bytes: number }>).reduce((sum, r) => sum + r.bytes, 0)
    expect(bytes).toBe(240_000)
    expect(body.evicted).toBe(18)
    const metrics = await (await fetch(`${h.t.adminUrl}/metrics`)).text()
    expect(metrics).toContain('culex_dead_letters_stored_bytes 240000')
    const shown = await h.api('GET', `/api/dead-letters/${body.items[0].id as string}`)
    expect(Buffer.from(shown.body.payload, 'base64').equals(payload(19))).toBe(true)
    await h.restart()
    expect(await listedIds(h)).toEqual(body.items.map((r: { id: string }) => r.id))

    // larger than the whole bound on its own: not kept, and it does not push the others out
    const pub2 = await h.connect({ clientId: 'huge' })
    await pub2.publishAsync('huge/1', Buffer.alloc(350_000), { qos: 1 })
    const after = await h.api('GET', '/api/dead-letters')
    expect(after.body.items.map((r: { topic: string }) => r.topic)).toEqual(['big/19', 'big/18'])
    expect(after.body.counts).toEqual({ 'too-large': 1 })
  })

  it('deadLetter.maxBytes bounds the disk too: the space of evicted dead letters is reclaimed', async () => {
    h = await harness({ 'limits.maxPayloadBytes': 100_000, 'deadLetter.maxBytes': 2_000_000 })
    const pub = await h.connect({ clientId: 'big' })
    // Random payloads: LevelDB compresses, and a repeated byte would take no room at all.
    for (let i = 0; i < 120; i++) await pub.publishAsync(`big/${i}`, randomBytes(150_000), { qos: 1 })
    expect((await h.api('GET', '/api/dead-letters')).body.total).toBe(13)
    // 18 MB refused; what stays on disk is the log's 2 MB and a little of LevelDB's own (on Redis: in its memory,
    // the dead letters' hash)
    const broker = h.t.broker
    const stored = testStore() === 'redis'
      ? async () => await redisKeyBytes(broker.store.location, 'culex:dlq-records')
      : async () => dirBytes(path.join(h?.t.dataDir ?? '', 'store'))
    await waitFor(async () => await stored() < 3_000_000, 'the stored dead letters back under 3 MB', 15_000)
  })

  it('deadLetter.maxMessages keeps the newest, counts the removed; the admin API filters, shows, deletes and purges', async () => {
    h = await harness({ 'deadLetter.maxMessages': 3, 'limits.maxPayloadBytes': 4 })
    const pub = await h.connect({ clientId: 'many' })
    for (let i = 0; i < 5; i++) await pub.publishAsync(`m/${i}`, `payload-${i}`, { qos: 1 })
    const ids = await listedIds(h)
    expect(ids).toHaveLength(3)
    const { body } = await h.api('GET', '/api/dead-letters')
    expect(body.items.map((r: { topic: string }) => r.topic)).toEqual(['m/4', 'm/3', 'm/2'])
    expect(body.evicted).toBe(2)
    expect(body.actions).toEqual(expect.arrayContaining([{ label: 'Replay', method: 'POST', path: '/api/dead-letters/{id}/replay', confirm: true }]))
    expect(await listedIds(h, '?topic=m/3')).toEqual([ids[1]])
    expect(await listedIds(h, '?since=1h')).toHaveLength(3)
    expect(await listedIds(h, `?since=${new Date(Date.now() + 60_000).toISOString()}`)).toEqual([])
    expect((await h.api('GET', '/api/dead-letters?reason=bogus')).status).toBe(400)
    expect((await h.api('GET', '/api/dead-letters/0000000000000001')).status).toBe(404)
    const shown = await h.api('GET', `/api/dead-letters/${ids[0]}`)
    expect(Buffer.from(shown.body.payload, 'base64').toString()).toBe('payload-4')
    expect((await h.api('DELETE', `/api/dead-letters/${ids[0]}`)).body).toEqual({ removed: 1 })
    expect((await h.api('DELETE', '/api/dead-letters')).status).toBe(400)
    expect((await h.api('DELETE', '/api/dead-letters?topic=m/2')).body).toEqual({ removed: 1 })
    expect(await listedIds(h)).toEqual([ids[1]])
    const info = await h.api('GET', '/api/info')
    expect(info.body.features).toContain('dead-letters')
    await h.restart()
    expect(await listedIds(h)).toEqual([ids[1]])
    expect((await h.api('DELETE', '/api/dead-letters?all=true')).body).toEqual({ removed: 1 })
    expect(await listedIds(h)).toEqual([])
  })
})
