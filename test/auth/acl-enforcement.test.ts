import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'
import { grants, tempDir, tryConnect, writePasswordFile } from './support.js'

type Client = Awaited<ReturnType<typeof connectClient>>

/** The ACL over real sockets: PUBLISH, SUBSCRIBE and every delivery, before and after a reload. */
describe('ACL enforcement', () => {
  let t: TestBroker | undefined
  let aclFile = ''
  const clients: Client[] = []
  afterEach(async () => {
    await Promise.all(clients.splice(0).map(async c => await endClient(c, true)))
    await t?.close()
    t = undefined
  })

  const ACL = `# anonymous clients
topic read public/#
topic deny public/secret
user alice
topic readwrite home/#
topic deny write home/locked
topic read $SYS/#
user bob
topic read home/#
topic write bob/#
pattern readwrite devices/%c/#
pattern read inbox/%u
`

  async function start (acl = ACL, name = 'acl.conf', settings: Record<string, unknown> = {}): Promise<TestBroker> {
    const dir = await tempDir()
    aclFile = path.join(dir, name)
    await writeFile(aclFile, acl)
    const passwd = await writePasswordFile(path.join(dir, 'passwd'), { alice: 'a', bob: 'b' })
    t = await startTestBroker({ 'auth.passwordFile': passwd, 'auth.aclFile': aclFile, 'auth.watchFiles': false, 'listeners.mqtt.allowAnonymous': true, ...settings })
    return t
  }
  const connect = async (opts: Parameters<typeof connectClient>[1]): Promise<Client> => {
    if (t === undefined) throw new Error('no broker')
    const c = await connectClient(t.mqttUrl, opts)
    clients.push(c)
    return c
  }
  const alice = async (clientId = 'alice-1'): Promise<Client> => await connect({ clientId, username: 'alice', password: 'a' })
  const bob = async (clientId = 'bob-1', clean = true): Promise<Client> => await connect({ clientId, username: 'bob', password: 'b', clean })

  it('acknowledges a refused PUBLISH, keeps the publisher connected, delivers it to nobody and logs why', async () => {
    const b = await start()
    const watcher = await alice()
    await watcher.subscribeAsync('home/#', { qos: 1 })
    const other = await bob('bob-2')
    await other.subscribeAsync('home/#', { qos: 1 })
    const pub = await bob()
    await pub.publishAsync('home/lamp', 'refused', { qos: 1 })
    await pub.publishAsync('home/lamp', 'refused', { qos: 2 })
    await pub.publishAsync('home/lamp', 'refused', { qos: 0 })
    await watcher.publishAsync('home/lamp', 'allowed', { qos: 1 })
    await waitFor(() => watcher.received.length >= 1 && other.received.length >= 1, 'the allowed message')
    await sleep(100)
    expect(pub.connected).toBe(true)
    expect(watcher.received.map(m => [m.topic, m.payload])).toEqual([['home/lamp', 'allowed']])
    expect(other.received.map(m => [m.topic, m.payload])).toEqual([['home/lamp', 'allowed']])
    expect(b.logs.filter(l => l.msg === 'publish dropped' && l.reason === 'unauthorized' && l.clientId === 'bob-1')).toHaveLength(3)
    expect(b.broker.security.auth.publishDenied).toBe(3)
  })

  it('answers 0x80 for each refused filter of a SUBSCRIBE and grants the others', async () => {
    await start()
    const c = await bob()
    expect(await grants(c, { 'home/#': 1, 'bob/#': 1, '#': 0, 'home/kitchen/+': 2 })).toEqual([1, 128, 128, 2])
  })

  it('substitutes %c and %u per client', async () => {
    await start()
    const a = await alice('dev-a')
    const b = await bob('dev-b')
    expect((await grants(a, { 'devices/dev-a/#': 1 }))[0]).toBe(1)
    expect((await grants(a, { 'devices/dev-b/#': 1 }))[0]).toBe(128)
    expect((await grants(b, { 'inbox/bob': 1 }))[0]).toBe(1)
    expect((await grants(b, { 'inbox/alice': 1 }))[0]).toBe(128)
    await b.publishAsync('devices/dev-a/cmd', 'not yours', { qos: 1 })
    await a.publishAsync('devices/dev-a/state', 'on', { qos: 1 })
    await sleep(100)
    expect(a.received.map(m => m.payload)).toEqual(['on'])
  })

  it('lets deny win over allow, for a publish and at delivery of a granted wildcard', async () => {
    await start()
    const anon = await connect({ clientId: 'anon-1' })
    expect((await grants(anon, { 'public/#': 1 }))[0]).toBe(1)
    expect((await grants(anon, { 'public/secret': 1 }))[0]).toBe(128)
    const a = await alice()
    await a.subscribeAsync('home/#', { qos: 1 })
    await a.publishAsync('home/locked', 'no', { qos: 1 })
    await a.publishAsync('home/lamp', 'yes', { qos: 1 })
    await waitFor(() => a.received.length >= 1, 'home/lamp')
    const t0 = t as TestBroker
    await new Promise<void>((resolve, reject) => t0.broker.aedes.publish({ cmd: 'publish', topic: 'public/secret', payload: Buffer.from('hidden'), qos: 1, retain: false, dup: false }, err => err ? reject(err) : resolve()))
    await new Promise<void>((resolve, reject) => t0.broker.aedes.publish({ cmd: 'publish', topic: 'public/news', payload: Buffer.from('shown'), qos: 1, retain: false, dup: false }, err => err ? reject(err) : resolve()))
    await waitFor(() => anon.received.length >= 1, 'public/news')
    await sleep(100)
    expect(anon.received.map(m => m.payload)).toEqual(['shown'])
    expect(a.received.map(m => m.topic)).toEqual(['home/lamp'])
    expect(t0.broker.security.auth.forwardDenied).toBe(1)
  })

  it('refuses a CONNECT whose will topic the ACL denies, with CONNACK 5', async () => {
    const b = await start()
    expect((await tryConnect(b.mqttUrl, { username: 'bob', password: 'b', will: { topic: 'home/alarm', payload: Buffer.from('x'), qos: 1, retain: false } })).result).toBe(5)
    expect((await tryConnect(b.mqttUrl, { username: 'bob', password: 'b', will: { topic: 'bob/gone', payload: Buffer.from('x'), qos: 1, retain: false } })).result).toBe(0)
  })

  it('stops deliveries on a subscription granted before an ACL change, live, retained and queued', async () => {
    const b = await start()
    const live = await bob('live')
    await live.subscribeAsync('home/#', { qos: 1 })
    const offline = await bob('offline', false)
    await offline.subscribeAsync('home/#', { qos: 1 })
    await endClient(offline)
    const a = await alice()
    await a.publishAsync('home/before', '1', { qos: 1, retain: true })
    await waitFor(() => live.received.length === 1, 'the message before the change')
    await writeFile(aclFile, ACL.replace('topic read home/#', 'topic read home/public/#'))
    expect((await b.broker.security.reload()).aclFile).toBe('reloaded')
    await a.publishAsync('home/after', '2', { qos: 1 })
    await a.publishAsync('home/public/x', '3', { qos: 1 })
    await waitFor(() => live.received.length === 2, 'the still-allowed message')
    await sleep(100)
    expect(live.received.map(m => m.payload)).toEqual(['1', '3'])
    const back = await bob('offline', false)
    expect(back.sessionPresent).toBe(true)
    // Queued while offline: home/before and home/after are now denied, home/public/x is still allowed.
    await waitFor(() => back.received.length >= 1, 'the queued allowed message')
    await sleep(200)
    expect(back.received.map(m => m.topic)).toEqual(['home/public/x'])
    const fresh = await bob('fresh')
    expect((await grants(fresh, { 'home/public/#': 1 }))[0]).toBe(1)
    await a.publishAsync('home/public/y', '4', { qos: 1, retain: true })
    const late = await bob('late')
    // home/# is no longer grantable; the retained home/before is withheld, home/public/y is delivered.
    expect((await grants(late, { 'home/#': 1 }))[0]).toBe(128)
    await late.subscribeAsync('home/public/+', { qos: 1 })
    await waitFor(() => late.received.length === 1, 'the retained allowed message')
    expect(late.received.map(m => m.topic)).toEqual(['home/public/y'])
  })

  it('a message the ACL withholds from a connected persistent session does not stay in its queue', async () => {
    const b = await start()
    const keeper = await bob('keeper', false)
    await keeper.subscribeAsync('home/#', { qos: 1 })
    await writeFile(aclFile, ACL.replace('topic read home/#', 'topic read home/public/#'))
    expect((await b.broker.security.reload()).aclFile).toBe('reloaded')
    const a = await alice()
    await a.publishAsync('home/after', 'denied', { qos: 1 })
    await a.publishAsync('home/public/x', 'allowed', { qos: 1 })
    await waitFor(() => keeper.received.length === 1, 'the allowed message')
    const queues = b.broker.store.sessionQueues
    await waitFor(() => queues.inflight({ id: 'keeper' }) === 0, 'the allowed message acknowledged')
    expect(queues.waiting({ id: 'keeper' })).toBe(0)
    expect(keeper.received.map(m => m.topic)).toEqual(['home/public/x'])
  })

  it('makes $SYS readable only where the ACL allows it', async () => {
    const b = await start()
    const a = await alice()
    expect((await grants(a, { '$SYS/#': 0 }))[0]).toBe(0)
    const other = await bob()
    expect((await grants(other, { '$SYS/#': 0 }))[0]).toBe(128)
    await bob('trigger')
    await waitFor(() => a.received.some(m => m.topic.endsWith('/new/clients')), 'a $SYS message for alice')
    expect(b.broker.security.auth.subscribeDenied).toBe(1)
  })

  it('enforces the YAML form the same way', async () => {
    await start('anonymous: ["read public/#"]\nusers:\n  bob: ["read home/#", "deny read home/private/#"]\n', 'acl.yaml')
    const b = await bob()
    expect(await grants(b, { 'home/#': 1, 'home/private/x': 1, 'public/#': 1 })).toEqual([1, 128, 128])
  })

  it('without an ACL file lets everyone subscribe to $SYS, as before', async () => {
    t = await startTestBroker({})
    const c = await connect({ clientId: 'plain' })
    expect((await grants(c, { '$SYS/#': 0 }))[0]).toBe(0)
    await connect({ clientId: 'trigger' })
    await waitFor(() => c.received.some(m => m.topic.endsWith('/new/clients')), 'a $SYS message')
  })
})
