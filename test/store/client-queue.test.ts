import { describe, expect, it } from 'vitest'
import { ClientQueue, type QueueTotals } from '../../src/store/outgoing-index.js'
import { queueEntry, type QueueEntry } from '../../src/store/queue-entry.js'

/** A seeded generator, so a failing sequence can be run again. */
function seeded (seed: number): () => number {
  let s = seed
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31
    return s / 2 ** 31
  }
}

function entry (seq: number, messageId?: number): QueueEntry {
  return queueEntry({ seq, enc: 'c', cmd: 'publish', brokerId: 'b', brokerCounter: seq * 10, messageId, qos: 1, bytes: seq % 7 + 1, enqueuedAt: seq })
}

/** What the queue must agree with after every step: the live entries in seq order, their counts and lookups. */
function expectSame (queue: ClientQueue, model: Map<number, QueueEntry>, totals: QueueTotals, step: string): void {
  const live = [...model.values()].sort((a, b) => a.seq - b.seq)
  expect(queue.snapshot().map(e => e.seq), step).toEqual(live.map(e => e.seq))
  expect([...queue.values()].map(e => e.seq), step).toEqual(live.map(e => e.seq))
  expect(queue.size, step).toBe(live.length)
  const bytes = live.reduce((n, e) => n + e.bytes, 0)
  expect(queue.bytes, step).toBe(bytes)
  expect(totals, step).toEqual({ entries: live.length, bytes })
  expect(queue.inflightCount, step).toBe(live.filter(e => e.messageId !== undefined).length)
  expect(queue.oldestEnqueuedAt(), step).toBe(live[0]?.enqueuedAt)
  expect(live.filter(e => queue.get(e.seq) !== e || queue.byCounter('b', e.seq * 10) !== e).map(e => e.seq), step).toEqual([])
}

describe('a session queue held in seq order', () => {
  // Removals at the head (a drain), anywhere (expiry, out-of-order acknowledgements), and entries put back in any
  // order after a failed write, as the store does them: the array with its tombstones must agree with a map by seq.
  for (const seed of [1, 7, 42, 1234, 99991]) {
    it(`agrees with a map by seq through adds, removals and restores (seed ${seed})`, () => {
      const random = seeded(seed)
      const totals: QueueTotals = { entries: 0, bytes: 0 }
      const queue = new ClientQueue('c', 'c', totals)
      const model = new Map<number, QueueEntry>()
      const removed: QueueEntry[] = []
      let seq = 0
      for (let step = 0; step < 8000; step++) {
        // the queue grows past the thresholds at which tombstones are dropped, then shrinks
        const r = step < 4000 ? random() : 0.25 + 0.75 * random()
        const live = [...model.values()].sort((a, b) => a.seq - b.seq)
        if (r < 0.5 || live.length === 0) {
          const e = entry(++seq, random() < 0.2 ? (seq % 65535) + 1 : undefined)
          queue.add(e)
          model.set(e.seq, e)
        } else if (r < 0.65) {
          queue.remove(live[0])
          model.delete(live[0].seq)
          removed.push(live[0])
        } else if (r < 0.85) {
          const e = live[Math.floor(random() * live.length)]
          queue.remove(e)
          model.delete(e.seq)
          removed.push(e)
        } else if (removed.length > 0) {
          // a failed batch's undos, one entry at a time, newest first
          const n = Math.min(removed.length, 1 + Math.floor(random() * 40))
          for (const e of removed.splice(removed.length - n, n).reverse()) {
            queue.restore([e])
            model.set(e.seq, e)
          }
        }
        // a removal of what is gone changes nothing
        if (step % 97 === 0 && removed.length > 0) queue.remove(removed[0])
        if (step % 200 === 0) expectSame(queue, model, totals, `seed ${seed} step ${step}`)
      }
      expectSame(queue, model, totals, `seed ${seed} end`)
      for (const e of [...model.values()]) queue.remove(e)
      expect(queue.size).toBe(0)
      expect(totals).toEqual({ entries: 0, bytes: 0 })
    })
  }

  it('keeps its order while drained from the head as new entries arrive (a reconnect with a backlog)', () => {
    const totals: QueueTotals = { entries: 0, bytes: 0 }
    const queue = new ClientQueue('c', 'c', totals)
    const model = new Map<number, QueueEntry>()
    let seq = 0
    let head = 1
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 300; i++) {
        const e = entry(++seq)
        queue.add(e)
        model.set(e.seq, e)
      }
      for (let i = 0; i < 250; i++) {
        const e = model.get(head++) as QueueEntry
        queue.remove(e)
        model.delete(e.seq)
      }
      if (round % 10 === 0) expectSame(queue, model, totals, `round ${round}`)
    }
    expectSame(queue, model, totals, 'end')
    expect(queue.get(head - 1)).toBeUndefined()
  })

  it('puts back 20,000 entries removed at random, restored one at a time in reverse, in seq order', () => {
    const random = seeded(5)
    const totals: QueueTotals = { entries: 0, bytes: 0 }
    const queue = new ClientQueue('c', 'c', totals)
    const all = Array.from({ length: 20_000 }, (_, i) => entry(i + 1))
    for (const e of all) queue.add(e)
    const order = [...all]
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[order[i], order[j]] = [order[j], order[i]]
    }
    for (const e of order) queue.remove(e)
    expect(queue.size).toBe(0)
    for (const e of [...order].reverse()) queue.restore([e])
    expect(queue.snapshot().map(e => e.seq)).toEqual(all.map(e => e.seq))
    expect(totals.entries).toBe(20_000)
  })
})
