import { afterEach, describe, expect, it } from 'vitest'
import { endClient, sleep, waitFor } from '../helpers/clients.js'
import { silentMember } from '../shared-subscriptions/support.js'
import { expectEnvelope, harness, listedIds, waitForEnvelopes, type Harness } from './support.js'

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

  it('a flood over deadLetter.ratePerSecond is counted, not stored or published; counters per reason in /metrics', async () => {
    h = await harness({ 'deadLetter.ratePerSecond': 3, 'limits.maxPayloadBytes': 4 })
    const w = await h.watch()
    const pub = await h.connect({ clientId: 'flood' })
    for (let i = 0; i < 20; i++) await pub.publishAsync('flood/x', 'too long', { qos: 1 })
    await waitForEnvelopes(w, 3, 'the envelopes within the rate')
    await sleep(200)
    const kept = w.envelopes().length
    expect(kept).toBeGreaterThanOrEqual(3)
    expect(kept).toBeLessThan(8)
    expect(await listedIds(h)).toHaveLength(kept)
    const metrics = await (await fetch(`${h.t.adminUrl}/metrics`)).text()
    expect(metrics).toContain('culex_dead_letters_total{reason="too-large"} 20')
    expect(metrics).toContain(`culex_dead_letters_suppressed_total{reason="too-large"} ${20 - kept}`)
    expect(metrics).toContain(`culex_dead_letters_stored ${kept}`)
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
