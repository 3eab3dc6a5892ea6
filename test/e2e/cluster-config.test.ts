/**
 * `culex check-config` in cluster mode: the Redis URL is checked, and so is that Redis answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'

describe('culex check-config with cluster.redisUrl', () => {
  let redis: TestRedis
  beforeAll(async () => { redis = await startTestRedis() })
  afterAll(async () => { await redis.close() })

  it('exits 0 when Redis answers, and names the setting', async () => {
    const r = await runCli(['check-config'], { CULEX_CLUSTER_REDIS_URL: redis.url })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('cluster.redisUrl (from env)')
  })

  it('exits 1 with a clear error when nothing answers at the URL, without the password', async () => {
    await redis.stop()
    try {
      const url = `redis://user:s3cret@127.0.0.1:${redis.port}`
      const r = await runCli(['check-config'], { CULEX_CLUSTER_REDIS_URL: url })
      expect(r.code).toBe(1)
      expect(r.stderr).toContain('[ERR_STORE_OPEN]')
      expect(r.stderr).toContain(`Redis at redis://user@127.0.0.1:${redis.port} does not answer`)
      expect(r.stderr).not.toContain('s3cret')
      expect(r.stderr).not.toMatch(/^\s+at /m)
    } finally {
      await redis.start()
    }
  })

  it('exits 2 for a URL that is not redis:// or rediss://', async () => {
    const r = await runCli(['check-config'], { CULEX_CLUSTER_REDIS_URL: 'http://127.0.0.1:6379' })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('cluster.redisUrl')
  })
})
