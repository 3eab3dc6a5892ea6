import { afterAll, beforeAll, afterEach, describe, expect, it } from 'vitest'
import type { CulexStore, DropEvent } from '../../src/store/index.js'
import { RetainedIndex } from '../../src/store/retained-index.js'
import { topicMatches } from '../../src/protocol/topic.js'
import { Rng } from '../fuzz/mutator.js'
import { storeBackends } from './helpers/backends.js'
import { drain, open, storeParts, TempDirs, unlimited } from './helpers/store.js'
import type { ValueReader } from '../../src/store/reader.js'
import { RetainedStore } from '../../src/store/retained-store.js'
import { waitFor } from '../helpers/clients.js'

const dirs = new TempDirs()
const backends = storeBackends()
afterAll(async () => { for (const b of backends) await b.close() })

type Packet = Record<string, unknown>

function retained (topic: string, payload = topic): Packet {
  return { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true }
}

async function topics (store: CulexStore, patterns: string[]): Promise<string[]> {
  return ((await drain(store.createRetainedStreamCombi(patterns))) as Packet[]).map((p) => String(p.topic)).sort()
}

describe.each(backends)('retained messages ($name)', (b) => {
  afterEach(async () => { await b.cleanup() })

  it('matches exact, + and # filters, and never wildcard-first filters against $ topics', async () => {
    const store = await b.open(await b.make())
    for (const topic of ['a', 'a/b', 'a/b/c', 'a//c', 'x/b', '$SYS/info', '$DLQ/a/b', '/lead']) await store.storeRetained(retained(topic))
    expect(await topics(store, ['a/b'])).toEqual(['a/b'])
    expect(await topics(store, ['a/+'])).toEqual(['a/b'])
    expect(await topics(store, ['a/+/c'])).toEqual(['a//c', 'a/b/c'])
    expect(await topics(store, ['a/#'])).toEqual(['a', 'a//c', 'a/b', 'a/b/c'])
    expect(await topics(store, ['+/b'])).toEqual(['a/b', 'x/b'])
    expect(await topics(store, ['#'])).toEqual(['/lead', 'a', 'a//c', 'a/b', 'a/b/c', 'x/b'])
    expect(await topics(store, ['+/#'])).toEqual(['/lead', 'a', 'a//c', 'a/b', 'a/b/c', 'x/b'])
    expect(await topics(store, ['+'])).toEqual(['a'])
    expect(await topics(store, ['$SYS/#'])).toEqual(['$SYS/info'])
    expect(await topics(store, ['$DLQ/+/b'])).toEqual(['$DLQ/a/b'])
    // overlapping patterns in one SUBSCRIBE yield each message once
    expect(await topics(store, ['a/#', 'a/b', '+/b'])).toEqual(['a', 'a//c', 'a/b', 'a/b/c', 'x/b'])
    await store.close()
  })

  it('replaces on store, deletes on empty payload, and sees staged writes at once', async () => {
    const store = await b.open(await b.make())
    await store.storeRetained(retained('t', 'one'))
    await store.storeRetained(retained('t', 'two'))
    expect(((await drain(store.createRetainedStream('t'))) as Packet[]).map((p) => String(p.payload))).toEqual(['two'])
    await store.storeRetained({ cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 0, retain: true })
    expect(await topics(store, ['#'])).toEqual([])
    expect(store.stats().retained).toBe(0)
    await store.close()
  })

  it('refuses new topics beyond maxRetainedMessages but lets existing ones change', async () => {
    const drops: DropEvent[] = []
    const store = await b.open(await b.make(), { limits: { maxRetainedMessages: 2 }, onDrop: (e) => drops.push(e) })
    await store.storeRetained(retained('a'))
    await store.storeRetained(retained('b'))
    await store.storeRetained(retained('c'))
    await store.storeRetained(retained('a', 'new a'))
    expect(await topics(store, ['#'])).toEqual(['a', 'b'])
    expect(drops.map((d) => [d.reason, d.packet.topic])).toEqual([['retained-limit', 'c']])
    await store.storeRetained({ cmd: 'publish', topic: 'b', payload: Buffer.alloc(0), qos: 0, retain: true })
    await store.storeRetained(retained('c'))
    expect(await topics(store, ['#'])).toEqual(['a', 'c'])
    await store.close()
  })

  it('expires a message past its MQTT 5 Message Expiry Interval, across a reopen: counted down before, then never read again but removed and reported once', async () => {
    const drops: DropEvent[] = []
    const where = await b.make()
    let store = await b.open(where, { onDrop: (e) => drops.push(e) })
    const storedAt = Date.now()
    await store.storeRetained({ ...retained('exp/short'), properties: { messageExpiryInterval: 1 } })
    await store.storeRetained({ ...retained('exp/long'), properties: { messageExpiryInterval: 60 } })
    const before = (await drain(store.createRetainedStream('exp/#'))) as Packet[]
    expect(before.map((p) => [p.topic, (p.properties as { messageExpiryInterval: number }).messageExpiryInterval]).sort()).toEqual([['exp/long', 60], ['exp/short', 1]])
    await store.close()
    // the interval counts from the arrival, which the store keeps with the message
    store = await b.open(where, { onDrop: (e) => drops.push(e) })
    await waitFor(() => Date.now() - storedAt > 1100, 'the short interval to pass')
    expect(await topics(store, ['exp/#'])).toEqual(['exp/long'])
    await store.barrier()
    expect(await topics(store, ['exp/+', 'exp/short'])).toEqual(['exp/long'])
    await store.barrier()
    expect(drops.map((d) => [d.reason, d.packet.topic])).toEqual([['expired', 'exp/short']])
    expect(store.stats().retained).toBe(1)
    await store.close()
  })
})

describe('retained index', () => {
  it('prunes empty branches when topics are removed', () => {
    const index = new RetainedIndex()
    index.add('a/b/c')
    index.add('a/b')
    expect(index.remove('a/b/c')).toBe(true)
    expect(index.remove('a/b/c')).toBe(false)
    expect([...index.match('a/#')]).toEqual(['a/b'])
    expect(index.remove('a/b')).toBe(true)
    expect([...index.match('#')]).toEqual([])
    expect(index.count).toBe(0)
  })
})

describe('retained index over a large fan-out', () => {
  it('matches `+` then a literal level as a walk of the children would, through adds and removes (seeded)', () => {
    const rng = new Rng(16)
    const index = new RetainedIndex()
    const present = new Set<string>()
    // many names, so that each is under a quarter of the children of `a` and its lookups are cached
    const names = ['c', 'd', 'e', '$x', '', ...'fghijklmnopq']
    const level = (): string => names[rng.int(names.length)]
    const topicOf = (): string => `${rng.chance(0.1) ? '$s' : 'a'}/${rng.int(3000)}/${level()}${rng.chance(0.3) ? `/${level()}` : ''}`
    const filters = ['a/+/c', 'a/+/d', 'a/+/c/e', 'a/+/$x', 'a/+/', '+/+/c', '+/5/c', 'a/+/zz', 'a/+/c/+', '$s/+/d']
    for (let round = 0; round < 20; round++) {
      for (let k = 0; k < 500; k++) {
        const topic = topicOf()
        if (rng.chance(0.25)) {
          index.remove(topic)
          present.delete(topic)
        } else {
          index.add(topic)
          present.add(topic)
        }
      }
      for (const filter of filters) {
        expect([...index.match(filter)].sort(), `${filter}, round ${round}`).toEqual([...present].filter((t) => topicMatches(filter, t)).sort())
      }
    }
  })
})

// LevelDB only: the Redis store has no index of its own; a wildcard there scans the literal prefix (docs/store.md).
describe('retained lookups with 100k retained messages', () => {
  let store: CulexStore
  let dir: string
  beforeAll(async () => {
    dir = await dirs.make()
    store = await open(dir)
    // the worst case for `a/+/c`: 100k siblings under `a`, with the only match near the end
    for (let i = 0; i < 100_000; i++) await store.storeRetained(retained(i === 99_000 ? 'a/99000/c' : `a/${i}/x`, 'v'))
    await store.barrier()
    await store.close()
    store = await open(dir)
  }, 60_000)
  afterAll(async () => {
    await store.close()
    await dirs.cleanup()
  })

  // How fast these answer is a benchmark target (npm run bench, scenario "retained": under 10 ms to the first
  // message), not something a unit test on a shared machine should time.
  it('answers SUBSCRIBE a/+/c with the one match among 100k retained topics, from the index', async () => {
    const stream = store.createRetainedStreamCombi(['a/+/c'])
    const found: Packet[] = []
    for await (const packet of stream) found.push(packet as Packet)
    expect(found.map(p => p.topic)).toEqual(['a/99000/c'])
    const index = new RetainedIndex()
    for (let i = 0; i < 100_000; i++) index.add(i === 99_000 ? 'a/99000/c' : `a/${i}/x`)
    expect([...index.match('a/+/c')]).toEqual(['a/99000/c'])
  })

  it('answers an exact topic among 100k retained topics', async () => {
    expect(await topics(store, ['a/5/x'])).toEqual(['a/5/x'])
    expect(store.stats().retained).toBe(100_000)
  })
})

describe('retained messages read for a SUBSCRIBE (LevelDB)', () => {
  afterEach(async () => { await dirs.cleanup() })

  it('reads the next batch of matches while one is being delivered, and delivers every match once', async () => {
    // Read only once the stream was asked for more, each batch waited for its LevelDB read after the one before had
    // been delivered: a SUBSCRIBE matching 10,000 kept the broker idle 40 % of the time (docs/performance.md).
    const { queue, reader, drops, logger, close } = await storeParts(await dirs.make())
    const reads: number[] = []
    const counting = { read: (keys: string[]) => { reads.push(keys.length); return reader.read(keys) } } as unknown as ValueReader
    const store = new RetainedStore({ queue, reader: counting, limits: unlimited, drops, logger })
    const count = 2000
    for (let i = 0; i < count; i++) store.store(retained(`r/${String(i).padStart(4, '0')}`))
    await queue.barrier()
    const stream = store.stream(['r/+'])
    const got: string[] = []
    // The consumer takes the first message and stops: the stream fills its buffer (16 messages: the batches of 1, 4
    // and 16), and the batch after those must be under way all the same, to be ready when the consumer asks again.
    const first = await new Promise<Packet>((resolve) => stream.once('data', resolve))
    stream.pause()
    got.push(String(first.topic))
    await waitFor(() => reads.length >= 4, 'the read of the batch after the buffered ones', 2000)
    expect(reads.slice(0, 4)).toEqual([1, 4, 16, 64])
    stream.resume()
    for await (const packet of stream) got.push(String((packet as Packet).topic))
    expect(got).toHaveLength(count)
    expect(new Set(got).size).toBe(count)
    expect(reads.reduce((a, b) => a + b, 0)).toBe(count)
    await close()
  })
})
