import { describe, expect, it } from 'vitest'
import type { TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { connectV5 as v5, waitFor, type TestClient } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'

/**
 * MQTT 5 Will Delay Interval (docs/protocol.md, "MQTT 5", will delay): a will is published when its delay is over or
 * its session ends, whichever comes first, and a new connection with the same client id in time cancels it. Each
 * client leaves by dropping its connection (no DISCONNECT); times are measured from that moment.
 */

interface WillClient { clientId: string, willDelayInterval: number, sessionExpiryInterval: number }

async function connectWithWill (t: TestBroker, c: WillClient): Promise<RawClient> {
  const raw = await openRaw('tcp', t, { version: 5 })
  const connack = await raw.connect({
    clientId: c.clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: c.sessionExpiryInterval },
    will: { topic: `wd/${c.clientId}`, payload: Buffer.from(`${c.clientId} gone`), qos: 1, retain: false, properties: { willDelayInterval: c.willDelayInterval, contentType: 'text/plain' } }
  })
  expect(connack.reasonCode).toBe(0)
  return raw
}

/** Drops the connection; resolves with the time the broker saw it close. */
async function drop (raw: RawClient): Promise<number> {
  raw.destroy()
  await raw.closed
  return Date.now()
}

/** The time each will arrives at the watcher, by topic. */
function arrivals (watcher: TestClient): Map<string, number> {
  const at = new Map<string, number>()
  watcher.on('message', topic => { if (!at.has(topic)) at.set(topic, Date.now()) })
  return at
}

describe('MQTT 5 Will Delay Interval', () => {
  let t: TestBroker
  const track = brokerPerTest(started => { t = started })

  it('publishes a delayed will when its delay is over, or at the end of a shorter session, and an undelayed one at once', async () => {
    const watcher = track(await v5(t.mqttUrl, { clientId: 'wd-watcher' }))
    await watcher.subscribeAsync('wd/#', { qos: 1 })
    const at = arrivals(watcher)
    const delayed = await connectWithWill(t, { clientId: 'delayed', willDelayInterval: 1, sessionExpiryInterval: 3600 })
    const sessionFirst = await connectWithWill(t, { clientId: 'session-first', willDelayInterval: 60, sessionExpiryInterval: 1 })
    const cleanSession = await connectWithWill(t, { clientId: 'clean-session', willDelayInterval: 60, sessionExpiryInterval: 0 })
    const left = await drop(delayed)
    await drop(sessionFirst)
    await drop(cleanSession)
    await waitFor(() => at.size === 3, 'three wills', 5000)
    expect((at.get('wd/clean-session') ?? 0) - left).toBeLessThan(500)
    for (const id of ['delayed', 'session-first']) {
      const after = (at.get(`wd/${id}`) ?? 0) - left
      expect(after, id).toBeGreaterThanOrEqual(1000)
      expect(after, id).toBeLessThan(2500)
    }
    expect(watcher.received.map(m => [m.topic, m.payload, m.properties]).sort()).toEqual([
      ['wd/clean-session', 'clean-session gone', { contentType: 'text/plain' }],
      ['wd/delayed', 'delayed gone', { contentType: 'text/plain' }],
      ['wd/session-first', 'session-first gone', { contentType: 'text/plain' }]
    ])
    expect(await t.broker.store.getWill({ id: 'delayed' })).toBeUndefined()
  })

  it('cancels a delayed will when the client connects again in time, and keeps the new connection\'s will', async () => {
    const watcher = track(await v5(t.mqttUrl, { clientId: 'wd-watcher' }))
    await watcher.subscribeAsync('wd/#', { qos: 1 })
    const c = { clientId: 'back', willDelayInterval: 1, sessionExpiryInterval: 3600 }
    const left = await drop(await connectWithWill(t, c))
    const again = await connectWithWill(t, c)
    expect(Date.now() - left).toBeLessThan(1000)
    // the delay of the first connection's will runs out while the second is connected
    await new Promise(resolve => setTimeout(resolve, Math.max(0, left + 1500 - Date.now())))
    const pub = track(await v5(t.mqttUrl, { clientId: 'wd-pub' }))
    await pub.publishAsync('wd/fence', 'fence', { qos: 1 })
    await waitFor(() => watcher.received.length >= 1, 'the fence')
    expect(watcher.received.map(m => m.topic)).toEqual(['wd/fence'])
    // the second connection's will is still there, with its own delay
    const leftAgain = await drop(again)
    await waitFor(() => watcher.received.length >= 2, 'the second will', 3000)
    expect(watcher.received[1].topic).toBe('wd/back')
    expect(Date.now() - leftAgain).toBeGreaterThanOrEqual(1000)
  })

  it('delays the will however the connection ends: a TCP close without DISCONNECT, a WebSocket closed or reset', async () => {
    // aedes closes a client from a stream's 'end' and end-of-stream with close bound at construction: a delayed will
    // was published at once on those paths (only a socket error went through the delay)
    const watcher = track(await v5(t.mqttUrl, { clientId: 'wd-ends-watcher' }))
    await watcher.subscribeAsync('wd/ends/#', { qos: 1 })
    const at = arrivals(watcher)
    const ends: Array<[string, string, (c: TestClient) => void]> = [
      ['tcp-end', t.mqttUrl, c => { c.stream.end() }],
      ['ws-end', t.wsUrl, c => { c.stream.end() }],
      ['ws-destroy', t.wsUrl, c => { c.stream.destroy() }]
    ]
    const clients = await Promise.all(ends.map(async ([id, url]) => await v5(url, {
      clientId: id, clean: false, reconnectPeriod: 0, properties: { sessionExpiryInterval: 3600 },
      will: { topic: `wd/ends/${id}`, payload: Buffer.from(`${id} gone`), qos: 1, retain: false, properties: { willDelayInterval: 1 } }
    })))
    const left = Date.now()
    ends.forEach(([, , end], i) => { end(clients[i]) })
    await waitFor(() => at.size === 3, 'three wills', 4000)
    for (const [id] of ends) expect((at.get(`wd/ends/${id}`) ?? 0) - left, id).toBeGreaterThanOrEqual(950)
  })
})
