import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'

describe('the test Redis helper', () => {
  let redis: TestRedis | undefined
  afterAll(async () => { await redis?.close() })

  it('starts a private redis-server that keeps an AOF across kill -9', async () => {
    redis = await startTestRedis({ appendfsync: 'always' })
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 })
    await client.set('k', 'v')
    client.disconnect()
    await redis.kill()
    await redis.start()
    const again = new Redis(redis.url)
    expect(await again.get('k')).toBe('v')
    again.disconnect()
  }, 20_000)
})
