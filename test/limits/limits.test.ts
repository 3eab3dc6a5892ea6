import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import mqttPacket from 'mqtt-packet'
import WebSocket from 'ws'
import mqtt from 'mqtt'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'
import { grants, tryConnect } from '../auth/support.js'

type Client = Awaited<ReturnType<typeof connectClient>>

/** Every limit's outcome over real sockets (docs/security.md has the table these check). */
describe('limits', () => {
  let t: TestBroker | undefined
  const clients: Client[] = []
  const raws: RawClient[] = []
  const sockets: net.Socket[] = []
  afterEach(async () => {
    for (const r of raws.splice(0)) if (!r.isClosed) r.destroy()
    for (const s of sockets.splice(0)) s.destroy()
    await Promise.all(clients.splice(0).map(async c => await endClient(c, true)))
    await t?.close()
    t = undefined
  })
  const start = async (settings: Record<string, unknown>): Promise<TestBroker> => {
    t = await startTestBroker(settings)
    return t
  }
  const connect = async (opts: Parameters<typeof connectClient>[1] = {}): Promise<Client> => {
    const c = await connectClient((t as TestBroker).mqttUrl, opts)
    clients.push(c)
    return c
  }
  const raw = async (): Promise<RawClient> => {
    const r = await openRaw('tcp', t as TestBroker)
    raws.push(r)
    return r
  }
  /** A bare TCP connection; resolves with whether the broker closed it within `ms`. */
  const closedWithin = async (ms: number): Promise<boolean> => {
    const s = net.connect((t as TestBroker).mqttPort, '127.0.0.1')
    sockets.push(s)
    s.on('error', () => {})
    return await new Promise(resolve => {
      const timer = setTimeout(() => resolve(false), ms)
      s.once('close', () => { clearTimeout(timer); resolve(true) })
    })
  }
  const limitLogged = (b: TestBroker, limit: string, msg?: string): boolean =>
    b.logs.some(l => l.limit === limit && (msg === undefined || l.msg === msg))

  it('maxConnections: closes sockets over the global and the per-listener limit at accept, and admits again after one closes', async () => {
    const b = await start({ 'limits.maxConnections': 3, 'listeners.mqtt.maxConnections': 2 })
    const first = await connect({ clientId: 'c1' })
    await connect({ clientId: 'c2' })
    expect(await closedWithin(500)).toBe(true)
    expect(limitLogged(b, 'listeners.mqtt.maxConnections', 'connection refused over limit')).toBe(true)
    const ws = await connectClient(b.wsUrl, { clientId: 'w1' })
    clients.push(ws)
    expect((await tryConnect(b.wsUrl, { clientId: 'w2' })).result).not.toBe(0)
    expect(limitLogged(b, 'limits.maxConnections')).toBe(true)
    await endClient(first)
    await waitFor(() => b.logs.filter(l => l.msg === 'client disconnected').length >= 1, 'c1 to be gone')
    expect((await tryConnect(b.mqttUrl, { clientId: 'c3' })).result).toBe(0)
    expect(b.broker.security.limits.connectionsRefused).toBe(2)
  })

  it('maxConnections counts connections that never send CONNECT (half-open ones hold a slot)', async () => {
    await start({ 'limits.maxConnections': 2 })
    expect(await closedWithin(200)).toBe(false)
    expect(await closedWithin(200)).toBe(false)
    expect(await closedWithin(500)).toBe(true)
  })

  it('connectionRatePerSecond: closes connections from one address over the rate, then admits again', async () => {
    const b = await start({ 'limits.connectionRatePerSecond': 3 })
    const results = []
    for (let i = 0; i < 4; i++) results.push((await tryConnect(b.mqttUrl, { clientId: `r${i}` })).result)
    expect(results).toEqual([0, 0, 0, 'closed'])
    expect(limitLogged(b, 'limits.connectionRatePerSecond', 'connection refused over limit')).toBe(true)
    await sleep(400)
    expect((await tryConnect(b.mqttUrl, { clientId: 'r5' })).result).toBe(0)
  })

  it('maxPayloadBytes: a packet declaring too much closes the connection after its header, before the body', async () => {
    const b = await start({ 'limits.maxPayloadBytes': 1000 })
    const r = await raw()
    await r.connect({ clientId: 'huge' })
    // A PUBLISH header declaring 200 MB; only 20 bytes of it follow.
    r.sendRaw(Buffer.concat([Buffer.from([0x30]), Buffer.from([0x80, 0x80, 0x80, 0x60]), Buffer.alloc(20)]))
    expect(await r.waitClosed(2000)).toBe(true)
    expect(limitLogged(b, 'limits.maxPayloadBytes', 'connection closed: packet too large')).toBe(true)
    // The same before CONNECT: a CONNECT declaring 100 MB never gets its body buffered.
    const r2 = await raw()
    r2.sendRaw(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x30]))
    expect(await r2.waitClosed(2000)).toBe(true)
    expect(b.broker.security.limits.oversizedPackets).toBe(2)
  })

  it('maxPayloadBytes: a payload just over is acknowledged and dropped, one at the limit is delivered', async () => {
    const b = await start({ 'limits.maxPayloadBytes': 1000 })
    const sub = await connect({ clientId: 'sub' })
    await sub.subscribeAsync('big/#', { qos: 1 })
    const pub = await connect({ clientId: 'pub' })
    await pub.publishAsync('big/over', Buffer.alloc(1001), { qos: 1 })
    await pub.publishAsync('big/at', Buffer.alloc(1000), { qos: 1 })
    await waitFor(() => sub.received.length === 1, 'the message at the limit')
    expect(sub.received[0].topic).toBe('big/at')
    expect(pub.connected).toBe(true)
    expect(b.logs.some(l => l.msg === 'publish dropped' && l.reason === 'too-large' && String(l.detail).startsWith('limits.maxPayloadBytes'))).toBe(true)
  })

  it('maxPayloadBytes over WebSocket: a message larger than the limit closes the connection', async () => {
    const b = await start({ 'limits.maxPayloadBytes': 1000 })
    const ws = new WebSocket(b.wsUrl, 'mqtt')
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    const closed = new Promise<number>(resolve => ws.once('close', code => resolve(code)))
    ws.send(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'w', clean: true, keepalive: 0 }))
    ws.send(Buffer.alloc(1000 + 262_204 + 100))
    expect(await closed).toBe(1009)
  })

  it('maxTopicLength: a longer topic is acknowledged and dropped, a longer filter gets 0x80', async () => {
    const b = await start({ 'limits.maxTopicLength': 20 })
    const c = await connect({ clientId: 'topics' })
    await c.subscribeAsync('t/#', { qos: 1 })
    expect(await grants(c, { ['t/' + 'x'.repeat(19)]: 1, 't/short': 1 })).toEqual([128, 1])
    await c.publishAsync('t/' + 'y'.repeat(19), 'long', { qos: 1 })
    await c.publishAsync('t/ok', 'short', { qos: 1 })
    await waitFor(() => c.received.length === 1, 'the short topic')
    expect(c.received.map(m => m.topic)).toEqual(['t/ok'])
    expect(b.logs.some(l => l.msg === 'publish dropped' && String(l.detail).startsWith('limits.maxTopicLength'))).toBe(true)
    expect(limitLogged(b, 'limits.maxTopicLength', 'subscription refused over limit')).toBe(true)
  })

  it('maxSubscriptionsPerClient: filters over the limit get 0x80; held filters can be renewed; unsubscribing frees a slot', async () => {
    const b = await start({ 'limits.maxSubscriptionsPerClient': 3 })
    const c = await connect({ clientId: 'many', clean: false })
    expect(await grants(c, { a: 0, b: 1, c: 1, d: 1, e: 0 })).toEqual([0, 1, 1, 128, 128])
    expect(await grants(c, { a: 1 })).toEqual([1])
    expect(await grants(c, { f: 0 })).toEqual([128])
    await c.unsubscribeAsync('b')
    expect(await grants(c, { f: 0 })).toEqual([0])
    expect(limitLogged(b, 'limits.maxSubscriptionsPerClient', 'subscription refused over limit')).toBe(true)
    await endClient(c)
    // The restored session is not counted twice.
    const again = await connect({ clientId: 'many', clean: false })
    expect(again.sessionPresent).toBe(true)
    expect(await grants(again, { g: 0 })).toEqual([128])
  })

  it('client id length and characters, and keepalive bounds: CONNACK 2 with the limit logged', async () => {
    const b = await start({ 'limits.maxClientIdLength': 30, 'limits.clientIdPattern': '^[a-z0-9-]+$', 'limits.minKeepaliveSeconds': 5, 'limits.maxKeepaliveSeconds': 120 })
    expect((await tryConnect(b.mqttUrl, { clientId: 'ok-1', keepalive: 60 })).result).toBe(0)
    expect((await tryConnect(b.mqttUrl, { clientId: 'x'.repeat(31), keepalive: 60 })).result).toBe(2)
    expect((await tryConnect(b.mqttUrl, { clientId: 'Not_OK', keepalive: 60 })).result).toBe(2)
    expect((await tryConnect(b.mqttUrl, { clientId: 'ok-2', keepalive: 121 })).result).toBe(2)
    expect((await tryConnect(b.mqttUrl, { clientId: 'ok-3', keepalive: 0 })).result).toBe(2)
    const r = await raw()
    expect((await r.connect({ clientId: 'bad\u0001id', keepalive: 60 })).returnCode).toBe(2)
    for (const limit of ['limits.maxClientIdLength', 'limits.clientIdPattern', 'limits.maxKeepaliveSeconds', 'limits.minKeepaliveSeconds']) {
      expect(limitLogged(b, limit, 'connection refused over limit')).toBe(true)
    }
    expect(b.broker.security.limits.connectRefused).toBe(5)
  })

  it('connect timeout: a connection that never completes CONNECT is closed after mqtt.connectTimeoutMs', async () => {
    const b = await start({ 'mqtt.connectTimeoutMs': 300 })
    const r = await raw()
    // Slow loris: the first bytes of a CONNECT, then nothing.
    r.sendRaw(Buffer.from([0x10, 0x20, 0x00, 0x04]))
    const started = Date.now()
    expect(await r.waitClosed(2000)).toBe(true)
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)
    expect((await tryConnect(b.mqttUrl)).result).toBe(0)
  })

  it('publish rate: excess is delayed by pausing the client, never dropped', async () => {
    const b = await start({ 'limits.publishRateMessagesPerSecond': 20 })
    const sub = await connect({ clientId: 'sub' })
    await sub.subscribeAsync('rate/#', { qos: 0 })
    const pub = await connect({ clientId: 'fast' })
    const started = Date.now()
    for (let i = 0; i < 50; i++) pub.publish('rate/x', String(i), { qos: 0 })
    await waitFor(() => sub.received.length === 50, 'all 50 messages', 10_000)
    // 20 at once (one second's burst), then 30 at 20 per second.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1300)
    expect(sub.received.map(m => Number(m.payload))).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(limitLogged(b, 'limits.publishRateMessagesPerSecond', 'publish rate over limit, pausing the client')).toBe(true)
    // Another client is not slowed by it.
    const other = await connect({ clientId: 'other' })
    const t0 = Date.now()
    await other.publishAsync('rate/y', 'quick', { qos: 1 })
    expect(Date.now() - t0).toBeLessThan(300)
  })

  it('publish byte rate: a client over its bytes per second is slowed the same way', async () => {
    const b = await start({ 'limits.publishRateBytesPerSecond': 10_000 })
    const pub = await connect({ clientId: 'bulk' })
    const started = Date.now()
    for (let i = 0; i < 5; i++) await pub.publishAsync('bytes/x', Buffer.alloc(5000), { qos: 1 })
    // 25 kB at 10 kB/s with a 10 kB burst: about 1.5 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1200)
    expect(limitLogged(b, 'limits.publishRateBytesPerSecond')).toBe(true)
  })

  it('maxInflightMessages: a subscriber that stops reading loses QoS 0 copies, then is disconnected for QoS 1, while others keep flowing', async () => {
    const b = await start({ 'limits.maxInflightMessages': 5, 'mqtt.drainTimeoutMs': 0 })
    const frozen = await frozenSubscriber(b.mqttPort, 'frozen', 'flood/#')
    sockets.push(frozen)
    // Counts only: a million-byte payload per message would make the usual received list heavy.
    const good = mqtt.connect(b.mqttUrl, { clientId: 'good', protocolVersion: 4, reconnectPeriod: 0 })
    let goodCount = 0
    good.on('message', () => { goodCount++ })
    await good.subscribeAsync('flood/#', { qos: 0 })
    const pub = await connect({ clientId: 'pub' })
    // Far more than the loopback socket buffers hold (the kernel takes tens of MB), so the frozen connection
    // backs up; the publisher is held for at most the grace second, then keeps going.
    const payload = Buffer.alloc(1024 * 1024)
    let sent = 0
    // In rounds until the frozen connection has stalled and its window is full (how much the kernel takes varies).
    while (b.broker.security.limits.outboundDropped === 0 && sent < 400) {
      for (let i = 0; i < 20; i++) pub.publish('flood/q0', payload, { qos: 0 })
      sent += 20
      await waitFor(() => goodCount === sent, `${sent} QoS 0 messages at the good subscriber`, 20_000)
    }
    expect(b.broker.security.limits.outboundDropped).toBeGreaterThan(0)
    expect(b.logs.some(l => l.msg === 'client disconnected' && l.clientId === 'frozen')).toBe(false)
    expect(limitLogged(b, 'limits.maxInflightMessages', 'message dropped for a client that is not reading')).toBe(true)
    for (let i = 0; i < 5; i++) await pub.publishAsync('flood/q1', payload, { qos: 1 })
    await waitFor(() => b.logs.some(l => l.msg === 'disconnecting a client that is not reading' && l.clientId === 'frozen'), 'the slow consumer to be disconnected')
    await waitFor(() => b.logs.some(l => l.msg === 'client disconnected' && l.clientId === 'frozen'), 'the frozen client to be gone')
    await waitFor(() => goodCount === sent + 5, 'the QoS 1 messages at the good subscriber', 20_000)
    good.end(true)
    expect(b.broker.security.limits.slowConsumersDisconnected).toBe(1)
  })

  it('maxInflightMessages and maxInflightBytes 0: QoS 1 acknowledgements wait while a subscriber\'s socket is full, and all come once it reads again', async () => {
    const b = await start({ 'limits.maxInflightMessages': 0, 'limits.maxInflightBytes': 0, 'mqtt.drainTimeoutMs': 0 })
    const slow = await frozenSubscriber(b.mqttPort, 'slow', 'bp/#')
    sockets.push(slow)
    const pub = await connect({ clientId: 'pub' })
    // far more than the loopback socket buffers hold, so the subscriber's connection backs up
    const total = 100
    const payload = Buffer.alloc(1024 * 1024)
    let acked = 0
    for (let i = 0; i < total; i++) pub.publish('bp/x', payload, { qos: 1 }, () => { acked++ })
    await sleep(1500)
    const held = acked
    expect(held).toBeLessThan(total)
    await sleep(500)
    expect(acked).toBe(held)
    // reading again: every message reaches the subscriber and every acknowledgement the publisher
    let received = 0
    const parser = mqttPacket.parser()
    parser.on('packet', (p: { cmd: string }) => { if (p.cmd === 'publish') received++ })
    slow.on('data', (chunk: Buffer) => { parser.parse(chunk) })
    slow.resume()
    await waitFor(() => acked === total && received === total, 'every acknowledgement and every message', 30_000)
  })
})

/** A subscriber that connects, subscribes at QoS 1 and then never reads from its socket again. */
async function frozenSubscriber (port: number, clientId: string, filter: string): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1')
  s.on('error', () => {})
  await new Promise(resolve => s.once('connect', resolve))
  const parser = mqttPacket.parser()
  const suback = new Promise<void>(resolve => parser.on('packet', (p: { cmd: string }) => { if (p.cmd === 'suback') resolve() }))
  const feed = (chunk: Buffer): void => { parser.parse(chunk) }
  s.on('data', feed)
  s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0 }))
  s.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] }))
  await suback
  s.off('data', feed)
  s.pause()
  return s
}
