import { describe, expect, it } from 'vitest'
import type { IConnackPacket, IDisconnectPacket } from 'mqtt-packet'
import { endClient } from '../helpers/clients.js'
import {
  fence, isConnected, messagesOn, rawClient, rawV5, subscribe, transports, uid, useBroker, v5Client, waitFor,
  waitForMessages, type RawClient, type TestClient, type Transport
} from './support.js'

// MQTT 5.0 §3.1.2.5 Will Flag, §3.1.3.2 Will Properties (Will Delay Interval), §3.14 DISCONNECT and the will,
// §3.1.2.10 Keep Alive and §3.2.2.3.14 Server Keep Alive. The broker of this file gives a keepalive over 2 s the
// maximum of 2 s (limits.maxKeepaliveSeconds), so the Server Keep Alive is seen in seconds.
const MAX_KEEPALIVE_S = 2
const tb = useBroker({ 'limits.maxKeepaliveSeconds': MAX_KEEPALIVE_S })

/** The will properties that must reach the will's subscribers, user properties in order [MQTT-3.1.3-10]. */
const WILL_PROPERTIES = {
  contentType: 'text/plain',
  responseTopic: 'will/reply',
  correlationData: Buffer.from('w1'),
  userProperties: { second: '2', first: '1', many: ['x', 'y'] }
}

describe.each(transports)('MQTT 5 will and keepalive over %s', (transport: Transport) => {
  /** A raw v5 client with a will on `<base>/will`, a keepalive of 2 s unless given; Session Expiry 0 unless given. */
  async function withWill (base: string, opts: { willDelayInterval?: number, sessionExpiryInterval?: number, retain?: boolean, clientId?: string } = {}): Promise<RawClient> {
    const properties = opts.willDelayInterval === undefined ? WILL_PROPERTIES : { ...WILL_PROPERTIES, willDelayInterval: opts.willDelayInterval }
    return await rawV5(tb(), transport, {
      clientId: opts.clientId ?? uid('w'),
      keepalive: MAX_KEEPALIVE_S,
      clean: opts.sessionExpiryInterval === undefined,
      properties: opts.sessionExpiryInterval === undefined ? {} : { sessionExpiryInterval: opts.sessionExpiryInterval },
      will: { topic: `${base}/will`, payload: Buffer.from('gone'), qos: 1, retain: opts.retain === true, properties }
    })
  }

  async function watcher (base: string): Promise<TestClient> {
    const w = await v5Client(tb(), transport, { keepalive: MAX_KEEPALIVE_S })
    await subscribe(w, { [`${base}/#`]: 1 })
    return w
  }

  it('[MQTT-3.1.2-7][MQTT-3.1.2-8] the will is published when the connection is lost, with its properties, user properties in order [MQTT-3.1.3-10]; Will Retain 0: not retained [MQTT-3.1.2-14]', async () => {
    const base = uid('will')
    const w = await watcher(base)
    const raw = await withWill(base)
    raw.destroy()
    const [will] = await waitForMessages(w, `${base}/will`)
    expect([will.payload, will.qos, will.retain, will.properties]).toEqual(['gone', 1, false, WILL_PROPERTIES])
    expect(Object.keys(will.properties?.userProperties as object)).toEqual(['second', 'first', 'many'])
    const later = await v5Client(tb(), transport, { keepalive: MAX_KEEPALIVE_S })
    await subscribe(later, { [`${base}/#`]: 1 })
    await fence(w, later, `${base}/fence`)
    expect(messagesOn(later, `${base}/will`)).toEqual([])
  })

  it('[MQTT-3.1.2-15] Will Retain 1: the will is published as a retained message', async () => {
    const base = uid('will')
    ;(await withWill(base, { retain: true })).destroy()
    const later = await v5Client(tb(), transport, { keepalive: MAX_KEEPALIVE_S })
    await waitFor(async () => {
      await subscribe(later, { [`${base}/will`]: 1 })
      await new Promise(resolve => setTimeout(resolve, 20))
      return messagesOn(later, `${base}/will`).length > 0
    }, 'the retained will')
    expect(messagesOn(later, `${base}/will`)[0]).toMatchObject({ payload: 'gone', retain: true, properties: WILL_PROPERTIES })
  })

  it('[MQTT-3.1.2-10][MQTT-3.14.4-3] DISCONNECT 0x00 discards the will: not published then, nor by the session\'s next connection', async () => {
    const base = uid('will')
    const clientId = uid('w')
    const w = await watcher(base)
    const raw = await withWill(base, { clientId, sessionExpiryInterval: 60 })
    raw.send({ cmd: 'disconnect', reasonCode: 0 })
    await raw.waitClosed()
    await waitFor(() => !isConnected(tb(), clientId), 'the client gone')
    const again = await rawV5(tb(), transport, { clientId, clean: false, properties: { sessionExpiryInterval: 60 } })
    again.destroy()
    await fence(w, w, `${base}/fence`)
    expect(messagesOn(w, `${base}/will`)).toEqual([])
  })

  it('§3.14.2.1 DISCONNECT 0x04 (Disconnect with Will Message) publishes the will', async () => {
    const base = uid('will')
    const w = await watcher(base)
    const raw = await withWill(base)
    raw.send({ cmd: 'disconnect', reasonCode: 0x04 })
    const [will] = await waitForMessages(w, `${base}/will`)
    expect(will.payload).toBe('gone')
  })

  it('[MQTT-3.1.2-8] a will with a Will Delay Interval is published after it, or at once when the session ends first (Session Expiry 0)', async () => {
    const base = uid('delay')
    const w = await watcher(base)
    const arrived = new Map<string, number>()
    w.on('message', topic => { if (!arrived.has(topic)) arrived.set(topic, Date.now()) })
    const delayed = await withWill(`${base}/delayed`, { willDelayInterval: 1, sessionExpiryInterval: 60 })
    const ending = await withWill(`${base}/ending`, { willDelayInterval: 60 })
    const left = Date.now()
    delayed.destroy()
    ending.destroy()
    await waitFor(() => arrived.size === 2, 'both wills', 4000)
    expect((arrived.get(`${base}/ending/will`) ?? 0) - left).toBeLessThan(900)
    expect((arrived.get(`${base}/delayed/will`) ?? 0) - left).toBeGreaterThanOrEqual(950)
  })

  it('[MQTT-3.1.3-9] a new connection for the session before the Will Delay Interval has passed: the will is not sent', async () => {
    const base = uid('delay')
    const clientId = uid('w')
    const w = await watcher(base)
    const raw = await withWill(base, { clientId, willDelayInterval: 1, sessionExpiryInterval: 60 })
    raw.destroy()
    await waitFor(() => !isConnected(tb(), clientId), 'the client gone')
    const back = await rawV5(tb(), transport, { clientId, clean: false, keepalive: 0, properties: { sessionExpiryInterval: 60 } })
    // past the delay, and a little more
    await new Promise(resolve => setTimeout(resolve, 1300))
    await fence(w, w, `${base}/fence`)
    expect(messagesOn(w, `${base}/will`)).toEqual([])
    back.send({ cmd: 'disconnect', reasonCode: 0 })
  })

  it('[MQTT-3.1.2-22][MQTT-3.2.2-22] no Server Keep Alive for a keepalive within the limits; a client silent for 1.5 x its keepalive is closed with DISCONNECT 0x8D, and its will published', async () => {
    const base = uid('ka')
    const w = await watcher(base)
    const raw = await rawClient(tb(), transport, { version: 5 })
    const connack = await raw.connect({ clientId: uid('c'), protocolVersion: 5, keepalive: 1, will: { topic: `${base}/will`, payload: Buffer.from('timed out'), qos: 1, retain: false } })
    const start = Date.now()
    expect(connack.properties?.serverKeepAlive).toBeUndefined()
    expect(await raw.waitClosed(4000)).toBe(true)
    const elapsed = Date.now() - start
    expect(elapsed).toBeGreaterThanOrEqual(1400)
    expect(elapsed).toBeLessThan(3000)
    expect(raw.received.map(p => [p.cmd, (p as IDisconnectPacket).reasonCode])).toEqual([['connack', 0], ['disconnect', 0x8D]])
    await waitForMessages(w, `${base}/will`)
  })

  it('[MQTT-3.2.2-21] a keepalive over the limit is answered with a Server Keep Alive, which the server then enforces (§3.2.2.3.14)', async () => {
    const raw = await rawClient(tb(), transport, { version: 5 })
    const connack: IConnackPacket = await raw.connect({ clientId: uid('c'), protocolVersion: 5, keepalive: 600 })
    const start = Date.now()
    expect([connack.reasonCode, connack.properties?.serverKeepAlive]).toEqual([0, MAX_KEEPALIVE_S])
    expect(await raw.waitClosed(6000)).toBe(true)
    const elapsed = Date.now() - start
    expect(elapsed).toBeGreaterThanOrEqual(MAX_KEEPALIVE_S * 1500 - 100)
    expect(elapsed).toBeLessThan(MAX_KEEPALIVE_S * 2500)
  })

  it('[MQTT-3.12.4-1] PINGREQ gets PINGRESP and keeps the connection past 1.5 x keepalive', async () => {
    const raw = await rawV5(tb(), transport, { clientId: uid('c'), keepalive: 1 })
    for (let i = 0; i < 4; i++) {
      await new Promise(resolve => setTimeout(resolve, 600))
      raw.send({ cmd: 'pingreq' })
      await raw.next('pingresp')
    }
    expect(raw.isClosed).toBe(false)
    const c = await v5Client(tb(), transport, { keepalive: MAX_KEEPALIVE_S })
    await endClient(c)
  })
})
