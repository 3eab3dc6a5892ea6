import { afterEach, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import type { Packet } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor, type TestClient } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import { startNode } from './support.js'

const BEHIND = 'redis replicas behind: QoS 1/2 publishes are not acknowledged'
const CAUGHT_UP = 'redis replicas caught up'

/**
 * cluster.redisWaitReplicas (docs/cluster.md, "Durability"): a master and a real replica (`--replicaof`); the replica
 * is stalled with SIGSTOP, so the master keeps it connected while it confirms nothing.
 */
describe('a broker that asks for a Redis replica (cluster.redisWaitReplicas)', () => {
  let master: TestRedis | undefined
  let replica: TestRedis | undefined
  let t: TestBroker | undefined
  const clients: TestClient[] = []
  const readers: Redis[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) await endClient(c, true)
    await t?.close()
    t = undefined
    for (const r of readers.splice(0)) r.disconnect()
    await replica?.close()
    await master?.close()
    replica = master = undefined
  })

  const reader = (server: TestRedis): Redis => {
    const r = new Redis(server.url)
    readers.push(r)
    return r
  }

  /** A master and its replica, in sync. */
  const pair = async (): Promise<{ master: TestRedis, replica: TestRedis }> => {
    master = await startTestRedis()
    replica = await startTestRedis({ replicaOf: master.port })
    const m = reader(master)
    await waitFor(async () => /slave0:.*state=online/.test(await m.info('replication')), 'the replica in sync')
    return { master, replica }
  }

  const client = async (broker: TestBroker, clientId: string, opts: Record<string, unknown> = {}): Promise<TestClient> => {
    const c = await connectClient(broker.mqttUrl, { clientId, ...opts })
    clients.push(c)
    return c
  }

  /** A persistent subscriber to w/# that leaves: what is published is queued for it in Redis. */
  const awaySubscriber = async (broker: TestBroker): Promise<void> => {
    const sub = await connectClient(broker.mqttUrl, { clientId: 'durable', clean: false })
    await sub.subscribeAsync('w/#', { qos: 2 })
    await endClient(sub)
  }

  it('acknowledges a QoS 1 or 2 publish only once the replica has its writes: none while the replica is stalled, both once it answers', async () => {
    const { master, replica } = await pair()
    t = await startTestBroker({ 'cluster.redisUrl': master.url, 'cluster.redisWaitReplicas': 1, 'cluster.redisWaitTimeoutMs': 30_000 })
    await awaySubscriber(t)
    const onMaster = reader(master)
    const onReplica = reader(replica)
    const pub = await client(t, 'w-pub')
    await pub.publishAsync('w/0', 'before', { qos: 1 })
    expect(await onReplica.zcard('culex:q:durable'), 'on the replica when acknowledged').toBe(1)

    replica.pause()
    const acked: string[] = []
    const sent = [
      pub.publishAsync('w/1', 'during-1', { qos: 1 }).then(() => { acked.push('qos 1') }),
      pub.publishAsync('w/2', 'during-2', { qos: 2 }).then(() => { acked.push('qos 2') })
    ]
    await waitFor(async () => await onMaster.zcard('culex:q:durable') === 3, 'both stored on the master')
    // the master has them; nothing is acknowledged while the replica does not confirm them
    await sleep(500)
    expect(acked).toEqual([])

    replica.resume()
    await Promise.all(sent)
    expect(acked.sort()).toEqual(['qos 1', 'qos 2'])
    expect(await onReplica.zcard('culex:q:durable'), 'on the replica when acknowledged').toBe(3)
    expect(t.logs.filter(l => l.msg === BEHIND)).toEqual([])

    const back = await client(t, 'durable', { clean: false })
    await waitFor(() => back.received.length >= 3, 'the three messages')
    expect(back.received.map(m => m.payload)).toEqual(['before', 'during-1', 'during-2'])
  }, 60_000)

  it('a publish the replica does not confirm within redisWaitTimeoutMs is not acknowledged and its connection closes; the log says so once; once the replica is back publishes are acknowledged again', async () => {
    const { master, replica } = await pair()
    // long enough for a resumed replica to answer WAIT on a loaded machine; the stalled one never does
    t = await startTestBroker({ 'cluster.redisUrl': master.url, 'cluster.redisWaitReplicas': 1, 'cluster.redisWaitTimeoutMs': 2000 })
    const broker = t
    await awaySubscriber(broker)

    replica.pause()
    const publishers = await Promise.all([1, 2, 3].map(async i => await client(broker, `w-pub-${i}`, { reconnectPeriod: 0 })))
    const outcomes = await Promise.all(publishers.map(async (p, i) => {
      const closed = new Promise<string>(resolve => p.once('close', () => { resolve('closed') }))
      const acked = p.publishAsync(`w/${i}`, `unconfirmed-${i}`, { qos: 1 }).then(() => 'acknowledged', () => 'closed')
      return await Promise.race([acked, closed])
    }))
    expect(outcomes).toEqual(['closed', 'closed', 'closed'])
    expect(broker.logs.filter(l => l.msg === BEHIND).length, 'one line for the three').toBe(1)

    replica.resume()
    const after = await client(broker, 'w-pub-after')
    await after.publishAsync('w/after', 'after', { qos: 1 })
    await waitFor(() => broker.logs.some(l => l.msg === CAUGHT_UP), 'the recovery logged')
    expect(await reader(replica).zrange('culex:q:durable', 0, -1)).toHaveLength(4)
    // what the master stored before the timeout stays queued: not acknowledged, but delivered (at least once)
    const back = await client(broker, 'durable', { clean: false })
    await waitFor(() => back.received.length >= 4, 'the four messages')
    expect(back.received.map(m => m.payload).sort()).toEqual(['after', 'unconfirmed-0', 'unconfirmed-1', 'unconfirmed-2'])
  }, 60_000)

  it('a QoS 2 resend (DUP) whose first copy the replica did not confirm gets its PUBREC only once the replica has the record; the message is delivered once', async () => {
    const { master, replica } = await pair()
    t = await startTestBroker({ 'cluster.redisUrl': master.url, 'cluster.redisWaitReplicas': 1, 'cluster.redisWaitTimeoutMs': 2000 })
    const broker = t
    await awaySubscriber(broker)
    const publish: Packet = { cmd: 'publish', topic: 'w/q2', payload: Buffer.from('once'), qos: 2, messageId: 7, retain: false, dup: false }
    const attempt = async (dup: boolean): Promise<'pubrec' | 'closed'> => {
      const raw = await openRaw('tcp', broker)
      await raw.connect({ clientId: 'q2-pub', clean: false })
      raw.send({ ...publish, dup } as Packet)
      const answer = await Promise.race([raw.next('pubrec', 10_000).then(() => 'pubrec' as const), raw.closed.then(() => 'closed' as const)])
      if (answer === 'pubrec') {
        raw.send({ cmd: 'pubrel', messageId: 7 })
        await raw.next('pubcomp')
        await raw.disconnect()
      }
      return answer
    }
    replica.pause()
    expect(await attempt(false), 'the first copy, stored on the master only').toBe('closed')
    // its inbound record is on the master: without the wait, the resend would be answered from it at once
    expect(await attempt(true), 'the resend while the replica is still stalled').toBe('closed')
    replica.resume()
    expect(await attempt(true), 'the resend once the replica answers').toBe('pubrec')

    const back = await client(broker, 'durable', { clean: false })
    await waitFor(() => back.received.length >= 1, 'the message')
    await sleep(300)
    expect(back.received.map(m => m.payload)).toEqual(['once'])
  }, 60_000)

  it('a publish that reaches another node through the cluster stream is acknowledged only after a WAIT that covers that stream write', async () => {
    const { master } = await pair()
    const settings = { 'cluster.redisWaitReplicas': 1, 'cluster.redisWaitTimeoutMs': 30_000 }
    // opened before the nodes: MONITOR's reply reaching ioredis among other nodes' lines puts it in an error state
    const seen: Array<{ args: string[], from: string }> = []
    let recording = false
    const monitor = await reader(master).monitor()
    monitor.on('monitor', (_time: string, args: string[], from: string) => { if (recording) seen.push({ args, from }) })
    const a = await startNode(master.url, 'wa', settings)
    const b = await startNode(master.url, 'wb', settings)
    try {
      const sub = await client(b, 'w-clean')
      await sub.subscribeAsync('x/#', { qos: 1 })
      await waitFor(() => a.broker.cluster?.routesTo('wb', 'x/1') === true, "node wa routing x/1 to wb")
      const pub = await client(a, 'w-pub-x')
      recording = true
      await pub.publishAsync('x/1', 'over the stream', { qos: 1 })
      await waitFor(() => sub.received.length === 1, 'the message on the other node')
      monitor.disconnect()
      // WAIT counts the replicas that have its own connection's writes: the stream append went over another one, so a
      // write of the WAIT's connection has to come after it for the WAIT to cover it; the message's own append (the publisher's connection notice goes to the same stream, at a time of its own)
      const append = seen.findIndex(c => c.args.some(arg => arg === 'culex:cluster:bus:wb') && c.args.some(arg => String(arg).includes('over the stream')))
      expect(append, 'the stream append to node wb').toBeGreaterThanOrEqual(0)
      const wait = seen.findIndex((c, i) => i > append && c.args[0].toLowerCase() === 'wait')
      expect(wait, 'a WAIT after the stream append').toBeGreaterThan(append)
      const between = seen.slice(append + 1, wait).filter(c => c.from === seen[wait].from && c.args[0].toLowerCase() === 'incr')
      expect(between.map(c => c.args[1]), "a write on the WAIT's connection between the append and the WAIT").toEqual(['culex:replica-mark'])
    } finally {
      await a.close()
      await b.close()
    }
  }, 60_000)
})

