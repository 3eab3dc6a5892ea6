import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { storeBackends } from './helpers/backends.js'

const backends = storeBackends()
afterEach(async () => { for (const b of backends) await b.cleanup() })
afterAll(async () => { for (const b of backends) await b.close() })

describe.each(backends)('subscriptionsByTopic ($name)', (b) => {
  it('never matches wildcard-first filters against $ topics [MQTT-4.7.2-1]', async () => {
    const store = await b.open(await b.make())
    await store.addSubscriptions({ id: 'hash' }, [{ topic: '#', qos: 1 }])
    await store.addSubscriptions({ id: 'plus' }, [{ topic: '+/dlq/#', qos: 1 }])
    await store.addSubscriptions({ id: 'dlq' }, [{ topic: '$DLQ/#', qos: 1 }])
    await store.addSubscriptions({ id: 'sys' }, [{ topic: '$SYS/+/x', qos: 2 }])
    expect((await store.subscriptionsByTopic('$DLQ/dlq/a')).map((s) => s.clientId)).toEqual(['dlq'])
    expect((await store.subscriptionsByTopic('$SYS/b/x')).map((s) => s.clientId)).toEqual(['sys'])
    expect((await store.subscriptionsByTopic('a/dlq/b')).map((s) => s.clientId).sort()).toEqual(['hash', 'plus'])
    await store.close()
  })

  it('never returns $share filters, but keeps them for session restore', async () => {
    const store = await b.open(await b.make())
    await store.addSubscriptions({ id: 'member' }, [{ topic: '$share/g/jobs/#', qos: 1 }])
    expect(await store.subscriptionsByTopic('$share/g/jobs/#')).toEqual([])
    expect(await store.subscriptionsByTopic('jobs/1')).toEqual([])
    expect(await store.subscriptionsByClient({ id: 'member' })).toEqual([{ topic: '$share/g/jobs/#', qos: 1 }])
    await store.close()
  })

  it('matches + against an empty level, like live delivery does', async () => {
    const store = await b.open(await b.make())
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'a/+', qos: 1 }, { topic: '+/b', qos: 1 }])
    expect((await store.subscriptionsByTopic('a/')).map((s) => s.topic)).toEqual(['a/+'])
    expect((await store.subscriptionsByTopic('/b')).map((s) => s.topic)).toEqual(['+/b'])
    await store.close()
  })

  it('answers a topic asked again with what it matched, and with the change once a subscription changed', async () => {
    const store = await b.open(await b.make())
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'k/+', qos: 1 }])
    const first = await store.subscriptionsByTopic('k/1')
    expect(first.map((s) => s.clientId)).toEqual(['c1'])
    // every QoS 1/2 publish asks: a topic asked again, with nothing changed, is answered without a new walk
    if (b.name === 'LevelDB') expect(await store.subscriptionsByTopic('k/1')).toBe(first)
    await store.addSubscriptions({ id: 'c2' }, [{ topic: 'k/#', qos: 2 }])
    expect((await store.subscriptionsByTopic('k/1')).map((s) => s.clientId).sort()).toEqual(['c1', 'c2'])
    await store.removeSubscriptions({ id: 'c1' }, ['k/+'])
    expect((await store.subscriptionsByTopic('k/1')).map((s) => s.clientId)).toEqual(['c2'])
    await store.addSubscriptions({ id: 'c2' }, [{ topic: 'k/#', qos: 0 }])
    expect(await store.subscriptionsByTopic('k/1')).toEqual([])
    await store.addSubscriptions({ id: 'c3' }, [{ topic: 'k/1', qos: 1 }])
    await store.cleanSubscriptions({ id: 'c3' })
    expect(await store.subscriptionsByTopic('k/1')).toEqual([])
    await store.close()
  })

  it('keeps QoS 0 records for restore without matching them', async () => {
    const dir = await b.make()
    const store = await b.open(dir)
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'q0/#', qos: 0 }, { topic: 'q1/#', qos: 1 }])
    expect(await store.subscriptionsByTopic('q0/a')).toEqual([])
    // downgrading to QoS 0 takes the filter out of the matcher
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'q1/#', qos: 0 }])
    expect(await store.subscriptionsByTopic('q1/a')).toEqual([])
    expect(await store.countOffline()).toEqual({ subsCount: 0, clientsCount: 1 })
    await store.close()
  })
})

describe.each(backends)('subscriptionsAtQos0 (queueQos0) ($name)', (b) => {
  const ids = (subs: ReadonlyArray<{ clientId: string, topic: string }>): string[] => subs.map((s) => `${s.clientId} ${s.topic}`).sort()

  it('matches every filter for a QoS 0 publish, and for QoS 1/2 only the QoS 0 filters of clients no QoS 1/2 filter matches', async () => {
    const store = await b.open(await b.make(), { limits: { queueQos0: true } })
    await store.addSubscriptions({ id: 'zero' }, [{ topic: 'a/#', qos: 0 }])
    await store.addSubscriptions({ id: 'both' }, [{ topic: 'a/+', qos: 0 }, { topic: 'a/b', qos: 1 }])
    await store.addSubscriptions({ id: 'one' }, [{ topic: '+/b', qos: 2 }])
    expect(ids(store.subscriptionsAtQos0('a/b', 0))).toEqual(['both a/+', 'both a/b', 'one +/b', 'zero a/#'])
    expect(ids(store.subscriptionsAtQos0('a/b', 1))).toEqual(['zero a/#'])
    expect(ids(store.subscriptionsAtQos0('a/c', 2))).toEqual(['both a/+', 'zero a/#'])
    // what aedes reads is unchanged: QoS 1/2 filters only
    expect(ids(await store.subscriptionsByTopic('a/b'))).toEqual(['both a/b', 'one +/b'])
    await store.close()
  })

  it('follows QoS changes, removals and restarts; never matches $share filters or wildcard-first filters for $ topics', async () => {
    const dir = await b.make()
    const store = await b.open(dir, { limits: { queueQos0: true } })
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'x/#', qos: 0 }, { topic: '#', qos: 0 }, { topic: '$DLQ/#', qos: 0 }, { topic: '$share/g/x/#', qos: 0 }])
    expect(ids(store.subscriptionsAtQos0('x/1', 1))).toEqual(['c1 #', 'c1 x/#'])
    expect(ids(store.subscriptionsAtQos0('$DLQ/r/x', 0))).toEqual(['c1 $DLQ/#'])
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'x/#', qos: 1 }])
    expect(store.subscriptionsAtQos0('x/1', 1)).toEqual([])
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'x/#', qos: 0 }])
    await store.removeSubscriptions({ id: 'c1' }, ['#'])
    await store.close()
    const reopened = await b.open(dir, { limits: { queueQos0: true } })
    expect(ids(reopened.subscriptionsAtQos0('x/1', 2))).toEqual(['c1 x/#'])
    await reopened.cleanSubscriptions({ id: 'c1' })
    expect(reopened.subscriptionsAtQos0('x/1', 0)).toEqual([])
    await reopened.close()
  })

  it('matches nothing without queueQos0', async () => {
    const store = await b.open(await b.make())
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'x/#', qos: 0 }, { topic: 'y/#', qos: 1 }])
    expect(store.subscriptionsAtQos0('x/1', 0)).toEqual([])
    expect(store.subscriptionsAtQos0('y/1', 0)).toEqual([])
    await store.close()
  })
})

describe.each(backends)('addSubscriptions with denied entries ($name)', (b) => {
  it('does not store a subscription the broker denied (qos 128)', async () => {
    const dir = await b.make()
    const store = await b.open(dir)
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'ok', qos: 1 }, { topic: 'secret/#', qos: 128 }])
    expect(await store.subscriptionsByClient({ id: 'c1' })).toEqual([{ topic: 'ok', qos: 1 }])
    expect(await store.subscriptionsByTopic('secret/x')).toEqual([])
    await store.close()
  })

  it('removes the record an earlier call for the same SUBSCRIBE stored before the filter was denied', async () => {
    const dir = await b.make()
    const store = await b.open(dir)
    // aedes stores the whole packet once per granted filter; with a synchronous authorizeSubscribe the first
    // call still sees the second filter unmarked
    const subs = [{ topic: 'ok', qos: 1 }, { topic: 'secret/#', qos: 1 }]
    await store.addSubscriptions({ id: 'c1' }, subs)
    subs[1].qos = 128
    await store.addSubscriptions({ id: 'c1' }, subs)
    await store.close()
    const reopened = await b.open(dir)
    expect(await reopened.subscriptionsByClient({ id: 'c1' })).toEqual([{ topic: 'ok', qos: 1 }])
    expect(await reopened.subscriptionsByTopic('secret/x')).toEqual([])
    await reopened.close()
  })
})

describe.each(backends)('session administration ($name)', (b) => {
  it('reports, lists and purges sessions', async () => {
    const store = await b.open(await b.make())
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 't/#', qos: 1 }, { topic: 'u', qos: 0 }])
    await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], { cmd: 'publish', topic: 't/1', payload: Buffer.from('12345'), qos: 1, retain: false, brokerId: 'b', brokerCounter: 1 })
    await store.incomingStorePacket({ id: 'p1' }, { cmd: 'publish', topic: 'x', payload: Buffer.from('x'), qos: 2, messageId: 3 })
    await store.incomingWrite({ id: 'p1' }, 3)
    expect(await store.listSessions()).toEqual(['c1', 'p1'])
    const info = await store.sessionInfo('c1')
    expect(info).toMatchObject({ clientId: 'c1', subscriptions: [{ topic: 't/#', qos: 1 }, { topic: 'u', qos: 0 }], queued: 1, inflight: 0, queuedBytes: 5 })
    expect(typeof info?.oldestQueuedAt).toBe('number')
    // stats() is synchronous: the Redis store's cluster-wide counts are as of its last refresh, which barrier() makes
    await store.barrier()
    expect(store.stats()).toMatchObject({ sessions: 2, queuedMessages: 1, queuedBytes: 5, subscriptions: 2, retained: 0 })
    expect(await store.purgeSession('c1')).toBe(true)
    expect(await store.purgeSession('c1')).toBe(false)
    expect(await store.sessionInfo('c1')).toBeUndefined()
    expect(await store.subscriptionsByTopic('t/1')).toEqual([])
    expect(await store.listSessions()).toEqual(['p1'])
    await store.close()
  })

  it('claims a session a CONNECT resumes, and expires only a session still over when it is removed', async () => {
    const store = await b.open(await b.make())
    const session = async (id: string, disconnectedAt: number, expirySeconds?: number): Promise<void> => {
      store.sessionConnected(id, true, disconnectedAt - 10, expirySeconds)
      store.sessionConnected(id, false, disconnectedAt)
      await store.addSubscriptions({ id }, [{ topic: `${id}/#`, qos: 1 }])
    }
    // MQTT 3.1.1 by the broker's 1 s; MQTT 5 by its own 2 s interval
    await session('old', 1000)
    await session('v5', 1000, 2)
    await store.barrier()
    expect((await store.sessionInfo('v5'))?.disconnectedAt).toBe(1000)
    expect(await store.claimSession('nobody', 1000, undefined, 5000)).toBe('none')
    expect(await store.claimSession('old', 1000, undefined, 2001)).toBe('over')
    expect(await store.claimSession('v5', 60_000, 2, 2500)).toBe('claimed')
    // claimed: connected from now, so not over however late, and not removed by an expiry that read it over before
    expect((await store.sessionInfo('v5'))?.disconnectedAt).toBeUndefined()
    expect(await store.expireSession('v5', 60_000, 10_000)).toBe(false)
    expect(await store.subscriptionsByClient({ id: 'v5' })).toEqual([{ topic: 'v5/#', qos: 1 }])
    // not over yet at that time: kept; over: removed with its subscriptions, once
    expect(await store.expireSession('old', 1000, 1500)).toBe(false)
    expect(await store.expireSession('old', 1000, 2001)).toBe(true)
    expect(await store.expireSession('old', 1000, 2001)).toBe(false)
    expect(await store.sessionInfo('old')).toBeUndefined()
    expect(await store.subscriptionsByTopic('old/1')).toEqual([])
    expect((await store.subscriptionsByTopic('v5/1')).map(s => s.clientId)).toEqual(['v5'])
    await store.close()
  })
})
