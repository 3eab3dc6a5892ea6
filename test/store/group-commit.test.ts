import { setImmediate as nextTick } from 'node:timers/promises'
import { Level } from 'level'
import { afterEach, describe, expect, it } from 'vitest'
import { isReadBack } from '../../src/store/layout.js'
import { LogReopener } from '../../src/store/log-reopen.js'
import { decodeRecord } from '../../src/store/codec.js'
import { Outbox } from '../../src/store/outbox.js'
import { DropReporter } from '../../src/store/queue-limits.js'
import { ValueReader } from '../../src/store/reader.js'
import { LAZY_PUT_DELAY_MS, WriteQueue, type WriteOp } from '../../src/store/write-queue.js'
import { LIVE_COPY_DELAY_MS } from '../../src/store/live-copies.js'
import { captureLogger, drain, open, publish, silentLogger, storeParts, TempDirs, unlimited } from './helpers/store.js'

const dirs = new TempDirs()
afterEach(async () => { await dirs.cleanup() })

describe('group commit', () => {
  it('resolves 10k interleaved committed ops in call order and loses nothing', async () => {
    const dir = await dirs.make()
    const store = await open(dir)
    await store.setup({ id: 'b', counter: 0 })
    const clients = ['c0', 'c1', 'c2']
    for (const id of clients) await store.addSubscriptions({ id }, [{ topic: 't/#', qos: 1 }])
    const order: number[] = []
    const pending: Array<Promise<void>> = []
    let call = 0
    for (let i = 0; i < 10_000; i++) {
      const client = clients[i % 3]
      if (i % 10 === 3) {
        // staged: resolves at once by design, so it is outside the ordering check
        pending.push(store.storeRetained({ cmd: 'publish', topic: `r/${i}`, payload: Buffer.from(String(i)), qos: 1, retain: true }))
        continue
      }
      const n = call++
      let op: Promise<unknown>
      if (i % 10 === 7) {
        op = store.addSubscriptions({ id: `s${i}` }, [{ topic: `x/${i}`, qos: 1 }])
      } else {
        op = store.outgoingEnqueueCombi([{ clientId: client, qos: 1 }, { clientId: 'c0', qos: 1 }], publish(`t/${i}`, String(i), { brokerId: 'b', brokerCounter: i + 1 }))
      }
      pending.push(op.then(() => { order.push(n) }))
      // spread the calls over many ticks so several batches are queued and in flight at once
      if (i % 97 === 0) await nextTick()
    }
    await Promise.all(pending)
    expect(order).toEqual([...Array(call).keys()])

    const c0 = await drain(store.outgoingStream({ id: 'c0' })) as Array<Record<string, unknown>>
    const enqueued = [...Array(10_000).keys()].filter((i) => i % 10 !== 3 && i % 10 !== 7)
    expect(c0.map((p) => p.brokerCounter)).toEqual(enqueued.map((i) => i + 1))
    const c1 = await drain(store.outgoingStream({ id: 'c1' })) as Array<Record<string, unknown>>
    expect(c1.map((p) => p.brokerCounter)).toEqual(enqueued.filter((i) => i % 3 === 1).map((i) => i + 1))
    expect(store.stats().retained).toBe(1000)
    await store.close()
  })

  it('writes ops from the same tick in one batch', async () => {
    const dir = await dirs.make()
    const store = await open(dir)
    const before = store.stats().writeBatches
    const ops: Array<Promise<void>> = []
    for (let i = 0; i < 5000; i++) {
      ops.push(store.outgoingEnqueueCombi([{ clientId: `c${i % 50}`, qos: 1 }], publish('t', String(i), { brokerId: 'b', brokerCounter: i + 1 })))
    }
    await Promise.all(ops)
    expect(store.stats().writeBatches - before).toBe(1)

    // pipelined windows of 100 ops: about one batch per window, never one per op
    const start = store.stats().writeBatches
    for (let w = 0; w < 50; w++) {
      const window: Array<Promise<void>> = []
      for (let i = 0; i < 100; i++) {
        const n = 5000 + w * 100 + i
        window.push(store.outgoingEnqueueCombi([{ clientId: 'p', qos: 1 }], publish('t', String(n), { brokerId: 'b', brokerCounter: n + 1 })))
      }
      await Promise.all(window)
    }
    expect(store.stats().writeBatches - start).toBeLessThanOrEqual(100)
    expect(store.stats().queuedMessages).toBe(10_000)
    await store.close()
  })

  it('an empty enqueue still waits for the commit of writes staged before it', async () => {
    const dir = await dirs.make()
    const store = await open(dir)
    await store.storeRetained({ cmd: 'publish', topic: 'r', payload: Buffer.from('v'), qos: 1, retain: true })
    await store.incomingStorePacket({ id: 'pub' }, publish('r', 'v', { qos: 2, messageId: 1 }))
    const batches = store.stats().writeBatches
    await store.outgoingEnqueueCombi([], publish('r', 'v', { brokerId: 'b', brokerCounter: 1 }))
    expect(store.stats().writeBatches).toBe(batches + 1)
    await store.close()
  })
})

/** A database that records every put and del written through its chained batches. */
function spyDb (db: Level<string, Buffer>, written: string[]): ConstructorParameters<typeof WriteQueue>[0]['db'] {
  return {
    batch: () => {
      const b = db.batch()
      return {
        put: (k: string, v: Buffer) => { written.push(`put ${k}`); return b.put(k, v) },
        del: (k: string) => { written.push(`del ${k}`); return b.del(k) },
        write: async (o: { sync: boolean }) => { await b.write(o) },
        close: async () => { await b.close() }
      }
    }
  }
}

describe('a put cancelled by a later del', () => {
  it('writes only the del when a put and a del of one key share a batch, and reads the pending put back before', async () => {
    const dir = await dirs.make()
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' })
    await db.open()
    const written: string[] = []
    const queue = new WriteQueue({ db: spyDb(db, written), dir, sync: false, logger: silentLogger(), tracked: () => true, reopener: new LogReopener(db, dir, silentLogger()) })
    await queue.commit([{ type: 'put', key: 'a', value: Buffer.from('old') }])
    written.length = 0
    queue.stage([{ type: 'put', key: 'a', value: Buffer.from('new') }, { type: 'put', key: 'b', value: Buffer.from('b') }])
    expect(queue.peek('a')?.toString()).toBe('new')
    await queue.commit([{ type: 'put', key: 'c', value: Buffer.from('c') }, { type: 'del', key: 'b' }, { type: 'del', key: 'a' }])
    expect(written).toEqual(['put c', 'del b', 'del a'])
    expect(queue.cancelledPuts).toBe(2)
    expect(await db.get('a')).toBeUndefined()
    expect(await db.get('b')).toBeUndefined()
    expect((await db.get('c'))?.toString()).toBe('c')
    await queue.close()
    await db.close()
  })
})

/** An Outbox on a real LevelDB whose batches are recorded in `written` ("put <key>", "del <key>"). */
async function spiedOutbox (limits = unlimited): Promise<{ outbox: Outbox, queue: WriteQueue, written: string[], db: Level<string, Buffer> }> {
  const dir = await dirs.make()
  const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' })
  await db.open()
  const written: string[] = []
  const logger = silentLogger()
  const reopener = new LogReopener(db, dir, logger)
  const queue = new WriteQueue({ db: spyDb(db, written), dir, sync: false, logger, tracked: isReadBack, reopener })
  const outbox = new Outbox({ queue, reader: new ValueReader(db, queue, reopener), limits, drops: new DropReporter(logger, undefined), logger })
  return { outbox, queue, written, db }
}

describe('the packet id of a QoS 1 copy sent', () => {
  it('is written LAZY_PUT_DELAY_MS to twice that after it was sent unless acknowledged first, once, with the id it was last sent with; close writes what is held', async () => {
    const { outbox, queue, written, db } = await spiedOutbox()
    const client = { id: 'c' }
    const copy = (n: number): Record<string, unknown> => publish(`t/${n}`, String(n), { brokerId: 'b', brokerCounter: n })
    for (const n of [1, 2, 3]) await outbox.enqueue([{ clientId: 'c', qos: 1 }], copy(n))
    const keys = written.map(w => w.slice(4))
    written.length = 0
    await outbox.update(client, { ...copy(1), messageId: 11 })
    await outbox.update(client, { ...copy(2), messageId: 12 })
    // acknowledged within the delay: its id is never written, only the delete
    await outbox.clear(client, { messageId: 11 })
    // sent again under another id (a reconnect): written once, with the id it went out with last
    await outbox.update(client, { ...copy(2), messageId: 22 })
    await queue.barrier()
    expect(written, 'nothing but the delete before the delay').toEqual([`del ${keys[0]}`])
    await new Promise(resolve => setTimeout(resolve, 2 * LAZY_PUT_DELAY_MS + 50))
    await queue.barrier()
    expect(written).toEqual([`del ${keys[0]}`, `put ${keys[1]}`])
    expect(decodeRecord(await db.get(keys[1]) as Buffer).fields.messageId).toBe(22)
    written.length = 0
    await outbox.update(client, { ...copy(3), messageId: 13 })
    outbox.writeIds()
    await queue.close()
    expect(written).toEqual([`put ${keys[2]}`])
    expect(decodeRecord(await db.get(keys[2]) as Buffer).fields.messageId).toBe(13)
    await db.close()
  })
})

describe('live copies (a QoS 1 message delivered before it is written)', () => {
  const setup = spiedOutbox
  const copy = (n: number): Record<string, unknown> => publish(`t/${n}`, String(n), { brokerId: 'b', brokerCounter: n })
  type Live = NonNullable<ReturnType<Outbox['enqueueLive']>>
  /** Message n queued live for client c, not sent yet. */
  const live = (outbox: Outbox, n: number): Live => outbox.enqueueLive([{ clientId: 'c', qos: 1 }], copy(n)) as Live
  /** Message n queued live for client c and sent at once under `messageId`, as the delivery does. */
  const sentLive = async (outbox: Outbox, n: number, messageId: number): Promise<Live> => {
    const queued = live(outbox, n)
    await outbox.update({ id: 'c' }, { ...copy(n), messageId })
    return queued
  }
  const settled = (copies: Live): { ended: boolean, err: Error | undefined, wait: Promise<void> } => {
    const state = { ended: false, err: undefined as Error | undefined, wait: Promise.resolve() }
    state.wait = new Promise(resolve => copies.settle(err => { state.ended = true; state.err = err; resolve() }))
    return state
  }

  it('a copy sent and acknowledged before its delay is never written nor deleted, and its publish ends with the acknowledgement', async () => {
    const { outbox, queue, written, db } = await setup()
    const first = await sentLive(outbox, 1, 7)
    expect(first).toBeDefined()
    const s = settled(first)
    await nextTick()
    expect(s.ended, 'waits for the PUBACK').toBe(false)
    await outbox.clear({ id: 'c' }, { messageId: 7 })
    await s.wait
    expect(s.err).toBeUndefined()
    await new Promise(resolve => setTimeout(resolve, 2 * LIVE_COPY_DELAY_MS + 20))
    await queue.close()
    expect(written).toEqual([])
    await db.close()
  })

  it('a copy sent and not acknowledged is written within twice its delay, and its publish ends once it is on disk', async () => {
    const { outbox, queue, written, db } = await setup()
    const sent = await sentLive(outbox, 1, 7)
    const s = settled(sent)
    const started = Date.now()
    await s.wait
    expect(Date.now() - started).toBeGreaterThanOrEqual(LIVE_COPY_DELAY_MS - 2)
    expect(written).toHaveLength(1)
    const [, key] = written[0].split(' ')
    expect(decodeRecord(await db.get(key) as Buffer).fields).toMatchObject({ topic: 't/1', messageId: 7 })
    await queue.close()
    await db.close()
  })

  it('a copy refused by its subscriber (PUBACK 0x80) was never written: its publish ends only once what the refusal wrote (the dead letter) is committed', async () => {
    const { outbox, queue, written, db } = await setup()
    const sent = await sentLive(outbox, 1, 7)
    let writtenAtEnd: string[] | undefined
    const ended = new Promise<void>(resolve => sent.settle(() => { writtenAtEnd = [...written]; resolve() }))
    // what the refusal writes first (src/protocol/v5/acknowledgements.ts records the dead letter before aedes clears)
    queue.stage([{ type: 'put', key: 'd!dead-letter', value: Buffer.from('x') }])
    await outbox.clear({ id: 'c' }, { cmd: 'puback', messageId: 7, reasonCode: 0x80 })
    await ended
    expect(writtenAtEnd).toEqual(['put d!dead-letter'])
    await queue.close()
    await db.close()
  })

  it('after a PUBACK that came too late for its hold, the session\'s next live copies are written at once, not held', async () => {
    const { outbox, queue, written, db } = await setup()
    const first = await sentLive(outbox, 1, 7)
    await settled(first).wait
    expect(written, 'written after its hold').toHaveLength(1)
    const second = await sentLive(outbox, 2, 8)
    const s = settled(second)
    await queue.barrier()
    expect(written, 'in the next batch, not after a hold').toHaveLength(2)
    await s.wait
    expect(s.err).toBeUndefined()
    // acknowledged late again: the queue is empty and goes; the session is still known to acknowledge late
    await new Promise(resolve => setTimeout(resolve, LIVE_COPY_DELAY_MS + 5))
    await outbox.clear({ id: 'c' }, { cmd: 'puback', messageId: 7 })
    await outbox.clear({ id: 'c' }, { cmd: 'puback', messageId: 8 })
    expect(outbox.info('c')).toBeUndefined()
    const third = await sentLive(outbox, 3, 9)
    const t = settled(third)
    await queue.barrier()
    expect(written.filter(w => w.startsWith('put ')), 'the third, written at once too').toHaveLength(3)
    await t.wait
    await outbox.clear({ id: 'c' }, { cmd: 'puback', messageId: 9 })
    // a PUBACK in time (a stall of the subscriber is over: acknowledged as soon as sent) ends the backoff
    const fourth = await sentLive(outbox, 4, 10)
    await outbox.clear({ id: 'c' }, { cmd: 'puback', messageId: 10 })
    await settled(fourth).wait
    // so the next copy is held again
    const fifth = await sentLive(outbox, 5, 11)
    const f = settled(fifth)
    await queue.barrier()
    expect(written.filter(w => w.startsWith('put ')), 'the fifth held, the fourth never written').toHaveLength(3)
    await outbox.clear({ id: 'c' }, { cmd: 'puback', messageId: 11 })
    await f.wait
    await queue.close()
    await db.close()
  })

  it('a copy evicted by a newer one before its own delivery ended: its publish ends only once the eviction (delete and dead letter, one batch) is written', async () => {
    const { outbox, queue, written, db } = await setup({ ...unlimited, maxQueuedMessages: 1 })
    const first = live(outbox, 1)
    const second = live(outbox, 2)
    let writtenAtFirstEnd: string[] | undefined
    const firstEnded = new Promise<void>(resolve => first.settle(() => { writtenAtFirstEnd = [...written]; resolve() }))
    await nextTick()
    expect(writtenAtFirstEnd, 'not before the eviction is written').toBeUndefined()
    await new Promise<void>(resolve => second.settle(() => resolve()))
    await firstEnded
    expect(writtenAtFirstEnd?.filter(w => w.startsWith('del '))).toHaveLength(1)
    await queue.close()
    await db.close()
  })

  it('a copy the delivery did not send (the session is away) is written at once, encoded from memory for a replay before that', async () => {
    const { outbox, queue, written, db } = await setup()
    const unsent = live(outbox, 1)
    // a replay that starts before the settle reads the entry from memory, not from disk
    const replayed: Array<Record<string, unknown>> = []
    for await (const chunk of outbox.batches({ id: 'c' })) replayed.push(...chunk)
    expect(replayed).toMatchObject([{ topic: 't/1', payload: Buffer.from('1') }])
    const s = settled(unsent)
    expect(written, 'staged at once').toHaveLength(0)
    await s.wait
    expect(written).toHaveLength(1)
    await queue.close()
    await db.close()
  })
})

describe('write failures', () => {
  it('rejects every op of the failed batch with ERR_STORE_WRITE, undoes staged changes, and keeps working', async () => {
    const dir = await dirs.make()
    const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
    await db.open()
    const { logger, lines } = captureLogger()
    const queue = new WriteQueue({ db, dir, sync: false, logger, tracked: () => true, reopener: new LogReopener(db, dir, logger) })
    const undone: string[] = []
    queue.stage([{ type: 'put', key: 'staged', value: Buffer.from('1') }], () => undone.push('staged'))
    const good = queue.commit([{ type: 'put', key: 'a', value: Buffer.from('1') }])
    // abstract-level refuses the whole batch because of this one op: a real write failure, no mock
    const bad = queue.commit([{ type: 'put', key: null as unknown as string, value: Buffer.from('x') } as WriteOp])
    expect(queue.peek('staged')).toEqual(Buffer.from('1'))
    await expect(good).rejects.toMatchObject({ code: 'ERR_STORE_WRITE' })
    await expect(bad).rejects.toMatchObject({ code: 'ERR_STORE_WRITE' })
    expect(undone).toEqual(['staged'])
    expect(queue.peek('staged')).toBeUndefined()
    expect(await db.get('a')).toBeUndefined()
    expect(lines.some((line) => line.msg === 'store write failed')).toBe(true)

    await queue.commit([{ type: 'put', key: 'b', value: Buffer.from('2') }])
    expect(await db.get('b')).toEqual(Buffer.from('2'))
    expect(queue.failedBatches).toBe(1)
    await queue.close()
    await db.close()
  })

  it('puts 20,000 acknowledged entries back in FIFO order when their batch fails (one sort, not one per entry)', async () => {
    const { queue, reader, drops, logger, close } = await storeParts(await dirs.make())
    const outbox = new Outbox({ queue, reader, limits: unlimited, drops, logger })
    const client = { id: 'c' }
    const count = 20_000
    const enqueued: Array<Promise<void>> = []
    for (let i = 1; i <= count; i++) enqueued.push(outbox.enqueue([{ clientId: 'c', qos: 1 }], publish(`t/${i}`, 'x', { brokerId: 'b', brokerCounter: i })))
    await Promise.all(enqueued)
    // The copies leave the queue in a seeded random order (a copy withheld from a connected session is cleared by
    // its broker counter), all into one batch that a bad op then fails. With one sort per restored entry this
    // undo alone took minutes.
    let seed = 13
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    const counters = [...Array(count).keys()].map(i => i + 1)
    for (let i = counters.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[counters[i], counters[j]] = [counters[j], counters[i]]
    }
    for (const counter of counters) void outbox.clear(client, { brokerId: 'b', brokerCounter: counter })
    expect(outbox.waiting(client)).toBe(0)
    // abstract-level refuses the whole batch because of this value: a real write failure
    const bad = queue.commit([{ type: 'put', key: 'bad', value: null as unknown as Buffer }])
    await expect(bad).rejects.toMatchObject({ code: 'ERR_STORE_WRITE' })
    const replayed = await drain(outbox.stream(client)) as Array<{ topic: string }>
    expect(replayed.map(p => p.topic)).toEqual(counters.map((_, i) => `t/${i + 1}`))
    await close()
  })

  it('refuses writes after close', async () => {
    const dir = await dirs.make()
    const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
    await db.open()
    const queue = new WriteQueue({ db, dir, sync: true, logger: silentLogger(), tracked: () => false, reopener: new LogReopener(db, dir, silentLogger()) })
    await queue.commit([{ type: 'put', key: 'k', value: Buffer.from('v') }])
    await queue.close()
    await expect(queue.commit([])).rejects.toMatchObject({ code: 'ERR_STORE_WRITE' })
    expect(() => { queue.stage([{ type: 'del', key: 'k' }]) }).toThrow(/closed/)
    await db.close()
  })
})
