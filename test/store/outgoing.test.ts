import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { storeBackends } from './helpers/backends.js'
import { drain, publish } from './helpers/store.js'

const backends = storeBackends()
afterEach(async () => { for (const b of backends) await b.cleanup() })
afterAll(async () => { for (const b of backends) await b.close() })

type Packet = Record<string, unknown>

describe.each(backends)('outgoing queue ($name)', (b) => {
  it('writes one entry per client for overlapping filters, at min(publish qos, best granted qos)', async () => {
    const store = await b.open(await b.make())
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'a/#', qos: 1 }, { topic: 'a/b', qos: 2 }, { topic: '+/b', qos: 1 }])
    await store.addSubscriptions({ id: 'c2' }, [{ topic: 'a/#', qos: 1 }])
    const subs = await store.subscriptionsByTopic('a/b')
    expect(subs.filter((s) => s.clientId === 'c1')).toHaveLength(3)
    await store.outgoingEnqueueCombi(subs, publish('a/b', 'x', { qos: 2, brokerId: 'b', brokerCounter: 1 }))
    const c1 = await drain(store.outgoingStream({ id: 'c1' })) as Packet[]
    const c2 = await drain(store.outgoingStream({ id: 'c2' })) as Packet[]
    expect(c1.map((p) => p.qos)).toEqual([2])
    expect(c2.map((p) => p.qos)).toEqual([1])
    await store.close()
  })

  it('clears the RETAIN flag of queued copies unless the subscription has retain-as-published', async () => {
    const store = await b.open(await b.make())
    const retained = publish('a', 'x', { retain: true, brokerId: 'b', brokerCounter: 1 })
    await store.outgoingEnqueueCombi([{ clientId: 'plain', qos: 1 }, { clientId: 'rap', qos: 1, rap: true }], retained)
    expect(((await drain(store.outgoingStream({ id: 'plain' }))) as Packet[])[0].retain).toBe(false)
    expect(((await drain(store.outgoingStream({ id: 'rap' }))) as Packet[])[0].retain).toBe(true)
    await store.close()
  })

  it('follows a QoS 2 message through messageId, pubrel and pubcomp', async () => {
    const store = await b.open(await b.make())
    const conn = { id: 'c1', clean: false }
    await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 2 }], publish('t', 'x', { qos: 2, brokerId: 'b', brokerCounter: 5 }))
    await expect(store.outgoingUpdate(conn, publish('t', 'x', { qos: 2, brokerId: 'b', brokerCounter: 6, messageId: 1 }))).rejects.toThrow('no such packet')
    await store.outgoingUpdate(conn, publish('t', 'x', { qos: 2, brokerId: 'b', brokerCounter: 5, messageId: 9 }))
    await store.outgoingUpdate(conn, { cmd: 'pubrel', messageId: 9 })
    // a reconnect replays the pubrel, not the publish
    expect(await drain(store.outgoingStream({ id: 'c1' }))).toEqual([{ cmd: 'pubrel', messageId: 9 }])
    expect(await store.outgoingClearMessageId(conn, { messageId: 9 })).toEqual({ cmd: 'pubrel', messageId: 9 })
    expect(await store.sessionInfo('c1')).toBeUndefined()
    await store.close()
  })

  it('lets the pubrel of a QoS 2 copy the queue never held go out (a retained message sent on SUBSCRIBE), recording nothing', async () => {
    const store = await b.open(await b.make())
    const conn = { id: 'c1', clean: false }
    await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 2 }], publish('t', 'x', { qos: 2, brokerId: 'b', brokerCounter: 5 }))
    await store.outgoingUpdate(conn, { cmd: 'pubrel', messageId: 77 })
    await store.outgoingUpdate({ id: 'no-queue', clean: false }, { cmd: 'pubrel', messageId: 1 })
    expect(await drain(store.outgoingStream({ id: 'c1' }))).toEqual([expect.objectContaining({ cmd: 'publish', qos: 2 })])
    expect(await store.sessionInfo('no-queue')).toBeUndefined()
    await store.close()
  })

  it('answers an unknown messageId from memory and returns the original packet for a known one', async () => {
    const store = await b.open(await b.make())
    const conn = { id: 'c1' }
    const batches = store.stats().writeBatches
    expect(await store.outgoingClearMessageId(conn, { messageId: 1 })).toBeUndefined()
    expect(await store.outgoingClearMessageId({ id: 'clean', clean: true }, { messageId: 2 })).toBeUndefined()
    expect(await store.outgoingClearMessageId(conn, 42)).toBeUndefined()
    // only LevelDB's index is the whole truth; another node may hold the entry in Redis, which is asked
    if (b.name === 'LevelDB') expect(store.stats().writeBatches).toBe(batches)

    await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', 'payload', { brokerId: 'b', brokerCounter: 1 }))
    await store.outgoingUpdate(conn, publish('t', 'payload', { brokerId: 'b', brokerCounter: 1, messageId: 3 }))
    const acked = await store.outgoingClearMessageId(conn, { messageId: 3 })
    expect(acked).toMatchObject({ topic: 't', messageId: 3, brokerCounter: 1 })
    expect(String(acked?.payload)).toBe('payload')
    expect(store.stats().queuedMessages).toBe(0)
    await store.close()
  })

  it('reads the acknowledged packet from disk after a restart', async () => {
    const dir = await b.make()
    const first = await b.open(dir)
    await first.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', 'on disk', { brokerId: 'b', brokerCounter: 1 }))
    await first.outgoingUpdate({ id: 'c1' }, publish('t', 'on disk', { brokerId: 'b', brokerCounter: 1, messageId: 3 }))
    await first.close()
    const second = await b.open(dir)
    const acked = await second.outgoingClearMessageId({ id: 'c1' }, { messageId: 3 })
    expect(String(acked?.payload)).toBe('on disk')
    await second.close()
  })

  it('marks DUP only on entries sent on an earlier connection', async () => {
    const store = await b.open(await b.make())
    for (let i = 1; i <= 2; i++) {
      await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', `m${i}`, { brokerId: 'b', brokerCounter: i }))
    }
    const firstConnection = { id: 'c1', clean: false }
    await store.outgoingUpdate(firstConnection, publish('t', 'm1', { brokerId: 'b', brokerCounter: 1, messageId: 100 }))
    const sameConnection = await drain(store.outgoingStream(firstConnection)) as Packet[]
    expect(sameConnection.map((p) => p.dup)).toEqual([false, false])
    const secondConnection = { id: 'c1', clean: false }
    const replay = await drain(store.outgoingStream(secondConnection)) as Packet[]
    expect(replay.map((p) => [p.dup, p.messageId])).toEqual([[true, 100], [false, undefined]])
    await store.close()
  })

  it('does not let a client id reach into another one that extends it', async () => {
    const dir = await b.make()
    const store = await b.open(dir)
    const ids = ['abc', 'abcde', 'abc!x', 'abc%21x', 'ab"c', '']
    for (const [i, id] of ids.entries()) {
      await store.addSubscriptions({ id }, [{ topic: `t/${i}`, qos: 1 }])
      await store.outgoingEnqueueCombi([{ clientId: id, qos: 1 }], publish(`t/${i}`, id, { brokerId: 'b', brokerCounter: i + 1 }))
      await store.incomingStorePacket({ id }, publish('in', id, { qos: 2, messageId: 1 }))
      await store.incomingWrite({ id }, 1)
    }
    await store.cleanIncoming({ id: 'abc' })
    await store.cleanSubscriptions({ id: 'abc' })
    await store.close()

    const reopened = await b.open(dir)
    expect(await reopened.listSessions()).toEqual(['', 'ab"c', 'abc!x', 'abc%21x', 'abcde'])
    for (const [i, id] of ids.entries()) {
      if (id === 'abc') continue
      expect(await reopened.subscriptionsByClient({ id })).toEqual([{ topic: `t/${i}`, qos: 1 }])
      expect(((await drain(reopened.outgoingStream({ id }))) as Packet[]).map((p) => String(p.payload))).toEqual([id])
      expect(await reopened.incomingGetPacket({ id }, { messageId: 1 })).toMatchObject({ topic: 'in' })
    }
    await reopened.close()
  })

  it('round-trips non-ASCII topics, client ids and payloads', async () => {
    const dir = await b.make()
    const store = await b.open(dir)
    const id = 'клиент-😀'
    await store.addSubscriptions({ id }, [{ topic: 'дом/+/温度', qos: 1 }])
    const subs = await store.subscriptionsByTopic('дом/кухня/温度')
    expect(subs.map((s) => s.clientId)).toEqual([id])
    await store.outgoingEnqueueCombi(subs, publish('дом/кухня/温度', 'ünïcødé ✓', { brokerId: 'b', brokerCounter: 1 }))
    await store.storeRetained({ cmd: 'publish', topic: 'дом/кухня/温度', payload: Buffer.from('21°'), qos: 0, retain: true })
    await store.close()

    const reopened = await b.open(dir)
    const queued = await drain(reopened.outgoingStream({ id })) as Packet[]
    expect(queued.map((p) => [p.topic, String(p.payload)])).toEqual([['дом/кухня/温度', 'ünïcødé ✓']])
    const retained = await drain(reopened.createRetainedStreamCombi(['дом/#'])) as Packet[]
    expect(retained.map((p) => String(p.payload))).toEqual(['21°'])
    await reopened.close()
  })

  it('drops the old queue when a client comes back with a clean session', async () => {
    const store = await b.open(await b.make())
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 't', qos: 1 }])
    await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', 'old', { brokerId: 'b', brokerCounter: 1 }))
    await store.cleanSubscriptions({ id: 'c1', clean: true })
    expect(await drain(store.outgoingStream({ id: 'c1', clean: true }))).toEqual([])
    expect(store.stats()).toMatchObject({ sessions: 0, queuedMessages: 0, subscriptions: 0 })
    await store.close()
  })

  it('ignores a second enqueue of the same broker message for the same client', async () => {
    const store = await b.open(await b.make())
    const packet = publish('t', 'x', { brokerId: 'b', brokerCounter: 1 })
    await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], packet)
    await store.outgoingEnqueue({ clientId: 'c1' }, packet)
    expect(store.stats().queuedMessages).toBe(1)
    await store.close()
  })
})

describe.each(backends)('inbound QoS 2 records ($name)', (b) => {
  it('keeps clean-session records in memory only', async () => {
    const store = await b.open(await b.make())
    const clean = { id: 'c', clean: true }
    const batches = store.stats().writeBatches
    await store.incomingStorePacket(clean, publish('t', 'x', { qos: 2, messageId: 5 }))
    await expect(store.incomingGetPacket(clean, { messageId: 5 })).resolves.toMatchObject({ messageId: 5 })
    await store.incomingDelPacket(clean, { messageId: 5 })
    await expect(store.incomingDelPacket(clean, { messageId: 5 })).rejects.toThrow('no such packet')
    await store.incomingStorePacket(clean, publish('t', 'x', { qos: 2, messageId: 6 }))
    await store.cleanIncoming(clean)
    await store.barrier()
    // Redis deletes whatever an earlier persistent session of the id left there
    if (b.name === 'LevelDB') expect(store.stats().writeBatches).toBe(batches)
    await expect(store.incomingGetPacket(clean, { messageId: 6 })).rejects.toThrow('no such packet')
    await store.close()
  })

  it('replays a long queue whole and in order, the acknowledged entries left out and the ones still being written included', async () => {
    const store = await b.open(await b.make())
    const conn = { id: 'c1', clean: false }
    // 2 KB each: far more than one read of the disk returns at once
    const payload = (i: number): Buffer => Buffer.alloc(2048, i % 251)
    for (let i = 0; i < 3000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, async (_, j) => await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', payload(i + j), { brokerId: 'b', brokerCounter: i + j }))))
    }
    // every tenth is sent and acknowledged: its entry is gone from disk and memory
    for (let i = 0; i < 3000; i += 10) {
      await store.outgoingUpdate(conn, publish('t', payload(i), { brokerId: 'b', brokerCounter: i, messageId: 1 }))
      await store.outgoingClearMessageId(conn, { messageId: 1 })
    }
    // enqueued, not awaited: its batch is not written yet when the replay starts
    const last = store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', payload(3000), { brokerId: 'b', brokerCounter: 3000 }))
    const replayed = await drain(store.outgoingStream({ id: 'c1' })) as Packet[]
    await last
    const expected = Array.from({ length: 3001 }, (_, i) => i).filter((i) => i % 10 !== 0 || i === 3000)
    expect(replayed.map((p) => p.brokerCounter)).toEqual(expected)
    expect(replayed.every((p) => (p.payload as Buffer).equals(payload(p.brokerCounter as number)))).toBe(true)
    await store.close()
  })

  it('hands a replay its queue in chunks of 64, 256, then at most 1,024 messages and, of large ones, about 1 MiB', async () => {
    const store = await b.open(await b.make())
    const client = { id: 'c1', clean: false }
    let counter = 0
    const enqueue = async (n: number, bytes: number): Promise<void> => {
      await Promise.all(Array.from({ length: n }, async () => await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', Buffer.alloc(bytes), { brokerId: 'b', brokerCounter: counter++ }))))
    }
    await enqueue(2500, 10)
    await enqueue(10, 300 * 1024)
    const sizes: number[] = []
    for await (const chunk of store.sessionQueues.batches(client, false)) sizes.push(chunk.length)
    // a small first chunk: the reconnected client's first messages leave before much of the queue is read
    expect(sizes).toEqual([64, 256, 1024, 1024, 132 + 3, 3, 3, 1])
    await store.close()
  })

  it('returns a copy, so a caller cannot change the stored record', async () => {
    const store = await b.open(await b.make())
    await store.incomingStorePacket({ id: 'p' }, publish('t', 'x', { qos: 2, messageId: 5 }))
    const first = await store.incomingGetPacket({ id: 'p' }, { messageId: 5 })
    delete first.topic
    expect(await store.incomingGetPacket({ id: 'p' }, { messageId: 5 })).toMatchObject({ topic: 't' })
    await store.close()
  })
})
