import { afterEach, describe, expect, it } from 'vitest'
import type { IClientOptions } from 'mqtt'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { connectClient, connectV5 as v5, waitFor, type TestClient } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'
import { tempDir, writePasswordFile } from '../auth/support.js'
import path from 'node:path'

/**
 * MQTT 5 session expiry per client (docs/protocol.md, "MQTT 5", session expiry): the Session Expiry Interval of the CONNECT
 * (at most sessions.expiryMs) and of the DISCONNECT decides how long a session outlives its connection, Clean Start
 * and the interval are independent, and the expiry counts from the disconnect. Timings are measured against the
 * moment the client's DISCONNECT was acknowledged by the connection closing.
 */

/** The session is in the store: what a reconnect with Clean Start 0 would resume. */
async function sessionExists (t: TestBroker, clientId: string): Promise<boolean> {
  return (await t.broker.store.sessionInfo(clientId)) !== undefined
}

/** Ends the client with a DISCONNECT carrying these properties; resolves with the time the connection closed. */
async function disconnect (client: TestClient, properties?: { sessionExpiryInterval?: number }): Promise<number> {
  await new Promise<void>(resolve => client.end(false, properties === undefined ? {} : { properties }, () => resolve()))
  return Date.now()
}

async function waitUntilGone (t: TestBroker, clientId: string, timeoutMs: number): Promise<number> {
  await waitFor(async () => !await sessionExists(t, clientId), `session ${clientId} to expire`, timeoutMs)
  return Date.now()
}

describe('MQTT 5 session expiry', () => {
  let t: TestBroker
  const track = brokerPerTest(started => { t = started })

  it("keeps each session for the client's own Session Expiry Interval after the disconnect, then removes it with its queue", async () => {
    const short = await v5(t.mqttUrl, { clientId: 'short', clean: false, properties: { sessionExpiryInterval: 1 } })
    const long = await v5(t.mqttUrl, { clientId: 'long', clean: false, properties: { sessionExpiryInterval: 3600 } })
    expect([short.connack.properties?.sessionExpiryInterval, long.connack.properties?.sessionExpiryInterval]).toEqual([undefined, undefined])
    await short.subscribeAsync('exp/#', { qos: 1 })
    await long.subscribeAsync('exp/#', { qos: 1 })
    const left = await disconnect(short)
    await disconnect(long)
    const pub = track(await v5(t.mqttUrl, { clientId: 'exp-pub' }))
    await pub.publishAsync('exp/queued', 'while away', { qos: 1 })
    expect(await sessionExists(t, 'short')).toBe(true)
    const gone = await waitUntilGone(t, 'short', 3000)
    expect(gone - left).toBeGreaterThanOrEqual(1000)
    expect(gone - left).toBeLessThan(2500)
    expect(await sessionExists(t, 'long')).toBe(true)
    const shortAgain = track(await v5(t.mqttUrl, { clientId: 'short', clean: false, properties: { sessionExpiryInterval: 1 } }))
    expect(shortAgain.sessionPresent).toBe(false)
    const longAgain = track(await v5(t.mqttUrl, { clientId: 'long', clean: false, properties: { sessionExpiryInterval: 3600 } }))
    expect(longAgain.sessionPresent).toBe(true)
    await waitFor(() => longAgain.received.length === 1, 'the queued message')
    expect(longAgain.received[0].payload).toBe('while away')
  })

  it('starts a new session that is kept for Clean Start 1 with an interval: the old session and its queue are gone', async () => {
    const session = { clientId: 'fresh', clean: false, properties: { sessionExpiryInterval: 3600 } }
    const old = await v5(t.mqttUrl, session)
    await old.subscribeAsync('old/#', { qos: 1 })
    await disconnect(old)
    const pub = track(await v5(t.mqttUrl, { clientId: 'fresh-pub' }))
    await pub.publishAsync('old/1', 'for the old session', { qos: 1 })
    const fresh = await v5(t.mqttUrl, { ...session, clean: true })
    expect(fresh.sessionPresent).toBe(false)
    await fresh.subscribeAsync('new/#', { qos: 1 })
    await pub.publishAsync('old/2', 'to nobody', { qos: 1 })
    await pub.publishAsync('new/fence', 'fence', { qos: 1 })
    await waitFor(() => fresh.received.length >= 1, 'the fence')
    expect(fresh.received.map(m => m.payload)).toEqual(['fence'])
    await disconnect(fresh)
    await pub.publishAsync('new/queued', 'for the new session', { qos: 1 })
    const again = track(await v5(t.mqttUrl, session))
    expect(again.sessionPresent).toBe(true)
    await waitFor(() => again.received.length >= 1, 'the queued message')
    await pub.publishAsync('new/fence', 'second fence', { qos: 1 })
    await waitFor(() => again.received.length >= 2, 'the second fence')
    expect(again.received.map(m => m.payload)).toEqual(['for the new session', 'second fence'])
  })

  it('resumes a session for Clean Start 0 with an interval of 0, and ends it with the connection', async () => {
    const old = await v5(t.mqttUrl, { clientId: 'brief', clean: false, properties: { sessionExpiryInterval: 3600 } })
    await old.subscribeAsync('brief/#', { qos: 1 })
    await disconnect(old)
    const pub = track(await v5(t.mqttUrl, { clientId: 'brief-pub' }))
    await pub.publishAsync('brief/1', 'queued', { qos: 1 })
    const brief = await v5(t.mqttUrl, { clientId: 'brief', clean: false, properties: { sessionExpiryInterval: 0 } })
    expect(brief.sessionPresent).toBe(true)
    await waitFor(() => brief.received.length === 1, 'the queued message')
    const left = await disconnect(brief)
    const gone = await waitUntilGone(t, 'brief', 2000)
    expect(gone - left).toBeLessThan(1000)
    const again = track(await v5(t.mqttUrl, { clientId: 'brief', clean: false, properties: { sessionExpiryInterval: 3600 } }))
    expect(again.sessionPresent).toBe(false)
  })

  it('honours the Session Expiry Interval of the DISCONNECT: 0 ends the session at once, 1 keeps it one second', async () => {
    const ending = await v5(t.mqttUrl, { clientId: 'ending', clean: false, properties: { sessionExpiryInterval: 3600 } })
    await ending.subscribeAsync('d/#', { qos: 1 })
    const endedAt = await disconnect(ending, { sessionExpiryInterval: 0 })
    expect((await waitUntilGone(t, 'ending', 2000)) - endedAt).toBeLessThan(1000)

    const shortened = await v5(t.mqttUrl, { clientId: 'shortened', clean: false, properties: { sessionExpiryInterval: 3600 } })
    await shortened.subscribeAsync('d/#', { qos: 1 })
    const left = await disconnect(shortened, { sessionExpiryInterval: 1 })
    const gone = await waitUntilGone(t, 'shortened', 3000)
    expect(gone - left).toBeGreaterThanOrEqual(1000)
    expect(gone - left).toBeLessThan(2500)
  })

  it('never resumes a session that ended with its connection, however soon the client comes back', async () => {
    // the session of an interval of 0 ends at the close; a reconnect right after it must not find it, even before the
    // expiry timer has run (it once did, about one time in four: Session Present 1 and the old subscription live)
    const pub = track(await v5(t.mqttUrl, { clientId: 'quick-pub' }))
    for (let i = 0; i < 30; i++) {
      const brief = await v5(t.mqttUrl, { clientId: 'quick', clean: false, properties: { sessionExpiryInterval: i % 2 === 0 ? 0 : 3600 } })
      await brief.subscribeAsync(`quick/${i}`, { qos: 1 })
      await disconnect(brief, { sessionExpiryInterval: 0 })
      await waitFor(() => (t.broker.aedes as unknown as { clients: Record<string, unknown> }).clients.quick === undefined, 'the client gone')
      const again = await v5(t.mqttUrl, { clientId: 'quick', clean: false, properties: { sessionExpiryInterval: 3600 } })
      expect(again.sessionPresent, `round ${i}`).toBe(false)
      await pub.publishAsync(`quick/${i}`, 'to the ended session', { qos: 1 })
      await again.subscribeAsync('quick/fence', { qos: 1 })
      await pub.publishAsync('quick/fence', 'fence', { qos: 1 })
      await waitFor(() => again.received.length >= 1, 'the fence')
      expect(again.received.map(m => m.payload), `round ${i}`).toEqual(['fence'])
      await disconnect(again, { sessionExpiryInterval: 0 })
      await waitUntilGone(t, 'quick', 2000)
    }
  })

  it('answers a DISCONNECT that sets an interval after a CONNECT with 0 with DISCONNECT 0x82, publishes the will and keeps no session', async () => {
    const watcher = track(await v5(t.mqttUrl, { clientId: 'will-watcher' }))
    await watcher.subscribeAsync('bad-expiry/will', { qos: 1 })
    const raw = await openRaw('tcp', t, { version: 5 })
    const connack = await raw.connect({
      clientId: 'bad-expiry', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 0 },
      will: { topic: 'bad-expiry/will', payload: Buffer.from('gone'), qos: 1, retain: false }
    })
    expect(connack.reasonCode).toBe(0)
    raw.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } })
    const answer = await raw.next<{ cmd: 'disconnect', reasonCode?: number }>('disconnect')
    expect(answer.reasonCode).toBe(0x82)
    expect(await raw.waitClosed(5000)).toBe(true)
    await waitFor(() => watcher.received.length === 1, 'the will')
    expect(watcher.received[0].payload).toBe('gone')
    await waitUntilGone(t, 'bad-expiry', 1000)
  })
})

describe('MQTT 5 sessions on a broker with settings of its own (authentication, sessions.expiryMs)', () => {
  let t: TestBroker | undefined
  afterEach(async () => { await t?.close() })

  it('ends the old session for Clean Start 1 only once the client is let in: a refused CONNECT leaves it', async () => {
    const passwd = await writePasswordFile(path.join(await tempDir(), 'passwd'), { owner: 'right' })
    t = await startTestBroker({ 'auth.passwordFile': passwd, 'auth.failedLoginDelayMs': 0 })
    const session = { clientId: 'guarded', clean: false, username: 'owner', password: 'right', properties: { sessionExpiryInterval: 3600 } }
    const owner = await v5(t.mqttUrl, session)
    await owner.subscribeAsync('guarded/#', { qos: 1 })
    await disconnect(owner)
    const raw = await openRaw('tcp', t, { version: 5 })
    const refused = await raw.connect({ clientId: 'guarded', protocolVersion: 5, clean: true, username: 'owner', password: Buffer.from('wrong'), properties: { sessionExpiryInterval: 3600 } })
    expect(refused.reasonCode).toBe(0x86)
    await raw.waitClosed(5000)
    expect((await t.broker.store.sessionInfo('guarded'))?.subscriptions).toEqual([{ topic: 'guarded/#', qos: 1 }])
    const again = await v5(t.mqttUrl, session)
    expect(again.sessionPresent).toBe(true)
    await disconnect(again)
  })

  it('grants at most sessions.expiryMs, says so in CONNACK, and keeps MQTT 3.1.1 persistent sessions for it', async () => {
    t = await startTestBroker({ 'sessions.expiryMs': 1000 })
    const opts: IClientOptions = { clientId: 'capped', clean: false, properties: { sessionExpiryInterval: 3600 } }
    const capped = await v5(t.mqttUrl, opts)
    expect(capped.connack.properties?.sessionExpiryInterval).toBe(1)
    const shorter = await v5(t.mqttUrl, { clientId: 'shorter', clean: false, properties: { sessionExpiryInterval: 3600 } })
    const v311 = await connectClient(t.mqttUrl, { clientId: 'v311', clean: false })
    const left = await disconnect(capped)
    await disconnect(shorter, { sessionExpiryInterval: 7200 })
    await disconnect(v311)
    for (const id of ['capped', 'shorter', 'v311']) {
      const gone = await waitUntilGone(t, id, 3000)
      expect(gone - left, id).toBeLessThan(2500)
    }
  })
})
