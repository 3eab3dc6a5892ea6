import { afterEach, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import type { TestBroker } from '../helpers/broker.js'
import { waitFor } from '../helpers/clients.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import { startNode } from './support.js'

let redis: TestRedis | undefined
let node: TestBroker | undefined
let admin: Redis | undefined

afterEach(async () => {
  await node?.close()
  admin?.disconnect()
  await redis?.close()
  node = admin = redis = undefined
})

const readyz = async (n: TestBroker): Promise<{ status: number, reason?: string }> => {
  const res = await fetch(`${n.adminUrl}/readyz`)
  return { status: res.status, reason: ((await res.json()) as { reason?: string }).reason }
}

/**
 * The store's own connection (the one the enqueues of every QoS 1/2 publish go over) counts for /readyz like the
 * messaging's: after a failover each connection comes back on its own schedule (ioredis' back-off), and a node is
 * ready only once all of them are.
 */
describe("a cluster node's readiness and its store's connection to Redis", () => {
  it('is not ready while the store cannot reconnect (its connection lost alone, Redis refusing it), and ready once it is back', async () => {
    redis = await startTestRedis()
    admin = new Redis(redis.url, { connectionName: 'test-admin' })
    // a user of its own, so that a new connection can be refused while the node's open ones stay
    await admin.call('ACL', 'SETUSER', 'culex', 'on', '>right', '~*', '&*', '+@all')
    node = await startNode(`redis://culex:right@127.0.0.1:${redis.port}`, 'a')
    await waitFor(async () => (await readyz(node as TestBroker)).status === 200, 'the node ready')

    // the store's connection is the node's only one without a name (the messaging's are culex:<node>:<role>)
    const list = (await admin.client('LIST') as string).split('\n').filter(l => l.includes(' user=culex '))
    const store = list.filter(l => / name= /.test(l))
    expect(store).toHaveLength(1)
    await admin.call('ACL', 'SETUSER', 'culex', 'resetpass', '>other')
    await admin.client('KILL', 'ID', /id=(\d+)/.exec(store[0])?.[1] ?? '')
    await waitFor(() => (node as TestBroker).logs.some(l => l.msg === 'redis unavailable: QoS 1/2 publishes wait for it, unacknowledged'), 'the store saying its connection is lost')
    await waitFor(async () => (await readyz(node as TestBroker)).status === 503, 'the node not ready', 3000)
    expect((await readyz(node)).reason).toMatch(/^cluster Redis unreachable \(.*store: /)
    expect(await (await fetch(`${node.adminUrl}/metrics`)).text()).toMatch(/^culex_cluster_redis_connections_down 1$/m)

    await admin.call('ACL', 'SETUSER', 'culex', 'resetpass', '>right')
    await waitFor(async () => (await readyz(node as TestBroker)).status === 200, 'the node ready again', 5000)
    expect(node.logs.filter(l => l.msg === 'redis available again')).toHaveLength(1)
    // said once by the store, not again by the messaging's watch
    expect(node.logs.filter(l => l.msg === 'redis unavailable: QoS 1/2 publishes wait for it, unacknowledged')).toHaveLength(1)
    expect(node.logs.filter(l => l.connection === 'store')).toEqual([])
  })
})
