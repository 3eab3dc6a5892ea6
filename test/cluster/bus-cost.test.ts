import { createHash } from 'node:crypto'
import { Redis } from 'ioredis'
import mqttPacket, { type IPublishPacket } from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import type { TestBroker } from '../helpers/broker.js'
import { sleep, waitFor } from '../helpers/clients.js'
import { destroyAll, openRaw, type RawClient } from '../helpers/raw-client.js'
import { encodeMessage } from '../../src/cluster/codec.js'
import type { DeliveryPacket } from '../../src/protocol/aedes-internals.js'
import { ENTRY_OF } from '../../src/store/redis/scripts.js'
import { useCluster, waitForRoute } from './support.js'

/** Calls per command since the last CONFIG RESETSTAT, from INFO commandstats. */
async function commandCalls (url: string): Promise<Map<string, number>> {
  const redis = new Redis(url)
  try {
    const text = await redis.info('commandstats')
    return new Map([...text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map(m => [m[1], Number(m[2])]))
  } finally {
    redis.disconnect()
  }
}

/**
 * What the subscriber's node asks Redis for the messages another node sends it: the queue entries of the persistent
 * sessions connected to it are read for a whole batch of the bus at once, not one round trip per message.
 */
describe('cluster bus cost', () => {
  const { node, client, redis } = useCluster()
  const raws: RawClient[] = []
  afterEach(() => { destroyAll(raws.splice(0)) })
  const raw = async (at: TestBroker): Promise<RawClient> => {
    const r = await openRaw('tcp', at)
    raws.push(r)
    return r
  }

  it('a burst of 200 QoS 1 messages from node A to a persistent subscriber on node B arrives once each, the entries read in a few calls', async () => {
    const a = await node('a')
    const b = await node('b')
    const sub = await client(b.mqttUrl, { clientId: 'burst-sub', clean: false })
    await sub.subscribeAsync('burst/#', { qos: 1 })
    await waitForRoute(a, b, 'burst/1')
    const pub = await client(a.mqttUrl, { clientId: 'burst-pub' })
    // node A's matcher catches up with B's subscription on its first enqueue (refused once as stale, matched again)
    await pub.publishAsync('burst/1', 'first', { qos: 1 })
    await waitFor(() => sub.received.length === 1, 'the first message')
    sub.received.length = 0
    const control = new Redis(redis().url)
    await control.config('RESETSTAT')
    control.disconnect()
    // not awaited one by one: the publishes arrive together, as a loaded publisher's do
    await Promise.all(Array.from({ length: 200 }, async (_, i) => await pub.publishAsync('burst/1', `m${i}`, { qos: 1 })))
    await waitFor(() => sub.received.length >= 200, 'two hundred messages')
    expect(new Set(sub.received.map(m => m.payload)).size).toBe(200)
    expect(sub.received.length).toBe(200)
    await waitFor(async () => (await b.broker.store.sessionInfo('burst-sub'))?.queued === 0, 'an empty queue in Redis')
    // each read of B's stream that brought messages is followed by one look at the subscription log (XRANGE) and one
    // script call for the entries; one of each per message (200) before the entries were learned per batch
    const calls = await commandCalls(redis().url)
    expect(calls.get('xrange') ?? 0).toBeLessThanOrEqual(calls.get('xread') ?? 0)
    expect(calls.get('xrange') ?? 0).toBeLessThan(40)
  })

  it('the subscriber node learns the queue entries from the messages themselves: no look-up in Redis per read of its stream', async () => {
    // every script call as Redis runs it: the entry look-up is the script ENTRY_OF, by its SHA. Opened before the
    // nodes: MONITOR's reply reaching ioredis among the nodes' lines puts it in an error state
    const entryOf = createHash('sha1').update(ENTRY_OF).digest('hex')
    const monitor = await new Redis(redis().url).monitor()
    const lookUps: string[][] = []
    let recording = false
    monitor.on('monitor', (_time: string, args: string[]) => { if (recording && args[0].toLowerCase() === 'evalsha' && args[1] === entryOf) lookUps.push(args) })
    const a = await node('a')
    const b = await node('b')
    const sub = await client(b.mqttUrl, { clientId: 'carried-sub', clean: false })
    await sub.subscribeAsync('carried/#', { qos: 1 })
    await waitForRoute(a, b, 'carried/1')
    // (a node sends the entries to the nodes whose registration says they read them: A's heartbeat has read B's)
    await waitFor(() => a.broker.cluster?.nodes().some(n => n.nodeId === 'b') === true, "B's registration read by A")
    const pub = await client(a.mqttUrl, { clientId: 'carried-pub' })
    await pub.publishAsync('carried/1', 'first', { qos: 1 })
    await waitFor(() => sub.received.length === 1, 'the first message')
    sub.received.length = 0
    recording = true
    await Promise.all(Array.from({ length: 200 }, async (_, i) => await pub.publishAsync('carried/1', `m${i}`, { qos: 1 })))
    await waitFor(() => sub.received.length >= 200, 'two hundred messages')
    expect(sub.received.map(m => m.payload)).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`))
    // each delivered as its queue entry: the PUBACKs empty the queue
    await waitFor(async () => (await b.broker.store.sessionInfo('carried-sub'))?.queued === 0, 'an empty queue in Redis')
    monitor.disconnect()
    // B read the entries from Redis once per read of its stream before (ENTRY_OF, after matching the messages
    // against the subscriptions in Redis)
    expect(lookUps).toEqual([])
  })

  it('a message replayed and acknowledged before its bus entry arrives is not delivered again from the entry it carries', async () => {
    const a = await node('a')
    const b = await node('b')
    const first = await client(b.mqttUrl, { clientId: 'late-sub', clean: false })
    await first.subscribeAsync('late/#', { qos: 1 })
    await waitForRoute(a, b, 'late/1')
    await first.endAsync()
    const pub = await client(a.mqttUrl, { clientId: 'late-pub' })
    await pub.publishAsync('late/1', 'once', { qos: 1 })
    const control = new Redis(redis().url)
    const [seq] = await control.zrange('culex:q:late-sub', 0, -1)
    const state = await control.hget('culex:qx:late-sub', `e:${seq}`) ?? ''
    const [brokerId, counter] = state.split('|')[5].split(':')
    // back on B: the replay sends it, the PUBACK deletes it
    const sub = await client(b.mqttUrl, { clientId: 'late-sub', clean: false })
    await waitFor(() => sub.received.length === 1, 'the replayed message')
    await waitFor(async () => (await b.broker.store.sessionInfo('late-sub'))?.queued === 0, 'an empty queue in Redis')
    // then the bus entry of that message reaches B, with the queue entry A made (as when B reads its stream late)
    const packet = { cmd: 'publish', topic: 'late/1', payload: Buffer.from('once'), qos: 1, retain: false, dup: false, brokerId, brokerCounter: Number(counter) } as unknown as DeliveryPacket
    await control.xadd('culex:cluster:bus:b', '*', ...encodeMessage(packet, 'run-late', { at: Date.now(), copies: [['late-sub', Number(seq), 1]] }))
    await pub.publishAsync('late/1', 'next', { qos: 1 })
    await waitFor(() => sub.received.length >= 2, 'the next message')
    await sleep(200)
    expect(sub.received.map(m => m.payload)).toEqual(['once', 'next'])
    control.disconnect()
  })

  it('200 QoS 1 publishes arriving together cost a few script calls to store, and their 200 PUBACKs a few to delete', async () => {
    const a = await node('a')
    const b = await node('b')
    const sub = await raw(b)
    await sub.connect({ clientId: 'batch-sub', clean: false })
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'batch/#', qos: 1 }] })
    await sub.next('suback')
    await sub.disconnect()
    const pub = await raw(a)
    await pub.connect({ clientId: 'batch-pub' })
    const control = new Redis(redis().url)
    // 200 PUBLISH packets in one write: one read of the socket, as a busy publisher's arrive
    const publishes = Array.from({ length: 200 }, (_, i) => mqttPacket.generate({ cmd: 'publish', topic: 'batch/1', payload: `m${i}`, qos: 1, messageId: i + 1, retain: false, dup: false }))
    await control.config('RESETSTAT')
    pub.sendRaw(Buffer.concat(publishes))
    await waitFor(() => pub.received.filter(p => p.cmd === 'puback').length === 200, 'two hundred PUBACKs')
    // every script call is one EVALSHA: one enqueue per message before they were gathered per turn of the event loop
    expect((await commandCalls(redis().url)).get('evalsha') ?? 0).toBeLessThan(20)
    expect((await b.broker.store.sessionInfo('batch-sub'))?.queued).toBe(200)

    const back = await raw(b)
    await back.connect({ clientId: 'batch-sub', clean: false })
    await waitFor(() => back.received.filter(p => p.cmd === 'publish').length === 200, 'the two hundred messages')
    const received = back.received.filter(p => p.cmd === 'publish') as IPublishPacket[]
    expect(received.map(p => String(p.payload))).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`))
    // the packet ids held back are written (after 100 ms) before the count starts
    await b.broker.store.barrier()
    await control.config('RESETSTAT')
    back.sendRaw(Buffer.concat(received.map(p => mqttPacket.generate({ cmd: 'puback', messageId: p.messageId as number }))))
    await waitFor(async () => (await b.broker.store.sessionInfo('batch-sub'))?.queued === 0, 'an empty queue in Redis')
    // one delete per PUBACK (200) before
    expect((await commandCalls(redis().url)).get('evalsha') ?? 0).toBeLessThan(10)
    control.disconnect()
  })

  it('a clean CONNECT of a client without a session logs no subscription change, which every other node would read', async () => {
    const a = await node('a')
    const b = await node('b')
    const control = new Redis(redis().url)
    const generation = async (): Promise<number> => Number(await control.get('culex:subs-gen') ?? 0)
    const before = await generation()
    for (let i = 0; i < 5; i++) await client(b.mqttUrl, { clientId: `passer-${i}` })
    expect(await generation()).toBe(before)
    // a session that had subscriptions does log its end: the other nodes must match without it
    const sub = await client(b.mqttUrl, { clientId: 'leaver', clean: false })
    await sub.subscribeAsync('leaver/#', { qos: 1 })
    const subscribed = await generation()
    expect(subscribed).toBe(before + 1)
    await sub.endAsync()
    await client(a.mqttUrl, { clientId: 'leaver', clean: true })
    expect(await generation()).toBe(subscribed + 1)
    control.disconnect()
  })

  it('a node behind on subscription changes catches up once, not once per message in flight', async () => {
    const a = await node('a')
    const b = await node('b')
    // ten subscription changes on B that A has not read (A reads the change log when an enqueue finds it stale)
    for (let i = 0; i < 10; i++) {
      const other = await client(b.mqttUrl, { clientId: `other-${i}`, clean: false })
      await other.subscribeAsync(`other/${i}`, { qos: 1 })
    }
    const sub = await client(b.mqttUrl, { clientId: 'storm-sub', clean: false })
    await sub.subscribeAsync('storm/#', { qos: 1 })
    await waitForRoute(a, b, 'storm/1')
    const pub = await client(a.mqttUrl, { clientId: 'storm-pub' })
    const control = new Redis(redis().url)
    await control.config('RESETSTAT')
    control.disconnect()
    await Promise.all(Array.from({ length: 200 }, async (_, i) => await pub.publishAsync('storm/1', `m${i}`, { qos: 1 })))
    await waitFor(() => sub.received.length >= 200, 'two hundred messages')
    expect(new Set(sub.received.map(m => m.payload)).size).toBe(200)
    // every enqueue matched before A caught up is refused and matched again; the eleven changed clients are read once
    // each, not once per refused enqueue (over 2,000 reads before)
    const calls = await commandCalls(redis().url)
    expect(calls.get('hgetall') ?? 0).toBeLessThan(50)
  })

  it("the publishing node keeps nothing of the messages it queued for a session connected to another node", async () => {
    const a = await node('a')
    const b = await node('b')
    const sub = await client(b.mqttUrl, { clientId: 'far-sub', clean: false })
    await sub.subscribeAsync('far/#', { qos: 1 })
    await waitForRoute(a, b, 'far/1')
    const pub = await client(a.mqttUrl, { clientId: 'far-pub' })
    for (let i = 0; i < 100; i++) await pub.publishAsync('far/1', `m${i}`, { qos: 1 })
    await waitFor(() => sub.received.length >= 100, 'a hundred messages')
    await waitFor(async () => (await b.broker.store.sessionInfo('far-sub'))?.queued === 0, 'an empty queue in Redis')
    // node A's count of queued messages (its /metrics and $SYS figure) is its own clients' queues: none here. It
    // kept an entry per message before, never acknowledged on A, growing with the traffic.
    expect(a.broker.store.stats().queuedMessages).toBe(0)
    expect(b.broker.store.stats().queuedMessages).toBe(0)
  })
})
