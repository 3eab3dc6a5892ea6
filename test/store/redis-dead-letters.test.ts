/**
 * Dead letters of several nodes in one Redis: each node numbers its own, so two nodes that dead-letter a message in
 * the same millisecond never write under the same id (one would replace the other).
 */
import { afterAll, describe, expect, it } from 'vitest'
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
})
