import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { TestBroker } from '../helpers/broker.js'
import { ensureBuilt, runCli } from '../helpers/cli.js'
import { connectClient, endClient, waitFor, type TestClient } from '../helpers/clients.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import { makeCerts, type Certs } from '../auth/support.js'
import { startNode, waitForRoute } from './support.js'

/**
 * A cluster on a Redis that speaks TLS only (`--port 0 --tls-port`, its certificate signed by a CA made for the
 * test): `rediss://` with that CA given by cluster.redisTlsCaFile (docs/cluster.md, "TLS to Redis").
 */
let certs: Certs
let redis: TestRedis
const nodes: TestBroker[] = []
const clients: TestClient[] = []

beforeAll(async () => {
  await ensureBuilt()
  certs = await makeCerts()
  redis = await startTestRedis({ tls: { certFile: certs.serverCert, keyFile: certs.serverKey, caFile: certs.ca } })
}, 200_000)
afterAll(async () => { await redis?.close() })
afterEach(async () => {
  for (const c of clients.splice(0)) await endClient(c, true)
  for (const n of nodes.splice(0)) await n.close()
})

describe('cluster mode over rediss:// (TLS to Redis)', () => {
  it('two nodes trusting a private CA (cluster.redisTlsCaFile): ready, and a persistent subscriber on one gets every QoS 1 message published on the other', async () => {
    expect(redis.url).toMatch(/^rediss:\/\/127\.0\.0\.1:\d+$/)
    const settings = { 'cluster.redisTlsCaFile': certs.ca }
    const a = await startNode(redis.url, 'a', settings)
    nodes.push(a)
    const b = await startNode(redis.url, 'b', settings)
    nodes.push(b)
    for (const node of [a, b]) expect((await fetch(`${node.adminUrl}/readyz`)).status).toBe(200)
    const sub = await connectClient(a.mqttUrl, { clientId: 'sub', clean: false })
    clients.push(sub)
    await sub.subscribeAsync('tls/#', { qos: 1 })
    await waitForRoute(b, a, 'tls/1')
    const pub = await connectClient(b.mqttUrl, { clientId: 'pub' })
    clients.push(pub)
    for (let i = 0; i < 50; i++) await pub.publishAsync('tls/1', String(i), { qos: 1 })
    await waitFor(() => sub.received.length >= 50, 'every message on node A')
    expect(sub.received.map(m => m.payload)).toEqual(Array.from({ length: 50 }, (_, i) => String(i)))
    // the cluster sees both nodes alive through the TLS connections
    const body = await (await fetch(`${a.adminUrl}/api/cluster`)).json() as { items: Array<{ nodeId: string, health: string }> }
    expect(body.items.filter(n => n.health === 'alive').map(n => n.nodeId).sort()).toEqual(['a', 'b'])
  })

  it('a node started with a CA file that holds no certificate stops with ERR_TLS_FILES naming the setting', async () => {
    const bad = path.join(certs.dir, 'not-a-ca.pem')
    await writeFile(bad, 'not a certificate\n')
    await expect(startNode(redis.url, 'c', { 'cluster.redisTlsCaFile': bad })).rejects.toMatchObject({
      code: 'ERR_TLS_FILES',
      message: `cluster.redisTlsCaFile: ${bad} holds no PEM certificate`
    })
  })
})

describe('culex check-config with rediss://', () => {
  it('passes with the CA in cluster.redisTlsCaFile, and reports the setting', async () => {
    const r = await runCli(['check-config'], { CULEX_CLUSTER_REDIS_URL: redis.url, CULEX_CLUSTER_REDIS_TLS_CA_FILE: certs.ca })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('cluster.redisTlsCaFile (from env)')
  })

  it('fails with ERR_CLUSTER_REDIS and the certificate error when the CA is not trusted', async () => {
    const r = await runCli(['check-config'], { CULEX_CLUSTER_REDIS_URL: redis.url })
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('[ERR_CLUSTER_REDIS]')
    expect(r.stderr).toMatch(/does not answer: .*certificate/)
  })

  it('passes without the setting when the CA is trusted process-wide (NODE_EXTRA_CA_CERTS)', async () => {
    const r = await runCli(['check-config'], { CULEX_CLUSTER_REDIS_URL: redis.url, NODE_EXTRA_CA_CERTS: certs.ca })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })

  it.each([
    ['a CA file that cannot be read', () => ({
      env: { CULEX_CLUSTER_REDIS_URL: redis.url, CULEX_CLUSTER_REDIS_TLS_CA_FILE: path.join(certs.dir, 'missing.pem') },
      code: '[ERR_CONFIG_INVALID]',
      message: `cluster.redisTlsCaFile: cannot read file ${path.join(certs.dir, 'missing.pem')}`
    })],
    ['a CA file that holds no certificate', () => ({
      env: { CULEX_CLUSTER_REDIS_URL: redis.url, CULEX_CLUSTER_REDIS_TLS_CA_FILE: certs.serverKey },
      code: '[ERR_TLS_FILES]',
      message: `cluster.redisTlsCaFile: ${certs.serverKey} holds no PEM certificate`
    })],
    ['a CA file with a redis:// URL (no TLS)', () => ({
      env: { CULEX_CLUSTER_REDIS_URL: redis.url.replace('rediss:', 'redis:'), CULEX_CLUSTER_REDIS_TLS_CA_FILE: certs.ca },
      code: '[ERR_CONFIG_INVALID]',
      message: 'cluster.redisTlsCaFile: needs a rediss:// cluster.redisUrl'
    })]
  ] as const)('exits 2 for %s', async (_what, setup) => {
    const { env, code, message } = setup()
    const r = await runCli(['check-config'], env)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(code)
    expect(r.stderr).toContain(message)
  })
})
