/**
 * `culex store check|repair` on a cluster's Redis, with the built command and a running cluster node: the check
 * reads the store while the node runs, finds what is damaged, repair is refused while a node is alive and, once
 * the node is stopped, rebuilds the damaged queue so the node delivers what it still holds. `culex dlq` reads and
 * purges the dead letters of every node in Redis.
 */
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { runCli } from '../helpers/cli.js'
import { useClusterCli } from './support/cluster-cli.js'

describe('culex store on a cluster Redis', () => {
  const cluster = useClusterCli()

  it('checks the store with a node running, refuses to repair it then, repairs it once the node is stopped', async () => {
    const redis = cluster.redis()
    const dataDir = await cluster.dir()
    const node = await cluster.node('node-1', { dataDir })
    const url = `mqtt://127.0.0.1:${node.ports.mqtt}`
    for (const clientId of ['meter-7', 'meter-8']) {
      const sub = await connectClient(url, { clientId, clean: false })
      await sub.subscribeAsync('meters/#', { qos: 1 })
      await endClient(sub)
    }
    const pub = await connectClient(url, { clientId: 'pub' })
    for (let i = 0; i < 3; i++) await pub.publishAsync('meters/7', `reading ${i}`, { qos: 1 })
    await endClient(pub)

    const healthy = await runCli(['store', 'check'], { CULEX_CLUSTER_REDIS_URL: redis.url })
    expect(healthy.stderr).toBe('')
    expect(healthy.code).toBe(0)
    expect(healthy.stdout).toContain(`Redis at ${redis.url} (key prefix culex:): healthy, layout version 2`)
    expect(healthy.stdout).toMatch(/^ {2}queued: 6$/m)
    expect(healthy.stdout).toMatch(/^ {2}subscriptions: 2$/m)
    const json = await runCli(['store', 'check', '--json', '--redis-url', redis.url])
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, formatVersion: 2, prefix: 'culex:', counts: { sessions: 2, queued: 6 } })

    // Damage: meter-7's first message body is gone, its second entry has lost its state, meter-8's session record
    // is gone (its subscription and queue stay), and a key that fits no part of the layout.
    const direct = new Redis(redis.url)
    try {
      await direct.hdel('culex:qm:meter-7', '1')
      await direct.hdel('culex:qx:meter-7', 'e:2')
      await direct.hdel('culex:sessions', 'meter-8')
      await direct.set('culex:junk', 'x')
      const damaged = await runCli(['store', 'check'], { CULEX_CLUSTER_REDIS_URL: redis.url })
      expect(damaged.code).toBe(1)
      expect(damaged.stdout).toContain('8 problem(s)')
      expect(damaged.stdout).toContain('problem: queue of "meter-7": entry 1 has no message body')
      expect(damaged.stdout).toContain('problem: queue of "meter-7": entry 2 has no state')
      expect(damaged.stdout).toContain('problem: queue of "meter-7": w is 3, the entries say 2')
      expect(damaged.stdout).toContain('problem: culex:queue-totals counts 6 entries of 54 bytes, the queues hold 5 of 45')
      expect(damaged.stdout).toContain('problem: client "meter-8" has subscriptions or queued messages but no session record')
      expect(damaged.stdout).toContain('problem: key "culex:junk" fits no part of the layout')
      await direct.del('culex:junk')

      const refused = await runCli(['store', 'repair'], { CULEX_CLUSTER_REDIS_URL: redis.url })
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain('stop every node first (alive: node-1) [ERR_CLUSTER_NODES_RUNNING]')
      expect(await node.stop()).toBe(0)

      const repair = await runCli(['store', 'repair'], { CULEX_CLUSTER_REDIS_URL: redis.url })
      expect(repair.stderr).toBe('')
      expect(repair.code).toBe(0)
      expect(repair.stdout).toMatch(/set aside what could not be kept \(1 queued message\(s\) without a readable body\) in culex:repaired:\d{8}T\d+Z/)
      expect(repair.stdout).toContain('healthy, layout version 2')
      expect(await direct.hexists('culex:sessions', 'meter-8')).toBe(1)
    } finally {
      direct.disconnect()
    }

    // The repaired queue delivers what it still holds: the message whose state was rebuilt, and the one after it.
    const again = await cluster.node('node-1', { dataDir })
    const sub = await connectClient(`mqtt://127.0.0.1:${again.ports.mqtt}`, { clientId: 'meter-7', clean: false })
    try {
      await waitFor(() => sub.received.length >= 2, 'the two messages the repair kept')
      expect(sub.received.map(m => m.payload)).toEqual(['reading 1', 'reading 2'])
    } finally {
      await endClient(sub)
      await again.stop()
    }
    const after = await runCli(['store', 'check'], { CULEX_CLUSTER_REDIS_URL: redis.url })
    expect(after.code).toBe(0)
  }, 90_000)
})

describe('culex dlq on a cluster Redis', () => {
  const cluster = useClusterCli()

  it('lists, shows and purges the dead letters of every node; replay needs a node', async () => {
    const redis = cluster.redis()
    const nodes = []
    for (const id of ['node-1', 'node-2']) nodes.push(await cluster.node(id, { env: { CULEX_DEAD_LETTER_PAYLOAD_RULES: 'orders/#=json' } }))
    for (const [i, node] of nodes.entries()) {
      const pub = await connectClient(`mqtt://127.0.0.1:${node.ports.mqtt}`, { clientId: `till-${i}` })
      await pub.publishAsync(`orders/${i}`, 'not json', { qos: 1 })
      await endClient(pub)
    }
    const env = { CULEX_CLUSTER_REDIS_URL: redis.url }
    const viaNode = await runCli(['dlq', 'list', '--json', '--admin-url', `http://127.0.0.1:${nodes[0].ports.admin}`], env)
    // a node's admin API lists every node's dead letters
    expect((JSON.parse(viaNode.stdout) as { items: Array<{ topic: string }> }).items.map(i => i.topic).sort()).toEqual(['orders/0', 'orders/1'])

    const list = await runCli(['dlq', 'list', '--json', '--redis-url', redis.url])
    expect(list.stderr).toBe('')
    expect(list.code).toBe(0)
    const { items, total } = JSON.parse(list.stdout) as { items: Array<{ id: string, topic: string, reason: string }>, total: number }
    expect(total).toBe(2)
    expect(items.map(i => i.topic).sort()).toEqual(['orders/0', 'orders/1'])
    expect(items.every(i => i.reason === 'invalid-payload')).toBe(true)
    const letter = items.find(i => i.topic === 'orders/1') as { id: string }

    const show = await runCli(['dlq', 'show', letter.id, '--redis-url', redis.url])
    expect(JSON.parse(show.stdout)).toMatchObject({ id: letter.id, topic: 'orders/1', payload: Buffer.from('not json').toString('base64') })
    const replay = await runCli(['dlq', 'replay', letter.id, '--redis-url', redis.url])
    expect(replay.code).toBe(1)
    expect(replay.stderr).toContain("replay needs a running broker: give a node's --admin-url instead of --redis-url [ERR_ADMIN_API]")
    const purge = await runCli(['dlq', 'purge', letter.id, '--redis-url', redis.url])
    expect(JSON.parse(purge.stdout)).toEqual({ removed: 1 })

    for (const node of nodes) expect(await node.stop()).toBe(0)
    // no admin API answers: with the cluster's Redis configured, the command reads it instead of a data directory
    const offline = await runCli(['dlq', 'list', '--admin-url', `http://127.0.0.1:${nodes[0].ports.admin}`], env)
    expect(offline.stderr).toBe('')
    expect(offline.stdout).toMatch(/ invalid-payload {2}orders\/0 {2}client=till-0 /)
    expect(offline.stdout).toContain('1 of 1 dead letter\n')
  }, 90_000)
})
