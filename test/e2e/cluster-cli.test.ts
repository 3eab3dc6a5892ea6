/**
 * The `culex` command in cluster mode: check-config checks the Redis URL and that Redis answers; sessions reads and
 * purges the sessions Redis holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRedisStore } from '../../src/store/index.js'
import { runCli } from '../helpers/cli.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { startNode } from '../cluster/support.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import { publish, silentLogger, unlimited } from '../store/helpers/store.js'

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
      expect(r.stderr).toContain('[ERR_CLUSTER_REDIS]')
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

describe('culex sessions with a cluster Redis', () => {
  let redis: TestRedis
  beforeAll(async () => { redis = await startTestRedis() })
  afterAll(async () => { await redis.close() })

  it('lists, shows and purges the sessions Redis holds', async () => {
    const store = await openRedisStore({ redis: { url: redis.url }, logger: silentLogger(), limits: unlimited })
    await store.addSubscriptions({ id: 'dev-1' }, [{ topic: 'site/#', qos: 1 }])
    await store.outgoingEnqueueCombi([{ clientId: 'dev-1', qos: 1 }], publish('site/a', 'hello', { brokerId: 'b', brokerCounter: 1 }))
    await store.close()
    const env = { CULEX_CLUSTER_REDIS_URL: redis.url }
    const list = await runCli(['sessions', 'list'], env)
    expect(list.stderr).toBe('')
    expect(list.code).toBe(0)
    expect(list.stdout).toMatch(/^dev-1\t1\t1\t0\t5\t\d{4}-/m)
    const show = await runCli(['sessions', 'show', 'dev-1'], env)
    expect(JSON.parse(show.stdout)).toMatchObject({ clientId: 'dev-1', subscriptions: [{ topic: 'site/#', qos: 1 }], queued: 1 })
    const purge = await runCli(['sessions', 'purge', 'dev-1'], env)
    expect(purge.stdout).toContain('purged session dev-1 (1 queued message(s), 1 subscription(s))')
    const gone = await runCli(['sessions', 'show', 'dev-1'], env)
    expect(gone.code).toBe(1)
    expect(gone.stderr).toContain('no persistent session "dev-1" in Redis')
  })

  it('refuses to purge a session whose client is connected to a running node, and purges it once the client has gone', async () => {
    const n = await startNode(redis.url, 'cli-node')
    try {
      const c = await connectClient(n.mqttUrl, { clientId: 'dev-2', clean: false })
      await c.subscribeAsync('site/#', { qos: 1 })
      await waitFor(async () => (await n.broker.store.sessionInfo('dev-2'))?.connectedAt !== undefined, 'the session record')
      const env = { CULEX_CLUSTER_REDIS_URL: redis.url }
      const refused = await runCli(['sessions', 'purge', 'dev-2'], env)
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain('[ERR_SESSION_CONNECTED]')
      expect(refused.stderr).toContain('connected to node cli-node')
      expect(c.connected).toBe(true)
      expect((await n.broker.store.sessionInfo('dev-2'))?.subscriptions).toEqual([{ topic: 'site/#', qos: 1 }])
      await endClient(c)
      await waitFor(async () => (await n.broker.store.sessionInfo('dev-2'))?.disconnectedAt !== undefined, 'the session disconnected')
      const purge = await runCli(['sessions', 'purge', 'dev-2'], env)
      expect(purge.stdout).toContain('purged session dev-2')
    } finally {
      await n.close()
    }
  })
})
