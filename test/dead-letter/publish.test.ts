import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { tryConnect } from '../auth/support.js'
import { endClient, sleep, waitFor } from '../helpers/clients.js'
import { expectEnvelope, harness, listedIds, RELAXED_ACL, waitForEnvelopes, type Harness } from './support.js'

/** Refused publishes (ACL, size, payload rules, wills, no subscribers) become dead letters, over real sockets. */
describe('dead letters of refused publishes', () => {
  let h: Harness | undefined
  afterEach(async () => {
    for (const c of h?.clients.splice(0) ?? []) await endClient(c, true)
    await h?.t.close()
    h = undefined
  })

  it('unauthorized: acked, publisher stays connected, envelope field by field, listed after restart; replay fails then succeeds once the ACL allows it', async () => {
    h = await harness({}, { acl: true })
    const w = await h.watch()
    const bob = await h.connect({ clientId: 'bob-1', username: 'bob', password: 'b' })
    await bob.publishAsync('home/lamp', 'on', { qos: 1 }) // resolves on PUBACK
    await waitForEnvelopes(w, 1, 'the unauthorized envelope')
    expect(bob.connected).toBe(true)
    const [{ topic, envelope }] = w.envelopes()
    expect(topic).toBe('$DLQ/unauthorized/home/lamp')
    expectEnvelope(envelope, {
      reason: 'unauthorized', topic: 'home/lamp', payload: 'on', qos: 1, clientId: 'bob-1', username: 'bob', target: null,
      brokerId: h.t.broker.aedes.id, detail: /ACL does not allow/
    })
    // still usable: a permitted publish goes through
    await bob.publishAsync('bob/x', 'fine', { qos: 1 })
    expect(bob.connected).toBe(true)

    await h.restart()
    expect(await listedIds(h, '?reason=unauthorized')).toEqual([envelope.id])
    const shown = await h.api('GET', `/api/dead-letters/${envelope.id}`)
    expect(shown.body).toEqual(envelope)

    // Replay while the ACL still refuses: it stays in the log under its id with attempts 2 and the first rejection time kept.
    const w2 = await h.watch()
    const failed = await h.api('POST', `/api/dead-letters/${envelope.id}/replay`)
    expect(failed.status).toBe(200)
    expect(failed.body).toMatchObject({ id: envelope.id, outcome: 'dead-lettered', reason: 'unauthorized', attempts: 2 })
    await waitForEnvelopes(w2, 1, 'the envelope of the failed replay')
    const again = w2.envelopes()[0].envelope
    expect(again.id).toBe(envelope.id)
    expect(again.attempts).toBe(2)
    expect(again.firstRejectedAt).toBe(envelope.firstRejectedAt)
    expect(again.clientId).toBe('bob-1')
    expect(await listedIds(h)).toEqual([again.id])

    // Fix the cause, replay: the original subscriber gets the original payload on the original topic.
    await writeFile(h.aclFile, RELAXED_ACL)
    expect((await h.t.broker.security.reload()).aclFile).toBe('reloaded')
    const alice = await h.connect({ clientId: 'alice-sub', username: 'alice', password: 'a' })
    await alice.subscribeAsync('home/#', { qos: 1 })
    const ok = await h.api('POST', `/api/dead-letters/${again.id}/replay`)
    expect(ok.body).toEqual({ id: again.id, outcome: 'published' })
    await waitFor(() => alice.received.length === 1, 'the replayed message')
    expect(alice.received[0]).toMatchObject({ topic: 'home/lamp', payload: 'on', qos: 1 })
    expect(await listedIds(h)).toEqual([])
    await sleep(100)
    expect(w2.envelopes()).toHaveLength(1)
  })

  it('too-large: over limits.maxPayloadBytes at QoS 2, acked, envelope, listed after restart', async () => {
    h = await harness({ 'limits.maxPayloadBytes': 8 })
    const w = await h.watch()
    const pub = await h.connect({ clientId: 'big-pub' })
    await pub.publishAsync('sensors/raw', 'x'.repeat(20), { qos: 2 }) // resolves on PUBCOMP
    await waitForEnvelopes(w, 1, 'the too-large envelope')
    expect(pub.connected).toBe(true)
    expect(w.envelopes()[0].topic).toBe('$DLQ/too-large/sensors/raw')
    expectEnvelope(w.envelopes()[0].envelope, {
      reason: 'too-large', topic: 'sensors/raw', payload: 'x'.repeat(20), qos: 2, clientId: 'big-pub', username: null, target: null,
      brokerId: h.t.broker.aedes.id, detail: /limits\.maxPayloadBytes: payload is 20 bytes, over 8/
    })
    await h.restart()
    expect(await listedIds(h, '?reason=too-large&topic=sensors/%2B')).toEqual([w.envelopes()[0].envelope.id])
  })

  it('too-large: limits.topicMaxPayloadBytes applies the smallest matching limit; other topics keep the global one', async () => {
    h = await harness({ 'limits.topicMaxPayloadBytes': 'telemetry/#=64,telemetry/small/+=8' })
    const w = await h.watch()
    const sub = await h.connect({ clientId: 'tele-sub' })
    await sub.subscribeAsync('#', { qos: 1 })
    const pub = await h.connect({ clientId: 'tele-pub' })
    await pub.publishAsync('telemetry/small/a', 'x'.repeat(20), { qos: 1 })
    await pub.publishAsync('telemetry/big', 'y'.repeat(20), { qos: 1 })
    await pub.publishAsync('other/topic', 'z'.repeat(200), { qos: 1 })
    await waitFor(() => sub.received.length === 2, 'the two messages within their limits')
    expect(sub.received.map(m => m.topic).sort()).toEqual(['other/topic', 'telemetry/big'])
    await waitForEnvelopes(w, 1, 'the too-large envelope')
    expectEnvelope(w.envelopes()[0].envelope, {
      reason: 'too-large', topic: 'telemetry/small/a', payload: 'x'.repeat(20), qos: 1, clientId: 'tele-pub', username: null, target: null,
      brokerId: h.t.broker.aedes.id, detail: /limits\.topicMaxPayloadBytes\[telemetry\/small\/\+\]: payload is 20 bytes, over 8/
    })
  })

  it('deadLetter.onRejectedPublish: disconnect closes the publisher without an ack and still dead-letters the message', async () => {
    h = await harness({ 'limits.maxPayloadBytes': 8, 'deadLetter.onRejectedPublish': 'disconnect' })
    const w = await h.watch()
    const pub = await h.connect({ clientId: 'strict-pub' })
    const closed = new Promise<void>(resolve => pub.once('close', () => resolve()))
    let acked = false
    pub.publish('sensors/raw', 'x'.repeat(20), { qos: 1 }, err => { if (err === undefined || err === null) acked = true })
    await closed
    await waitForEnvelopes(w, 1, 'the too-large envelope')
    expect(acked).toBe(false)
    expectEnvelope(w.envelopes()[0].envelope, {
      reason: 'too-large', topic: 'sensors/raw', payload: 'x'.repeat(20), qos: 1, clientId: 'strict-pub', username: null, target: null,
      brokerId: h.t.broker.aedes.id, detail: /limits\.maxPayloadBytes/
    })
  })

  it('invalid-payload: json and utf8 rules by topic filter; valid payloads pass; listed after restart', async () => {
    h = await harness({ 'deadLetter.payloadRules': 'orders/#=json,logs/+=utf8' })
    const w = await h.watch()
    const sub = await h.connect({ clientId: 'orders-sub' })
    await sub.subscribeAsync(['orders/#', 'logs/#'], { qos: 1 })
    const pub = await h.connect({ clientId: 'orders-pub' })
    await pub.publishAsync('orders/1', '{"n":1}', { qos: 1 })
    await pub.publishAsync('orders/2', '{"n":', { qos: 1 })
    await pub.publishAsync('logs/app', Buffer.from([0xff, 0xfe, 0x41]), { qos: 1 })
    await pub.publishAsync('logs/app', 'plain text', { qos: 1 })
    await waitForEnvelopes(w, 2, 'two invalid-payload envelopes')
    expect(pub.connected).toBe(true)
    await waitFor(() => sub.received.length === 2, 'the valid messages')
    expect(sub.received.map(m => m.payload)).toEqual(['{"n":1}', 'plain text'])
    const [json, utf8] = w.envelopes()
    expect(json.topic).toBe('$DLQ/invalid-payload/orders/2')
    expectEnvelope(json.envelope, {
      reason: 'invalid-payload', topic: 'orders/2', payload: '{"n":', qos: 1, clientId: 'orders-pub', username: null, target: null,
      brokerId: h.t.broker.aedes.id, detail: /payload rule orders\/#: json: the payload is not JSON/
    })
    expectEnvelope(utf8.envelope, {
      reason: 'invalid-payload', topic: 'logs/app', payload: Buffer.from([0xff, 0xfe, 0x41]), qos: 1, clientId: 'orders-pub', username: null, target: null,
      brokerId: h.t.broker.aedes.id, detail: /payload rule logs\/\+: utf8: the payload is not valid UTF-8/
    })
    await h.restart()
    expect((await listedIds(h, '?reason=invalid-payload')).sort()).toEqual([json.envelope.id, utf8.envelope.id].sort())
  })

  it('invalid-payload: a schema:<file> rule refuses JSON that breaks the JSON Schema; replay after the fix is validated again', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'culex-dlq-schema-'))
    try {
      const schema = path.join(dir, 'order.json')
      await writeFile(schema, JSON.stringify({ type: 'object', required: ['qty'], properties: { qty: { type: 'integer', minimum: 1 } } }))
      h = await harness({ 'deadLetter.payloadRules': `orders/#=schema:${schema}` })
      const w = await h.watch()
      const sub = await h.connect({ clientId: 'orders-sub' })
      await sub.subscribeAsync('orders/#', { qos: 1 })
      const pub = await h.connect({ clientId: 'orders-pub' })
      await pub.publishAsync('orders/eu/1', '{"qty":0}', { qos: 1 })
      await pub.publishAsync('orders/eu/2', '{"qty":3}', { qos: 1 })
      await waitForEnvelopes(w, 1, 'the schema envelope')
      await waitFor(() => sub.received.length === 1, 'the valid order')
      expect(sub.received[0].payload).toBe('{"qty":3}')
      expect(pub.connected).toBe(true)
      expect(w.envelopes()[0].topic).toBe('$DLQ/invalid-payload/orders/eu/1')
      expectEnvelope(w.envelopes()[0].envelope, {
        reason: 'invalid-payload', topic: 'orders/eu/1', payload: '{"qty":0}', qos: 1, clientId: 'orders-pub', username: null, target: null,
        brokerId: h.t.broker.aedes.id, detail: /^payload rule orders\/#: schema:.*order\.json: #\/qty: 0 is less than 1\.$/
      })
      // The schema is compiled at start: replaying on the same broker fails again (attempts 2).
      const again = await h.api('POST', `/api/dead-letters/${w.envelopes()[0].envelope.id}/replay`)
      expect(again.body).toMatchObject({ outcome: 'dead-lettered', reason: 'invalid-payload', detail: expect.stringMatching(/^replay: payload rule/) })
      await waitForEnvelopes(w, 2, 'the envelope of the failed replay')
      expect(w.envelopes()[1].envelope.attempts).toBe(2)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('will-denied: a CONNECT whose will topic the ACL refuses gets CONNACK 5 and its will is dead-lettered; listed after restart', async () => {
    h = await harness({}, { acl: true })
    const w = await h.watch()
    const r = await tryConnect(h.t.mqttUrl, { clientId: 'bob-will', username: 'bob', password: 'b', will: { topic: 'home/bob/status', payload: Buffer.from('gone'), qos: 1, retain: true } })
    expect(r.result).toBe(5)
    await waitForEnvelopes(w, 1, 'the will-denied envelope')
    expect(w.envelopes()[0].topic).toBe('$DLQ/will-denied/home/bob/status')
    expectEnvelope(w.envelopes()[0].envelope, {
      reason: 'will-denied', topic: 'home/bob/status', payload: 'gone', qos: 1, retain: true, clientId: 'bob-will', username: 'bob', target: null,
      brokerId: h.t.broker.aedes.id, detail: /will.*CONNACK 5/
    })
    await h.restart()
    expect(await listedIds(h, '?reason=will-denied')).toEqual([w.envelopes()[0].envelope.id])
  })

  it('will-denied at publish time: the ACL changed after CONNECT, the will of a dropped connection is dead-lettered', async () => {
    h = await harness({}, { acl: true })
    const w = await h.watch()
    const bob = await h.connect({ clientId: 'bob-dies', username: 'bob', password: 'b', will: { topic: 'bob/status', payload: Buffer.from('offline'), qos: 1, retain: false } })
    await writeFile(h.aclFile, 'user alice\ntopic read $DLQ/#\nuser bob\ntopic read home/#\n')
    expect((await h.t.broker.security.reload()).aclFile).toBe('reloaded')
    ;(bob as unknown as { stream: { destroy: () => void } }).stream.destroy()
    await waitForEnvelopes(w, 1, 'the will-denied envelope')
    expect(w.envelopes()[0].topic).toBe('$DLQ/will-denied/bob/status')
    expectEnvelope(w.envelopes()[0].envelope, {
      reason: 'will-denied', topic: 'bob/status', payload: 'offline', qos: 1, clientId: 'bob-dies', username: 'bob', target: null,
      brokerId: h.t.broker.aedes.id, detail: /ACL does not allow/
    })
  })

  it('no-subscribers (when enabled): QoS 1 with no match is dead-lettered, QoS 0, retained or matched ones are not', async () => {
    h = await harness({ 'deadLetter.noSubscribers': true })
    const w = await h.watch()
    const sub = await h.connect({ clientId: 'some-sub' })
    await sub.subscribeAsync('taken/#', { qos: 1 })
    const pub = await h.connect({ clientId: 'lonely' })
    await pub.publishAsync('nobody/home', 'hello?', { qos: 1 })
    await pub.publishAsync('nobody/home', 'qos0', { qos: 0 })
    await pub.publishAsync('nobody/kept', 'retained', { qos: 1, retain: true })
    await pub.publishAsync('taken/yes', 'heard', { qos: 1 })
    await waitForEnvelopes(w, 1, 'the no-subscribers envelope')
    await sleep(200)
    expect(w.envelopes()).toHaveLength(1)
    expect(pub.connected).toBe(true)
    expect(w.envelopes()[0].topic).toBe('$DLQ/no-subscribers/nobody/home')
    expectEnvelope(w.envelopes()[0].envelope, {
      reason: 'no-subscribers', topic: 'nobody/home', payload: 'hello?', qos: 1, clientId: 'lonely', username: null, target: null,
      brokerId: h.t.broker.aedes.id, detail: /no subscription matches/
    })
    await h.restart()
    expect(await listedIds(h, '?reason=no-subscribers')).toEqual([w.envelopes()[0].envelope.id])
  })

  it('no-subscribers is off by default', async () => {
    h = await harness()
    const w = await h.watch()
    const pub = await h.connect({ clientId: 'lonely' })
    await pub.publishAsync('nobody/home', 'hello?', { qos: 1 })
    await sleep(300)
    expect(w.envelopes()).toEqual([])
    expect(await listedIds(h)).toEqual([])
  })

  it('no loop: client publishes to $DLQ/... are acked and dropped without an envelope', async () => {
    h = await harness({ 'deadLetter.noSubscribers': true })
    const w = await h.watch()
    const pub = await h.connect({ clientId: 'sneaky' })
    await pub.publishAsync('$DLQ/unauthorized/x', '{"fake":true}', { qos: 1 })
    await pub.publishAsync('$DLQ/nothing', 'x', { qos: 2 })
    await sleep(300)
    expect(pub.connected).toBe(true)
    expect(w.envelopes()).toEqual([])
    expect(w.client.received).toEqual([])
    expect(await listedIds(h)).toEqual([])
  })
})
