import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { storeBackends } from './helpers/backends.js'
import { drain, publish } from './helpers/store.js'

const backends = storeBackends()
afterEach(async () => { for (const b of backends) await b.cleanup() })
afterAll(async () => { for (const b of backends) await b.close() })

describe.each(backends)('state survives close and reopen ($name)', (b) => {
  it('keeps subscriptions, and rebuilds the matcher with QoS>0 ones only', async () => {
    const dir = await b.make()
    const store = await b.open(dir)
    await store.addSubscriptions({ id: 'c1' }, [
      { topic: 'a/+', qos: 1, rh: 0, rap: false, nl: false },
      { topic: 'b/#', qos: 0 },
      { topic: 'x/y', qos: 2, subscriptionIdentifier: 7 }
    ])
    await store.close()

    const reopened = await b.open(dir)
    expect(await reopened.subscriptionsByClient({ id: 'c1' })).toEqual([
      { topic: 'a/+', qos: 1, rh: 0, rap: false, nl: false },
      { topic: 'b/#', qos: 0 },
      { topic: 'x/y', qos: 2, subscriptionIdentifier: 7 }
    ])
    expect((await reopened.subscriptionsByTopic('a/1')).map((s) => s.clientId)).toEqual(['c1'])
    expect(await reopened.subscriptionsByTopic('b/1')).toEqual([])
    expect(await reopened.countOffline()).toEqual({ subsCount: 2, clientsCount: 1 })
    await reopened.close()
  })

  it('keeps queue order across restarts and broker ids, with in-flight entries replayed as DUP', async () => {
    const dir = await b.make()
    const first = await b.open(dir)
    const brokerA = { id: 'broker-a', counter: 0 }
    await first.setup(brokerA)
    for (let i = 1; i <= 3; i++) {
      await first.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', `a${i}`, { brokerId: 'broker-a', brokerCounter: i }))
    }
    const client = { id: 'c1' }
    await first.outgoingUpdate(client, publish('t', 'a1', { brokerId: 'broker-a', brokerCounter: 1, messageId: 11 }))
    await first.close()

    // a new random broker id sorts before the old one; order must still be FIFO
    const second = await b.open(dir)
    await second.setup({ id: 'AAA-broker', counter: 0 })
    await second.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', 'b1', { brokerId: 'AAA-broker', brokerCounter: 1 }))
    await second.close()

    const third = await b.open(dir)
    const replay = await drain(third.outgoingStream({ id: 'c1' })) as Array<Record<string, unknown>>
    expect(replay.map((p) => String(p.payload))).toEqual(['a1', 'a2', 'a3', 'b1'])
    expect(replay.map((p) => p.dup)).toEqual([true, false, false, false])
    expect(replay[0].messageId).toBe(11)
    expect(replay[1].messageId).toBeUndefined()
    expect(await third.sessionInfo('c1')).toMatchObject({ queued: 4, inflight: 1 })
    await third.close()
  })

  it('raises broker.counter above the highest counter queued for a fixed broker id', async () => {
    const dir = await b.make()
    const store = await b.open(dir)
    await store.setup({ id: 'fixed', counter: 0 })
    await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', 'x', { brokerId: 'fixed', brokerCounter: 41 }))
    await store.outgoingEnqueueCombi([{ clientId: 'c2', qos: 1 }], publish('t', 'y', { brokerId: 'other', brokerCounter: 900 }))
    await store.close()

    const reopened = await b.open(dir)
    const broker = { id: 'fixed', counter: 0 }
    await reopened.setup(broker)
    // LevelDB raises it to the highest queued; Redis starts each later start of an id 2^32 counters further on
    expect(broker.counter).toBe(b.name === 'LevelDB' ? 41 : 2 ** 32)
    // the next message aedes builds gets ++counter = 42: it must not collide with the queued 41
    await reopened.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish('t', 'z', { brokerId: 'fixed', brokerCounter: ++broker.counter }))
    expect((await reopened.sessionInfo('c1'))?.queued).toBe(2)
    await reopened.close()
  })

  it('keeps retained messages (byte-exact payloads) and wills', async () => {
    const dir = await b.make()
    const payload = Buffer.from([0, 255, 1, 254, 0x80, 0x7f])
    const store = await b.open(dir)
    await store.setup({ id: 'b1', counter: 0 })
    await store.storeRetained({ cmd: 'publish', topic: 'r/1', payload, qos: 1, retain: true })
    await store.storeRetained({ cmd: 'publish', topic: 'r/2', payload: Buffer.from('gone'), qos: 0, retain: true })
    await store.storeRetained({ cmd: 'publish', topic: 'r/2', payload: Buffer.alloc(0), qos: 0, retain: true })
    await store.putWill({ id: 'c1' }, { topic: 'will/c1', payload: Buffer.from('bye'), qos: 1, retain: false })
    await store.close()

    const reopened = await b.open(dir)
    const retained = await drain(reopened.createRetainedStreamCombi(['r/#'])) as Array<Record<string, unknown>>
    expect(retained).toHaveLength(1)
    expect(Buffer.compare(retained[0].payload as Buffer, payload)).toBe(0)
    expect(await reopened.getWill({ id: 'c1' })).toEqual({ topic: 'will/c1', payload: Buffer.from('bye'), qos: 1, retain: false, brokerId: 'b1', clientId: 'c1' })
    expect(await drain(reopened.streamWill({ b1: Date.now() }))).toEqual([])
    expect(await drain(reopened.streamWill({}))).toHaveLength(1)
    await reopened.close()
  })

  it('keeps inbound QoS 2 records of persistent clients only', async () => {
    const dir = await b.make()
    const store = await b.open(dir)
    await store.incomingStorePacket({ id: 'persistent', clean: false }, publish('q2', 'p', { qos: 2, messageId: 7 }))
    await store.incomingWrite({ id: 'persistent', clean: false }, 7)
    await store.incomingStorePacket({ id: 'clean', clean: true }, publish('q2', 'c', { qos: 2, messageId: 7 }))
    expect(await store.incomingGetPacket({ id: 'clean', clean: true }, { messageId: 7 })).toMatchObject({ topic: 'q2' })
    await store.barrier()
    await store.close()

    const reopened = await b.open(dir)
    expect(await reopened.incomingGetPacket({ id: 'persistent' }, { messageId: 7 })).toMatchObject({ topic: 'q2', messageId: 7, qos: 2 })
    await expect(reopened.incomingGetPacket({ id: 'clean' }, { messageId: 7 })).rejects.toThrow('no such packet')
    await reopened.close()
  })

  it('writes a persistent QoS 2 record with the enqueue that carries it (or when told), and forgets one whose publish failed', async () => {
    const dir = await b.make()
    const store = await b.open(dir)
    const client = { id: 'p', clean: false }
    await store.incomingStorePacket(client, publish('q2', 'kept', { qos: 2, messageId: 1 }))
    await store.incomingStorePacket(client, publish('q2', 'failed', { qos: 2, messageId: 2 }))
    await store.incomingStorePacket(client, publish('q2', 'pending', { qos: 2, messageId: 3 }))
    await store.incomingStorePacket(client, publish('q2', 'carried', { qos: 2, messageId: 4 }))
    await store.incomingStorePacket(client, publish('q2', 'failed later', { qos: 2, messageId: 5 }))
    // All are duplicates from the moment they are recorded.
    for (const messageId of [1, 2, 3, 4, 5]) await expect(store.incomingGetPacket(client, { messageId })).resolves.toMatchObject({ messageId })
    await store.incomingWrite(client, 1)
    store.incomingForget(client, 2)
    // no subscriber: the record alone is written, and durable once the enqueue resolves
    await store.outgoingEnqueueCombi([], publish('q2', 'carried', { qos: 2 }), { client, messageId: 4 })
    await store.outgoingEnqueueCombi([], publish('q2', 'failed later', { qos: 2 }), { client, messageId: 5 })
    // its publish failed after the enqueue (a group queue, the cluster stream): the resend must be new
    store.incomingForget(client, 5)
    for (const messageId of [2, 5]) await expect(store.incomingGetPacket(client, { messageId })).rejects.toThrow('no such packet')
    await store.barrier()
    await store.close()

    // Only the written ones are on disk: a crash before the write leaves the resend new, so it is stored again.
    const reopened = await b.open(dir)
    await expect(reopened.incomingGetPacket(client, { messageId: 1 })).resolves.toMatchObject({ topic: 'q2', payload: Buffer.from('kept') })
    await expect(reopened.incomingGetPacket(client, { messageId: 4 })).resolves.toMatchObject({ topic: 'q2', payload: Buffer.from('carried') })
    for (const messageId of [2, 3, 5]) await expect(reopened.incomingGetPacket(client, { messageId })).rejects.toThrow('no such packet')
    await reopened.close()
  })

  it('close flushes staged writes and is safe to call twice', async () => {
    const dir = await b.make()
    const store = await b.open(dir)
    await store.storeRetained({ cmd: 'publish', topic: 'late', payload: Buffer.from('v'), qos: 0, retain: true })
    await Promise.all([store.close(), store.close()])
    await store.destroy()
    await expect(store.addSubscriptions({ id: 'x' }, [{ topic: 't', qos: 1 }])).rejects.toMatchObject({ code: 'ERR_STORE_WRITE' })
    const reopened = await b.open(dir)
    expect(reopened.stats().retained).toBe(1)
    await reopened.close()
  })
})
