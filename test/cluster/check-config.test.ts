import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, runCli } from '../helpers/cli.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'

let redis: TestRedis

beforeAll(async () => {
  await ensureBuilt()
  redis = await startTestRedis()
}, 200_000)
afterAll(async () => { await redis?.close() })

describe('culex check-config in cluster mode', () => {
  it('passes when Redis answers at cluster.redisUrl', async () => {
    const r = await runCli(['check-config'], { CULEX_CLUSTER_REDIS_URL: redis.url })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('cluster.redisUrl (from env)')
  })

  it('fails with ERR_CLUSTER_REDIS when nothing answers, naming the URL without its password', async () => {
    await redis.stop()
    try {
      const r = await runCli(['check-config'], { CULEX_CLUSTER_REDIS_URL: `redis://user:s3cret@127.0.0.1:${redis.port}` })
      expect(r.code).toBe(1)
      expect(r.stderr).toContain('[ERR_CLUSTER_REDIS]')
      expect(r.stderr).toContain(`Redis at redis://user@127.0.0.1:${redis.port} does not answer`)
      expect(r.stderr).not.toContain('s3cret')
    } finally {
      await redis.start()
    }
  })

  it('fails with ERR_CLUSTER_CONFIG for a node timeout shorter than two heartbeats', async () => {
    const r = await runCli(['check-config'], { CULEX_CLUSTER_REDIS_URL: redis.url, CULEX_CLUSTER_HEARTBEAT_INTERVAL_MS: '1000', CULEX_CLUSTER_NODE_TIMEOUT_MS: '1500' })
    expect(r.stderr).toContain('ERR_CLUSTER_CONFIG')
    expect(r.code).not.toBe(0)
  })
})
