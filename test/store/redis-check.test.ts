/**
 * The check and repair of a store on Redis (`culex store check|repair --redis-url`), on data the Redis store wrote
 * and then damaged by hand: what each finds, and that the repaired store works (the store reopens and acknowledges
 * the in-flight message whose state was rebuilt).
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inspectRedisStore, openRedisStore, REDIS_FORMAT_VERSION, repairRedisStore } from '../../src/store/index.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import { drain, publish, silentLogger, unlimited } from './helpers/store.js'

describe('check and repair of the Redis store', () => {
  let server: TestRedis
  let redis: Redis
  let made = 0
  beforeAll(async () => {
    server = await startTestRedis()
    redis = new Redis(server.url)
  })
  afterAll(async () => {
    redis?.disconnect()
    await server?.close()
  })

  /** A store under a prefix of its own with a session holding a QoS 2 message in flight, a will, a retained message. */
  async function populated (): Promise<string> {
    const prefix = `t${++made}:`
    const store = await openRedisStore({ redis: { url: server.url, prefix }, logger: silentLogger(), limits: unlimited })
    await store.setup({ id: 'b1', counter: 0 })
    const client = { id: 'dev-1' }
    store.sessionConnected('dev-1', true)
    await store.addSubscriptions(client, [{ topic: 'site/#', qos: 2 }])
    await store.outgoingEnqueueCombi([{ clientId: 'dev-1', qos: 2 }], publish('site/a', 'first', { qos: 2, brokerId: 'b1', brokerCounter: 1 }))
    await store.outgoingEnqueueCombi([{ clientId: 'dev-1', qos: 2 }], publish('site/b', 'second', { qos: 2, brokerId: 'b1', brokerCounter: 2 }))
    await drain(store.outgoingStream(client))
    await store.outgoingUpdate(client, { ...publish('site/a', 'first', { qos: 2, brokerId: 'b1', brokerCounter: 1 }), messageId: 42 })
    await store.putWill(client, { cmd: 'publish', topic: 'site/gone', payload: Buffer.from('bye'), qos: 1, retain: false })
    await store.storeRetained(publish('site/state', 'on', { retain: true }))
    await store.close()
    return prefix
  }

  it('finds a healthy store healthy, with its counts', async () => {
    const prefix = await populated()
    const { check } = await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(check.problems).toEqual([])
    expect(check).toMatchObject({ ok: true, formatVersion: REDIS_FORMAT_VERSION, counts: { sessions: 1, subscriptions: 1, queued: 2, inflight: 1, wills: 1, retained: 1 } })
  })

  it('finds healthy the queue of a session a cluster node holds (its claim in the queue index)', async () => {
    const prefix = `t${++made}:`
    const store = await openRedisStore({ redis: { url: server.url, prefix }, logger: silentLogger(), limits: unlimited })
    await store.setup({ id: 'b1', counter: 0 })
    store.sharedQueues.setHere(() => true, { nodeId: 'n1', brokerId: 'b1', alivePrefix: `${prefix}cluster:alive:`, generationOf: async () => 1 })
    // as aedes' client of a persistent session
    const client = { id: 'held-1', clean: false }
    store.sessionConnected('held-1', true)
    await store.addSubscriptions(client, [{ topic: 'site/#', qos: 1 }])
    await store.outgoingEnqueueCombi([{ clientId: 'held-1', qos: 1 }], publish('site/a', 'first', { qos: 1, brokerId: 'b1', brokerCounter: 1 }))
    await drain(store.outgoingStream(client))
    await store.close()
    expect(await redis.hmget(`${prefix}qx:held-1`, 'h', 'hb', 'hg')).toEqual(['n1', 'b1', '1'])
    const { check } = await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(check.problems).toEqual([])
  })

  it('rebuilds an in-flight entry from its message, pairs a will with its owner, sets aside what cannot be read', async () => {
    const prefix = await populated()
    await redis.hdel(`${prefix}qx:dev-1`, 'e:1', 'm:42')
    await redis.hdel(`${prefix}will-owners`, 'dev-1')
    await redis.hset(`${prefix}retained`, 'site/broken', 'garbage')
    const { check } = await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(check.ok).toBe(false)
    expect(check.problems).toEqual(expect.arrayContaining([
      'queue of "dev-1": entry 1 has no state',
      'queue of "dev-1": lookup m:42 of entry 1 is missing',
      `will of "dev-1" has no owner in ${prefix}will-owners: no node ever deletes it`,
      expect.stringMatching(new RegExp(`^retained message "site/broken" in ${prefix}retained: `))
    ]))

    const repair = await repairRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(repair.after.problems).toEqual([])
    expect(repair.lostMessages).toBe(0)
    expect(await redis.hget(repair.setAside ?? '', `${prefix}retained site/broken`)).toBe('garbage')

    const store = await openRedisStore({ redis: { url: server.url, prefix }, logger: silentLogger(), limits: unlimited })
    try {
      expect(await store.sessionInfo('dev-1')).toMatchObject({ queued: 2, inflight: 1 })
      const replayed = await drain(store.outgoingStream({ id: 'dev-1' })) as Array<Record<string, unknown>>
      expect(replayed.map(p => [p.topic, p.messageId])).toEqual([['site/a', 42], ['site/b', undefined]])
      // the rebuilt packet-id lookup: the PUBREC finds the entry
      await store.outgoingUpdate({ id: 'dev-1' }, { cmd: 'pubrel', messageId: 42 })
      expect(await store.outgoingClearMessageId({ id: 'dev-1' }, { cmd: 'pubcomp', messageId: 42 })).toMatchObject({ cmd: 'pubrel', messageId: 42 })
      expect(await store.delWill({ id: 'dev-1', brokerId: 'b1' })).toMatchObject({ topic: 'site/gone' })
    } finally {
      await store.close()
    }
  })

  it('checks nothing past a newer layout version, and repair refuses it', async () => {
    const prefix = await populated()
    await redis.set(`${prefix}format`, JSON.stringify({ formatVersion: REDIS_FORMAT_VERSION + 1 }))
    const { check, newer } = await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(newer).toBe(true)
    expect(check.problems).toEqual([`layout version ${REDIS_FORMAT_VERSION + 1} is not the one this culex reads (${REDIS_FORMAT_VERSION}); records not checked`])
    await expect(repairRedisStore(redis, prefix, REDIS_FORMAT_VERSION)).rejects.toMatchObject({ code: 'ERR_STORE_VERSION' })
  })

  it('finds keys of the wrong type and data without a layout version: renames them aside, writes the version back', async () => {
    const prefix = await populated()
    await redis.del(`${prefix}format`)
    await redis.set(`${prefix}in:dev-1`, 'x')
    const { check } = await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(check.problems).toEqual(expect.arrayContaining([
      `key "${prefix}in:dev-1" is a string, the layout has a hash`,
      `data without a layout version record (${prefix}format)`
    ]))
    const repair = await repairRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(repair.after.problems).toEqual([])
    expect(await redis.get(`${repair.setAside ?? ''}:in:dev-1`)).toBe('x')
    expect(JSON.parse(await redis.get(`${prefix}format`) ?? '{}')).toMatchObject({ formatVersion: REDIS_FORMAT_VERSION })
  })

  it('finds queue totals that differ from the queues, and counts them again', async () => {
    const prefix = await populated()
    expect(await redis.hgetall(`${prefix}queue-totals`)).toEqual({ n: '2', b: '11' })
    await redis.hset(`${prefix}queue-totals`, 'n', 999)
    const { check } = await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(check.problems).toEqual([`${prefix}queue-totals counts 999 entries of 11 bytes, the queues hold 2 of 11: the broker-wide bounds are applied to the wrong figures`])
    expect((await repairRedisStore(redis, prefix, REDIS_FORMAT_VERSION)).after.problems).toEqual([])
    expect(await redis.hgetall(`${prefix}queue-totals`)).toEqual({ n: '2', b: '11' })
  })

  it('upgrades a layout 1 store at open: the queue totals counted from the queues', async () => {
    const prefix = await populated()
    await redis.set(`${prefix}format`, JSON.stringify({ formatVersion: 1, createdAt: 1 }))
    await redis.del(`${prefix}queue-totals`)
    const store = await openRedisStore({ redis: { url: server.url, prefix }, logger: silentLogger(), limits: unlimited })
    await store.close()
    expect(JSON.parse(await redis.get(`${prefix}format`) ?? '{}')).toMatchObject({ formatVersion: 2, upgradedFrom: 1 })
    expect(await redis.hgetall(`${prefix}queue-totals`)).toEqual({ n: '2', b: '11' })
    expect((await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)).check.problems).toEqual([])
  })

  /** What the enqueue script does to a waiting entry dropOldest evicts: out of the order, the counts and the totals, listed in qe. */
  async function evictByHand (prefix: string, seq: number, bytes: number): Promise<void> {
    await redis.multi()
      .zrem(`${prefix}q:dev-1`, seq)
      .hincrby(`${prefix}qx:dev-1`, 'w', -1).hincrby(`${prefix}qx:dev-1`, 'wb', -bytes)
      .hincrby(`${prefix}queue-totals`, 'n', -1).hincrby(`${prefix}queue-totals`, 'b', -bytes)
      .hset(`${prefix}qe:dev-1`, seq, 1)
      .exec()
  }

  it('an evicted entry awaiting its dead letter is no problem; a start puts back one a crash left, on the totals; one without its state is rebuilt into the queue', async () => {
    const prefix = await populated()
    // entry 2 (site/b, "second", waiting) evicted, its dead letter not written yet: what a running cluster has at times
    await evictByHand(prefix, 2, 6)
    const live = await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(live.check.problems).toEqual([])
    expect(live.check.counts).toMatchObject({ queued: 1, inflight: 1 })

    // a node killed before the dead letter: the next start puts it back in its queue and on the totals
    const store = await openRedisStore({ redis: { url: server.url, prefix }, logger: silentLogger(), limits: unlimited })
    expect(await store.sessionInfo('dev-1')).toMatchObject({ queued: 2, inflight: 1 })
    await store.close()
    expect(await redis.exists(`${prefix}qe:dev-1`)).toBe(0)
    expect(await redis.hgetall(`${prefix}queue-totals`)).toEqual({ n: '2', b: '11' })
    expect((await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)).check.problems).toEqual([])

    await evictByHand(prefix, 2, 6)
    await redis.hdel(`${prefix}qx:dev-1`, 'e:2')
    const { check } = await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(check.problems).toEqual(expect.arrayContaining(['queue of "dev-1": evicted entry 2 has no state']))
    const repair = await repairRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(repair.after.problems).toEqual([])
    expect(repair.lostMessages).toBe(0)
    expect(await redis.zrange(`${prefix}q:dev-1`, 0, -1)).toEqual(['1', '2'])
    expect(await redis.exists(`${prefix}qe:dev-1`)).toBe(0)
    expect(await redis.hgetall(`${prefix}queue-totals`)).toEqual({ n: '2', b: '11' })
  })

  it('the end of a session whose evicted entry awaits its dead letter deletes it too, and takes only the queued ones off the totals', async () => {
    const prefix = await populated()
    const store = await openRedisStore({ redis: { url: server.url, prefix }, logger: silentLogger(), limits: unlimited })
    try {
      await evictByHand(prefix, 2, 6)
      expect(await store.purgeSession('dev-1')).toBe(true)
    } finally {
      await store.close()
    }
    expect(await redis.exists(`${prefix}qe:dev-1`, `${prefix}qm:dev-1`, `${prefix}qx:dev-1`, `${prefix}q:dev-1`)).toBe(0)
    expect(await redis.hgetall(`${prefix}queue-totals`)).toEqual({ n: '0', b: '0' })
    expect((await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)).check.problems).toEqual([])
  })

  it('finds the empty queue keys of a removed session, and sets them aside', async () => {
    const prefix = await populated()
    await redis.hset(`${prefix}qx:gone`, 'n', 7, 'w', 0, 'wb', 0)
    const { check } = await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(check.problems).toEqual([`client "gone" has an empty queue but no session and no subscription (left by a removed session): ${prefix}qx:gone`])
    const repair = await repairRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    expect(repair.after.problems).toEqual([])
    expect(await redis.exists(`${prefix}qx:gone`)).toBe(0)
    expect(await redis.hget(`${repair.setAside ?? ''}:qx:gone`, 'n')).toBe('7')
  })
})
