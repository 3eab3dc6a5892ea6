/**
 * Dead letters of several nodes in one Redis: each node numbers its own, so two nodes that dead-letter a message in
 * the same millisecond never write under the same id (one would replace the other).
 */
import { afterAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { openRedisStore, type CulexStore } from '../../src/store/index.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import { silentLogger, unlimited } from './helpers/store.js'

describe('dead letters of several nodes on one Redis', () => {
  let server: TestRedis | undefined
  afterAll(async () => { await server?.close() })

  it('keeps every node\'s dead letters, each under its own id, also within one millisecond', async () => {
    server = await startTestRedis()
    const open = async (): Promise<CulexStore> => await openRedisStore({ redis: { url: (server as TestRedis).url, prefix: 'dl:' }, logger: silentLogger(), limits: unlimited })
    const nodes = [await open(), await open(), await open()]
    const now = Date.now()
    const ids: string[] = []
    for (let round = 0; round < 5; round++) {
      for (const [i, node] of nodes.entries()) {
        const { entry, done } = node.deadLetters.add({
          reason: 'queue-full', detail: '', topic: `t/${i}/${round}`, qos: 1, retain: false, attempts: 1, firstRejectedAt: now, rejectedAt: now, payload: Buffer.from(`p${i}`)
        }, now)
        await done
        ids.push(entry.id)
      }
    }
    for (const node of nodes) await node.close()
    expect(new Set(ids).size).toBe(15)
    const reader = await open()
    try {
      expect(reader.deadLetters.list().map(e => e.topic).sort()).toEqual(ids.map((_id, k) => `t/${k % 3}/${Math.floor(k / 3)}`).sort())
      // ids still follow the clock: microseconds since the epoch, at least the time of the letter
      expect(ids.every(id => Number(id) >= now * 1000)).toBe(true)
    } finally {
      await reader.close()
    }
  })

  it('each node follows what the others add, retry and remove, and reloads everything when the change log no longer reaches back', async () => {
    server ??= await startTestRedis()
    const url = server.url
    const open = async (): Promise<CulexStore> => await openRedisStore({ redis: { url, prefix: 'follow:' }, logger: silentLogger(), limits: unlimited })
    const [a, b] = [await open(), await open()]
    const admin = new Redis(url)
    try {
      const add = async (topic: string, payload = 'p'): Promise<string> => {
        const now = Date.now()
        const { entry, done } = a.deadLetters.add({ reason: 'queue-full', detail: '', topic, qos: 1, retain: false, attempts: 1, firstRejectedAt: now, rejectedAt: now, payload: Buffer.from(payload) }, now)
        await done
        return entry.id
      }
      const topicsOf = async (store: CulexStore): Promise<string[]> => {
        await store.deadLetters.fresh()
        return store.deadLetters.list().map(e => e.topic).sort()
      }
      const first = await add('t/1', 'abc')
      const second = await add('t/2')
      expect(await topicsOf(b)).toEqual(['t/1', 't/2'])
      expect(b.deadLetters.bytes).toBe(4)
      // a failed replay on b rewrites it: a sees the attempts
      const retried = b.deadLetters.retry(first, { reason: 'rejected', detail: 'again', attempts: 2, rejectedAt: Date.now() }, Buffer.from('abc'))
      await retried?.done
      await a.deadLetters.fresh()
      expect(a.deadLetters.get(first)).toMatchObject({ reason: 'rejected', attempts: 2, bytes: 3 })
      expect(a.deadLetters.bytes).toBe(4)
      expect(await b.deadLetters.remove([second])).toEqual([second])
      expect(await topicsOf(a)).toEqual(['t/1'])
      expect(a.deadLetters.count).toBe(1)
      // b falls further behind than the log keeps: it reads the whole log again
      for (let i = 3; i <= 6; i++) await add(`t/${i}`)
      await admin.xtrim('follow:dlq-log', 'MAXLEN', 1)
      expect(await topicsOf(b)).toEqual(['t/1', 't/3', 't/4', 't/5', 't/6'])
      expect(b.deadLetters.count).toBe(5)
    } finally {
      admin.disconnect()
      await a.close()
      await b.close()
    }
  })
})
