import { afterAll, describe, expect, it } from 'vitest'
import { checkStore } from '../../src/store/index.js'
import { open, TempDirs } from '../store/helpers/store.js'

describe('the durable group queue in the store', () => {
  const dirs = new TempDirs()
  afterAll(async () => { await dirs.cleanup() })

  it('keeps each group\'s messages in order across a reopen, with attempts, and deletes them', async () => {
    const dir = await dirs.make()
    let store = await open(dir)
    const q = store.groupQueues
    const a1 = q.add('g/jobs/#', { topic: 'jobs/1', payload: Buffer.from('one'), qos: 1, brokerId: 'b', brokerCounter: 7, publisher: 'pub' }, 100)
    const other = q.add('h/odd!name/+', { topic: 'odd!name/x', payload: Buffer.from([0, 255]), qos: 2 }, 101)
    const a2 = q.add('g/jobs/#', { topic: 'jobs/2', payload: Buffer.from('two'), qos: 1 }, 102)
    // readable before the commit, from the write queue
    expect((await q.payloads([a2.key])).map(p => p?.toString())).toEqual(['two'])
    await Promise.all([a1.done, other.done, a2.done])
    await q.setRetry(a1.key, { topic: 'jobs/1', payload: Buffer.from('one'), qos: 1, brokerId: 'b', brokerCounter: 7, publisher: 'pub' }, 100, { attempts: 3, dueAt: 5000, attemptTimes: [110, 1120, 3130] })
    expect(q.count).toBe(3)
    await store.close()

    const check = await checkStore(dir)
    expect(check).toMatchObject({ ok: true, counts: { groupQueued: 3 } })

    store = await open(dir)
    const loaded = store.groupQueues.takeLoaded()
    expect([...loaded.keys()].sort()).toEqual(['g/jobs/#', 'h/odd!name/+'])
    expect(loaded.get('g/jobs/#')).toEqual([
      { key: a1.key, topic: 'jobs/1', qos: 1, bytes: 3, attempts: 3, enqueuedAt: 100, dueAt: 5000, attemptTimes: [110, 1120, 3130], brokerId: 'b', brokerCounter: 7, publisher: 'pub' },
      { key: a2.key, topic: 'jobs/2', qos: 1, bytes: 3, attempts: 0, enqueuedAt: 102 }
    ])
    expect(loaded.get('h/odd!name/+')?.[0]).toMatchObject({ topic: 'odd!name/x', qos: 2, bytes: 2 })
    expect(store.groupQueues.takeLoaded().size).toBe(0)
    expect(await store.groupQueues.payloads([other.key, 'g!missing!0000000000000001'])).toEqual([Buffer.from([0, 255]), undefined])
    // a new message after the reopen sorts after the old ones
    const a3 = store.groupQueues.add('g/jobs/#', { topic: 'jobs/3', payload: Buffer.from('3'), qos: 1 }, 103)
    expect(a3.key > a2.key).toBe(true)
    await a3.done
    await store.groupQueues.remove([a1.key, a2.key, a3.key, other.key, a1.key])
    expect(store.groupQueues.count).toBe(0)
    await store.close()
    expect((await checkStore(dir)).counts.groupQueued).toBeUndefined()
  })
})
