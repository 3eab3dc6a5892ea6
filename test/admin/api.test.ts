import type { MqttClient } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, testStore, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'

/** Every endpoint of the admin JSON API against a real broker: status codes, JSON shapes, side effects. */

interface ApiError { error: { code: string, message: string } }
type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

let t: TestBroker
const clients: MqttClient[] = []
const connect = async (clientId: string, clean = true): Promise<Awaited<ReturnType<typeof connectClient>>> => {
  const c = await connectClient(t.mqttUrl, { clientId, clean })
  clients.push(c)
  return c
}
const call = async (method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: Json, headers: Headers }> => {
  const res = await fetch(`${t.adminUrl}${path}`, { method, headers })
  const text = await res.text()
  return { status: res.status, headers: res.headers, body: text === '' ? {} : JSON.parse(text) as Json }
}
const get = async (path: string): Promise<{ status: number, body: Json, headers: Headers }> => await call('GET', path)
const expectError = (r: { status: number, body: Json }, status: number, code: string): void => {
  expect(r.status).toBe(status)
  expect((r.body as ApiError).error.code).toBe(code)
  expect(typeof (r.body as ApiError).error.message).toBe('string')
}

beforeAll(async () => { t = await startTestBroker() })
afterAll(async () => { await t.close() })
afterEach(async () => { await Promise.all(clients.splice(0).map(async c => await endClient(c, true))) })

describe('health, info and stats', () => {
  it('answers /healthz and /readyz', async () => {
    expect(await get('/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } })
    expect(await get('/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } })
  })

  it('tells in /api/auth whether a token is needed', async () => {
    expect(await get('/api/auth')).toMatchObject({ status: 200, body: { required: false } })
  })

  it('describes the broker and its listeners in /api/info', async () => {
    const { status, body } = await get('/api/info')
    expect(status).toBe(200)
    // on the Redis store the broker runs in cluster mode, whose panel the console shows too
    const features = testStore() === 'redis' ? ['shared', 'lag', 'dead-letters', 'cluster'] : ['shared', 'lag', 'dead-letters']
    expect(body).toMatchObject({ name: 'culex', brokerId: t.broker.aedes.id, authRequired: false, sysIntervalMs: 10_000, features })
    expect(body.listeners).toEqual([
      { name: 'mqtt', host: '127.0.0.1', port: t.mqttPort },
      { name: 'ws', host: '127.0.0.1', port: t.wsPort, path: '/mqtt' }
    ])
  })

  it('returns every count in /api/stats', async () => {
    await connect('stats-1')
    const { status, body } = await get('/api/stats')
    expect(status).toBe(200)
    expect(body.clients.connected).toBe(1)
    expect(body.messages.received).toHaveLength(3)
    for (const key of ['packets', 'bytes', 'retained', 'subscriptions', 'sessions', 'queued', 'inflight', 'store', 'uptimeSeconds']) expect(body).toHaveProperty(key)
  })

  it('answers unknown paths with 404 and other methods with 405, as JSON errors', async () => {
    expectError(await get('/api/nope'), 404, 'not_found')
    expectError(await call('POST', '/api/clients'), 405, 'method_not_allowed')
    expectError(await call('DELETE', '/healthz'), 405, 'method_not_allowed')
  })
})

describe('clients', () => {
  it('lists connected clients in pages, filtered by id prefix', async () => {
    for (const id of ['page-a', 'page-b', 'page-c', 'other-1']) await connect(id)
    const all = await get('/api/clients?prefix=page-')
    expect(all.status).toBe(200)
    expect(all.body.total).toBe(3)
    expect(all.body.items.map((c: Json) => c.clientId)).toEqual(['page-a', 'page-b', 'page-c'])
    expect(all.body.items[0]).toMatchObject({ connected: true, clean: true, protocolVersion: 4, listener: 'mqtt', subscriptions: 0, inflight: { out: 0, in: 0 } })
    expect(all.body.items[0].remote).toMatch(/^127\.0\.0\.1:\d+$/)
    const page = await get('/api/clients?prefix=page-&limit=2&offset=1')
    expect(page.body).toMatchObject({ total: 3, offset: 1, limit: 2 })
    expect(page.body.items.map((c: Json) => c.clientId)).toEqual(['page-b', 'page-c'])
    expectError(await get('/api/clients?limit=0'), 400, 'bad_request')
    expectError(await get('/api/clients?offset=x'), 400, 'bad_request')
  })

  it('shows one client with its subscriptions and its session', async () => {
    const c = await connect('detail', false)
    await c.subscribeAsync({ 'd/1': { qos: 1 }, 'd/+': { qos: 0 } })
    const { status, body } = await get('/api/clients/detail')
    expect(status).toBe(200)
    expect(body).toMatchObject({ clientId: 'detail', connected: true, clean: false })
    expect(body.subscriptions).toEqual([{ topic: 'd/+', qos: 0 }, { topic: 'd/1', qos: 1 }])
    expect(body.session).toMatchObject({ clientId: 'detail', queued: 0, inflight: 0, queuedBytes: 0 })
    await endClient(c)
    const offline = await get('/api/clients/detail')
    expect(offline.body).toMatchObject({ clientId: 'detail', connected: false, session: { connected: false } })
    expectError(await get('/api/clients/nobody'), 404, 'not_found')
    await call('DELETE', '/api/sessions/detail')
  })

  it('kicks a client: it sees its connection close, and the id is decoded from the URL', async () => {
    const c = await connect('kick me/please')
    const closed = new Promise<void>(resolve => c.once('close', () => resolve()))
    const r = await call('DELETE', `/api/clients/${encodeURIComponent('kick me/please')}`)
    expect(r).toMatchObject({ status: 200, body: { clientId: 'kick me/please', kicked: true } })
    await closed
    expect((await get('/api/clients?prefix=kick')).body.total).toBe(0)
    expect(t.logs.some(l => l.msg === 'client kicked' && l.clientId === 'kick me/please')).toBe(true)
    expectError(await call('DELETE', '/api/clients/kick%20me%2Fplease'), 404, 'not_found')
    expectError(await call('DELETE', '/api/clients/%E0%A4%A'), 400, 'bad_request')
  })
})

describe('sessions and subscriptions', () => {
  it('lists, shows and purges persistent sessions with their queue depth', async () => {
    const c = await connect('sess-1', false)
    await c.subscribeAsync('s/#', { qos: 1 })
    await endClient(c)
    const pub = await connect('sess-pub')
    for (let i = 0; i < 3; i++) await pub.publishAsync('s/x', 'abc', { qos: 1 })
    const list = await get('/api/sessions?prefix=sess-')
    expect(list.status).toBe(200)
    expect(list.body.items).toEqual([expect.objectContaining({ clientId: 'sess-1', connected: false, subscriptions: 1, queued: 3, queuedBytes: 9 })])
    expect(list.body.items[0].oldestQueuedAt).toMatch(/^\d{4}-/)
    const one = await get('/api/sessions/sess-1')
    expect(one.body).toMatchObject({ clientId: 'sess-1', subscriptions: [{ topic: 's/#', qos: 1 }], queued: 3 })
    expect(await call('DELETE', '/api/sessions/sess-1')).toMatchObject({ status: 200, body: { clientId: 'sess-1', purged: true, kicked: false } })
    expectError(await get('/api/sessions/sess-1'), 404, 'not_found')
    expectError(await call('DELETE', '/api/sessions/sess-1'), 404, 'not_found')
    const again = await connect('sess-1', false)
    expect(again.sessionPresent).toBe(false)
  })

  it('purging the session of a connected client disconnects it first', async () => {
    const c = await connect('sess-live', false)
    await c.subscribeAsync('live/#', { qos: 1 })
    const closed = new Promise<void>(resolve => c.once('close', () => resolve()))
    expect(await call('DELETE', '/api/sessions/sess-live')).toMatchObject({ status: 200, body: { purged: true, kicked: true } })
    await closed
    expect((await get('/api/sessions?prefix=sess-live')).body.total).toBe(0)
  })

  it('lists the subscriptions of connected clients and offline sessions', async () => {
    const live = await connect('sub-live')
    await live.subscribeAsync({ 'x/1': { qos: 0 }, 'x/2': { qos: 2 } })
    const off = await connect('sub-off', false)
    await off.subscribeAsync('x/#', { qos: 1 })
    await endClient(off)
    const { status, body } = await get('/api/subscriptions?prefix=sub-')
    expect(status).toBe(200)
    expect(body.items).toEqual([
      { clientId: 'sub-live', topic: 'x/1', qos: 0, connected: true },
      { clientId: 'sub-live', topic: 'x/2', qos: 2, connected: true },
      { clientId: 'sub-off', topic: 'x/#', qos: 1, connected: false }
    ])
    expect((await get('/api/subscriptions?prefix=sub-&topic=x%2F%23')).body.items).toEqual([{ clientId: 'sub-off', topic: 'x/#', qos: 1, connected: false }])
    expect((await get('/api/subscriptions?prefix=sub-&limit=1&offset=2')).body).toMatchObject({ total: 3, items: [{ topic: 'x/#' }] })
    await call('DELETE', '/api/sessions/sub-off')
  })
})

describe('retained messages', () => {
  it('lists retained messages by filter, text as text and binary as base64', async () => {
    const pub = await connect('ret-pub')
    await pub.publishAsync('ret/a', 'alpha', { qos: 1, retain: true })
    await pub.publishAsync('ret/b/c', Buffer.from([0xff, 0x00, 0xfe]), { qos: 1, retain: true })
    await pub.publishAsync('elsewhere', 'x', { qos: 1, retain: true })
    const { status, body } = await get(`/api/retained?topic=${encodeURIComponent('ret/#')}`)
    expect(status).toBe(200)
    expect(body).toMatchObject({ filter: 'ret/#', truncated: false })
    expect([...body.items].sort((a: Json, b: Json) => a.topic < b.topic ? -1 : 1)).toEqual([
      { topic: 'ret/a', qos: 1, payload: 'alpha', encoding: 'utf8', bytes: 5 },
      { topic: 'ret/b/c', qos: 1, payload: Buffer.from([0xff, 0x00, 0xfe]).toString('base64'), encoding: 'base64', bytes: 3 }
    ])
    const limited = await get(`/api/retained?topic=${encodeURIComponent('#')}&limit=1`)
    expect(limited.body.items).toHaveLength(1)
    expect(limited.body.truncated).toBe(true)
    expectError(await get(`/api/retained?topic=${encodeURIComponent('a/#/b')}`), 400, 'bad_request')
    expectError(await get(`/api/retained?topic=${encodeURIComponent('a+')}`), 400, 'bad_request')
    expectError(await get('/api/retained?limit=5000'), 400, 'bad_request')
  })

  it('deletes a retained message by URL-encoded topic; subscribers get the empty message', async () => {
    const pub = await connect('del-pub')
    await pub.publishAsync('del/x y', 'gone soon', { qos: 1, retain: true })
    await pub.publishAsync('del/plain', 'also', { qos: 1, retain: true })
    const watcher = await connect('del-watch')
    await watcher.subscribeAsync('del/#', { qos: 0 })
    await waitFor(() => watcher.received.length === 2, 'the retained messages')
    expect(await call('DELETE', `/api/retained/${encodeURIComponent('del/x y')}`)).toMatchObject({ status: 200, body: { topic: 'del/x y', deleted: true } })
    await waitFor(() => watcher.received.length === 3, 'the clearing message')
    expect(watcher.received[2]).toMatchObject({ topic: 'del/x y', payload: '' })
    // Slashes may also be left unencoded.
    expect((await call('DELETE', '/api/retained/del/plain')).status).toBe(200)
    await sleep(50)
    expect((await get(`/api/retained?topic=${encodeURIComponent('del/#')}`)).body.items).toEqual([])
    expectError(await call('DELETE', `/api/retained/${encodeURIComponent('del/x y')}`), 404, 'not_found')
    expectError(await call('DELETE', `/api/retained/${encodeURIComponent('del/+')}`), 400, 'bad_request')
  })
})

describe('with admin.authToken', () => {
  let secured: TestBroker
  beforeAll(async () => { secured = await startTestBroker({ 'admin.authToken': 's3cret-token' }) })
  afterAll(async () => { await secured.close() })
  const at = async (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Response> => await fetch(`${secured.adminUrl}${path}`, { headers, method })

  it('refuses every API route and /metrics without the token (401, JSON, WWW-Authenticate)', async () => {
    for (const path of ['/api/info', '/api/stats', '/api/clients', '/api/sessions', '/api/subscriptions', '/api/retained', '/metrics']) {
      const res = await at(path)
      expect(res.status, path).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="culex"')
      expect(((await res.json()) as ApiError).error.code).toBe('unauthorized')
    }
    expect((await at('/api/clients/x', {}, 'DELETE')).status).toBe(401)
    expect((await at('/api/info', { authorization: 'Bearer wrong' })).status).toBe(401)
    expect((await at('/api/info', { authorization: 's3cret-token' })).status).toBe(401)
  })

  it('accepts the token as a bearer token or as the basic-auth password', async () => {
    const bearer = await at('/api/info', { authorization: 'Bearer s3cret-token' })
    expect(bearer.status).toBe(200)
    expect(((await bearer.json()) as Json).authRequired).toBe(true)
    expect((await at('/metrics', { authorization: 'Bearer s3cret-token' })).status).toBe(200)
    const basic = `Basic ${Buffer.from('prometheus:s3cret-token').toString('base64')}`
    expect((await at('/metrics', { authorization: basic })).status).toBe(200)
    expect((await at('/metrics', { authorization: `Basic ${Buffer.from('prometheus:nope').toString('base64')}` })).status).toBe(401)
  })

  it('leaves the health checks, /api/auth and the console page open', async () => {
    expect(await (await at('/api/auth')).json()).toEqual({ required: true })
    expect((await at('/healthz')).status).toBe(200)
    expect((await at('/readyz')).status).toBe(200)
    const page = await at('/')
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toContain('text/html')
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect((await at('/console/mqtt.min.js')).status).toBe(200)
  })
})
