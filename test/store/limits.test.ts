import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { CulexStore, DropEvent } from '../../src/store/index.js'
import { waitFor } from '../helpers/clients.js'
import { storeBackends } from './helpers/backends.js'
import { captureLogger, drain, publish, TempDirs } from './helpers/store.js'

const dirs = new TempDirs()
const backends = storeBackends()
afterEach(async () => {
  await dirs.cleanup()
  for (const b of backends) await b.cleanup()
})
afterAll(async () => { for (const b of backends) await b.close() })

type Packet = Record<string, unknown>

async function enqueue (store: CulexStore, clientId: string, from: number, to: number, size = 1): Promise<void> {
  for (let i = from; i <= to; i++) {
    await store.outgoingEnqueueCombi([{ clientId, qos: 1 }], publish(`t/${i}`, 'x'.repeat(size), { brokerId: 'b', brokerCounter: i }))
  }
}

async function payloads (store: CulexStore, clientId: string): Promise<string[]> {
  return ((await drain(store.outgoingStream({ id: clientId }))) as Packet[]).map((p) => String(p.topic))
}

describe.each(backends)('queue limits per session ($name)', (b) => {
  it('dropOldest removes the oldest waiting messages, never in-flight ones, and reports each drop', async () => {
    const drops: DropEvent[] = []
    const store = await b.open(await b.make(), { limits: { maxQueuedMessages: 3, overflowPolicy: 'dropOldest' }, onDrop: (e) => drops.push(e) })
    await enqueue(store, 'c1', 1, 3)
    // t/1 is in flight: it stays, and does not count against the limit
    await store.outgoingUpdate({ id: 'c1' }, publish('t/1', 'x', { brokerId: 'b', brokerCounter: 1, messageId: 1 }))
    await enqueue(store, 'c1', 4, 6)
    await store.barrier()
    expect(await payloads(store, 'c1')).toEqual(['t/1', 't/4', 't/5', 't/6'])
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(drops.map((d) => [d.reason, d.clientId, d.packet.topic])).toEqual([
      ['queue-full', 'c1', 't/2'], ['queue-full', 'c1', 't/3']
    ])
    expect(Buffer.isBuffer(drops[0].packet.payload)).toBe(true)
    expect(store.stats().droppedMessages).toBe(2)
    await store.close()
  })

  it('an evicted message is gone for the store from the moment it is reported: sending it then is refused, and the queue stays whole', async () => {
    let store: CulexStore | undefined
    const refused: unknown[] = []
    store = await b.open(await b.make(), {
      limits: { maxQueuedMessages: 1, overflowPolicy: 'dropOldest' },
      // what a delivery of the evicted copy would do, in the very moment it is reported (before its dead letter)
      onDrop: (e) => {
        store?.outgoingUpdate({ id: 'c1' }, publish(e.packet.topic, 'x', { brokerId: 'b', brokerCounter: Number(e.packet.topic.slice(2)), messageId: 9 }))
          .catch((err: unknown) => { refused.push(err) })
      }
    })
    await enqueue(store, 'c1', 1, 2)
    await store.barrier()
    await waitFor(() => refused.length === 1, 'the update of the evicted message refused')
    expect(await payloads(store, 'c1')).toEqual(['t/2'])
    // packet id 9 was never given to anything the queue holds
    expect(await store.outgoingClearMessageId({ id: 'c1' }, { messageId: 9 })).toBeUndefined()
    await store.outgoingUpdate({ id: 'c1' }, publish('t/2', 'x', { brokerId: 'b', brokerCounter: 2, messageId: 9 }))
    expect(await store.outgoingClearMessageId({ id: 'c1' }, { messageId: 9 })).toMatchObject({ topic: 't/2' })
    expect(await payloads(store, 'c1')).toEqual([])
    await store.close()
  })

  it('dropNewest refuses new messages while the queue is full', async () => {
    const drops: DropEvent[] = []
    const store = await b.open(await b.make(), { limits: { maxQueuedMessages: 2, overflowPolicy: 'dropNewest' }, onDrop: (e) => drops.push(e) })
    await enqueue(store, 'c1', 1, 4)
    expect(await payloads(store, 'c1')).toEqual(['t/1', 't/2'])
    expect(drops.map((d) => d.packet.topic)).toEqual(['t/3', 't/4'])
    await store.close()
  })

  it('applies maxQueuedBytes to payload bytes', async () => {
    const drops: DropEvent[] = []
    const store = await b.open(await b.make(), { limits: { maxQueuedBytes: 25, overflowPolicy: 'dropOldest' }, onDrop: (e) => drops.push(e) })
    await enqueue(store, 'c1', 1, 3, 10)
    expect(await payloads(store, 'c1')).toEqual(['t/2', 't/3'])
    // larger than the whole limit: can never fit, so it is the one dropped
    await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('big', 'x'.repeat(30), { brokerId: 'b', brokerCounter: 99 }))
    expect(await payloads(store, 'c1')).toEqual(['t/2', 't/3'])
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(drops.map((d) => d.packet.topic).sort()).toEqual(['big', 't/1'])
    expect(await store.sessionInfo('c1')).toMatchObject({ queued: 2, queuedBytes: 20 })
    await store.close()
  })

  it('logs overflow at most once per client per window, with the count', async () => {
    const { logger, lines } = captureLogger()
    const store = await b.open(await b.make(), { logger, limits: { maxQueuedMessages: 1, overflowPolicy: 'dropNewest' } })
    await enqueue(store, 'c1', 1, 50)
    await enqueue(store, 'c2', 1, 5)
    const warns = lines.filter((l) => l.msg === 'queue overflow')
    expect(warns.map((l) => l.clientId)).toEqual(['c1', 'c2'])
    expect(warns[0]).toMatchObject({ level: 40, reason: 'queue-full', dropped: 1 })
    await store.close()
    // close reports what the open windows had counted since
    expect(lines.filter((l) => l.msg === 'queue overflow').map((l) => [l.clientId, l.dropped])).toEqual([['c1', 1], ['c2', 1], ['c1', 48], ['c2', 3]])
  })

  it('drops expired messages at replay instead of delivering them', async () => {
    const drops: DropEvent[] = []
    // t/3 must not expire between its enqueue and the read below, however slow the machine: a wide interval
    const store = await b.open(await b.make(), { limits: { messageExpiryMs: 800 }, onDrop: (e) => drops.push(e) })
    await enqueue(store, 'c1', 1, 2)
    await store.outgoingUpdate({ id: 'c1' }, publish('t/1', 'x', { brokerId: 'b', brokerCounter: 1, messageId: 1 }))
    await new Promise((resolve) => setTimeout(resolve, 850))
    await enqueue(store, 'c1', 3, 3)
    // t/1 was in flight (already delivered once): it is kept; t/2 expired while waiting
    expect(await payloads(store, 'c1')).toEqual(['t/1', 't/3'])
    expect(drops.map((d) => [d.reason, d.packet.topic])).toEqual([['expired', 't/2']])
    expect(store.stats().queuedMessages).toBe(2)
    await store.close()
  })

  it('queues QoS 0 only with queueQos0, and sends such a copy once', async () => {
    const off = await b.open(await b.make())
    await off.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', 'x', { qos: 0, brokerId: 'b', brokerCounter: 1 }))
    expect(off.stats().queuedMessages).toBe(0)
    await off.close()

    const on = await b.open(await b.make(), { limits: { queueQos0: true } })
    await on.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', 'x', { qos: 0, brokerId: 'b', brokerCounter: 1 }))
    const replay = await drain(on.outgoingStream({ id: 'c1' })) as Packet[]
    expect(replay.map((p) => p.qos)).toEqual([0])
    // aedes' replay calls outgoingUpdate, then writes; a QoS 0 copy is never acknowledged, so it goes now
    await on.outgoingUpdate({ id: 'c1' }, { ...replay[0], messageId: 12 })
    expect(on.stats().queuedMessages).toBe(0)
    await on.close()
  })
})

describe.each(backends)('queue limits over all sessions ($name)', (b) => {
  it('bounds what all sessions hold together: a session over the bound loses its own oldest, reported as broker-queue-full', async () => {
    const drops: DropEvent[] = []
    const store = await b.open(await b.make(), { limits: { maxTotalQueuedMessages: 1000, maxTotalQueuedBytes: 0, overflowPolicy: 'dropOldest' }, onDrop: (e) => drops.push(e) })
    const sessions = Array.from({ length: 100 }, (_, i) => ({ clientId: `s${i}`, qos: 1 }))
    for (let i = 1; i <= 20; i++) await store.outgoingEnqueueCombi(sessions, publish(`t/${i}`, 'x', { brokerId: 'b', brokerCounter: i }))
    await store.barrier()
    expect(store.stats().queuedMessages).toBe(1000)
    // Each session gave up its own oldest copies, never another session's: each keeps the newest ten.
    for (const { clientId } of sessions) expect(await payloads(store, clientId)).toEqual(Array.from({ length: 10 }, (_, i) => `t/${i + 11}`))
    await waitFor(() => drops.length === 1000, '1000 drops reported')
    expect(new Set(drops.map(d => d.reason))).toEqual(new Set(['broker-queue-full']))
    expect(drops.filter(d => d.clientId === 's0').map(d => d.packet.topic)).toEqual(Array.from({ length: 10 }, (_, i) => `t/${i + 1}`))
    await store.close()
  })

  it('bounds the bytes all sessions hold together; with dropNewest the new copies are refused', async () => {
    const drops: DropEvent[] = []
    const store = await b.open(await b.make(), { limits: { maxTotalQueuedBytes: 50 * 100, overflowPolicy: 'dropNewest' }, onDrop: (e) => drops.push(e) })
    const sessions = Array.from({ length: 50 }, (_, i) => ({ clientId: `s${i}`, qos: 1 }))
    for (let i = 1; i <= 3; i++) await store.outgoingEnqueueCombi(sessions, publish(`t/${i}`, 'x'.repeat(100), { brokerId: 'b', brokerCounter: i }))
    expect(store.stats()).toMatchObject({ queuedMessages: 50, queuedBytes: 5000 })
    expect(await payloads(store, 's49')).toEqual(['t/1'])
    expect(drops.map(d => d.reason)).toEqual(Array(100).fill('broker-queue-full'))
    await store.close()
  })

  it('never evicts a message in flight to make room, even one whose packet id is not written yet', async () => {
    const drops: DropEvent[] = []
    const store = await b.open(await b.make(), { limits: { maxTotalQueuedMessages: 2, overflowPolicy: 'dropOldest' }, onDrop: (e) => drops.push(e) })
    const client = { id: 'c' }
    await enqueue(store, 'c', 1, 2)
    await drain(store.outgoingStream(client))
    // t/1 goes out: its QoS 1 packet id is held back (not yet written) while its PUBACK is awaited
    await store.outgoingUpdate(client, { ...publish('t/1', 'x', { brokerId: 'b', brokerCounter: 1 }), messageId: 7 })
    await enqueue(store, 'c', 3, 3)
    await waitFor(() => drops.length >= 1, 'the eviction reported')
    expect(drops.map(d => d.packet.topic)).toEqual(['t/2'])
    expect(await payloads(store, 'c')).toEqual(['t/1', 't/3'])
    await store.close()
  })
})

// Cluster mode: the bound is over every queue in Redis, whichever node wrote to it.
describe('queue limits over all sessions of a cluster (Redis)', () => {
  const redis = backends.find(b => b.name === 'Redis') as (typeof backends)[number]

  it('counts the queues every node writes; a node over the bound evicts only its target session\'s own messages', async () => {
    const where = await redis.make()
    const drops: DropEvent[] = []
    const limits = { maxTotalQueuedMessages: 100, overflowPolicy: 'dropOldest' as const }
    const a = await redis.open(where, { limits })
    const b = await redis.open(where, { limits, onDrop: (e) => drops.push(e) })
    try {
      await enqueue(a, 'on-a', 1, 80)
      await enqueue(b, 'on-b', 101, 140)
      // 120 copies for a bound of 100: the 20 over it are the oldest of on-b, the session the enqueues were for
      expect(await payloads(a, 'on-a')).toHaveLength(80)
      expect(await payloads(b, 'on-b')).toEqual(Array.from({ length: 20 }, (_, i) => `t/${i + 121}`))
      expect(drops.map(d => [d.reason, d.clientId])).toEqual(Array(20).fill(['broker-queue-full', 'on-b']))
      // what a session's end removes, and what acknowledgements remove, frees room for every node
      await a.purgeSession('on-a')
      await enqueue(b, 'on-b', 141, 200)
      expect(await payloads(b, 'on-b')).toHaveLength(80)
      expect(drops).toHaveLength(20)
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('takes acknowledged and PUBREL entries off the totals', async () => {
    const store = await redis.open(await redis.make(), { limits: { maxTotalQueuedMessages: 3, maxTotalQueuedBytes: 10, overflowPolicy: 'dropNewest' } })
    try {
      const client = { id: 'c' }
      await store.outgoingEnqueueCombi([{ clientId: 'c', qos: 2 }], publish('t/1', 'xxxxx', { qos: 2, brokerId: 'b', brokerCounter: 1 }))
      await store.outgoingEnqueueCombi([{ clientId: 'c', qos: 2 }], publish('t/2', 'xxxxx', { qos: 2, brokerId: 'b', brokerCounter: 2 }))
      await drain(store.outgoingStream(client))
      await store.outgoingUpdate(client, { ...publish('t/1', 'xxxxx', { qos: 2, brokerId: 'b', brokerCounter: 1 }), messageId: 1 })
      // the PUBREC: the entry stays (its PUBREL), without the payload's bytes
      await store.outgoingUpdate(client, { cmd: 'pubrel', messageId: 1 })
      await store.outgoingEnqueueCombi([{ clientId: 'c', qos: 2 }], publish('t/3', 'xxxxx', { qos: 2, brokerId: 'b', brokerCounter: 3 }))
      expect(await payloads(store, 'c')).toEqual(['undefined', 't/2', 't/3'])
      // three entries: full by count until the PUBCOMP deletes the PUBREL
      await store.outgoingEnqueueCombi([{ clientId: 'c', qos: 2 }], publish('t/4', 'x', { qos: 2, brokerId: 'b', brokerCounter: 4 }))
      await store.outgoingClearMessageId(client, { cmd: 'pubcomp', messageId: 1 })
      await store.outgoingEnqueueCombi([{ clientId: 'c', qos: 2 }], publish('t/5', '', { qos: 2, brokerId: 'b', brokerCounter: 5 }))
      expect(await payloads(store, 'c')).toEqual(['t/2', 't/3', 't/5'])
    } finally {
      await store.close()
    }
  })
})
