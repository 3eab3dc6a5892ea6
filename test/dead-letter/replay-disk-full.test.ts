import path from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { startTestBroker, testStore, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'
import { mountSmallDisk } from '../helpers/tmpfs.js'

/** Where the store's room runs out: the data directory's disk, or (TEST_STORE=redis) the memory of its Redis. */
interface Room {
  /** Leaves about `freeBytes` free. */
  fill: (freeBytes: number) => Promise<void>
  free: () => Promise<void>
}

/** A Redis that refuses writes once full: maxmemory with Redis' default policy, noeviction. */
function redisRoom (url: string): Room {
  const set = async (bytes: number | ((used: number) => number)): Promise<void> => {
    const redis = new Redis(url)
    try {
      const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1])
      await redis.config('SET', 'maxmemory', String(typeof bytes === 'number' ? bytes : bytes(used)))
    } finally {
      redis.disconnect()
    }
  }
  return { fill: async freeBytes => { await set(used => used + freeBytes) }, free: async () => { await set(0) } }
}

/**
 * A replay whose publish fails on a real full disk (the data directory on a 4 MiB tmpfs) keeps the dead letter.
 * Mounting needs root; without it the test is reported as skipped (never as passed). On the Redis store the same
 * test fills Redis' memory instead (maxmemory), where a refused write fails the same way.
 */
const disk = testStore() === 'redis' ? undefined : mountSmallDisk()

describe.skipIf(disk?.mounted === false)('dead-letter replay on a full disk', () => {
  let t: TestBroker | undefined
  afterAll(async () => {
    await t?.close()
    disk?.unmount()
  })

  it('a replay the store cannot write keeps the dead letter; once space is freed it is replayed and delivered once', async () => {
    t = await startTestBroker({ 'deadLetter.noSubscribers': true }, disk === undefined ? undefined : path.join(disk.dir, 'data'))
    const room: Room = disk === undefined
      ? redisRoom(t.broker.store.location)
      : { fill: async freeBytes => { disk.fill(freeBytes) }, free: async () => { disk.free() } }
    const api = async (method: string, p: string): Promise<{ status: number, body: any }> => {
      const res = await fetch(t!.adminUrl + p, { method })
      return { status: res.status, body: await res.json() }
    }
    const big = Buffer.alloc(512 * 1024, 0x62)
    const pub = await connectClient(t.mqttUrl, { clientId: 'pub' })
    await pub.publishAsync('jobs/1', big, { qos: 1 })
    const { body: listed } = await api('GET', '/api/dead-letters?reason=no-subscribers')
    const id = listed.items[0].id as string
    // An offline persistent subscriber: the replay has to write the message into its queue.
    const keeper = await connectClient(t.mqttUrl, { clientId: 'keeper', clean: false })
    await keeper.subscribeAsync('jobs/#', { qos: 1 })
    await endClient(keeper)

    await room.fill(64 * 1024)
    const failed = await api('POST', `/api/dead-letters/${id}/replay`)
    expect(failed.status).toBe(200)
    // The rewrite with attempts 2 cannot be written either on this disk: the record stays as it was.
    expect(failed.body).toEqual({ id, outcome: 'dead-lettered', reason: 'no-subscribers', detail: expect.stringMatching(/^replay: a write to (the store .*|Redis) failed/), attempts: 1 })
    const kept = await api('GET', `/api/dead-letters/${id}`)
    expect(kept.status).toBe(200)
    expect(kept.body).toMatchObject({ id, reason: 'no-subscribers', topic: 'jobs/1', attempts: 1 })
    expect(Buffer.from(kept.body.payload, 'base64').equals(big)).toBe(true)

    await room.free()
    const ok = await api('POST', `/api/dead-letters/${id}/replay`)
    expect(ok.body).toEqual({ id, outcome: 'published' })
    expect((await api('GET', '/api/dead-letters')).body.total).toBe(0)
    const back = await connectClient(t.mqttUrl, { clientId: 'keeper', clean: false })
    await waitFor(() => back.received.length === 1, 'the replayed message')
    await sleep(200)
    expect(back.received.map(m => m.payload)).toEqual([big.toString()])
    await Promise.all([endClient(pub), endClient(back)])
  }, 60_000)
})
