import { describe, expect, it } from 'vitest'
import type { TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { connectClient, connectV5 as v5, endClient, waitFor, type TestClient } from '../helpers/clients.js'

/** Subscribes with a persistent session and leaves; publishes one message living 1 s and one living 60 s. */
async function leaveThenPublish (subscriber: TestClient, pub: TestClient, prefix: string): Promise<number> {
  await subscriber.subscribeAsync(`${prefix}/#`, { qos: 1 })
  await endClient(subscriber)
  const publishedAt = Date.now()
  await pub.publishAsync(`${prefix}/short`, 'short-lived', { qos: 1, properties: { messageExpiryInterval: 1 } })
  await pub.publishAsync(`${prefix}/long`, 'long-lived', { qos: 1, properties: { messageExpiryInterval: 60 } })
  return publishedAt
}

/** Waits until the 1 s message's interval has run out (and a second more, for the whole-second count down). */
async function waitPastExpiry (publishedAt: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, Math.max(0, publishedAt + 2100 - Date.now())))
}

/**
 * Restarts the broker (what is stored keeps its arrival time), watches `$DLQ/expired/#` there, and waits until the
 * 1 s message has expired. The caller closes the restarted broker.
 */
async function restartPastExpiry (t: TestBroker, publishedAt: number, watcherId: string): Promise<{ restarted: TestBroker, dlq: TestClient }> {
  const restarted = await t.restart()
  const dlq = await connectClient(restarted.mqttUrl, { clientId: watcherId })
  await dlq.subscribeAsync('$DLQ/expired/#', { qos: 1 })
  await waitPastExpiry(publishedAt)
  return { restarted, dlq }
}

/** A 60 s interval counted down by the two seconds or so a message waited. */
function expectCountedDown (interval: unknown): void {
  expect(interval).toBeLessThanOrEqual(58)
  expect(interval).toBeGreaterThanOrEqual(55)
}

/**
 * MQTT 5 Message Expiry Interval (docs/protocol.md, "MQTT 5", properties): forwarded as published on a live delivery,
 * counted down by the time a message waited in a session queue, and a queued message past it is never delivered
 * but dead-lettered as `expired`.
 */
describe('MQTT 5 Message Expiry Interval', () => {
  let t: TestBroker
  const track = brokerPerTest(started => { t = started })

  it('forwards the interval live, counts it down from the queue, and dead-letters a queued message past it', async () => {
    const dlq = track(await v5(t.mqttUrl, { clientId: 'me-dlq' }))
    await dlq.subscribeAsync('$DLQ/expired/#', { qos: 1 })
    const live = track(await v5(t.mqttUrl, { clientId: 'me-live' }))
    await live.subscribeAsync('me/#', { qos: 1 })
    const session = { clientId: 'me-away', clean: false, properties: { sessionExpiryInterval: 3600 } }
    const pub = track(await v5(t.mqttUrl, { clientId: 'me-pub' }))
    const publishedAt = await leaveThenPublish(await v5(t.mqttUrl, session), pub, 'me')
    await pub.publishAsync('me/forever', 'no expiry', { qos: 1 })
    await waitFor(() => live.received.length === 3, 'the live copies')
    expect(live.received.map(m => [m.topic, m.properties?.messageExpiryInterval])).toEqual([['me/short', 1], ['me/long', 60], ['me/forever', undefined]])

    await waitPastExpiry(publishedAt)
    const back = track(await v5(t.mqttUrl, session))
    expect(back.sessionPresent).toBe(true)
    await waitFor(() => back.received.length >= 2, 'the queued messages')
    await waitFor(() => dlq.received.length >= 1, 'the expired message dead-lettered')
    expect(back.received.map(m => m.topic)).toEqual(['me/long', 'me/forever'])
    expectCountedDown(back.received[0].properties?.messageExpiryInterval)
    expect(back.received[1].properties?.messageExpiryInterval).toBeUndefined()
    expect(dlq.received.map(m => m.topic)).toEqual(['$DLQ/expired/me/short'])
    expect(JSON.parse(dlq.received[0].payload)).toMatchObject({ reason: 'expired', topic: 'me/short', target: 'me-away' })
  })

  it('expires a queued message for an MQTT 3.1.1 subscriber too, which gets the others without properties', async () => {
    const pub = track(await v5(t.mqttUrl, { clientId: 'me-pub311' }))
    await waitPastExpiry(await leaveThenPublish(await connectClient(t.mqttUrl, { clientId: 'me-311', clean: false }), pub, 'me311'))
    const back = track(await connectClient(t.mqttUrl, { clientId: 'me-311', clean: false }))
    await waitFor(() => back.received.length >= 1, 'the queued message')
    await pub.publishAsync('me311/fence', 'fence', { qos: 1 })
    await waitFor(() => back.received.length >= 2, 'the fence')
    expect(back.received.map(m => [m.topic, m.properties])).toEqual([['me311/long', undefined], ['me311/fence', undefined]])
  })

  it('expires retained messages: counted down when sent on SUBSCRIBE, never sent past the interval but removed and dead-lettered, across a restart', async () => {
    const pub = await v5(t.mqttUrl, { clientId: 'mer-pub' })
    const publishedAt = Date.now()
    await pub.publishAsync('mer/short', 'short-lived', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync('mer/long', 'long-lived', { qos: 1, retain: true, properties: { messageExpiryInterval: 60 } })
    await pub.publishAsync('mer/forever', 'no expiry', { qos: 1, retain: true })
    await endClient(pub)
    const early = await v5(t.mqttUrl, { clientId: 'mer-early' })
    await early.subscribeAsync('mer/#', { qos: 1 })
    await waitFor(() => early.received.length >= 3, 'the three retained messages')
    expect(early.received.map(m => [m.topic, m.retain, m.properties?.messageExpiryInterval]).sort()).toEqual([['mer/forever', true, undefined], ['mer/long', true, 60], ['mer/short', true, 1]])
    await endClient(early)

    // the arrival time is stored with the message: a restart does not reset the interval
    const { restarted, dlq } = await restartPastExpiry(t, publishedAt, 'mer-dlq')
    try {
      const late = await v5(restarted.mqttUrl, { clientId: 'mer-late' })
      await late.subscribeAsync('mer/#', { qos: 1 })
      await waitFor(() => late.received.length >= 2 && dlq.received.length >= 1, 'the two live retained messages and the dead letter')
      expect(late.received.map(m => m.topic).sort()).toEqual(['mer/forever', 'mer/long'])
      expectCountedDown(late.received.find(m => m.topic === 'mer/long')?.properties?.messageExpiryInterval)
      expect(dlq.received.map(m => m.topic)).toEqual(['$DLQ/expired/mer/short'])
      expect(JSON.parse(dlq.received[0].payload)).toMatchObject({ reason: 'expired', topic: 'mer/short' })
      // removed: the store keeps the two others (counted once the removal is written: a shared store's count is read
      // from Redis), and an MQTT 3.1.1 subscriber never sees it either
      await restarted.broker.store.barrier()
      expect(restarted.broker.store.stats().retained).toBe(2)
      const old = await connectClient(restarted.mqttUrl, { clientId: 'mer-311' })
      await old.subscribeAsync('mer/+', { qos: 1 })
      await waitFor(() => old.received.length >= 2, 'the two retained messages at the 3.1.1 client')
      expect(old.received.map(m => [m.topic, m.properties]).sort()).toEqual([['mer/forever', undefined], ['mer/long', undefined]])
      await Promise.all([late, old].map(async c => await endClient(c, true)))
    } finally {
      await endClient(dlq, true)
      await restarted.close()
    }
  })

  it('carries the properties through a shared group and expires what waits in its queue, across a restart', async () => {
    const v5Member = track(await v5(t.mqttUrl, { clientId: 'shx-live' }))
    await v5Member.subscribeAsync('$share/live/shx/#', { qos: 1 })
    const pub = await v5(t.mqttUrl, { clientId: 'shx-pub' })
    const properties = { messageExpiryInterval: 60, contentType: 'text/plain', userProperties: { k: ['a', 'b'] } }
    await pub.publishAsync('shx/live', 'live', { qos: 1, properties })
    await waitFor(() => v5Member.received.length >= 1, 'the shared delivery')
    expect(v5Member.received[0].properties).toEqual(properties)
    await endClient(v5Member)

    // a persistent member away: the group's messages wait in its durable queue
    const session = { clientId: 'shx-away', clean: false, properties: { sessionExpiryInterval: 3600 } }
    const away = await v5(t.mqttUrl, session)
    await away.subscribeAsync('$share/q/shq/#', { qos: 1 })
    await endClient(away)
    const publishedAt = Date.now()
    await pub.publishAsync('shq/short', 'short-lived', { qos: 1, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync('shq/long', 'long-lived', { qos: 1, properties: { messageExpiryInterval: 60, contentType: 'text/plain', correlationData: Buffer.from([0, 1, 0xff]) } })
    await pub.publishAsync('shq/forever', 'no expiry', { qos: 1 })
    await endClient(pub)
    const { restarted, dlq } = await restartPastExpiry(t, publishedAt, 'shx-dlq')
    try {
      const back = await v5(restarted.mqttUrl, session)
      await waitFor(() => back.received.length >= 2 && dlq.received.length >= 1, 'the two messages left and the dead letter')
      expect(back.received.map(m => m.topic)).toEqual(['shq/long', 'shq/forever'])
      expect(back.received[0].properties).toMatchObject({ contentType: 'text/plain', correlationData: Buffer.from([0, 1, 0xff]) })
      expectCountedDown(back.received[0].properties?.messageExpiryInterval)
      expect(dlq.received.map(m => m.topic)).toEqual(['$DLQ/expired/shq/short'])
      expect(JSON.parse(dlq.received[0].payload)).toMatchObject({ reason: 'expired', topic: 'shq/short', target: '$share/q/shq/#' })
      await endClient(back, true)
    } finally {
      await endClient(dlq, true)
      await restarted.close()
    }
  })
})
